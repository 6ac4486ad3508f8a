//! Snapshot: dump a database or Neon branch to the object store as a pg_dump archive.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Context, JobError};
use crate::{
    archive::Compression,
    snapshot::{self, Filter, Format},
    store::{ObjectUrl, Store},
};

/// What to dump and where to.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SnapshotInput {
    /// PostgreSQL URL, Secrets Manager reference or `neon://PROJECT/BRANCH/DATABASE?role=ROLE`
    /// reference of the database to dump.
    pub source: String,
    /// The prefix the snapshot goes under (`s3://bucket/prefix/` or `file:///dir/`): the
    /// archive (`archive.dump`, `archive/` or `archive.sql`) and `manifest.json`, written last.
    pub to: String,
    /// `custom` (default), `directory` or `plain`.
    #[serde(default)]
    pub format: Option<String>,
    /// `gzip` (default, level 3; `gzip:N` for level N from 0 to 9), `zstd` or `lz4` (archive
    /// 1.15, which pg_restore 16 and later read), or `none`.
    #[serde(default)]
    pub compress: Option<String>,
    /// Connections copying tables at once (directory format; default 2).
    #[serde(default)]
    pub jobs: Option<u32>,
    /// Only these schemas (glob patterns with `*`).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Only these tables (`schema.table` or `table`, glob patterns with `*`).
    #[serde(default)]
    pub tables: Vec<String>,
    /// Leave these tables out entirely.
    #[serde(default)]
    pub exclude_tables: Vec<String>,
    /// Dump these tables' definitions but not their rows (for example migration bookkeeping).
    #[serde(default)]
    pub exclude_table_data: Vec<String>,
    /// Definitions only, no rows.
    #[serde(default)]
    pub schema_only: bool,
    /// Rows (and sequence positions) only, no definitions.
    #[serde(default)]
    pub data_only: bool,
    /// Record per-table content checksums in the manifest (reads every table once more).
    #[serde(default)]
    pub checksums: bool,
    /// The snapshot's own prefix under `to`, from `{project}`, `{branch}`, `{database}`,
    /// `{timestamp}` (UTC, sorts by time) and `{date}`, such as
    /// `{project}/{branch}/{database}/{timestamp}/`. Values become one safe key segment each.
    /// Without it, `to` is the snapshot's prefix (with `databases`, `{database}/{timestamp}/`).
    #[serde(default)]
    pub key_template: Option<String>,
    /// How the objects are stored on S3: `encryption` (`AES256`, `aws:kms`), `kmsKeyId`,
    /// `storageClass`, `tags`, over `FERRY_S3_SSE`, `FERRY_S3_SSE_KMS_KEY_ID`,
    /// `FERRY_S3_STORAGE_CLASS`, `FERRY_S3_TAGS`. Recorded in the manifest.
    #[serde(default)]
    pub storage: crate::store::WriteSettings,
    /// Dump the Neon branch as it was at this time (RFC 3339): a temporary branch is made from
    /// it at that point, dumped and deleted (also when the dump fails; it expires in a day in
    /// any case). Needs a `neon://` source.
    #[serde(default)]
    pub at: Option<String>,
    /// As `at`, at a WAL position (such as `0/1F2A3B8`).
    #[serde(default)]
    pub at_lsn: Option<String>,
    /// Several databases of the source's server or branch (the source names the first to
    /// connect to), or `["*"]` for all of them but `postgres` and templates: each gets its own
    /// archive and manifest under the key template, and one failing does not stop the others.
    #[serde(default)]
    pub databases: Vec<String>,
}

/// Where the snapshot landed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotOutput {
    /// The archive: an object (custom, plain) or a prefix ending in `/` (directory).
    pub archive: String,
    /// Its `manifest.json`.
    pub manifest: String,
    pub format: String,
    pub compression: String,
    /// The archive format version written (`1.14` unless the compression needs more).
    pub archive_version: String,
    pub tables: usize,
    pub rows: u64,
    /// Bytes written to the store, archive and manifest objects together.
    pub bytes_written: u64,
}

/// gzip level 3 unless asked otherwise: on the reference database its output is within 1% of
/// pg_dump's default (level 6) and costs half the CPU (bench/run; README, Performance).
const DEFAULT_GZIP_LEVEL: u32 = 3;

fn compression(name: Option<&str>) -> Result<Compression, JobError> {
    let name = name.unwrap_or("gzip");
    let (kind, level) = name.split_once(':').unwrap_or((name, ""));
    let level = if level.is_empty() {
        None
    } else {
        Some(
            level
                .parse::<u32>()
                .ok()
                .filter(|l| *l <= 9)
                .ok_or_else(|| {
                    JobError::BadInput(format!("{name:?}: a gzip level is a number from 0 to 9"))
                })?,
        )
    };
    match kind {
        "gzip" => Ok(Compression::Gzip {
            level: Some(level.unwrap_or(DEFAULT_GZIP_LEVEL)),
        }),
        "none" if level.is_none() => Ok(Compression::None),
        "zstd" if level.is_none() => Ok(Compression::Zstd),
        "lz4" if level.is_none() => Ok(Compression::Lz4),
        _ => Err(JobError::BadInput(format!(
            "unknown compression {name:?}: use gzip, gzip:LEVEL, zstd, lz4 or none"
        ))),
    }
}

/// The Neon project and branch a `neon://` source names.
fn neon_source(source: &str) -> Option<(String, String)> {
    super::neon_parts(source).map(|(project, branch, _, _)| (project, branch))
}

/// Where one database's snapshot goes: `to`, plus the rendered key template when there is one.
fn snapshot_prefix(
    input: &SnapshotInput,
    database: &str,
    taken: std::time::SystemTime,
    template: Option<&str>,
) -> Result<ObjectUrl, JobError> {
    let mut to = ObjectUrl::parse(&input.to)?;
    if !to.key.as_str().is_empty() && !to.key.as_str().ends_with('/') {
        to = ObjectUrl::parse(&format!("{}/", input.to))?;
    }
    let Some(template) = template else {
        return Ok(to);
    };
    let neon = neon_source(&input.source);
    let rendered = crate::catalog::render_key_template(
        template,
        &crate::catalog::KeyValues {
            project: neon.as_ref().map(|n| n.0.clone()),
            branch: neon.map(|n| n.1),
            database: database.to_string(),
            taken: Some(taken),
        },
    )
    .map_err(JobError::BadInput)?;
    Ok(ObjectUrl::parse(&format!("{to}{rendered}"))?)
}

pub async fn snapshot(input: SnapshotInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    if !input.databases.is_empty() {
        return Err(JobError::BadInput(
            "databases: several databases are snapshotted by snapshot_request".into(),
        ));
    }
    if input.at.is_some() || input.at_lsn.is_some() {
        return Box::pin(snapshot_at(input, ctx)).await;
    }
    let config = super::database(&input.source).await?;
    let to = snapshot_prefix(
        &input,
        &config.dbname,
        std::time::SystemTime::now(),
        input.key_template.as_deref(),
    )?;
    snapshot_into(&input, config, to, &ctx).await
}

/// `at` / `atLsn`: a temporary branch of the source branch at that point, dumped, then deleted
/// whatever happened.
async fn snapshot_at(input: SnapshotInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    let Some((project, parent, database, role)) = super::neon_parts(&input.source) else {
        return Err(JobError::BadInput(
            "at and atLsn need a neon://PROJECT/BRANCH/DATABASE?role=ROLE source: a point in \
             time is a Neon branch's history"
                .into(),
        ));
    };
    let name = format!(
        "ferry-snapshot-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    // Checked (time or LSN format) by the branch job before any request.
    let made = super::branch(
        super::BranchInput {
            action: super::BranchAction::Create,
            project: project.clone(),
            branch: Some(name.clone()),
            parent: Some(parent.clone()),
            expires_in: Some("1d".into()),
            at: input.at.clone(),
            at_lsn: input.at_lsn.clone(),
        },
        ctx.clone(),
    )
    .await?;
    let branch_id = made
        .branch
        .as_ref()
        .map(|b| b.branch_id.clone())
        .ok_or_else(|| JobError::BadInput("the Neon API returned no branch".into()))?;
    tracing::info!(branch = %branch_id, at = ?input.at, at_lsn = ?input.at_lsn, "made a point-in-time branch to dump");
    let source = super::neon_reference(&project, &branch_id, &database, &role);
    let dumped = async {
        let config = super::database(&source).await?;
        let mut at_input = input.clone();
        at_input.source = source.clone();
        let to = snapshot_prefix(
            &input,
            &database,
            std::time::SystemTime::now(),
            input.key_template.as_deref(),
        )?;
        snapshot_into(&at_input, config, to, &ctx).await
    }
    .await;
    let removed = super::branch(
        super::BranchInput {
            action: super::BranchAction::Delete,
            project,
            branch: Some(branch_id.clone()),
            parent: None,
            expires_in: None,
            at: None,
            at_lsn: None,
        },
        ctx,
    )
    .await;
    if let Err(e) = &removed {
        tracing::warn!(branch = %branch_id, error = %e, "could not delete the point-in-time branch (it expires in a day)");
    }
    dumped
}

/// One database's snapshot in a request for several.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSnapshot {
    pub database: String,
    /// The snapshot, when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
}

/// Snapshots of several databases: which succeeded, which failed and why.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabasesOutput {
    pub databases: Vec<DatabaseSnapshot>,
    pub succeeded: usize,
    pub failed: usize,
}

/// Snapshots every database `input.databases` names, one after the other, each under the key
/// template (`{database}/{timestamp}/` by default); a failure is recorded and the rest go on.
pub async fn snapshot_databases(
    input: SnapshotInput,
    ctx: Context,
) -> Result<DatabasesOutput, JobError> {
    if input.at.is_some() || input.at_lsn.is_some() {
        return Err(JobError::BadInput(
            "at/atLsn with several databases: the backup workflow makes one point-in-time \
             branch for all of them"
                .into(),
        ));
    }
    let template = input
        .key_template
        .clone()
        .unwrap_or_else(|| "{database}/{timestamp}/".into());
    if !template.contains("{database}") {
        return Err(JobError::BadInput(format!(
            "key template {template:?} has no {{database}}: the databases' snapshots would overwrite each other"
        )));
    }
    let base = super::database(&input.source).await?;
    let names = if input.databases.iter().any(|d| d == "*") {
        if input.databases.len() > 1 {
            return Err(JobError::BadInput(
                "databases: `*` means all of them; give it alone".into(),
            ));
        }
        let session = crate::pg::connect(&base.direct()).await?;
        session
            .query(
                "SELECT datname::text FROM pg_catalog.pg_database \
                 WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
                &[],
            )
            .await
            .map_err(crate::pg::PgError::from)?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    } else {
        let mut names = input.databases.clone();
        names.dedup();
        names
    };
    let taken = std::time::SystemTime::now();
    let mut out = DatabasesOutput {
        databases: Vec::new(),
        succeeded: 0,
        failed: 0,
    };
    for name in names {
        let one = async {
            let config = match super::neon_parts(&input.source) {
                Some((project, branch, _, role)) => {
                    super::database(&super::neon_reference(&project, &branch, &name, &role)).await?
                }
                None => {
                    let mut c = base.clone();
                    c.dbname = name.clone();
                    c
                }
            };
            let to = snapshot_prefix(&input, &name, taken, Some(&template))?;
            Box::pin(snapshot_into(&input, config, to, &ctx)).await
        };
        match one.await {
            Ok(snapshot) => {
                out.succeeded += 1;
                out.databases.push(DatabaseSnapshot {
                    database: name,
                    snapshot: Some(snapshot),
                    error: None,
                    error_type: None,
                });
            }
            Err(e) => {
                tracing::error!(database = %name, error = %e, "snapshot of one database failed");
                out.failed += 1;
                out.databases.push(DatabaseSnapshot {
                    database: name,
                    snapshot: None,
                    error: Some(e.to_string()),
                    error_type: Some(e.error_type().to_string()),
                });
            }
        }
    }
    Ok(out)
}

async fn snapshot_into(
    input: &SnapshotInput,
    config: crate::pg::PgConfig,
    to: ObjectUrl,
    ctx: &Context,
) -> Result<SnapshotOutput, JobError> {
    let input = input.clone();
    let format = match input.format.as_deref() {
        None => Format::Custom,
        Some(name) => Format::parse(name).ok_or_else(|| {
            JobError::BadInput(format!(
                "unknown format {name:?}: use custom, directory or plain"
            ))
        })?,
    };
    let compression = match (input.compress.as_deref(), format) {
        (None, Format::Plain) => Compression::None,
        (name, _) => compression(name)?,
    };
    if input.schema_only && input.data_only {
        return Err(JobError::BadInput(
            "schemaOnly and dataOnly exclude each other".into(),
        ));
    }
    let jobs = input.jobs.unwrap_or(2).clamp(1, 64) as usize;
    let neon = neon_source(&input.source);
    let mut store_config = ctx.store.clone();
    store_config.write = input.storage.over(&ctx.store.write);
    store_config.write.check().map_err(JobError::BadInput)?;
    if to.bucket.is_none() && !input.storage.is_empty() {
        return Err(JobError::BadInput(
            "storage (encryption, storage class, tags) applies to s3:// locations".into(),
        ));
    }
    let store = Store::for_url(&to, &store_config).await?;
    let options = snapshot::Options {
        format,
        compression,
        jobs,
        filter: Filter {
            schemas: input.schemas,
            tables: input.tables,
            exclude_tables: input.exclude_tables,
            exclude_table_data: input.exclude_table_data,
            schema_only: input.schema_only,
            data_only: input.data_only,
        },
        checksums: input.checksums,
        neon,
    };
    let outcome = snapshot::run(&config, &store, &to, &options, &ctx.progress).await?;
    let manifest_size = store.head(&outcome.manifest_url.key).await?.size;
    let m = &outcome.manifest;
    Ok(SnapshotOutput {
        archive: outcome.archive.to_string(),
        manifest: outcome.manifest_url.to_string(),
        format: match format {
            Format::Custom => "custom",
            Format::Directory => "directory",
            Format::Plain => "plain",
        }
        .into(),
        compression: compression.name().into(),
        archive_version: format!(
            "{}.{}",
            compression.minimum_version().major,
            compression.minimum_version().minor
        ),
        tables: m.tables.len(),
        rows: m.tables.iter().map(|t| t.rows).sum(),
        bytes_written: m.objects.iter().map(|o| o.size).sum::<u64>() + manifest_size,
    })
}

/// What the `snapshot` function accepts: a snapshot to take, or `{"prune": {...}}` (the
/// backup workflow's retention step).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SnapshotRequest {
    Snapshot(Box<SnapshotInput>),
    Prune { prune: super::PruneInput },
}

impl<'de> Deserialize<'de> for SnapshotRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        match value.get("prune") {
            Some(prune) => {
                if let Some(other) = value
                    .as_object()
                    .and_then(|m| m.keys().find(|k| *k != "prune"))
                {
                    return Err(D::Error::custom(format!(
                        "unknown field `{other}` beside `prune`"
                    )));
                }
                serde_json::from_value(prune.clone())
                    .map(|prune| SnapshotRequest::Prune { prune })
                    .map_err(|e| D::Error::custom(format!("prune: {e}")))
            }
            None => serde_json::from_value(value)
                .map(|s| SnapshotRequest::Snapshot(Box::new(s)))
                .map_err(D::Error::custom),
        }
    }
}

/// What the `snapshot` function answers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SnapshotResponse {
    Snapshot(SnapshotOutput),
    Databases(DatabasesOutput),
    Prune(super::PruneOutput),
}

/// The `snapshot` function: a snapshot, or a prune.
pub async fn snapshot_request(
    request: SnapshotRequest,
    ctx: Context,
) -> Result<SnapshotResponse, JobError> {
    match request {
        SnapshotRequest::Snapshot(input) if !input.databases.is_empty() => Ok(
            SnapshotResponse::Databases(Box::pin(snapshot_databases(*input, ctx)).await?),
        ),
        SnapshotRequest::Snapshot(input) => Ok(SnapshotResponse::Snapshot(
            Box::pin(snapshot(*input, ctx)).await?,
        )),
        SnapshotRequest::Prune { prune } => {
            Ok(SnapshotResponse::Prune(super::prune(prune, ctx).await?))
        }
    }
}
