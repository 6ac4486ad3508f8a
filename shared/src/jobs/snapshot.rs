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

pub async fn snapshot(input: SnapshotInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    let mut to = ObjectUrl::parse(&input.to)?;
    if !to.key.as_str().is_empty() && !to.key.as_str().ends_with('/') {
        to = ObjectUrl::parse(&format!("{}/", input.to))?;
    }
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
    let neon = input.source.strip_prefix("neon://").and_then(|rest| {
        let mut parts = rest.split(['/', '?']);
        Some((parts.next()?.to_string(), parts.next()?.to_string()))
    });
    let config = super::database(&input.source).await?;
    let store = Store::for_url(&to, &ctx.store).await?;
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
