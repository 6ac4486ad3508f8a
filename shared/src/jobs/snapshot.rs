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
    /// Only these schemas (pg_dump's patterns: `*` and `?`, unquoted names folded to lower
    /// case, quoted ones as written).
    #[serde(default)]
    pub schemas: Vec<String>,
    /// Only these tables (`schema.table` or `table`, pg_dump's patterns as for `schemas`).
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
    /// Plan the snapshot in pieces shared among several workers instead of taking it here:
    /// the answer is the plan, whose workers each run `{"piece": ...}` (again while it answers
    /// `in_progress`), then `{"finish": ...}` writes the manifest. A directory archive.
    #[serde(default)]
    pub distribute: Option<Distribute>,
}

/// How a snapshot in pieces is shared out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Distribute {
    /// Workers the pieces are shared among (the backup workflow runs them in a Map).
    pub workers: u32,
    /// Bytes of a table's heap per piece: a larger table is split into ranges of its blocks.
    /// Default 1 GiB, which one invocation dumps with time to spare.
    #[serde(default)]
    pub piece_bytes: Option<u64>,
    /// Must be `true`: the workers read the source at different moments, so nothing may write
    /// to it meanwhile (the backup workflow dumps a temporary branch made for the snapshot).
    /// The finish counts every table again and refuses pieces that disagree with the source.
    pub frozen_source: bool,
}

/// A planned snapshot: what each worker is to be given.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanOutput {
    /// The plan (`<prefix>pieces/plan.json`), which `piece` and `finish` take.
    pub plan: String,
    /// The archive's prefix, complete once `finish` has written the manifest.
    pub archive: String,
    /// One item per worker, for a Map.
    pub workers: Vec<PieceWork>,
    pub pieces: usize,
    pub tables: usize,
    /// Tables split into more than one piece.
    pub split_tables: usize,
}

/// One worker's share of a planned snapshot.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PieceWork {
    pub plan: String,
    pub worker: u32,
}

/// `{"piece": ...}`: dump one worker's pieces of a planned snapshot.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PieceInput {
    /// The database the plan was made of (as given to the plan).
    pub source: String,
    pub plan: String,
    pub worker: u32,
}

/// Whether a worker has dumped all its pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PieceStatus {
    /// Every piece of this worker is dumped.
    Done,
    /// It stopped before the deadline: run it again with the same input.
    InProgress,
}

/// What one worker invocation did.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PieceOutput {
    pub status: PieceStatus,
    pub plan: String,
    pub worker: u32,
    /// Pieces dumped by this invocation.
    pub pieces_dumped: usize,
    pub pieces_left: usize,
    pub rows: u64,
    pub bytes: u64,
}

/// `{"finish": ...}`: join the pieces and write the manifest.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FinishInput {
    pub source: String,
    pub plan: String,
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
    crate::neon::Reference::parse(source).map(|r| (r.project, r.branch))
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
    )?;
    Ok(ObjectUrl::parse(&format!("{to}{rendered}"))?)
}

pub async fn snapshot(input: SnapshotInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    if !input.databases.is_empty() {
        return Err(JobError::BadInput(
            "databases: several databases are snapshotted by snapshot_request".into(),
        ));
    }
    if input.distribute.is_some() {
        return Err(JobError::BadInput(
            "distribute: a snapshot in pieces is planned by plan_snapshot".into(),
        ));
    }
    if input.at.is_some() || input.at_lsn.is_some() {
        return Box::pin(snapshot_at(input, ctx)).await;
    }
    let (config, to) = source_and_prefix(&input).await?;
    snapshot_into(&input, config, to, &ctx).await
}

/// The database to dump and the prefix its snapshot goes under (taken now).
async fn source_and_prefix(
    input: &SnapshotInput,
) -> Result<(crate::pg::PgConfig, ObjectUrl), JobError> {
    let config = super::database(&input.source).await?;
    let to = snapshot_prefix(
        input,
        &config.dbname,
        std::time::SystemTime::now(),
        input.key_template.as_deref(),
    )?;
    Ok((config, to))
}

/// `at` / `atLsn`: a temporary branch of the source branch at that point, dumped, then deleted
/// whatever happened.
async fn snapshot_at(input: SnapshotInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    let Some(crate::neon::Reference {
        project,
        branch: parent,
        database,
        role,
    }) = crate::neon::Reference::parse(&input.source)
    else {
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
            let config = match crate::neon::Reference::parse(&input.source) {
                Some(r) => {
                    let one = crate::neon::Reference {
                        database: name.clone(),
                        ..r
                    };
                    super::database(&one.to_string()).await?
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

/// The dump options an input asks for.
fn dump_options(input: &SnapshotInput) -> Result<snapshot::Options, JobError> {
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
    Ok(snapshot::Options {
        format,
        compression,
        jobs: input.jobs.unwrap_or(2).clamp(1, 64) as usize,
        filter: Filter {
            schemas: input.schemas.clone(),
            tables: input.tables.clone(),
            exclude_tables: input.exclude_tables.clone(),
            exclude_table_data: input.exclude_table_data.clone(),
            schema_only: input.schema_only,
            data_only: input.data_only,
        },
        checksums: input.checksums,
        neon: neon_source(&input.source),
    })
}

/// The store `to` is in, writing with the input's storage settings over the environment's.
async fn store_for(
    storage: &crate::store::WriteSettings,
    to: &ObjectUrl,
    ctx: &Context,
) -> Result<Store, JobError> {
    let mut store_config = ctx.store.clone();
    store_config.write = storage.over(&ctx.store.write);
    store_config
        .write
        .check()
        .map_err(|e| JobError::BadInput(e.to_string()))?;
    if to.bucket.is_none() && !storage.is_empty() {
        return Err(JobError::BadInput(
            "storage (encryption, storage class, tags) applies to s3:// locations".into(),
        ));
    }
    Ok(Store::for_url(to, &store_config).await?)
}

async fn snapshot_into(
    input: &SnapshotInput,
    config: crate::pg::PgConfig,
    to: ObjectUrl,
    ctx: &Context,
) -> Result<SnapshotOutput, JobError> {
    let options = dump_options(input)?;
    let store = store_for(&input.storage, &to, ctx).await?;
    let dump = snapshot::run(&config, &store, &to, &options, &ctx.progress);
    // In a Lambda, the dump stops before the deadline (less the time kept back to undo it):
    // dropping it aborts its uploads, so nothing looks complete.
    let outcome = match super::stop_by(ctx)? {
        None => dump.await?,
        Some((deadline, margin)) => {
            let budget = deadline
                .duration_since(std::time::SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(margin);
            match tokio::time::timeout(budget, dump).await {
                Ok(outcome) => outcome?,
                Err(_) => {
                    return Err(JobError::DeadlineExceeded(format!(
                        "the snapshot of {} did not finish within this invocation ({} s), so \
                         nothing under {to} is complete: dump it in pieces over several \
                         invocations (distribute; the backup workflow's distribute input or the \
                         template's BackupWorkers)",
                        config.dbname,
                        budget.as_secs()
                    )));
                }
            }
        }
    };
    output_of(&outcome, options.format, options.compression, &store).await
}

/// The answer for a finished snapshot.
async fn output_of(
    outcome: &snapshot::Outcome,
    format: Format,
    compression: Compression,
    store: &Store,
) -> Result<SnapshotOutput, JobError> {
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

/// Plans a snapshot in pieces (`distribute`).
pub async fn plan_snapshot(input: SnapshotInput, ctx: Context) -> Result<PlanOutput, JobError> {
    let Some(distribute) = input.distribute.clone() else {
        return Err(JobError::BadInput(
            "a plan needs distribute (workers, frozenSource)".into(),
        ));
    };
    if !distribute.frozen_source {
        return Err(JobError::BadInput(
            "distribute.frozenSource must be true: the workers read the source at different \
             moments, so nothing may write to it meanwhile (dump a branch made for the \
             snapshot, as the backup workflow does)"
                .into(),
        ));
    }
    if !(1..=256).contains(&distribute.workers) {
        return Err(JobError::BadInput(format!(
            "distribute.workers is {}: give 1 to 256",
            distribute.workers
        )));
    }
    if input.at.is_some() || input.at_lsn.is_some() || !input.databases.is_empty() {
        return Err(JobError::BadInput(
            "distribute takes one database of a branch that stays as it is: make the \
             point-in-time branch first (the backup workflow does) and plan each database"
                .into(),
        ));
    }
    let mut options = dump_options(&input)?;
    match input.format.as_deref() {
        None => options.format = Format::Directory,
        Some(_) if options.format == Format::Directory => {}
        Some(other) => {
            return Err(JobError::BadInput(format!(
                "distribute writes a directory archive (its workers write one object per \
                 table), not format {other:?}"
            )));
        }
    }
    let piece_bytes = distribute.piece_bytes.unwrap_or(1 << 30);
    if piece_bytes < 8192 {
        return Err(JobError::BadInput(format!(
            "distribute.pieceBytes is {piece_bytes}: a piece is at least one block (8192 bytes)"
        )));
    }
    let (config, to) = source_and_prefix(&input).await?;
    let store = store_for(&input.storage, &to, &ctx).await?;
    let planned = snapshot::plan(
        &config,
        &store,
        &to,
        &options,
        &snapshot::PlanOptions {
            workers: distribute.workers as usize,
            piece_bytes,
            storage: input.storage.clone(),
        },
    )
    .await?;
    let plan_url = planned.plan_url.to_string();
    Ok(PlanOutput {
        workers: (0..distribute.workers)
            .map(|worker| PieceWork {
                plan: plan_url.clone(),
                worker,
            })
            .collect(),
        plan: plan_url,
        archive: planned.archive.to_string(),
        pieces: planned.plan.tables.iter().map(|t| t.pieces.len()).sum(),
        tables: planned.plan.tables.len(),
        split_tables: planned
            .plan
            .tables
            .iter()
            .filter(|t| t.pieces.len() > 1)
            .count(),
    })
}

/// The plan at `url`, with a store that writes as the plan says.
async fn planned(
    url: &str,
    ctx: &Context,
) -> Result<(snapshot::Plan, ObjectUrl, ObjectUrl, Store), JobError> {
    let plan_url = ObjectUrl::parse(url)?;
    let reader = Store::for_url(&plan_url, &ctx.store).await?;
    let (plan, to) = snapshot::read_plan(&reader, &plan_url).await?;
    let store = if plan.storage.is_empty() {
        reader
    } else {
        store_for(&plan.storage, &to, ctx).await?
    };
    Ok((plan, plan_url, to, store))
}

/// Dumps one worker's pieces of a planned snapshot, until done or the deadline is near.
pub async fn snapshot_piece(input: PieceInput, ctx: Context) -> Result<PieceOutput, JobError> {
    let (plan, _, to, store) = planned(&input.plan, &ctx).await?;
    let config = super::database(&input.source).await?;
    let outcome = snapshot::work(
        &config,
        &store,
        &plan,
        &to,
        input.worker as usize,
        super::stop_by(&ctx)?,
        &ctx.progress,
    )
    .await?;
    Ok(PieceOutput {
        status: if outcome.done {
            PieceStatus::Done
        } else {
            PieceStatus::InProgress
        },
        plan: input.plan,
        worker: input.worker,
        pieces_dumped: outcome.pieces_dumped,
        pieces_left: outcome.pieces_left,
        rows: outcome.rows,
        bytes: outcome.bytes,
    })
}

/// Finishes a planned snapshot: its pieces joined, the source counted, the manifest written.
pub async fn snapshot_finish(input: FinishInput, ctx: Context) -> Result<SnapshotOutput, JobError> {
    let plan_url = ObjectUrl::parse(&input.plan)?;
    let config = super::database(&input.source).await?;
    // A finish run again after its manifest was written finds no plan: the manifest answers
    // (and a plan that cannot be read is reported by `finish` itself).
    let (compression, store) = match planned(&input.plan, &ctx).await {
        Ok((plan, _, _, store)) => (Some(plan.compression), store),
        Err(_) => (None, Store::for_url(&plan_url, &ctx.store).await?),
    };
    let outcome = snapshot::finish(&config, &store, &plan_url).await?;
    let compression = compression.unwrap_or_else(|| {
        outcome
            .manifest
            .objects
            .iter()
            .find(|o| !o.key.ends_with("/toc.dat"))
            .map_or(Compression::None, |o| {
                crate::archive::custom::directory_file_compression(&o.key)
            })
    });
    output_of(&outcome, Format::Directory, compression, &store).await
}

/// What the `snapshot` function accepts: a snapshot to take, or `{"prune": {...}}` (the
/// backup workflow's retention step).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum SnapshotRequest {
    Snapshot(Box<SnapshotInput>),
    Prune { prune: super::PruneInput },
    Piece { piece: PieceInput },
    Finish { finish: FinishInput },
}

impl<'de> Deserialize<'de> for SnapshotRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let Some(kind) = ["prune", "piece", "finish"]
            .into_iter()
            .find(|k| value.get(k).is_some())
        else {
            return serde_json::from_value(value)
                .map(|s| SnapshotRequest::Snapshot(Box::new(s)))
                .map_err(D::Error::custom);
        };
        if let Some(other) = value
            .as_object()
            .and_then(|m| m.keys().find(|k| *k != kind))
        {
            return Err(D::Error::custom(format!(
                "unknown field `{other}` beside `{kind}`"
            )));
        }
        let inner = value[kind].clone();
        let parsed = match kind {
            "prune" => serde_json::from_value(inner).map(|prune| SnapshotRequest::Prune { prune }),
            "piece" => serde_json::from_value(inner).map(|piece| SnapshotRequest::Piece { piece }),
            _ => serde_json::from_value(inner).map(|finish| SnapshotRequest::Finish { finish }),
        };
        parsed.map_err(|e| D::Error::custom(format!("{kind}: {e}")))
    }
}

/// What the `snapshot` function answers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum SnapshotResponse {
    Snapshot(SnapshotOutput),
    Databases(DatabasesOutput),
    Prune(super::PruneOutput),
    Plan(PlanOutput),
    Piece(PieceOutput),
}

/// The `snapshot` function: a snapshot, or a prune.
pub async fn snapshot_request(
    request: SnapshotRequest,
    ctx: Context,
) -> Result<SnapshotResponse, JobError> {
    match request {
        SnapshotRequest::Snapshot(input) if input.distribute.is_some() => Ok(
            SnapshotResponse::Plan(Box::pin(plan_snapshot(*input, ctx)).await?),
        ),
        SnapshotRequest::Piece { piece } => Ok(SnapshotResponse::Piece(
            Box::pin(snapshot_piece(piece, ctx)).await?,
        )),
        SnapshotRequest::Finish { finish } => Ok(SnapshotResponse::Snapshot(
            Box::pin(snapshot_finish(finish, ctx)).await?,
        )),
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
