//! CSV import: load CSV objects into tables, exactly once.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::store::ObjectUrl;

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ImportCsvInput {
    /// The CSV object (`s3://...` or `file:///...`).
    pub from: String,
    /// A PostgreSQL URL or Secrets Manager reference.
    pub target: String,
    /// `schema.table`.
    pub table: String,
    /// `append`, `upsert` or `replace`.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub max_rejected_rows: Option<u64>,
    #[serde(default)]
    pub rejects_to: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportCsvOutput {
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
}

pub async fn import_csv(input: ImportCsvInput, _ctx: Context) -> Result<ImportCsvOutput, JobError> {
    ObjectUrl::parse(&input.from)?;
    Err(JobError::NotImplemented {
        job: "import-csv",
        issue: 6,
    })
}
