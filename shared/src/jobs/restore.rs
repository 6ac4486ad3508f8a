//! Restore: load a pg_dump archive (ferry's or pg_dump's) into a database or a new Neon branch.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::store::ObjectUrl;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RestoreInput {
    /// The archive (`s3://...` or `file:///...`).
    pub from: String,
    /// A PostgreSQL URL or Secrets Manager reference; or give `neonProject` and `branch`.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub neon_project: Option<String>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub jobs: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutput {
    pub tables: u64,
    pub rows: u64,
}

pub async fn restore(input: RestoreInput, _ctx: Context) -> Result<RestoreOutput, JobError> {
    ObjectUrl::parse(&input.from)?;
    if input.target.is_none() && (input.neon_project.is_none() || input.branch.is_none()) {
        return Err(JobError::BadInput(
            "give a target database URL, or a Neon project and branch".into(),
        ));
    }
    Err(JobError::NotImplemented {
        job: "restore",
        issue: 5,
    })
}
