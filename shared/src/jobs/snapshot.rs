//! Snapshot: dump a database or Neon branch to the object store as a pg_dump archive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::store::ObjectUrl;

/// What to dump and where to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotInput {
    /// PostgreSQL URL or Secrets Manager reference of the database to dump.
    pub source: String,
    /// Where the archive goes (`s3://bucket/prefix/` or `file:///dir/`).
    pub to: String,
    /// `custom`, `directory` or `plain`.
    #[serde(default)]
    pub format: Option<String>,
    /// `gzip`, `zstd`, `lz4` or `none`.
    #[serde(default)]
    pub compress: Option<String>,
    /// Connections dumping tables at once.
    #[serde(default)]
    pub jobs: Option<u32>,
}

/// Where the snapshot landed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOutput {
    pub archive: String,
    pub manifest: String,
}

pub async fn snapshot(input: SnapshotInput, _ctx: Context) -> Result<SnapshotOutput, JobError> {
    ObjectUrl::parse(&input.to)?;
    Err(JobError::NotImplemented {
        job: "snapshot",
        issue: 4,
    })
}
