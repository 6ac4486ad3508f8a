//! `ferry`: the jobs of the ferry Lambdas, from a terminal or CI.
//!
//! Every subcommand builds the same typed input the Lambda receives and calls the same library
//! function, so `ferry snapshot` and the `snapshot` Lambda cannot drift apart.

mod progress;

use std::{io::IsTerminal, process::ExitCode, sync::Arc};

use clap::{Args, Parser, Subcommand};
use ferry::jobs::{self, BranchAction, Context, JobError};
use serde::Serialize;

/// Move data in and out of Neon Postgres branches.
///
/// Locations are URLs: databases as postgres://user:password@host/db?sslmode=... (or the usual
/// PG* variables, or a Secrets Manager ARN), objects as s3://bucket/prefix or file:///path.
/// Secrets never appear in output: pass them through the environment or Secrets Manager.
/// `ferry --version`: the version and the commit built (see `build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("FERRY_COMMIT"),
    ")"
);

#[derive(Parser)]
#[command(name = "ferry", version = VERSION, about, long_about, propagate_version = true)]
struct Cli {
    /// Print the result as one JSON object on standard output.
    #[arg(long, global = true)]
    json: bool,
    /// More log output on standard error (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Dump a database or Neon branch to an object store as a pg_dump archive.
    Snapshot(SnapshotArgs),
    /// Load a pg_dump archive into a database or a new Neon branch.
    Restore(RestoreArgs),
    /// Load a CSV object into a table, exactly once.
    #[command(name = "import-csv")]
    ImportCsv(ImportCsvArgs),
    /// Compare a source (database or snapshot manifest) with a target database: row counts,
    /// checksums, schema and integrity. Exit code 0 when they match, 1 when something differs.
    Validate(ValidateArgs),
    /// Create, inspect, list, delete or reset Neon branches.
    Branch {
        #[command(subcommand)]
        action: BranchCommand,
    },
    /// Check that ferry can reach a database and an object store with the given settings.
    Check(CheckArgs),
    /// The snapshots under a prefix.
    Snapshots {
        #[command(subcommand)]
        action: SnapshotsCommand,
    },
    /// Delete old snapshots by a retention policy (a dry run unless --delete).
    Prune(PruneArgs),
}

#[derive(Subcommand)]
enum SnapshotsCommand {
    /// Complete snapshots (with their manifest), newest first, and incomplete ones.
    List {
        /// The prefix to look under (s3://bucket/backups/ or file:///dir/), at any depth.
        #[arg(long)]
        from: String,
    },
}

#[derive(Args)]
struct PruneArgs {
    /// The prefix to prune under; each series (the prefix a snapshot sits under) on its own.
    #[arg(long)]
    from: String,
    /// Keep the newest N snapshots.
    #[arg(long)]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N days (UTC) that have one.
    #[arg(long)]
    keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks that have one.
    #[arg(long)]
    keep_weekly: Option<u32>,
    /// Keep every snapshot taken within this long (30d, 12h).
    #[arg(long)]
    keep_within: Option<String>,
    /// Delete for real (without it: a dry run that says what would go).
    #[arg(long)]
    delete: bool,
    /// Also delete snapshots without a manifest older than this (default 2d).
    #[arg(long)]
    incomplete_older_than: Option<String>,
}

#[derive(Args)]
struct SnapshotArgs {
    /// The database to dump (URL, Secrets Manager or neon://PROJECT/BRANCH/DB?role=R reference).
    #[arg(long, env = "FERRY_SOURCE")]
    source: String,
    /// The snapshot's prefix under --to from {project}, {branch}, {database}, {timestamp},
    /// {date}, such as "{project}/{branch}/{database}/{timestamp}/".
    #[arg(long)]
    key_template: Option<String>,
    /// Snapshot these databases of the source's server or branch, each on its own (repeatable;
    /// `*` for all but postgres); the key template defaults to "{database}/{timestamp}/".
    #[arg(long = "database")]
    databases: Vec<String>,
    /// S3 server-side encryption of what is written: AES256 (SSE-S3) or aws:kms (SSE-KMS).
    #[arg(long)]
    sse: Option<String>,
    /// The KMS key for --sse aws:kms (id, ARN or alias/NAME).
    #[arg(long)]
    sse_kms_key_id: Option<String>,
    /// S3 storage class of what is written (STANDARD_IA, INTELLIGENT_TIERING, ...).
    #[arg(long)]
    storage_class: Option<String>,
    /// An object tag KEY=VALUE (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// S3 Object Lock of what is written: GOVERNANCE or COMPLIANCE (with --lock-days; the
    /// bucket must have Object Lock enabled). Prune keeps a locked snapshot whole.
    #[arg(long, requires = "lock_days")]
    lock_mode: Option<String>,
    /// Days each object written stays locked.
    #[arg(long, requires = "lock_mode")]
    lock_days: Option<u32>,
    /// Dump a Neon branch as it was at this time (RFC 3339), through a temporary branch.
    #[arg(long, conflicts_with = "at_lsn")]
    at: Option<String>,
    /// Dump a Neon branch as it was at this WAL position, through a temporary branch.
    #[arg(long)]
    at_lsn: Option<String>,
    /// The prefix to write the archive and its manifest under (s3://bucket/prefix/ or file:///dir/).
    #[arg(long)]
    to: String,
    /// Archive format: custom (default), directory or plain.
    #[arg(long)]
    format: Option<String>,
    /// Compression: gzip (default), gzip:LEVEL or none.
    #[arg(long)]
    compress: Option<String>,
    /// Tables dumped at once (directory format), over connections sharing one snapshot.
    #[arg(long)]
    jobs: Option<u32>,
    /// Only schemas matching this pattern (repeatable; as pg_dump: `*` and `?`, unquoted names
    /// folded to lower case).
    #[arg(long = "schema", short = 'n')]
    schemas: Vec<String>,
    /// Only tables matching this pattern, `schema.table` or `table` (repeatable).
    #[arg(long = "table", short = 't')]
    tables: Vec<String>,
    /// Leave out tables matching this pattern (repeatable).
    #[arg(long = "exclude-table", short = 'T')]
    exclude_tables: Vec<String>,
    /// Dump these tables' definitions but not their rows (repeatable).
    #[arg(long = "exclude-table-data")]
    exclude_table_data: Vec<String>,
    /// Definitions only.
    #[arg(long, conflicts_with = "data_only")]
    schema_only: bool,
    /// Rows and sequence positions only.
    #[arg(long)]
    data_only: bool,
    /// Record per-table content checksums in the manifest.
    #[arg(long)]
    checksums: bool,
}

#[derive(Args)]
struct RestoreArgs {
    /// The archive to restore (s3://... or file:///...); with --latest or --as-of, a prefix
    /// holding snapshots.
    #[arg(long)]
    from: String,
    /// Restore the newest complete snapshot under the prefix --from.
    #[arg(long, conflicts_with = "as_of")]
    latest: bool,
    /// Restore the newest complete snapshot under --from taken at or before this time (RFC 3339).
    #[arg(long)]
    as_of: Option<String>,
    /// The target database (URL or Secrets Manager reference).
    #[arg(long, env = "FERRY_TARGET", conflicts_with = "neon_project")]
    target: Option<String>,
    /// Restore into a branch of this Neon project instead of a database URL.
    #[arg(long, requires = "branch")]
    neon_project: Option<String>,
    /// The Neon branch to restore into (created when missing).
    #[arg(long)]
    branch: Option<String>,
    /// Parent of a branch that has to be created.
    #[arg(long)]
    parent: Option<String>,
    /// A created branch expires after this long (1d, 12h, ...).
    #[arg(long)]
    expires_in: Option<String>,
    /// Restore into this database of the branch, created empty when missing.
    #[arg(long)]
    database: Option<String>,
    /// Tables loaded and indexes built at once.
    #[arg(long)]
    jobs: Option<u32>,
    /// Do not give objects their archived owners (default for Neon branches).
    #[arg(long, short = 'O')]
    no_owner: bool,
    /// Do not restore grants (default for Neon branches).
    #[arg(long, short = 'x')]
    no_privileges: bool,
    /// Only this section: pre-data, data or post-data (repeatable).
    #[arg(long = "section")]
    sections: Vec<String>,
    /// Only objects in schemas matching this pattern (repeatable; `*` and `?` wildcards).
    #[arg(long = "schema", short = 'n')]
    schemas: Vec<String>,
    /// Only this table, view or sequence and its data: `table` or `schema.table` (repeatable).
    #[arg(long = "table", short = 't')]
    tables: Vec<String>,
    /// Only the entries of this list (the output of --list, edited; a URL or a local path).
    #[arg(long, short = 'L')]
    use_list: Option<String>,
    /// Drop the archive's objects (IF EXISTS) before creating them.
    #[arg(long, short = 'c')]
    clean: bool,
    /// Leave out objects in schemas matching this pattern (repeatable).
    #[arg(long = "exclude-schema", short = 'N')]
    exclude_schemas: Vec<String>,
    /// Leave out this table, view or sequence and its data (repeatable).
    #[arg(long = "exclude-table", short = 'T')]
    exclude_tables: Vec<String>,
    /// All or nothing: one transaction on one connection (not with --jobs > 1).
    #[arg(long, short = '1')]
    single_transaction: bool,
    /// Accepted for pg_restore compatibility: --clean always drops with IF EXISTS.
    #[arg(long, requires = "clean")]
    if_exists: bool,
    /// Print the archive's table of contents and restore nothing.
    #[arg(long, short = 'l')]
    list: bool,
}

#[derive(Args)]
struct ImportCsvArgs {
    /// The CSV object (s3://... or file:///...), optionally .gz or .zst.
    #[arg(long)]
    from: String,
    /// The target database (URL, Secrets Manager or neon:// reference).
    #[arg(long, env = "FERRY_TARGET")]
    target: String,
    /// The table to load, as schema.table (default: routed from the key by FERRY_IMPORT_ROUTES
    /// or the convention imports/<schema>.<table>/<file>).
    #[arg(long)]
    table: Option<String>,
    /// append (default), upsert (on the primary key) or replace (atomically).
    #[arg(long)]
    mode: Option<String>,
    /// Load good rows and set aside up to this many bad ones (default 0: strict).
    #[arg(long)]
    max_rejected_rows: Option<u64>,
    /// Where rejected rows are written (an object, or a prefix ending in /).
    #[arg(long)]
    rejects_to: Option<String>,
    /// Field delimiter (one character; \t for tab).
    #[arg(long)]
    delimiter: Option<String>,
    /// Quote character.
    #[arg(long)]
    quote: Option<String>,
    /// Escape character inside quoted fields (default: the quote).
    #[arg(long)]
    escape: Option<String>,
    /// The unquoted text that means NULL (default: empty).
    #[arg(long)]
    null: Option<String>,
    /// The file has no header line (give --columns).
    #[arg(long)]
    no_header: bool,
    /// The file's fields in order, as column names (comma-separated).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// utf8 (default) or latin1.
    #[arg(long)]
    encoding: Option<String>,
}

#[derive(Args)]
struct ValidateArgs {
    /// The source database, a snapshot's manifest URL, or an import-csv report (its JSON, or
    /// the URL of it).
    #[arg(long)]
    source: String,
    /// The target database.
    #[arg(long, env = "FERRY_TARGET")]
    target: String,
    /// Also compare per-table content checksums (computed inside each server).
    #[arg(long)]
    checksums: bool,
    /// Connections per database used at once.
    #[arg(long)]
    jobs: Option<u32>,
    /// Also compare who owns each object (a restore with --no-owner, the default for Neon
    /// targets, gives everything to the restoring role).
    #[arg(long)]
    owners: bool,
    /// Also compare grants and default privileges (a restore with --no-privileges, the default
    /// for Neon targets, leaves them out).
    #[arg(long)]
    privileges: bool,
    /// Also compare the database's own settings, comment, connection limit and grants (only a
    /// restore that creates the database, such as pg_restore -C, carries them).
    #[arg(long)]
    database: bool,
    /// Also write the source database's profile as a manifest.json here (s3:// or file://),
    /// to validate against later.
    #[arg(long)]
    save_source_manifest: Option<String>,
}

#[derive(Args)]
struct CheckArgs {
    /// A database to connect to (URL or Secrets Manager reference).
    #[arg(long, env = "FERRY_SOURCE")]
    source: Option<String>,
    /// An object-store prefix to write, read and delete a probe object under.
    #[arg(long)]
    store: Option<String>,
}

#[derive(Subcommand)]
enum BranchCommand {
    /// Get or create a branch by exact name.
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        name: String,
        /// Parent branch (name or id); the default branch when omitted.
        #[arg(long)]
        parent: Option<String>,
        /// Expiry such as 7d or 12h (at most 30 days).
        #[arg(long)]
        expires_in: Option<String>,
        /// Branch from the parent as it was at this time (RFC 3339).
        #[arg(long, conflicts_with = "at_lsn")]
        at: Option<String>,
        /// Branch from the parent at this WAL position (such as 0/1F2A3B8).
        #[arg(long)]
        at_lsn: Option<String>,
    },
    /// Show one branch.
    Get(BranchRef),
    /// Delete a branch (deleting a missing branch succeeds).
    Delete(BranchRef),
    /// Reset a branch to its parent's current state.
    Reset(BranchRef),
    /// List a project's branches.
    List {
        #[arg(long)]
        project: String,
    },
    /// Print the connection URL of a database on a branch, password included (for a CI job's
    /// DATABASE_URL: register it as a secret before anything prints it).
    Url {
        /// neon://PROJECT/BRANCH/DATABASE?role=ROLE, as `branch create --json` and `restore
        /// --json` give it (`connection`).
        #[arg(long)]
        connection: String,
        /// The pooled (PgBouncer) host instead of the direct one.
        #[arg(long)]
        pooled: bool,
    },
}

#[derive(Args)]
struct BranchRef {
    #[arg(long)]
    project: String,
    /// Branch name or id.
    #[arg(long)]
    branch: String,
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,ferry=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The snapshot job's input, as the `snapshot` Lambda receives it.
fn snapshot_input(a: SnapshotArgs) -> Result<jobs::SnapshotInput, JobError> {
    Ok(jobs::SnapshotInput {
        source: a.source,
        to: a.to,
        format: a.format,
        compress: a.compress,
        jobs: a.jobs,
        schemas: a.schemas,
        tables: a.tables,
        exclude_tables: a.exclude_tables,
        exclude_table_data: a.exclude_table_data,
        schema_only: a.schema_only,
        data_only: a.data_only,
        checksums: a.checksums,
        key_template: a.key_template,
        storage: jobs::WriteSettings {
            lock_mode: a.lock_mode,
            lock_days: a.lock_days,
            ..storage_settings(a.sse, a.sse_kms_key_id, a.storage_class, &a.tags)?
        },
        at: a.at,
        at_lsn: a.at_lsn,
        databases: a.databases,
        distribute: None,
    })
}

/// `--sse`, `--sse-kms-key-id`, `--storage-class`, `--tag K=V` as the job's storage settings.
fn storage_settings(
    encryption: Option<String>,
    kms_key_id: Option<String>,
    storage_class: Option<String>,
    tags: &[String],
) -> Result<jobs::WriteSettings, JobError> {
    let mut parsed = std::collections::BTreeMap::new();
    for tag in tags {
        let (k, v) = tag
            .split_once('=')
            .ok_or_else(|| JobError::BadInput(format!("--tag {tag:?}: expected KEY=VALUE")))?;
        parsed.insert(k.to_string(), v.to_string());
    }
    Ok(jobs::WriteSettings {
        encryption,
        kms_key_id,
        storage_class,
        tags: parsed,
        ..jobs::WriteSettings::default()
    })
}

fn emit<T: Serialize>(json: bool, result: &T, human: impl FnOnce(&T) -> String) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(result).expect("outputs serialize")
        );
    } else {
        println!("{}", human(result));
    }
}

/// How a job that ran to the end came out.
enum Outcome {
    Done,
    /// A comparison found differences (exit code 1).
    Different,
    /// Some of several pieces of work failed; the result says which (exit code 2).
    PartlyFailed,
}

async fn run(cli: Cli, ctx: Context) -> Result<Outcome, JobError> {
    let json = cli.json;
    match cli.command {
        Command::Snapshot(a) if !a.databases.is_empty() => {
            let out = jobs::snapshot_databases(snapshot_input(a)?, ctx).await?;
            emit(json, &out, |o| {
                o.databases
                    .iter()
                    .map(|d| match (&d.snapshot, &d.error) {
                        (Some(s), _) => format!(
                            "{}: {} tables, {} rows -> {}",
                            d.database, s.tables, s.rows, s.manifest
                        ),
                        (None, error) => format!(
                            "{}: FAILED ({}): {}",
                            d.database,
                            d.error_type.as_deref().unwrap_or("?"),
                            error.as_deref().unwrap_or("")
                        ),
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
            if out.failed > 0 {
                eprintln!(
                    "ferry: {} of {} databases failed (the others' snapshots are complete)",
                    out.failed,
                    out.databases.len()
                );
                return Ok(Outcome::PartlyFailed);
            }
        }
        Command::Snapshot(a) => {
            let out = jobs::snapshot(snapshot_input(a)?, ctx).await?;
            emit(json, &out, |o| {
                format!(
                    "archive:  {}\nmanifest: {}\n{} tables, {} rows, {} bytes written ({} format, {}, archive {})",
                    o.archive,
                    o.manifest,
                    o.tables,
                    o.rows,
                    o.bytes_written,
                    o.format,
                    o.compression,
                    o.archive_version
                )
            });
        }
        Command::Snapshots {
            action: SnapshotsCommand::List { from },
        } => {
            let out = jobs::list_snapshots(jobs::ListInput { from }, ctx).await?;
            emit(json, &out, |o| {
                let mut lines: Vec<String> = o
                    .snapshots
                    .iter()
                    .map(|s| {
                        format!(
                            "{}  {}  {} tables, {} rows, {} bytes  {}",
                            s.created_at, s.database, s.tables, s.rows, s.bytes, s.location
                        )
                    })
                    .collect();
                if lines.is_empty() {
                    lines.push("no complete snapshot".into());
                }
                for i in &o.incomplete {
                    lines.push(format!(
                        "incomplete (no manifest): {} ({} objects, {} bytes, last written {})",
                        i.location,
                        i.objects,
                        i.bytes,
                        i.last_written.as_deref().unwrap_or("?")
                    ));
                }
                lines.join("\n")
            });
        }
        Command::Prune(a) => {
            let out = jobs::prune(
                jobs::PruneInput {
                    from: a.from,
                    policy: jobs::RetentionPolicy {
                        keep_last: a.keep_last,
                        keep_daily: a.keep_daily,
                        keep_weekly: a.keep_weekly,
                        keep_within: a.keep_within,
                    },
                    delete: a.delete,
                    incomplete_older_than: a.incomplete_older_than,
                },
                ctx,
            )
            .await?;
            emit(json, &out, |o| {
                let verb = if o.dry_run { "would delete" } else { "deleted" };
                let mut lines = Vec::new();
                for k in &o.kept {
                    lines.push(format!(
                        "keep     {}  {} ({})",
                        k.created_at,
                        k.location,
                        k.reasons.join(", ")
                    ));
                }
                for l in &o.locked {
                    lines.push(format!(
                        "locked   {}  {} (S3 Object Lock until {}: kept whole)",
                        l.created_at, l.location, l.locked_until
                    ));
                }
                for d in &o.deleted {
                    lines.push(format!(
                        "{verb} {}  {} ({} objects, {} bytes)",
                        d.created_at, d.location, d.objects, d.bytes
                    ));
                }
                for d in &o.incomplete_deleted {
                    lines.push(format!(
                        "{verb} incomplete {} ({} objects)",
                        d.location, d.objects
                    ));
                }
                for d in &o.incomplete_left {
                    lines.push(format!(
                        "left     incomplete {} (young: may be being written)",
                        d.location
                    ));
                }
                if o.dry_run {
                    lines.push("dry run: nothing deleted (--delete to delete)".into());
                }
                lines.join("\n")
            });
        }
        Command::Restore(a) => {
            let out = jobs::restore(
                jobs::RestoreInput {
                    from: a.from,
                    latest: a.latest,
                    as_of: a.as_of,
                    target: a.target,
                    neon_project: a.neon_project,
                    branch: a.branch,
                    parent: a.parent,
                    expires_in: a.expires_in,
                    database: a.database,
                    jobs: a.jobs,
                    no_owner: a.no_owner.then_some(true),
                    no_privileges: a.no_privileges.then_some(true),
                    sections: a.sections,
                    schemas: a.schemas,
                    tables: a.tables,
                    use_list: a.use_list.map(|l| {
                        if l.contains("://") {
                            l
                        } else {
                            let path = std::path::Path::new(&l);
                            let path = if path.is_absolute() {
                                path.to_path_buf()
                            } else {
                                std::env::current_dir().unwrap_or_default().join(path)
                            };
                            format!("file://{}", path.display())
                        }
                    }),
                    clean: a.clean,
                    list: a.list,
                    exclude_schemas: a.exclude_schemas,
                    exclude_tables: a.exclude_tables,
                    single_transaction: a.single_transaction,
                },
                ctx,
            )
            .await?;
            emit(json, &out, |o| match &o.listing {
                Some(listing) => listing.trim_end().to_string(),
                None => format!(
                    "{}restored into {}: {} items ({} already done by an earlier run), {} tables, {} rows",
                    o.snapshot
                        .as_deref()
                        .map(|m| format!("snapshot {m}\n"))
                        .unwrap_or_default(),
                    o.target,
                    o.items,
                    o.already_done,
                    o.tables,
                    o.rows
                ),
            });
        }
        Command::ImportCsv(a) => {
            let out = jobs::import_csv(
                jobs::ImportCsvInput::Request(Box::new(jobs::ImportRequest {
                    from: a.from,
                    target: Some(a.target),
                    table: a.table,
                    options: jobs::CsvOptions {
                        mode: a.mode,
                        delimiter: a.delimiter,
                        quote: a.quote,
                        escape: a.escape,
                        null: a.null,
                        header: a.no_header.then_some(false),
                        encoding: a.encoding,
                        columns: a.columns,
                        max_rejected_rows: a.max_rejected_rows,
                        rejects_to: a.rejects_to,
                    },
                    ..jobs::ImportRequest::default()
                })),
                ctx,
            )
            .await?;
            emit(json, &out, |o| {
                o.imports
                    .iter()
                    .map(describe_import)
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Command::Validate(a) => {
            let out = jobs::validate(
                jobs::ValidateInput {
                    source: a.source,
                    import_report: None,
                    target: a.target,
                    checksums: a.checksums,
                    jobs: a.jobs,
                    owners: a.owners,
                    privileges: a.privileges,
                    database: a.database,
                    save_source_manifest: a.save_source_manifest,
                },
                ctx,
            )
            .await?;
            emit(json, &out, |o| o.summary());
            if !out.matches {
                return Ok(Outcome::Different);
            }
        }
        Command::Branch {
            action: BranchCommand::Url { connection, pooled },
        } => {
            let url = jobs::neon_connection_url(&connection, pooled).await?;
            println!("{}", url.expose());
        }
        Command::Branch { action } => {
            let input = match action {
                BranchCommand::Create {
                    project,
                    name,
                    parent,
                    expires_in,
                    at,
                    at_lsn,
                } => jobs::BranchInput {
                    action: BranchAction::Create,
                    project,
                    branch: Some(name),
                    parent,
                    expires_in,
                    at,
                    at_lsn,
                },
                BranchCommand::Get(r) => branch_input(BranchAction::Get, r),
                BranchCommand::Delete(r) => branch_input(BranchAction::Delete, r),
                BranchCommand::Reset(r) => branch_input(BranchAction::Reset, r),
                BranchCommand::List { project } => jobs::BranchInput {
                    action: BranchAction::List,
                    project,
                    branch: None,
                    parent: None,
                    expires_in: None,
                    at: None,
                    at_lsn: None,
                },
                BranchCommand::Url { .. } => unreachable!("answered above"),
            };
            let out = jobs::branch(input, ctx).await?;
            emit(json, &out, describe_branches);
        }
        Command::Check(a) => {
            let out = jobs::check(
                jobs::CheckInput {
                    source: a.source,
                    store: a.store,
                },
                ctx,
            )
            .await?;
            emit(json, &out, |o| {
                let mut lines = Vec::new();
                if let Some(pg) = &o.postgres {
                    lines.push(format!(
                        "postgres: connected to {} (PostgreSQL {}, TLS {})",
                        pg.target,
                        pg.server_version,
                        if pg.tls { "on" } else { "off" }
                    ));
                    if pg.pooler_avoided {
                        lines.push(
                            "          (a Neon pooler host was given; ferry used the direct host)"
                                .into(),
                        );
                    }
                }
                if let Some(store) = &o.store {
                    lines.push(format!(
                        "store:    wrote, read back, listed and deleted {} ({} bytes)",
                        store.probe, store.bytes
                    ));
                }
                lines.join("\n")
            });
        }
    }
    Ok(Outcome::Done)
}

fn describe_import(o: &jobs::ImportOutcome) -> String {
    let table = o.table.as_deref().unwrap_or("-");
    match (&o.status, &o.report) {
        (jobs::ImportStatus::Imported, Some(r)) => {
            let mut line = format!(
                "imported {} into {table} ({}): read {} rows, loaded {}, rejected {}",
                o.source,
                r.mode.as_str(),
                r.rows_read,
                r.rows_loaded,
                r.rows_rejected
            );
            if let Some(rejects) = &r.rejects {
                line.push_str(&format!("\nrejected rows: {rejects}"));
            }
            line
        }
        (jobs::ImportStatus::AlreadyImported, Some(r)) => format!(
            "already imported {} into {table} (at {}; {} rows loaded then): nothing done",
            o.source,
            r.imported_at.as_deref().unwrap_or("?"),
            r.rows_loaded
        ),
        (status, _) => format!(
            "{status:?} {}: {}",
            o.source,
            o.error.as_deref().unwrap_or("")
        ),
    }
}

fn describe_branches(o: &jobs::BranchOutput) -> String {
    let line = |b: &jobs::BranchSummary| {
        format!(
            "{} ({}){}{}",
            b.name,
            b.branch_id,
            b.state
                .as_deref()
                .map(|s| format!(", {s}"))
                .unwrap_or_default(),
            b.expires_at
                .as_deref()
                .map(|e| format!(", expires {e}"))
                .unwrap_or_default()
        )
    };
    let mut lines = Vec::new();
    match o.action {
        BranchAction::List => lines.extend(o.branches.iter().map(line)),
        BranchAction::Delete => lines.push(match &o.branch {
            Some(b) if o.deleted => format!("deleted {}", line(b)),
            _ => "already gone: nothing to delete".to_string(),
        }),
        _ => {
            if let Some(b) = &o.branch {
                let verb = match (o.action, o.created) {
                    (BranchAction::Create, true) => "created ",
                    (BranchAction::Create, false) => "already existed: ",
                    (BranchAction::Reset, _) => "reset to its parent: ",
                    _ => "",
                };
                lines.push(format!("{verb}{}", line(b)));
                if let Some(host) = &b.endpoint_host {
                    lines.push(format!("  endpoint:   {host}"));
                }
                if let (Some(db), Some(role)) = (&b.database, &b.role) {
                    lines.push(format!("  database:   {db} (role {role})"));
                }
                if let Some(connection) = &b.connection {
                    lines.push(format!(
                        "  connection: {connection}  (password read through the Neon API)"
                    ));
                }
            }
        }
    }
    lines.join("\n")
}

fn branch_input(action: BranchAction, r: BranchRef) -> jobs::BranchInput {
    jobs::BranchInput {
        action,
        project: r.project,
        branch: Some(r.branch),
        parent: None,
        expires_in: None,
        at: None,
        at_lsn: None,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let json = cli.json;
    let mut ctx = match Context::from_env() {
        Ok(ctx) => ctx,
        Err(e) => return fail(json, &e),
    };
    ctx.progress = Arc::new(progress::CliProgress::new());
    match run(cli, ctx).await {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Different) => ExitCode::from(1),
        Ok(Outcome::PartlyFailed) => ExitCode::from(2),
        Err(e) => fail(json, &e),
    }
}

/// Reports a failure and returns exit code 2 (1 is kept for "compared and found differences").
fn fail(json: bool, e: &JobError) -> ExitCode {
    if json {
        let body = serde_json::json!({"error": {"type": e.error_type(), "message": e.to_string()}});
        println!("{body}");
    }
    eprintln!("ferry: {e}");
    ExitCode::from(2)
}
