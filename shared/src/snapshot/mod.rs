//! Snapshot: a consistent dump of a database, streamed as a pg_dump archive to the object store.
//!
//! One transaction (REPEATABLE READ, read-only) exports its snapshot; the catalog is read in it
//! and turned into table-of-contents entries ([`ddl`], ordered by [`order`]); every table's rows
//! leave the server by `COPY ... TO STDOUT` and go through compression straight into a
//! multipart upload, never a local file. Directory archives let `--jobs` connections, all
//! importing the same snapshot, write one object per table at once. The manifest is computed
//! in the same snapshot (row counts, and checksums when asked) on connections of its own, beside
//! the catalog reads and the data, checked against the rows each COPY carried, and written
//! last: without it the snapshot does not exist.
//!
//! Memory is bounded by the upload's parts in flight and two small channels per table being
//! copied, whatever the size of the database.

mod ddl;
mod order;
mod pieces;

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use futures::{TryStreamExt, pin_mut};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_postgres::Statement;
use tokio_postgres::types::Type;

pub use ddl::Filter;
pub use pieces::{Plan, PlanOptions, Planned, WorkerOutcome, finish, plan, read_plan, work};

use crate::{
    archive::{
        ArchiveError, Compression, CreatedAt, Header, Layout, Offset, Section, TocEntry, Version,
        custom::{self, DataBlock, DataFile},
        is_database_level, plain,
    },
    manifest::{Manifest, ManifestObject},
    pg::{PgConfig, PgError, Session, connect},
    progress::{ProgressEvent, SharedProgress, Unit},
    sql::literal,
    store::{ObjectUrl, Store, StoreError, Upload},
    validate,
};

/// The archive's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One object, `archive.dump` (`pg_restore`-able, like `pg_dump -Fc`).
    Custom,
    /// A prefix `archive/` with `toc.dat` and one object per table (like `pg_dump -Fd`).
    Directory,
    /// One SQL script, `archive.sql` (like `pg_dump -Fp`), for psql.
    Plain,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "custom" | "c" => Some(Format::Custom),
            "directory" | "d" => Some(Format::Directory),
            "plain" | "p" => Some(Format::Plain),
            _ => None,
        }
    }
}

/// What to dump and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    pub compression: Compression,
    /// Connections copying tables at once (directory format; the custom and plain formats are
    /// one stream and use one).
    pub jobs: usize,
    pub filter: Filter,
    /// Record per-table content checksums in the manifest (one more read of every table).
    pub checksums: bool,
    /// Neon project and branch the source belongs to, recorded in the manifest.
    pub neon: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// Objects this version cannot dump: refusing beats a dump that silently lacks them.
    #[error(
        "ferry cannot dump these objects yet, so the snapshot would be incomplete: {}",
        .0.join("; ")
    )]
    Unsupported(Vec<String>),
    /// A snapshot in pieces cannot go on as asked (no plan there, a plan for another
    /// database, pieces not dumped yet).
    #[error("{0}")]
    Pieces(String),
    /// What was copied disagrees with what the snapshot's own counts say.
    #[error("the snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

impl From<tokio_postgres::Error> for SnapshotError {
    fn from(e: tokio_postgres::Error) -> SnapshotError {
        SnapshotError::Postgres(e.into())
    }
}

/// What a finished snapshot is.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub archive: ObjectUrl,
    pub manifest_url: ObjectUrl,
    pub manifest: Manifest,
}

/// Settings of every dumping session: stable value rendering, names always qualified.
const SESSION_SETUP: &str = "SET DateStyle = ISO; SET IntervalStyle = postgres; \
     SET standard_conforming_strings = on; \
     SET extra_float_digits = 3; SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
     SET row_security = off; SELECT pg_catalog.set_config('search_path', '', false)";

async fn dump_session(config: &PgConfig, snapshot: Option<&str>) -> Result<Session, PgError> {
    let session = connect(config).await?;
    session.batch_execute(SESSION_SETUP).await?;
    session
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await?;
    if let Some(id) = snapshot {
        session
            .batch_execute(&format!("SET TRANSACTION SNAPSHOT {}", literal(id)))
            .await?;
    }
    Ok(session)
}

/// A dumping session holding the snapshot, and what it is to dump.
struct Prepared {
    main: Session,
    snapshot: String,
    lsn: Option<String>,
    entries: Vec<TocEntry>,
    header: Header,
    jobs: Vec<Job>,
    /// Where the sequences stood when their positions were dumped, as validate reads them:
    /// the manifest records these rather than where they stand once the data is copied.
    sequence_states: std::collections::BTreeMap<String, String>,
    /// The first part of the manifest's profile of the database at the snapshot (the catalog
    /// facts and integrity checks), when asked for: read on a connection of its own from the
    /// moment the snapshot is exported, beside the catalog reads and the data (it was read
    /// after them, and was most of a small snapshot's time). The tables are counted after the
    /// data, so that those scans do not compete with the dump's. Dropping the set stops it.
    profile: tokio::task::JoinSet<Result<validate::Described, PgError>>,
}

/// Opens the main session, reads the catalog, locks the tables and builds the table of
/// contents and the list of tables to copy.
async fn prepare(
    config: &PgConfig,
    options: &Options,
    profile: Option<validate::Options>,
) -> Result<Prepared, SnapshotError> {
    let main = dump_session(config, None).await?;
    let row = main
        .query_catalog_one(
            "SELECT pg_export_snapshot(), current_setting('server_version'), current_database(), \
                    (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text",
            &[],
        )
        .await?;
    let (snapshot, server_version, database, lsn): (String, String, String, Option<String>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let mut profiling = tokio::task::JoinSet::new();
    if let Some(profile_options) = profile {
        let (config, snapshot) = (config.clone(), snapshot.clone());
        profiling.spawn(async move {
            validate::describe_at(&config, profile_options, Some(&snapshot)).await
        });
    }
    let missing = ddl::unsupported(&main).await?;
    if !missing.is_empty() {
        return Err(SnapshotError::Unsupported(missing));
    }
    lock_tables(&main, &options.filter).await?;
    let keywords = ddl::keywords(&main).await?;
    // Read once, for the archive's SEQUENCE SET entries and the manifest alike.
    let positions = validate::sequence_positions(&main, true).await?;
    let schema = ddl::read(&main, &keywords, &options.filter, &positions).await?;
    let sequence_states = validate::sequence_states(&positions);
    let mut ordered = order::order(schema);
    let data_only = options.filter.data_only;
    // A data-only dump keeps the data, sequence positions and the large objects' creation
    // (their bytes need them), as pg_dump -a does.
    // The database's own entries are for pg_restore --create: a plain dump has none (as
    // pg_dump -Fp without -C), a data-only dump keeps DATABASE and its properties (as pg_dump -a).
    let plain = options.format == Format::Plain;
    retain(&mut ordered, |i| {
        let database = is_database_level(&i.desc, &i.tag);
        let left_out = i.placeholder || (plain && database);
        !left_out
            && (!data_only
                || i.section == Section::Data
                || i.desc == "BLOB"
                || matches!(i.desc.as_str(), "DATABASE" | "DATABASE PROPERTIES"))
    });

    let layout = match options.format {
        Format::Directory => Layout::Directory,
        _ => Layout::Custom,
    };
    let version = options.compression.minimum_version().max(Version::V1_14);
    let entries = toc_entries(&ordered, layout);
    let header = Header {
        version,
        int_size: 4,
        off_size: 8,
        compression: options.compression,
        created: CreatedAt::from_system_time(std::time::SystemTime::now()),
        database: database.clone(),
        server_version: server_version.clone(),
        dumper_version: format!("ferry {}", crate::VERSION),
    };
    let fixed = entries.len() - ordered.items.len();
    let jobs: Vec<Job> = entries[fixed..]
        .iter()
        .zip(&ordered.items)
        .filter_map(|(entry, item)| {
            if let Some(objects) = &item.blobs {
                return Some(Job {
                    dump_id: entry.dump_id,
                    copy_sql: String::new(),
                    name: "large objects".into(),
                    blocks: 0,
                    schema: String::new(),
                    table: String::new(),
                    columns: Vec::new(),
                    end_of_copy: false,
                    blobs: Some(objects.clone()),
                    filtered: false,
                });
            }
            item.data.as_ref().map(|d| Job {
                dump_id: entry.dump_id,
                copy_sql: d
                    .copy_out
                    .clone()
                    .unwrap_or_else(|| format!("COPY {} TO STDOUT", d.copy_target)),
                filtered: d.copy_out.is_some(),
                name: format!("{}.{}", d.schema, d.name),
                blocks: d.blocks,
                schema: d.schema.clone(),
                table: d.name.clone(),
                columns: d.columns.clone(),
                end_of_copy: true,
                blobs: None,
            })
        })
        .collect();
    Ok(Prepared {
        main,
        snapshot,
        lsn,
        entries,
        header,
        jobs,
        sequence_states,
        profile: profiling,
    })
}

/// The COPY of the rows of `qualified` (its `columns` quoted) that an extension's
/// configuration `condition` selects: the extension's SQL, from the catalog, run as pg_dump
/// runs it.
fn condition_copy(qualified: &str, columns: &[String], condition: &str) -> String {
    let list = if columns.is_empty() {
        "*".to_string()
    } else {
        columns.join(", ")
    };
    format!("COPY (SELECT {list} FROM {qualified} {condition}) TO STDOUT")
}

/// Dumps the database `config` names into the prefix `to`.
pub async fn run(
    config: &PgConfig,
    store: &Store,
    to: &ObjectUrl,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, SnapshotError> {
    let profile_options = validate::Options {
        checksums: options.checksums,
        jobs: options.jobs.max(1),
    };
    let Prepared {
        main,
        snapshot,
        lsn,
        entries,
        header,
        jobs,
        sequence_states,
        mut profile,
    } = prepare(config, options, Some(profile_options)).await?;
    let total_blocks: u64 = jobs.iter().map(|j| j.blocks).sum();
    let report = Reporter {
        progress: progress.clone(),
        total: total_blocks * 8192,
        done: Mutex::new(0),
    };

    let mut offsets = std::collections::BTreeMap::new();
    let (archive, objects, copied) = match options.format {
        Format::Custom => {
            write_custom(
                &main,
                store,
                to,
                &header,
                &entries,
                &jobs,
                &report,
                &mut offsets,
            )
            .await?
        }
        Format::Plain => write_plain(&main, store, to, &header, &entries, &jobs, &report).await?,
        Format::Directory => {
            write_directory(
                config, &snapshot, store, to, &header, &entries, &jobs, options, &report,
            )
            .await?
        }
    };

    // The manifest, from the same snapshot the data came from (read beside it, see Prepared).
    let profile = profile
        .join_next()
        .await
        .expect("the profile was started")
        .map_err(|e| {
            SnapshotError::Inconsistent(format!("reading the manifest's profile stopped: {e}"))
        })??
        .count(config, profile_options, Some(&snapshot))
        .await?
        .with_facts(sequence_states);
    main.batch_execute("COMMIT").await?;
    drop(main);
    let copied = copied
        .into_iter()
        .map(|(job, rows, bytes)| CopiedTable {
            schema: job.schema,
            table: job.table,
            rows,
            bytes,
            partial: job.filtered,
        })
        .collect();
    let written = Written {
        archive,
        objects,
        offsets,
        copied,
    };
    write_manifest(
        store,
        to,
        &profile,
        written,
        lsn,
        options.filter.is_filtered(),
        options.neon.clone(),
    )
    .await
}

/// What the data copies left: the archive, its objects, where each custom-format data block
/// starts, and what each table's COPY carried.
struct Written {
    archive: ObjectUrl,
    objects: Vec<ManifestObject>,
    offsets: std::collections::BTreeMap<i32, u64>,
    copied: Vec<CopiedTable>,
}

/// Rows and bytes (uncompressed) one table's COPY carried.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CopiedTable {
    schema: String,
    table: String,
    rows: u64,
    bytes: u64,
    /// Only the rows a condition selects (an extension's configuration table): the manifest
    /// keeps the whole table's count, which a restore reproduces with the extension's rows.
    partial: bool,
}

/// Writes `manifest.json` under `to`, last: the profile's counts (checked against the rows each
/// COPY carried), the archive's objects and where it came from.
async fn write_manifest(
    store: &Store,
    to: &ObjectUrl,
    profile: &validate::Profile,
    written: Written,
    lsn: Option<String>,
    filtered: bool,
    neon: Option<(String, String)>,
) -> Result<Outcome, SnapshotError> {
    let mut manifest = validate::manifest_of(profile);
    let copied = &written.copied;
    for c in copied {
        let Some(table) = manifest
            .tables
            .iter_mut()
            .find(|t| t.schema == c.schema && t.name == c.table)
        else {
            continue;
        };
        if c.partial {
            continue;
        }
        if table.rows != c.rows {
            return Err(SnapshotError::Inconsistent(format!(
                "COPY of {}.{} carried {} rows but the snapshot counts {}",
                c.schema, c.table, c.rows, table.rows
            )));
        }
        table.bytes = Some(c.bytes);
    }
    if filtered {
        // A partial dump: only the tables whose rows it holds, and no whole-schema fingerprint.
        manifest.tables.retain(|t| {
            copied
                .iter()
                .any(|c| c.schema == t.schema && c.table == t.name)
        });
        manifest.schema = None;
    }
    manifest.source.lsn = lsn;
    if let Some((project, branch)) = neon {
        manifest.source.neon_project = Some(project);
        manifest.source.neon_branch = Some(branch);
    }
    manifest.archive = Some(written.archive.to_string());
    manifest.objects = written.objects;
    manifest.data_offsets = written.offsets;
    let write = store.write_settings();
    manifest.storage = (!write.is_empty()).then_some(write);
    let manifest_url = to.join("manifest.json")?;
    let body = serde_json::to_vec_pretty(&manifest).expect("manifests serialize");
    store.put(&manifest_url.key, Bytes::from(body)).await?;
    Ok(Outcome {
        archive: written.archive,
        manifest_url,
        manifest,
    })
}

/// Keeps the items `wanted` says (a data-only dump: the data entries and sequence values;
/// never placeholders), with their dependencies renumbered.
fn retain(ordered: &mut order::Ordered, wanted: impl Fn(&ddl::Item) -> bool) {
    let keep: Vec<bool> = ordered.items.iter().map(wanted).collect();
    let mut new_position = vec![usize::MAX; keep.len()];
    let mut next = 0;
    for (i, &k) in keep.iter().enumerate() {
        if k {
            new_position[i] = next;
            next += 1;
        }
    }
    let items = std::mem::take(&mut ordered.items);
    let deps = std::mem::take(&mut ordered.deps);
    for ((item, deps), k) in items.into_iter().zip(deps).zip(&keep) {
        if *k {
            ordered.items.push(item);
            ordered.deps.push(
                deps.into_iter()
                    .filter(|&d| keep[d])
                    .map(|d| new_position[d])
                    .collect(),
            );
        }
    }
}

/// Takes ACCESS SHARE locks on every table the dump wants, as pg_dump does, before the
/// catalog is read: a table cannot be dropped or altered between the snapshot and the
/// definitions read from it (the server's `pg_get_*def` functions read the current catalog,
/// not the snapshot's), nor while its rows are copied.
async fn lock_tables(session: &Session, filter: &ddl::Filter) -> Result<(), PgError> {
    let sql = format!(
        "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {}",
        ddl::USER_SCHEMA
    );
    // Names quoted by the server: nothing from the catalog is pasted unquoted.
    let names: Vec<String> = session
        .query_catalog(&sql, &[])
        .await?
        .iter()
        .filter(|r| filter.relation_wanted(r.get(0), r.get(1)))
        .map(|r| r.get(2))
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    session
        .batch_execute(&format!(
            "SET lock_timeout = '60s'; LOCK TABLE {} IN ACCESS SHARE MODE; SET lock_timeout = 0",
            names.join(", ")
        ))
        .await?;
    Ok(())
}

/// The table of contents: pg_restore's three fixed entries, then every item.
fn toc_entries(ordered: &order::Ordered, layout: Layout) -> Vec<TocEntry> {
    let mut encoding = TocEntry::new(1, "ENCODING", "ENCODING", Section::PreData);
    encoding.defn = Some("SET client_encoding = 'UTF8';\n".into());
    let mut strings = TocEntry::new(2, "STDSTRINGS", "STDSTRINGS", Section::PreData);
    strings.defn = Some("SET standard_conforming_strings = 'on';\n".into());
    let mut path = TocEntry::new(3, "SEARCHPATH", "SEARCHPATH", Section::PreData);
    path.defn = Some("SELECT pg_catalog.set_config('search_path', '', false);\n".into());
    let mut entries = vec![encoding, strings, path];
    let first = entries.len() as i32 + 1;
    for (i, (item, deps)) in ordered.items.iter().zip(&ordered.deps).enumerate() {
        let mut e = TocEntry::new(first + i as i32, &item.desc, &item.tag, item.section);
        e.table_oid = item.catalog.to_string();
        e.oid = item.key.map_or(0, |k| k.1).to_string();
        e.defn = Some(item.defn.clone());
        e.drop_stmt = item.drop.clone();
        e.namespace = item.namespace.clone();
        e.owner = item.owner.clone();
        e.relkind = item.relkind;
        e.tableam = item.tableam.clone();
        if matches!(
            item.desc.as_str(),
            "TABLE" | "MATERIALIZED VIEW" | "INDEX" | "CONSTRAINT"
        ) {
            e.tablespace = Some(item.tablespace.clone().unwrap_or_default());
        }
        e.dependencies = deps.iter().map(|&d| first + d as i32).collect();
        if item.blobs.is_some() {
            e.had_dumper = true;
            e.offset = Offset::NotSet;
            e.defn = Some(String::new());
            if layout == Layout::Directory {
                e.file = Some(BLOBS_TOC.into());
            }
        }
        if let Some(data) = &item.data {
            e.had_dumper = true;
            e.offset = Offset::NotSet;
            e.defn = Some(String::new());
            e.copy_stmt = Some(format!("COPY {} FROM stdin;\n", data.copy_target));
            e.oid = data.oid.to_string();
            if layout == Layout::Directory {
                e.file = Some(custom::directory_data_name(e.dump_id));
            }
        }
        entries.push(e);
    }
    entries
}

/// One table to copy.
#[derive(Debug, Clone)]
struct Job {
    dump_id: i32,
    copy_sql: String,
    name: String,
    schema: String,
    table: String,
    /// The columns COPY carries, unquoted.
    columns: Vec<String>,
    blocks: u64,
    /// Whether the rows end with pg_dump's end-of-data marker (all but the leading pieces of
    /// a table split over several).
    end_of_copy: bool,
    /// The `BLOBS` entry's job: these large objects' bytes, instead of a table's rows.
    blobs: Option<Vec<u32>>,
    /// Only some rows (an extension configuration table's condition).
    filtered: bool,
}

/// Rows and bytes (uncompressed) each table's COPY carried.
type Copied = Vec<(Job, u64, u64)>;

struct Reporter {
    progress: SharedProgress,
    total: u64,
    done: Mutex<u64>,
}

impl Reporter {
    fn add(&self, bytes: u64) {
        let done = {
            let mut done = self.done.lock().unwrap();
            *done += bytes;
            *done
        };
        self.progress.report(ProgressEvent {
            job: "snapshot",
            step: "copying tables".into(),
            done,
            total: Some(self.total.max(done)),
            unit: Unit::Bytes,
        });
    }
}

/// How a table's COPY text is framed in the archive.
enum Framer {
    Block(DataBlock),
    File(Box<DataFile>),
    Raw,
}

impl Framer {
    fn write(&mut self, data: &[u8]) -> Vec<u8> {
        match self {
            Framer::Block(b) => b.write(data),
            Framer::File(f) => f.write(data),
            Framer::Raw => data.to_vec(),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Framer::Block(b) => b.finish(),
            Framer::File(f) => f.finish(),
            Framer::Raw => Vec::new(),
        }
    }
}

/// An object being written, with its running size and sha256.
struct Sink {
    upload: Upload,
    sha: Sha256,
    size: u64,
}

impl Sink {
    async fn open(store: &Store, url: &ObjectUrl) -> Result<Sink, StoreError> {
        Ok(Sink {
            upload: store.upload(&url.key).await?,
            sha: Sha256::new(),
            size: 0,
        })
    }

    async fn write(&mut self, data: Vec<u8>) -> Result<(), StoreError> {
        if data.is_empty() {
            return Ok(());
        }
        self.sha.update(&data);
        self.size += data.len() as u64;
        self.upload.write(Bytes::from(data)).await
    }

    async fn finish(self, name: &str) -> Result<ManifestObject, StoreError> {
        self.upload.finish().await?;
        Ok(ManifestObject {
            key: name.to_string(),
            size: self.size,
            sha256: hex::encode(self.sha.finalize()),
            parts: Vec::new(),
        })
    }
}

/// The COPY statements of the jobs one session runs in turn, prepared a window at a time. The
/// driver prepares a statement before it runs it, a round trip of its own; prepared together,
/// a window of tables costs one round trip instead of one each (a Lambda is 1 to 2 ms from a
/// Neon compute, and a small database's snapshot is mostly round trips).
#[derive(Default)]
struct CopyStatements {
    /// Index in the jobs of the first prepared statement.
    start: usize,
    prepared: Vec<Option<Statement>>,
}

impl CopyStatements {
    const WINDOW: usize = 128;

    /// The statement of `jobs[at]`, a table's (not a large objects' job).
    async fn get(
        &mut self,
        session: &Session,
        jobs: &[Job],
        at: usize,
    ) -> Result<Statement, SnapshotError> {
        if at < self.start || at >= self.start + self.prepared.len() {
            let window = &jobs[at..(at + Self::WINDOW).min(jobs.len())];
            self.prepared = futures::future::try_join_all(window.iter().map(|job| async move {
                match job.blobs {
                    Some(_) => Ok(None),
                    None => session.prepare(&job.copy_sql).await.map(Some),
                }
            }))
            .await?;
            self.start = at;
        }
        match &self.prepared[at - self.start] {
            Some(statement) => Ok(statement.clone()),
            None => Err(SnapshotError::Inconsistent(format!(
                "{} has no COPY statement (a large objects' job)",
                jobs[at].name
            ))),
        }
    }
}

/// Bytes of COPY text handed to the compressing thread at a time.
const BATCH: usize = 256 * 1024;

/// pg_dump's end-of-data marker, which archives carry after each table's rows.
const END_OF_COPY: &[u8] = b"\\.\n\n\n";

/// Copies one table into `sink` through `framer`: rows arrive from the server, are framed and
/// compressed on a blocking thread, and are uploaded, all three at once. Returns rows and
/// uncompressed bytes.
async fn copy_table(
    session: &Session,
    statement: &Statement,
    job: &Job,
    mut framer: Framer,
    sink: &mut Sink,
    report: &Reporter,
) -> Result<(u64, u64), SnapshotError> {
    let (to_framer, mut framer_in) = mpsc::channel::<Bytes>(8);
    let (framer_out, mut from_framer) = mpsc::channel::<Vec<u8>>(8);
    let worker = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = framer_in.blocking_recv() {
            let out = framer.write(&chunk);
            if !out.is_empty() && framer_out.blocking_send(out).is_err() {
                return;
            }
        }
        let _ = framer_out.blocking_send(framer.finish());
    });
    let read = async move {
        let stream = session.copy_out(statement).await?;
        pin_mut!(stream);
        let (mut rows, mut bytes, mut unreported) = (0u64, 0u64, 0u64);
        // The server sends one message per row: gather them into batches, so that the
        // compressing thread is woken once per batch, not once per row.
        let mut batch = bytes::BytesMut::with_capacity(BATCH);
        while let Some(chunk) = stream.try_next().await? {
            rows += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            batch.extend_from_slice(&chunk);
            if batch.len() >= BATCH {
                unreported += batch.len() as u64;
                if unreported >= 16 << 20 {
                    report.add(unreported);
                    unreported = 0;
                }
                let full = std::mem::replace(&mut batch, bytes::BytesMut::with_capacity(BATCH));
                if to_framer.send(full.freeze()).await.is_err() {
                    break;
                }
            }
        }
        report.add(unreported + batch.len() as u64);
        if job.end_of_copy {
            batch.extend_from_slice(END_OF_COPY);
        }
        let _ = to_framer.send(batch.freeze()).await;
        Ok::<_, SnapshotError>((rows, bytes))
    };
    let write = async {
        while let Some(out) = from_framer.recv().await {
            sink.write(out).await?;
        }
        Ok::<_, SnapshotError>(())
    };
    let (counts, ()) = tokio::try_join!(read, write)?;
    worker.await.map_err(|e| {
        SnapshotError::Inconsistent(format!("compression of {} failed: {e}", job.name))
    })?;
    Ok(counts)
}

/// A directory archive's list of its large objects' files (archive 1.14: one list).
const BLOBS_TOC: &str = "blobs.toc";

/// Bytes of a large object read at a time.
const LARGE_OBJECT_PIECE: i32 = 1 << 20;

/// Reads large object `oid` as the dump's snapshot sees it, a piece at a time, and writes
/// what `frame` makes of each piece to `sink`.
async fn read_large_object(
    session: &Session,
    oid: u32,
    report: &Reporter,
    mut frame: impl FnMut(&[u8]) -> Vec<u8>,
    sink: &mut Sink,
) -> Result<(), SnapshotError> {
    let mut offset = 0i64;
    loop {
        let piece: Vec<u8> = session
            .query_typed_one(
                "SELECT lo_get($1, $2, $3)",
                &[
                    (&oid, Type::OID),
                    (&offset, Type::INT8),
                    (&LARGE_OBJECT_PIECE, Type::INT4),
                ],
            )
            .await?
            .get(0);
        if !piece.is_empty() {
            sink.write(frame(&piece)).await?;
            report.add(piece.len() as u64);
        }
        if piece.len() < LARGE_OBJECT_PIECE as usize {
            return Ok(());
        }
        offset += piece.len() as i64;
    }
}

#[allow(clippy::too_many_arguments)]
async fn write_custom(
    session: &Session,
    store: &Store,
    to: &ObjectUrl,
    header: &Header,
    entries: &[TocEntry],
    jobs: &[Job],
    report: &Reporter,
    offsets: &mut std::collections::BTreeMap<i32, u64>,
) -> Result<(ObjectUrl, Vec<ManifestObject>, Copied), SnapshotError> {
    let name = "archive.dump";
    let url = to.join(name)?;
    let mut sink = Sink::open(store, &url).await?;
    sink.write(custom::header_bytes(header)?).await?;
    sink.write(custom::toc_bytes(header.version, entries))
        .await?;
    let mut copied = Vec::new();
    let mut statements = CopyStatements::default();
    for (at, job) in jobs.iter().enumerate() {
        offsets.insert(job.dump_id, sink.size);
        if let Some(objects) = &job.blobs {
            sink.write(custom::blobs_head(job.dump_id)).await?;
            for &oid in objects {
                let (mut block, head) = custom::LargeObject::start(oid, header.compression)?;
                sink.write(head).await?;
                read_large_object(session, oid, report, |bytes| block.write(bytes), &mut sink)
                    .await?;
                sink.write(block.finish()).await?;
            }
            sink.write(custom::blobs_end()).await?;
            continue;
        }
        let (block, head) = DataBlock::start(job.dump_id, header.compression)?;
        sink.write(head).await?;
        let statement = statements.get(session, jobs, at).await?;
        let (rows, bytes) = copy_table(
            session,
            &statement,
            job,
            Framer::Block(block),
            &mut sink,
            report,
        )
        .await?;
        copied.push((job.clone(), rows, bytes));
    }
    let object = sink.finish(name).await?;
    Ok((url, vec![object], copied))
}

async fn write_plain(
    session: &Session,
    store: &Store,
    to: &ObjectUrl,
    header: &Header,
    entries: &[TocEntry],
    jobs: &[Job],
    report: &Reporter,
) -> Result<(ObjectUrl, Vec<ManifestObject>, Copied), SnapshotError> {
    if header.compression != Compression::None {
        return Err(SnapshotError::Archive(ArchiveError::NotBuilt(
            "compressed plain dumps (use --compress none with --format plain)",
        )));
    }
    let name = "archive.sql";
    let url = to.join(name)?;
    let mut sink = Sink::open(store, &url).await?;
    let key = plain::restrict_key();
    sink.write(plain::preamble(header, &key).into_bytes())
        .await?;
    let mut copied = Vec::new();
    let mut statements = CopyStatements::default();
    let (mut access_method, mut tablespace) = (None, None);
    for entry in entries {
        if let Some(set) = plain::tablespace(entry, &mut tablespace) {
            sink.write(set.into_bytes()).await?;
        }
        if let Some(set) = plain::access_method(entry, &mut access_method) {
            sink.write(set.into_bytes()).await?;
        }
        if entry.had_dumper {
            let at = jobs
                .iter()
                .position(|j| j.dump_id == entry.dump_id)
                .expect("every data entry has a job");
            let job = &jobs[at];
            if let Some(objects) = &job.blobs {
                // As pg_dump writes them: one transaction, each object opened, written in
                // pieces and closed (descriptor 0: the only one open).
                sink.write(plain::blobs_header(entry).into_bytes()).await?;
                sink.write(b"BEGIN;\n\n".to_vec()).await?;
                for &oid in objects {
                    sink.write(
                        format!("SELECT pg_catalog.lo_open('{oid}', 131072);\n").into_bytes(),
                    )
                    .await?;
                    read_large_object(
                        session,
                        oid,
                        report,
                        |bytes| {
                            format!(
                                "SELECT pg_catalog.lowrite(0, '\\x{}');\n",
                                hex::encode(bytes)
                            )
                            .into_bytes()
                        },
                        &mut sink,
                    )
                    .await?;
                    sink.write(b"SELECT pg_catalog.lo_close(0);\n\n".to_vec())
                        .await?;
                }
                sink.write(b"COMMIT;\n\n".to_vec()).await?;
                continue;
            }
            sink.write(plain::copy_header(entry).into_bytes()).await?;
            let statement = statements.get(session, jobs, at).await?;
            let (rows, bytes) =
                copy_table(session, &statement, job, Framer::Raw, &mut sink, report).await?;
            copied.push((job.clone(), rows, bytes));
        } else {
            sink.write(plain::entry_text(entry, true).into_bytes())
                .await?;
        }
    }
    sink.write(plain::epilogue(&key).into_bytes()).await?;
    let object = sink.finish(name).await?;
    Ok((url, vec![object], copied))
}

#[allow(clippy::too_many_arguments)]
async fn write_directory(
    config: &PgConfig,
    snapshot: &str,
    store: &Store,
    to: &ObjectUrl,
    header: &Header,
    entries: &[TocEntry],
    jobs: &[Job],
    options: &Options,
    report: &Reporter,
) -> Result<(ObjectUrl, Vec<ManifestObject>, Copied), SnapshotError> {
    let dir = to.join("archive")?;
    let suffix = custom::directory_file_suffix(header.compression);
    let (blob_jobs, jobs): (Vec<&Job>, Vec<&Job>) = jobs.iter().partition(|j| j.blobs.is_some());
    let mut queue: Vec<Job> = jobs.iter().map(|j| (*j).clone()).collect();
    queue.sort_by_key(|j| std::cmp::Reverse(j.blocks));
    let queue = Arc::new(Mutex::new(VecDeque::from(queue)));
    let results: Arc<Mutex<(Vec<ManifestObject>, Copied)>> = Arc::default();
    let workers = options.jobs.max(1).min(jobs.len().max(1));
    let report = Arc::new(Reporter {
        progress: report.progress.clone(),
        total: report.total,
        done: Mutex::new(0),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (config, snapshot, store, dir, queue, results, report) = (
            config.clone(),
            snapshot.to_string(),
            store.clone(),
            dir.clone(),
            queue.clone(),
            results.clone(),
            report.clone(),
        );
        let compression = header.compression;
        tasks.spawn(async move {
            let session = dump_session(&config, Some(&snapshot)).await?;
            loop {
                let Some(job) = queue.lock().unwrap().pop_front() else {
                    return Ok::<_, SnapshotError>(());
                };
                let name = format!("{}{suffix}", custom::directory_data_name(job.dump_id));
                let mut sink = Sink::open(&store, &dir.join(&name)?).await?;
                let framer = Framer::File(Box::new(DataFile::new(compression)?));
                let statement = session.prepare(&job.copy_sql).await?;
                let (rows, bytes) =
                    copy_table(&session, &statement, &job, framer, &mut sink, &report).await?;
                let object = sink.finish(&format!("archive/{name}")).await?;
                let mut results = results.lock().unwrap();
                results.0.push(object);
                results.1.push((job, rows, bytes));
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(result) => result?,
            Err(e) => {
                return Err(SnapshotError::Inconsistent(format!(
                    "a copying worker failed: {e}"
                )));
            }
        }
    }
    let mut blob_objects = Vec::new();
    for job in blob_jobs {
        let objects = job.blobs.as_deref().unwrap_or_default();
        let session = dump_session(config, Some(snapshot)).await?;
        let mut list = String::new();
        for &oid in objects {
            let file = format!("blob_{oid}.dat");
            let name = format!("{file}{suffix}");
            let mut sink = Sink::open(store, &dir.join(&name)?).await?;
            let mut data = DataFile::new(header.compression)?;
            read_large_object(&session, oid, &report, |bytes| data.write(bytes), &mut sink).await?;
            sink.write(data.finish()).await?;
            blob_objects.push(sink.finish(&format!("archive/{name}")).await?);
            list.push_str(&format!("{oid} {file}\n"));
        }
        let mut sink = Sink::open(store, &dir.join(BLOBS_TOC)?).await?;
        sink.write(list.into_bytes()).await?;
        blob_objects.push(sink.finish(&format!("archive/{BLOBS_TOC}")).await?);
    }
    let mut toc = custom::header_bytes_for(header, Layout::Directory)?;
    toc.extend(custom::toc_bytes_for(
        header.version,
        entries,
        Layout::Directory,
    ));
    let toc_url = dir.join("toc.dat")?;
    let mut sink = Sink::open(store, &toc_url).await?;
    sink.write(toc).await?;
    let toc_object = sink.finish("archive/toc.dat").await?;
    let (mut objects, copied) = std::mem::take(&mut *results.lock().unwrap());
    objects.push(toc_object);
    objects.extend(blob_objects);
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((ObjectUrl::parse(&format!("{dir}/"))?, objects, copied))
}
