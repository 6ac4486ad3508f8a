//! Snapshots too big for one invocation: planned once, dumped in pieces by several workers
//! (each one Lambda invocation or several in turn), finished once.
//!
//! The plan reads the catalog and writes the directory archive's `toc.dat` (its table of
//! contents names each table's data file, so it is complete before any data) and
//! `pieces/plan.json`: every table's data as one piece, or a large table as ranges of its
//! blocks (`ctid` ranges, PostgreSQL 14+), each piece given to one worker, largest first to the
//! least loaded. A worker dumps its pieces in turn to keys fixed by the plan and records each
//! finished one (`pieces/<plan id>/<dump id>-<n>.json`); run again, it skips what is recorded,
//! and before the deadline it stops and says what is left. The finish joins a split table's
//! pieces into its data file (on S3 server-side), counts the source, checks every table's rows
//! against its pieces, writes the manifest last and removes `pieces/`.
//!
//! The workers read the source at different moments, so nothing may write it meanwhile: the
//! backup workflow dumps a temporary branch made for the snapshot. The finish counts every
//! table again and refuses a snapshot whose pieces disagree with the source.

use std::time::{Duration, Instant, SystemTime};
use tokio_postgres::types::Type;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    CopiedTable, Format, Framer, Job, Options, Outcome, Prepared, Reporter, Sink, SnapshotError,
    Written, copy_table, dump_session, prepare, read_large_object, write_manifest,
};
use crate::{
    archive::{
        Compression, Layout,
        custom::{self, DataFile},
    },
    manifest::{Manifest, ManifestObject, ObjectPart},
    pg::PgConfig,
    progress::SharedProgress,
    sql::{ident, literal},
    store::{ObjectUrl, Store, WriteSettings},
    validate,
};

/// The plan format this build writes and reads.
const PLAN_VERSION: u32 = 1;

/// Where the plan lives under a snapshot's prefix.
const PLAN_NAME: &str = "pieces/plan.json";

/// How a snapshot is spread over workers.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    pub workers: usize,
    /// Heap bytes per piece: a larger table is split into ranges of its blocks.
    pub piece_bytes: u64,
    /// How the objects are stored (S3 encryption, class, tags): every worker writes with it.
    pub storage: WriteSettings,
}

/// What the workers share: written once by [`plan`], read by every [`work`] and by [`finish`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub plan_version: u32,
    /// Names this plan in its pieces' records, so that leftovers of another plan under the same
    /// prefix are never taken for its pieces.
    pub id: String,
    pub tool_version: String,
    pub database: String,
    pub server_version: String,
    pub lsn: Option<String>,
    pub neon: Option<(String, String)>,
    pub compression: Compression,
    pub checksums: bool,
    pub filtered: bool,
    /// Connections the finish counts (and checksums) the source with.
    pub jobs: usize,
    pub workers: usize,
    pub storage: WriteSettings,
    pub toc: ManifestObject,
    pub tables: Vec<PlannedTable>,
    /// Where the sequences stood when the plan read them, for the manifest (its archive's
    /// SEQUENCE SET entries hold the same reading).
    #[serde(default)]
    pub sequence_states: std::collections::BTreeMap<String, String>,
}

/// One table's data, in one or more pieces.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedTable {
    pub dump_id: i32,
    pub schema: String,
    pub name: String,
    /// The columns COPY carries, unquoted (quoted when the SQL is built).
    pub columns: Vec<String>,
    pub blocks: u64,
    pub pieces: Vec<PlannedPiece>,
    /// An extension's configuration table dumped in part (the rows its condition selects):
    /// one piece, whose worker reads the condition from the catalog (a plan carries no SQL).
    #[serde(default)]
    pub partial: bool,
    /// Not a table: the `BLOBS` entry's large objects, by oid, dumped as one piece into the
    /// archive's `blob_<oid>.dat` files and `blobs.toc`.
    #[serde(default)]
    pub blobs: Option<Vec<u32>>,
}

/// A range of a table's blocks and the worker that dumps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedPiece {
    pub first_block: u64,
    /// `None`: to the end of the table.
    pub end_block: Option<u64>,
    pub worker: usize,
}

/// A finished piece, recorded beside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PieceRecord {
    plan: String,
    rows: u64,
    /// Uncompressed COPY text.
    bytes: u64,
    object: ManifestObject,
    /// The large objects' files (the piece of a `BLOBS` entry; its `object` is `blobs.toc`).
    #[serde(default)]
    files: Vec<ManifestObject>,
}

/// What [`plan`] made.
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub plan_url: ObjectUrl,
    /// The archive's prefix (`.../archive/`).
    pub archive: ObjectUrl,
}

/// What one [`work`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOutcome {
    /// Every piece of this worker is dumped.
    pub done: bool,
    pub pieces_dumped: usize,
    pub pieces_left: usize,
    pub rows: u64,
    pub bytes: u64,
}

impl Plan {
    fn suffix(&self) -> &'static str {
        custom::directory_file_suffix(self.compression)
    }

    /// The key (under the snapshot's prefix) of piece `n` of table `t`'s data: the table's
    /// own data file when it is one piece.
    fn data_name(&self, t: usize, n: usize) -> String {
        let table = &self.tables[t];
        let file = custom::directory_data_name(table.dump_id);
        if table.pieces.len() == 1 {
            format!("archive/{file}{}", self.suffix())
        } else {
            format!("pieces/{}-{n}.dat{}", table.dump_id, self.suffix())
        }
    }

    /// Records live under the plan's id: one listing says which pieces this plan has done.
    fn record_name(&self, t: usize, n: usize) -> String {
        format!("pieces/{}/{}-{n}.json", self.id, self.tables[t].dump_id)
    }

    /// Every piece as (table, piece) positions, in plan order.
    fn pieces(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.tables
            .iter()
            .enumerate()
            .flat_map(|(t, table)| (0..table.pieces.len()).map(move |n| (t, n)))
    }

    /// The COPY that dumps piece `n` of table `t`: the whole table as pg_dump copies it, or
    /// its rows in a range of blocks. Names are quoted here; the plan holds them unquoted.
    fn copy_sql(&self, t: usize, n: usize) -> String {
        let table = &self.tables[t];
        let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
        let columns: Vec<String> = table.columns.iter().map(|c| ident(c)).collect();
        let columns = columns.join(", ");
        if table.pieces.len() == 1 {
            return if columns.is_empty() {
                format!("COPY {qualified} TO STDOUT")
            } else {
                format!("COPY {qualified} ({columns}) TO STDOUT")
            };
        }
        let piece = &table.pieces[n];
        let mut range = format!(
            "ctid >= {}::tid",
            literal(&format!("({},0)", piece.first_block))
        );
        if let Some(end) = piece.end_block {
            range.push_str(&format!(
                " AND ctid < {}::tid",
                literal(&format!("({end},0)"))
            ));
        }
        format!("COPY (SELECT {columns} FROM ONLY {qualified} WHERE {range}) TO STDOUT")
    }
}

/// The COPY of an extension configuration table's rows that its extension's condition
/// selects, the condition read from the catalog (as the snapshot read it when it planned).
async fn partial_copy_sql(
    session: &crate::pg::Session,
    table: &PlannedTable,
) -> Result<String, SnapshotError> {
    let qualified = format!("{}.{}", ident(&table.schema), ident(&table.name));
    let row = session
        .query_typed_opt(
            "SELECT x.condition FROM pg_extension e, \
                    unnest(e.extconfig, e.extcondition) AS x(config, condition) \
             WHERE x.config = to_regclass($1)",
            &[(&qualified, Type::TEXT)],
        )
        .await?;
    let Some(condition) = row.map(|r| r.get::<_, String>(0)) else {
        return Err(SnapshotError::Pieces(format!(
            "{}.{} is no longer an extension's configuration table: plan the snapshot again",
            table.schema, table.name
        )));
    };
    let columns: Vec<String> = table.columns.iter().map(|c| ident(c)).collect();
    Ok(super::condition_copy(&qualified, &columns, &condition))
}

/// Splits every table into pieces of at most `piece_blocks` blocks (the last one open-ended)
/// and gives each piece to a worker: largest first, to the least loaded.
fn split(jobs: &[Job], piece_blocks: u64, workers: usize) -> Vec<PlannedTable> {
    let mut tables: Vec<PlannedTable> = jobs
        .iter()
        .map(|job| {
            let mut pieces = Vec::new();
            let mut first = 0;
            while first + piece_blocks < job.blocks && !job.filtered && job.blobs.is_none() {
                pieces.push(PlannedPiece {
                    first_block: first,
                    end_block: Some(first + piece_blocks),
                    worker: 0,
                });
                first += piece_blocks;
            }
            pieces.push(PlannedPiece {
                first_block: first,
                end_block: None,
                worker: 0,
            });
            PlannedTable {
                dump_id: job.dump_id,
                schema: job.schema.clone(),
                name: job.table.clone(),
                columns: job.columns.clone(),
                blocks: job.blocks,
                pieces,
                partial: job.filtered,
                blobs: job.blobs.clone(),
            }
        })
        .collect();
    let mut order: Vec<(u64, usize, usize)> = Vec::new();
    for (t, table) in tables.iter().enumerate() {
        for (n, p) in table.pieces.iter().enumerate() {
            let size = p
                .end_block
                .unwrap_or(table.blocks)
                .saturating_sub(p.first_block);
            order.push((size.max(1), t, n));
        }
    }
    order.sort_by_key(|&(size, t, n)| (std::cmp::Reverse(size), t, n));
    let mut load = vec![0u64; workers.max(1)];
    for (size, t, n) in order {
        let worker = (0..load.len()).min_by_key(|&w| (load[w], w)).unwrap_or(0);
        load[worker] += size;
        tables[t].pieces[n].worker = worker;
    }
    tables
}

/// The snapshot prefix a plan URL (`<prefix>pieces/plan.json`) belongs to.
fn prefix_of(plan_url: &ObjectUrl) -> Result<ObjectUrl, SnapshotError> {
    let url = plan_url.to_string();
    let prefix = url.strip_suffix(PLAN_NAME).ok_or_else(|| {
        SnapshotError::Pieces(format!(
            "{url} is not a snapshot plan: a plan is the {PLAN_NAME} of a snapshot's prefix"
        ))
    })?;
    Ok(ObjectUrl::parse(prefix)?)
}

/// Plans a snapshot of `config`'s database in pieces under the prefix `to`: writes the
/// archive's table of contents and the plan. Leftovers of an earlier plan there are removed; a
/// complete snapshot there is refused.
pub async fn plan(
    config: &PgConfig,
    store: &Store,
    to: &ObjectUrl,
    options: &Options,
    plan_options: &PlanOptions,
) -> Result<Planned, SnapshotError> {
    if options.format != Format::Directory {
        return Err(SnapshotError::Pieces(
            "a snapshot in pieces is a directory archive: use format directory".into(),
        ));
    }
    let manifest_url = to.join("manifest.json")?;
    match store.head(&manifest_url.key).await {
        Ok(_) => {
            return Err(SnapshotError::Pieces(format!(
                "{manifest_url} exists: a complete snapshot is already there; plan under a new prefix"
            )));
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let Prepared {
        main,
        lsn,
        entries,
        header,
        jobs,
        sequence_states,
        ..
    } = prepare(config, options, None).await?;
    main.batch_execute("COMMIT").await?;
    drop(main);

    let piece_blocks = (plan_options.piece_bytes / 8192).max(1);
    let joinable = matches!(
        options.compression,
        Compression::None | Compression::Gzip { .. }
    );
    if let Some(big) = jobs.iter().find(|j| j.blocks > piece_blocks)
        && !joinable
    {
        return Err(SnapshotError::Pieces(format!(
            "{} is larger than one piece, and tables are split only in gzip or uncompressed \
             archives ({} frames joined into one file are not checked against pg_restore here): \
             use compress gzip or none, or larger pieces",
            big.name,
            options.compression.name()
        )));
    }
    for prefix in ["pieces/", "archive/"] {
        let key = crate::store::Key::prefix(format!("{}{prefix}", to.key.as_str()))?;
        for old in store.list(&key).await? {
            store.delete(&old.key).await?;
        }
    }

    let dir = to.join("archive")?;
    let mut toc = custom::header_bytes_for(&header, Layout::Directory)?;
    toc.extend(custom::toc_bytes_for(
        header.version,
        &entries,
        Layout::Directory,
    ));
    let mut sink = Sink::open(store, &dir.join("toc.dat")?).await?;
    sink.write(toc).await?;
    let toc = sink.finish("archive/toc.dat").await?;

    let plan = Plan {
        plan_version: PLAN_VERSION,
        id: uuid::Uuid::new_v4().to_string(),
        tool_version: crate::VERSION.to_string(),
        database: header.database.clone(),
        server_version: header.server_version.clone(),
        lsn,
        neon: options.neon.clone(),
        compression: options.compression,
        checksums: options.checksums,
        filtered: options.filter.is_filtered(),
        jobs: options.jobs.max(1),
        workers: plan_options.workers.max(1),
        storage: plan_options.storage.clone(),
        toc,
        tables: split(&jobs, piece_blocks, plan_options.workers),
        sequence_states,
    };
    let plan_url = to.join(PLAN_NAME)?;
    let body = serde_json::to_vec_pretty(&plan).expect("plans serialize");
    store.put(&plan_url.key, Bytes::from(body)).await?;
    Ok(Planned {
        plan,
        plan_url,
        archive: ObjectUrl::parse(&format!("{dir}/"))?,
    })
}

/// Reads the plan at `plan_url`; returns it with the snapshot's prefix.
pub async fn read_plan(
    store: &Store,
    plan_url: &ObjectUrl,
) -> Result<(Plan, ObjectUrl), SnapshotError> {
    let to = prefix_of(plan_url)?;
    let body = match store.get_bytes(&plan_url.key).await {
        Ok(body) => body,
        Err(e) if e.is_not_found() => {
            return Err(SnapshotError::Pieces(format!(
                "no snapshot plan at {plan_url}: plan the snapshot first"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let plan: Plan = serde_json::from_slice(&body)
        .map_err(|e| SnapshotError::Pieces(format!("{plan_url} is not a snapshot plan: {e}")))?;
    if plan.plan_version != PLAN_VERSION {
        return Err(SnapshotError::Pieces(format!(
            "{plan_url} is a plan of format {} (this ferry reads {PLAN_VERSION})",
            plan.plan_version
        )));
    }
    Ok((plan, to))
}

/// The record of piece `n` of table `t`, when that piece was dumped under this plan.
async fn record(
    store: &Store,
    to: &ObjectUrl,
    plan: &Plan,
    t: usize,
    n: usize,
) -> Result<Option<PieceRecord>, SnapshotError> {
    let url = to.join(&plan.record_name(t, n))?;
    match store.get_bytes(&url.key).await {
        Ok(body) => Ok(serde_json::from_slice::<PieceRecord>(&body)
            .ok()
            .filter(|r| r.plan == plan.id)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Checks that the session is connected to the database the plan was made of.
async fn check_source(session: &crate::pg::Session, plan: &Plan) -> Result<(), SnapshotError> {
    let row = session
        .query_catalog_one(
            "SELECT current_database(), current_setting('server_version')",
            &[],
        )
        .await?;
    same_source(plan, &row.get::<_, String>(0), &row.get::<_, String>(1))
}

/// Refuses a source other than the database the plan was made of.
fn same_source(plan: &Plan, database: &str, version: &str) -> Result<(), SnapshotError> {
    if database != plan.database || version != plan.server_version {
        return Err(SnapshotError::Pieces(format!(
            "the plan was made of database {:?} on PostgreSQL {}, but the source is {database:?} on {version}",
            plan.database, plan.server_version
        )));
    }
    Ok(())
}

/// Dumps the pieces of `worker` that are not recorded yet, in plan order, stopping when the
/// next piece may not end before `stop_by` (a deadline less a margin; it always dumps one).
pub async fn work(
    config: &PgConfig,
    store: &Store,
    plan: &Plan,
    to: &ObjectUrl,
    worker: usize,
    stop_by: Option<(SystemTime, Duration)>,
    progress: &SharedProgress,
) -> Result<WorkerOutcome, SnapshotError> {
    if worker >= plan.workers {
        return Err(SnapshotError::Pieces(format!(
            "worker {worker} does not exist: the plan has workers 0 to {}",
            plan.workers - 1
        )));
    }
    let records = crate::store::Key::prefix(format!("{}pieces/{}/", to.key.as_str(), plan.id))?;
    let recorded: std::collections::HashSet<String> = store
        .list(&records)
        .await?
        .into_iter()
        .map(|o| o.key.as_str().to_string())
        .collect();
    let mut left = Vec::new();
    for (t, n) in plan.pieces() {
        if plan.tables[t].pieces[n].worker == worker
            && !recorded.contains(to.join(&plan.record_name(t, n))?.key.as_str())
        {
            left.push((t, n));
        }
    }
    let mut outcome = WorkerOutcome {
        done: left.is_empty(),
        pieces_dumped: 0,
        pieces_left: left.len(),
        rows: 0,
        bytes: 0,
    };
    if left.is_empty() {
        return Ok(outcome);
    }
    let session = dump_session(config, None).await?;
    check_source(&session, plan).await?;
    let report = Reporter {
        progress: progress.clone(),
        total: left
            .iter()
            .map(|&(t, n)| {
                let table = &plan.tables[t];
                let p = &table.pieces[n];
                p.end_block
                    .unwrap_or(table.blocks)
                    .saturating_sub(p.first_block)
                    * 8192
            })
            .sum(),
        done: Default::default(),
    };
    let mut longest = Duration::ZERO;
    for &(t, n) in &left {
        // The next piece starts only if the longest so far fits before the time kept back.
        if let Some((deadline, margin)) = stop_by
            && outcome.pieces_dumped > 0
            && SystemTime::now() + longest + margin > deadline
        {
            tracing::info!(
                worker,
                left = outcome.pieces_left,
                "stopping before the deadline; run this worker again"
            );
            return Ok(outcome);
        }
        let started = Instant::now();
        let table = &plan.tables[t];
        if let Some(objects) = &table.blobs {
            let record = dump_blobs(&session, store, plan, to, objects, &report).await?;
            let url = to.join(&plan.record_name(t, n))?;
            let body = serde_json::to_vec_pretty(&record).expect("records serialize");
            store.put(&url.key, Bytes::from(body)).await?;
            outcome.pieces_dumped += 1;
            outcome.pieces_left -= 1;
            outcome.bytes += record.bytes;
            longest = longest.max(started.elapsed());
            continue;
        }
        let copy_sql = if table.partial {
            partial_copy_sql(&session, table).await?
        } else {
            plan.copy_sql(t, n)
        };
        let job = Job {
            dump_id: table.dump_id,
            copy_sql,
            name: format!("{}.{}", table.schema, table.name),
            schema: table.schema.clone(),
            table: table.name.clone(),
            columns: table.columns.clone(),
            blocks: 0,
            end_of_copy: n + 1 == table.pieces.len(),
            blobs: None,
            filtered: false,
        };
        let name = plan.data_name(t, n);
        let mut sink = Sink::open(store, &to.join(&name)?).await?;
        let framer = Framer::File(Box::new(DataFile::new(plan.compression)?));
        let statement = session.prepare(&job.copy_sql).await?;
        let (rows, bytes) =
            copy_table(&session, &statement, &job, framer, &mut sink, &report).await?;
        let object = sink.finish(&name).await?;
        let record = PieceRecord {
            plan: plan.id.clone(),
            rows,
            bytes,
            object,
            files: Vec::new(),
        };
        let url = to.join(&plan.record_name(t, n))?;
        let body = serde_json::to_vec_pretty(&record).expect("records serialize");
        store.put(&url.key, Bytes::from(body)).await?;
        outcome.pieces_dumped += 1;
        outcome.pieces_left -= 1;
        outcome.rows += rows;
        outcome.bytes += bytes;
        longest = longest.max(started.elapsed());
    }
    session.batch_execute("COMMIT").await?;
    outcome.done = true;
    Ok(outcome)
}

/// Dumps the large objects of a `BLOBS` entry into the archive, as a snapshot in one
/// invocation does: a `blob_<oid>.dat` file each (read 1 MiB at a time) and `blobs.toc`.
async fn dump_blobs(
    session: &crate::pg::Session,
    store: &Store,
    plan: &Plan,
    to: &ObjectUrl,
    objects: &[u32],
    report: &Reporter,
) -> Result<PieceRecord, SnapshotError> {
    let mut files = Vec::new();
    let mut list = String::new();
    let mut bytes = 0;
    for &oid in objects {
        let file = format!("blob_{oid}.dat");
        let name = format!("archive/{file}{}", plan.suffix());
        let mut sink = Sink::open(store, &to.join(&name)?).await?;
        let mut data = DataFile::new(plan.compression)?;
        read_large_object(
            session,
            oid,
            report,
            |chunk| {
                bytes += chunk.len() as u64;
                data.write(chunk)
            },
            &mut sink,
        )
        .await?;
        sink.write(data.finish()).await?;
        files.push(sink.finish(&name).await?);
        list.push_str(&format!("{oid} {file}\n"));
    }
    let name = "archive/blobs.toc";
    let mut sink = Sink::open(store, &to.join(name)?).await?;
    sink.write(list.into_bytes()).await?;
    Ok(PieceRecord {
        plan: plan.id.clone(),
        rows: 0,
        bytes,
        object: sink.finish(name).await?,
        files,
    })
}

/// Finishes a snapshot in pieces: joins split tables' pieces, counts the source, writes the
/// manifest and removes `pieces/`. Run again after it wrote the manifest, it only tidies up.
pub async fn finish(
    config: &PgConfig,
    store: &Store,
    plan_url: &ObjectUrl,
) -> Result<Outcome, SnapshotError> {
    let to = prefix_of(plan_url)?;
    let manifest_url = to.join("manifest.json")?;
    match store.get_bytes(&manifest_url.key).await {
        Ok(body) => {
            let manifest: Manifest = serde_json::from_slice(&body).map_err(|e| {
                SnapshotError::Pieces(format!("{manifest_url} is not a manifest: {e}"))
            })?;
            let archive = ObjectUrl::parse(manifest.archive.as_deref().unwrap_or_default())?;
            remove_pieces(store, &to).await?;
            return Ok(Outcome {
                archive,
                manifest_url,
                manifest,
            });
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    let (plan, _) = read_plan(store, plan_url).await?;
    let all: Vec<(usize, usize)> = plan.pieces().collect();
    let records: Vec<Option<PieceRecord>> = stream::iter(all.iter().copied())
        .map(|(t, n)| record(store, &to, &plan, t, n))
        .buffered(16)
        .try_collect()
        .await?;
    let missing: Vec<String> = all
        .iter()
        .zip(&records)
        .filter(|(_, r)| r.is_none())
        .map(|(&(t, n), _)| {
            let table = &plan.tables[t];
            format!(
                "{}.{} piece {} of {} (worker {})",
                table.schema,
                table.name,
                n + 1,
                table.pieces.len(),
                table.pieces[n].worker
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(SnapshotError::Pieces(format!(
            "{} pieces are not dumped yet, so the snapshot cannot be finished: {}{}; run those workers again",
            missing.len(),
            missing[..missing.len().min(5)].join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        )));
    }
    let records: Vec<PieceRecord> = records.into_iter().flatten().collect();

    let mut objects = vec![plan.toc.clone()];
    let mut copied = Vec::new();
    let mut at = 0;
    for table in &plan.tables {
        let mine = &records[at..at + table.pieces.len()];
        at += table.pieces.len();
        if table.blobs.is_some() {
            for record in mine {
                objects.push(record.object.clone());
                objects.extend(record.files.iter().cloned());
            }
            continue;
        }
        copied.push(CopiedTable {
            schema: table.schema.clone(),
            table: table.name.clone(),
            rows: mine.iter().map(|r| r.rows).sum(),
            bytes: mine.iter().map(|r| r.bytes).sum(),
            partial: table.partial,
        });
        if let [one] = mine {
            objects.push(one.object.clone());
            continue;
        }
        let sources = mine
            .iter()
            .map(|r| Ok((to.join(&r.object.key)?.key, r.object.size)))
            .collect::<Result<Vec<_>, SnapshotError>>()?;
        let name = format!(
            "archive/{}{}",
            custom::directory_data_name(table.dump_id),
            plan.suffix()
        );
        let joined = store.compose(&sources, &to.join(&name)?.key).await?;
        let parts: Vec<ObjectPart> = mine
            .iter()
            .map(|r| ObjectPart {
                size: r.object.size,
                sha256: r.object.sha256.clone(),
            })
            .collect();
        let mut digest = Sha256::new();
        for part in &parts {
            digest.update(part.sha256.as_bytes());
            digest.update(b"\n");
        }
        tracing::info!(table = %format!("{}.{}", table.schema, table.name), pieces = parts.len(), bytes = joined.size, "joined a table's pieces");
        objects.push(ManifestObject {
            key: name,
            size: joined.size,
            sha256: hex::encode(digest.finalize()),
            parts,
        });
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key));

    let profile = validate::profile_at(
        config,
        validate::Options {
            checksums: plan.checksums,
            jobs: plan.jobs,
        },
        None,
    )
    .await?
    .with_facts(plan.sequence_states.clone());
    same_source(&plan, &profile.database, &profile.server_version)?;
    let written = Written {
        archive: ObjectUrl::parse(&format!("{}/", to.join("archive")?))?,
        objects,
        offsets: Default::default(),
        copied,
    };
    let outcome = write_manifest(
        store,
        &to,
        &profile,
        written,
        plan.lsn.clone(),
        plan.filtered,
        plan.neon.clone(),
    )
    .await
    .map_err(|e| match e {
        SnapshotError::Inconsistent(what) => SnapshotError::Inconsistent(format!(
            "{what}: the source changed while its pieces were dumped (dump a branch nothing \
             writes, such as the backup workflow's temporary branch)"
        )),
        e => e,
    })?;
    remove_pieces(store, &to).await?;
    Ok(outcome)
}

/// Removes the plan, the pieces and their records.
async fn remove_pieces(store: &Store, to: &ObjectUrl) -> Result<(), SnapshotError> {
    let key = crate::store::Key::prefix(format!("{}pieces/", to.key.as_str()))?;
    for object in store.list(&key).await? {
        store.delete(&object.key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i32, blocks: u64) -> Job {
        Job {
            dump_id: id,
            copy_sql: String::new(),
            name: format!("s.t{id}"),
            schema: "s".into(),
            table: format!("t{id}"),
            columns: vec!["a".into()],
            blocks,
            end_of_copy: true,
            blobs: None,
            filtered: false,
        }
    }

    #[test]
    fn large_tables_are_split_and_pieces_balanced() {
        let tables = split(&[job(10, 25), job(11, 3), job(12, 0), job(13, 9)], 10, 2);
        let ranges: Vec<Vec<(u64, Option<u64>)>> = tables
            .iter()
            .map(|t| {
                t.pieces
                    .iter()
                    .map(|p| (p.first_block, p.end_block))
                    .collect()
            })
            .collect();
        assert_eq!(
            ranges,
            vec![
                vec![(0, Some(10)), (10, Some(20)), (20, None)],
                vec![(0, None)],
                vec![(0, None)],
                vec![(0, None)],
            ]
        );
        // Largest first to the least loaded: 10, 10 | 9, 5, 3, 1 -> loads 20 and 18.
        let mut load = [0u64; 2];
        for t in &tables {
            for p in &t.pieces {
                load[p.worker] += p
                    .end_block
                    .unwrap_or(t.blocks)
                    .saturating_sub(p.first_block)
                    .max(1);
            }
        }
        assert!(load[0].abs_diff(load[1]) <= 2, "{load:?}");
        // One worker takes everything.
        let one = split(&[job(1, 25), job(2, 3)], 10, 1);
        assert!(one.iter().flat_map(|t| &t.pieces).all(|p| p.worker == 0));
    }

    #[test]
    fn piece_sql_quotes_names_and_ranges_blocks() {
        let mut tables = split(&[job(7, 25)], 10, 2);
        tables[0].schema = "we\"ird".into();
        tables[0].name = "select".into();
        tables[0].columns = vec!["a b".into(), "c".into()];
        let mut plan = Plan {
            plan_version: PLAN_VERSION,
            id: "p".into(),
            tool_version: String::new(),
            database: "d".into(),
            server_version: "17".into(),
            lsn: None,
            neon: None,
            compression: Compression::Gzip { level: Some(3) },
            checksums: false,
            filtered: false,
            jobs: 1,
            workers: 2,
            storage: WriteSettings::default(),
            toc: ManifestObject {
                key: "archive/toc.dat".into(),
                size: 0,
                sha256: String::new(),
                parts: Vec::new(),
            },
            tables,
            sequence_states: Default::default(),
        };
        assert_eq!(
            plan.copy_sql(0, 0),
            "COPY (SELECT \"a b\", \"c\" FROM ONLY \"we\"\"ird\".\"select\" WHERE ctid >= '(0,0)'::tid AND ctid < '(10,0)'::tid) TO STDOUT"
        );
        assert_eq!(
            plan.copy_sql(0, 2),
            "COPY (SELECT \"a b\", \"c\" FROM ONLY \"we\"\"ird\".\"select\" WHERE ctid >= '(20,0)'::tid) TO STDOUT"
        );
        assert_eq!(plan.data_name(0, 1), "pieces/7-1.dat.gz");
        plan.tables[0].pieces.truncate(1);
        assert_eq!(
            plan.copy_sql(0, 0),
            "COPY \"we\"\"ird\".\"select\" (\"a b\", \"c\") TO STDOUT"
        );
        assert_eq!(plan.data_name(0, 0), "archive/7.dat.gz");
    }
}
