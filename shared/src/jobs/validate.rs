//! Validate: prove that what arrived is what left.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ValidateInput {
    /// A PostgreSQL URL, a Secrets Manager reference, or a snapshot manifest URL.
    pub source: String,
    /// A PostgreSQL URL or Secrets Manager reference.
    pub target: String,
    /// Compare per-table content checksums as well as counts and schema.
    #[serde(default)]
    pub checksums: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidateOutput {
    pub matches: bool,
}

pub async fn validate(_input: ValidateInput, _ctx: Context) -> Result<ValidateOutput, JobError> {
    Err(JobError::NotImplemented {
        job: "validate",
        issue: 7,
    })
}
