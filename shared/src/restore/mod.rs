//! Restore: a pg_dump archive (ferry's or pg_dump's, custom or directory format) into a
//! database, without a `pg_restore` binary.
//!
//! Three passes, as pg_restore makes them: the definitions before data, one by one in the
//! archive's order; then table data and everything after data (indexes, constraints, triggers,
//! ...) over `--jobs` connections, each item as soon as what it depends on is done (an index
//! waits for its table's rows); foreign keys one at a time after the rest, so that two never
//! deadlock on the tables they share; then grants and materialized view refreshes, and ANALYZE.
//!
//! Every item runs in its own transaction together with a row in `ferry_restore.progress` in
//! the target, so a restore that stops anywhere (connection killed, server restarted, Lambda
//! deadline) and runs again with the same archive skips what was committed and redoes the rest:
//! a table's COPY and its progress row commit together, so a half-loaded table is rolled back,
//! never left half full. The progress schema is dropped when the restore completes.

mod contents;
mod plain;
mod source;

pub use contents::{ArchivedTable, Contents, contents};

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use futures::{SinkExt, pin_mut};
use tokio::sync::mpsc::UnboundedSender;

use crate::{
    archive::{ArchiveError, Section, TocEntry, glob, matches_table, plain::owner_statement},
    pg::{PgConfig, PgError, Session, connect, literal},
    progress::{ProgressEvent, SharedProgress, Unit},
    store::{ObjectUrl, Store, StoreError},
};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The target holds objects already and this is not a resumed restore of the same archive.
    #[error(
        "the target database is not empty ({0}); restore into an empty database (ferry does not drop what is there)"
    )]
    NotEmpty(String),
    /// An item of the archive failed; nothing after it was applied.
    #[error(
        "restoring {item} failed: {reason} ({applied} of {total} items applied; run the same restore again to continue)"
    )]
    ItemFailed {
        item: String,
        reason: String,
        applied: usize,
        total: usize,
    },
    #[error("{0}")]
    Failed(String),
}

impl From<tokio_postgres::Error> for RestoreError {
    fn from(e: tokio_postgres::Error) -> RestoreError {
        RestoreError::Postgres(e.into())
    }
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    /// Leave objects owned by the restoring role (no `ALTER ... OWNER TO`).
    pub no_owner: bool,
    /// Skip grants (`ACL` entries).
    pub no_privileges: bool,
    /// Only these sections (all when empty).
    pub sections: Vec<Section>,
    /// Only objects in schemas matching these patterns (`*` globs; all when empty).
    pub schemas: Vec<String>,
    /// Only these tables (and views, sequences, materialized views) and their data:
    /// `table` or `schema.table`, `*` globs.
    pub tables: Vec<String>,
    /// Only these entries, by dump id (from an edited `--list`).
    pub use_list: Option<HashSet<i32>>,
    /// Drop the archive's objects (`IF EXISTS`) before creating them; the target need not be
    /// empty then.
    pub clean: bool,
    /// Leave out objects in schemas matching these patterns.
    pub exclude_schemas: Vec<String>,
    /// Leave out these tables (views, sequences) and their data.
    pub exclude_tables: Vec<String>,
    /// Everything in one transaction on one connection: all or nothing (not resumable).
    pub single_transaction: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: 2,
            no_owner: false,
            no_privileges: false,
            sections: Vec::new(),
            schemas: Vec::new(),
            tables: Vec::new(),
            use_list: None,
            clean: false,
            exclude_schemas: Vec::new(),
            exclude_tables: Vec::new(),
            single_transaction: false,
        }
    }
}

/// Kinds of entry a `--table` filter selects (pg_restore's `-t`).
const TABLE_KINDS: &[&str] = &[
    "TABLE",
    "TABLE DATA",
    "SEQUENCE",
    "SEQUENCE SET",
    "VIEW",
    "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA",
];

impl Options {
    /// Whether the filters select entry `e` (session entries aside).
    fn selects(&self, e: &TocEntry) -> bool {
        if let Some(list) = &self.use_list
            && !list.contains(&e.dump_id)
        {
            return false;
        }
        if !self.sections.is_empty() && !self.sections.contains(&e.section) {
            return false;
        }
        let ns = e.namespace.as_deref().unwrap_or("");
        let schema = if e.desc == "SCHEMA" {
            e.tag.as_str()
        } else {
            ns
        };
        if !self.schemas.is_empty() && !self.schemas.iter().any(|p| glob(p, schema)) {
            return false;
        }
        if self.exclude_schemas.iter().any(|p| glob(p, schema)) {
            return false;
        }
        let named = |patterns: &[String]| matches_table(patterns, ns, &e.tag);
        if TABLE_KINDS.contains(&e.desc.as_str()) && named(&self.exclude_tables) {
            return false;
        }
        if !self.tables.is_empty()
            && (!TABLE_KINDS.contains(&e.desc.as_str()) || !named(&self.tables))
        {
            return false;
        }
        true
    }
}

/// An archive's table of contents as `pg_restore -l` prints it: one `id; catalog oid kind
/// schema name owner` line per entry, after a header. Edit it and give it back as a use-list.
pub async fn listing(store: &Store, url: &ObjectUrl) -> Result<String, RestoreError> {
    use crate::archive::plain::one_line;
    if source::is_plain(store, url).await? {
        return Err(RestoreError::Failed(
            "a plain SQL dump is a script, not an archive: it has no table of contents to list"
                .into(),
        ));
    }
    let archive = source::Archive::open(store, url).await?;
    let h = &archive.header;
    let t = h.created;
    let mut out = format!(
        ";\n; Archive created at {:04}-{:02}-{:02} {:02}:{:02}:{:02}\n;     dbname: {}\n;     TOC Entries: {}\n\
         ;     Compression: {}\n;     Dump Version: {}\n;     Format: {}\n\
         ;     Dumped from database version: {}\n;     Dumped by: {}\n;\n;\n; Selected TOC Entries:\n;\n",
        t.year + 1900,
        t.mon + 1,
        t.mday,
        t.hour,
        t.min,
        t.sec,
        one_line(&h.database),
        archive.entries.len(),
        h.compression.name(),
        h.version,
        match archive.layout {
            crate::archive::Layout::Custom => "CUSTOM",
            crate::archive::Layout::Directory => "DIRECTORY",
        },
        one_line(&h.server_version),
        one_line(&h.dumper_version)
    );
    // One line per entry whatever the archive's names hold (a name with a line break would
    // otherwise print a line that a use-list reads as another entry), as pg_restore -l.
    for e in &archive.entries {
        out.push_str(&format!(
            "{}; {} {} {} {} {} {}\n",
            e.dump_id,
            one_line(&e.table_oid),
            one_line(&e.oid),
            one_line(&e.desc),
            one_line(
                e.namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("-")
            ),
            one_line(&e.tag),
            one_line(e.owner.as_deref().unwrap_or(""))
        ));
    }
    Ok(out)
}

/// The dump ids of a use-list (`pg_restore -l` output, edited): lines starting with `;` are
/// comments, every other line starts with `ID;`.
pub fn parse_use_list(text: &str) -> Result<HashSet<i32>, String> {
    let mut ids = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let id = line
            .split(';')
            .next()
            .and_then(|id| id.trim().parse::<i32>().ok())
            .ok_or_else(|| format!("line {}: {line:?} does not start with an entry id", n + 1))?;
        ids.insert(id);
    }
    Ok(ids)
}

/// A drop statement made safe when the object is missing (pg_restore's `--if-exists`).
fn if_exists(drop: &str) -> String {
    let drop = drop.trim_end();
    if let Some(rest) = drop.strip_prefix("ALTER TABLE ") {
        let rest = rest.replacen(" DROP CONSTRAINT ", " DROP CONSTRAINT IF EXISTS ", 1);
        return format!("ALTER TABLE IF EXISTS {rest}");
    }
    let Some(rest) = drop.strip_prefix("DROP ") else {
        return drop.to_string();
    };
    // The kind is the run of upper-case keywords; names are lower case or quoted.
    let mut kind_end = 0;
    for word in rest.split(' ') {
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_uppercase()) {
            kind_end += word.len() + 1;
        } else {
            break;
        }
    }
    format!("DROP {}IF EXISTS {}", &rest[..kind_end], &rest[kind_end..])
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub items: usize,
    pub applied: usize,
    /// Items found already done by an earlier, interrupted run.
    pub already_done: usize,
    pub tables: usize,
    pub rows: u64,
}

/// Entries that set up the session rather than create anything.
const SESSION_ENTRIES: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

const PROGRESS_SETUP: &str = "CREATE SCHEMA IF NOT EXISTS ferry_restore; \
     CREATE TABLE IF NOT EXISTS ferry_restore.progress (archive text NOT NULL, dump_id integer NOT NULL, \
       rows bigint, done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (archive, dump_id))";

fn label(e: &TocEntry) -> String {
    // Items ferry adds (negative ids) are not in the archive's list.
    let entry = if e.dump_id > 0 {
        format!(" (entry {})", e.dump_id)
    } else {
        String::new()
    };
    match &e.namespace {
        Some(ns) if !ns.is_empty() => format!("{} {ns} {}{entry}", e.desc, e.tag),
        _ => format!("{} {}{entry}", e.desc, e.tag),
    }
}

/// Opens a restoring session with the archive's session settings.
async fn session(config: &PgConfig, setup: &str) -> Result<Session, PgError> {
    let session = connect(config).await?;
    session.batch_execute(setup).await?;
    Ok(session)
}

/// Objects already in the target's user schemas (besides ferry's progress schema).
async fn existing_objects(session: &Session) -> Result<Option<String>, PgError> {
    let row = session
        .query_one(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry_restore') \
                        AND n.nspname NOT LIKE 'pg\\_%' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') \
                        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
                                        AND d.objid = c.oid AND d.deptype = 'e')), \
                    (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
                      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'ferry_restore') \
                        AND n.nspname NOT LIKE 'pg\\_%' \
                        AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass \
                                        AND d.objid = p.oid AND d.deptype = 'e'))",
            &[],
        )
        .await?;
    let (relations, functions): (i64, i64) = (row.get(0), row.get(1));
    Ok((relations + functions > 0)
        .then(|| format!("{relations} relations and {functions} functions")))
}

/// The `COPY ... FROM STDIN` statement of a data entry.
fn copy_statement(entry: &TocEntry) -> Option<String> {
    let stmt = entry.copy_stmt.as_deref()?.trim_end().trim_end_matches(';');
    let at = stmt.rfind(" FROM stdin")?;
    Some(format!("{} FROM STDIN", &stmt[..at]))
}

/// Holds back the end of a COPY stream so that the archive's `\.` terminator (and the blank
/// lines after it) can be cut before the data reaches the server.
struct Terminator {
    held: Vec<u8>,
    sent_any: bool,
}

const HOLD: usize = 16;

impl Terminator {
    fn push(&mut self, chunk: &[u8]) -> Option<bytes::Bytes> {
        self.held.extend_from_slice(chunk);
        if self.held.len() <= HOLD {
            return None;
        }
        let keep = self.held.split_off(self.held.len() - HOLD);
        let out = std::mem::replace(&mut self.held, keep);
        self.sent_any = true;
        Some(out.into())
    }

    fn finish(self) -> bytes::Bytes {
        let mut held = self.held;
        while held.last() == Some(&b'\n') {
            held.pop();
        }
        if held.ends_with(b"\\.") {
            let before = held.len() - 2;
            let at_line_start = if before == 0 {
                !self.sent_any
            } else {
                held[before - 1] == b'\n'
            };
            if at_line_start {
                held.truncate(before);
                return held.into();
            }
        }
        // No terminator: send everything that was held, newlines included.
        let mut all = held;
        all.push(b'\n');
        all.into()
    }
}

/// Settings of every restoring session, before the archive's own.
const BASE_SETUP: &str = "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
     SET client_min_messages = warning; SET check_function_bodies = false; SET xmloption = content; \
     SET row_security = off; SET maintenance_work_mem = '256MB'; SET synchronous_commit = off; ";

/// Checks that the target is empty, or holds an unfinished restore of this same archive, and
/// returns the items that restore finished.
async fn prepare(
    main: &Session,
    archive_id: &str,
    clean: bool,
    single_transaction: bool,
) -> Result<HashSet<i32>, RestoreError> {
    let resumed: bool = {
        let exists: bool = main
            .query_one(
                "SELECT to_regclass('ferry_restore.progress') IS NOT NULL",
                &[],
            )
            .await?
            .get(0);
        if exists {
            let other: Option<String> = main
                .query_one(
                    "SELECT min(archive) FILTER (WHERE archive <> $1) FROM ferry_restore.progress",
                    &[&archive_id],
                )
                .await?
                .get(0);
            if let Some(other) = other {
                return Err(RestoreError::NotEmpty(format!(
                    "an unfinished restore of {other} is in it"
                )));
            }
        }
        exists
    };
    if !resumed
        && !clean
        && let Some(what) = existing_objects(main).await?
    {
        return Err(RestoreError::NotEmpty(what));
    }
    if single_transaction {
        return Ok(HashSet::new());
    }
    main.batch_execute(PROGRESS_SETUP).await?;
    Ok(main
        .query(
            "SELECT dump_id FROM ferry_restore.progress WHERE archive = $1",
            &[&archive_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Restores the archive at `url` into `target`.
pub async fn run(
    store: &Store,
    url: &ObjectUrl,
    target: &PgConfig,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    if source::is_plain(store, url).await? {
        return run_plain(store, url, target, options, progress).await;
    }
    let archive = source::Archive::open(store, url).await?;
    let archive_id = url.to_string();
    let mut setup = String::from(BASE_SETUP);
    if options.jobs > 1 && !options.single_transaction {
        // The connections are the restore's parallelism: index builds that start parallel
        // workers of their own beside the other connections' work oversubscribe the server
        // (measured on 2 cores: slower at both benchmark sizes; see the README).
        setup.push_str("SET max_parallel_maintenance_workers = 0; ");
    }
    for e in &archive.entries {
        if SESSION_ENTRIES.contains(&e.desc.as_str())
            && let Some(defn) = &e.defn
        {
            setup.push_str(defn);
            setup.push(' ');
        }
    }
    let main = session(target, &setup).await?;
    if options.clean {
        clean(&main, &archive.entries, options).await;
    }
    let done = prepare(
        &main,
        &archive_id,
        options.clean,
        options.single_transaction,
    )
    .await?;
    if options.single_transaction {
        main.batch_execute("BEGIN").await?;
    }
    let result = restore_items(
        &main,
        target,
        &setup,
        &archive,
        &archive_id,
        &done,
        options,
        progress,
    )
    .await;
    if options.single_transaction {
        return match result {
            Ok(outcome) => {
                main.batch_execute("COMMIT").await?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = main.batch_execute("ROLLBACK").await;
                Err(RestoreError::Failed(format!(
                    "{e}; the single transaction was rolled back: nothing was restored"
                )))
            }
        };
    }
    result
}

/// The three passes over the archive's items.
#[allow(clippy::too_many_arguments)]
async fn restore_items(
    main: &Session,
    target: &PgConfig,
    setup: &str,
    archive: &source::Archive,
    archive_id: &str,
    done: &HashSet<i32>,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    let items: Vec<&TocEntry> = archive
        .entries
        .iter()
        .filter(|e| restored(e, options))
        .collect();
    let total = items.len();
    let mut outcome = Outcome {
        items: total,
        already_done: items.iter().filter(|e| done.contains(&e.dump_id)).count(),
        ..Outcome::default()
    };
    let state = State {
        archive_id: archive_id.to_string(),
        options: options.clone(),
        progress: progress.clone(),
        total,
        blob_groups: archive
            .entries
            .iter()
            .filter(|e| e.desc == "BLOB METADATA")
            .map(|e| {
                let oids = crate::archive::plain::blob_group_oids(e)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                (e.dump_id, oids)
            })
            .collect(),
        created_tables: items
            .iter()
            .filter(|e| e.desc == "TABLE")
            .map(|e| (e.namespace.clone().unwrap_or_default(), e.tag.clone()))
            .collect(),
        tablespaces: target_tablespaces(main, &items)
            .await
            .map_err(RestoreError::from)?,
    };

    // Pass 1: definitions before data, in order.
    let mut applied = outcome.already_done;
    let pre_data = items
        .iter()
        .filter(|e| e.section == Section::PreData && !done.contains(&e.dump_id));
    applied = apply_in_order(main, pre_data, &state, applied).await?;

    // Pass 2: data and post-data, in parallel as dependencies allow; foreign keys last.
    let phase: Vec<&TocEntry> = items
        .iter()
        .copied()
        .filter(|e| {
            matches!(e.section, Section::Data | Section::PostData)
                && e.desc != "MATERIALIZED VIEW DATA"
                && e.desc != "FK CONSTRAINT"
                && !after_everything(e)
                && !done.contains(&e.dump_id)
        })
        .collect();
    // Loaded tables are analyzed: in one transaction, after their rows and indexes; otherwise
    // on a connection of their own while the foreign keys and the last pass run on the main
    // one, off the critical path (pg_restore leaves ANALYZE to the user).
    let analyze = analyze_items(&phase, &archive.entries);
    // In parallel, each primary key and unique constraint is built as a unique index first:
    // that needs only the lock other index builds on the table take, so they run side by side.
    let split = if options.single_transaction || options.jobs < 2 {
        Vec::new()
    } else {
        split_unique_constraints(&phase, &archive.entries, -(analyze.len() as i32) - 1)
    };
    let split_at: HashMap<i32, &SplitConstraint> =
        split.iter().map(|s| (s.attach.dump_id, s)).collect();
    let mut phase: Vec<&TocEntry> = phase
        .into_iter()
        .flat_map(|e| match split_at.get(&e.dump_id) {
            Some(s) => vec![&s.build, &s.attach],
            None => vec![e],
        })
        .collect();
    if options.single_transaction {
        phase.extend(analyze.iter());
    }
    // Each finished item of the parallel pass is announced, so that a table is analyzed as soon
    // as its rows and indexes are in, while other tables still load or index.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    let main_work = async {
        let (rows, tables, count) = if options.single_transaction {
            drop(finished_tx);
            let (mut rows, mut tables, mut count) = (0, 0, 0);
            for e in &phase {
                let result = if e.desc == "BLOBS" {
                    load_blobs(main, e, archive, &state).await.map(|_| None)
                } else if e.had_dumper {
                    load(main, e, archive, &state, None).await.map(Some)
                } else {
                    apply(main, e, &state).await.map(|()| None)
                };
                let loaded =
                    result.map_err(|reason| item_failed(e, reason, applied + count, total))?;
                if let Some(n) = loaded {
                    rows += n;
                    tables += 1;
                }
                if e.dump_id > 0 {
                    count += 1;
                }
            }
            (rows, tables, count)
        } else {
            run_parallel(
                target,
                setup,
                archive,
                &phase,
                &archive.entries,
                &state,
                applied,
                finished_tx,
            )
            .await?
        };
        let applied = applied + count;
        let foreign_keys = items
            .iter()
            .filter(|e| e.desc == "FK CONSTRAINT" && !done.contains(&e.dump_id));
        let applied = apply_in_order(main, foreign_keys, &state, applied).await?;
        // Pass 3: grants, then materialized views (over the data now in place).
        let last = items.iter().filter(|e| {
            (e.section == Section::None || e.desc == "MATERIALIZED VIEW DATA")
                && !after_everything(e)
                && !done.contains(&e.dump_id)
        });
        let applied = apply_in_order(main, last, &state, applied).await?;
        // Pass 4: event triggers, which would otherwise fire on the restore's own statements:
        // the last ones, the progress schema's removal, come first, in the same transaction
        // (an interrupted run resumes from the progress rows, as after any other item).
        let triggers: Vec<&TocEntry> = items
            .iter()
            .copied()
            .filter(|e| after_everything(e) && !done.contains(&e.dump_id))
            .collect();
        let applied = if options.single_transaction {
            apply_in_order(main, triggers.iter(), &state, applied).await?
        } else {
            applied // after the analyzer is done too (below)
        };
        Ok::<_, RestoreError>((rows, tables, applied, triggers))
    };
    let analyzing = async {
        if options.single_transaction || analyze.is_empty() {
            return Ok(());
        }
        let in_phase: HashSet<i32> = phase.iter().map(|e| e.dump_id).collect();
        let mut waiting: Vec<(&TocEntry, HashSet<i32>)> = analyze
            .iter()
            .map(|a| {
                let deps = a
                    .dependencies
                    .iter()
                    .copied()
                    .filter(|d| in_phase.contains(d))
                    .collect();
                (a, deps)
            })
            .collect();
        let analyzer = session(target, setup).await?;
        let mut finished = HashSet::new();
        let mut all_announced = false;
        while !waiting.is_empty() {
            if let Some(at) = waiting
                .iter()
                .position(|(_, deps)| all_announced || deps.is_subset(&finished))
            {
                // Statistics are a courtesy (pg_restore takes none): a table whose ANALYZE
                // fails (a parent sampling a foreign child whose server is out of reach) is
                // left for autovacuum, and the restore goes on.
                let (e, _) = waiting.remove(at);
                if let Err(reason) = apply(&analyzer, e, &state).await {
                    tracing::warn!(item = %label(e), %reason, "ANALYZE failed; left to autovacuum");
                }
                continue;
            }
            match finished_rx.recv().await {
                Some(id) => {
                    finished.insert(id);
                }
                // The parallel pass ended: it succeeded (everything is in) or it failed (and
                // that failure is reported; nothing is left worth analyzing).
                None if in_phase.is_subset(&finished) => all_announced = true,
                None => return Ok(()),
            }
        }
        Ok::<(), RestoreError>(())
    };
    let (main_work, analyzed) = tokio::join!(main_work, analyzing);
    let (rows, tables, mut applied, triggers) = main_work?;
    analyzed?;
    if !options.single_transaction {
        applied = finish(main, &triggers, &state, applied).await?;
    }
    outcome.rows += rows;
    outcome.tables += tables;
    outcome.applied = applied - outcome.already_done;
    Ok(outcome)
}

/// Ends a restore: drops the progress schema, then creates the event triggers (`triggers`),
/// in one transaction, so that no restored event trigger fires on ferry's own statements.
async fn finish(
    main: &Session,
    triggers: &[&TocEntry],
    state: &State,
    applied: usize,
) -> Result<usize, RestoreError> {
    let mut sql = String::from("BEGIN;\nDROP SCHEMA ferry_restore CASCADE;\n");
    for e in triggers {
        sql.push_str(e.defn.as_deref().unwrap_or(""));
        sql.push('\n');
        if !state.options.no_owner
            && let Some(owner) = owner_statement(e)
        {
            sql.push_str(&owner);
        }
    }
    sql.push_str("COMMIT;");
    if let Err(err) = main.batch_execute(&sql).await {
        let _ = main.batch_execute("ROLLBACK").await;
        return Err(RestoreError::Failed(format!(
            "creating the event triggers (after everything else) failed: {}",
            PgError::from(err)
        )));
    }
    Ok(applied + triggers.len())
}

/// Event triggers and their comments: restored after everything else (pg_restore's last
/// pass), so that none fires on the restore's own statements.
fn after_everything(e: &TocEntry) -> bool {
    e.desc == "EVENT TRIGGER" || (e.desc == "COMMENT" && e.tag.starts_with("EVENT TRIGGER "))
}

/// The failure of item `e`, with how far the restore got.
fn item_failed(e: &TocEntry, reason: String, applied: usize, total: usize) -> RestoreError {
    RestoreError::ItemFailed {
        item: label(e),
        reason,
        applied,
        total,
    }
}

/// Applies `entries` one after the other on `session`; returns the count of items applied so
/// far, or the first failure naming its item.
async fn apply_in_order<'a>(
    session: &Session,
    entries: impl Iterator<Item = &'a &'a TocEntry>,
    state: &State,
    mut applied: usize,
) -> Result<usize, RestoreError> {
    for e in entries {
        apply(session, e, state)
            .await
            .map_err(|reason| item_failed(e, reason, applied, state.total))?;
        applied += 1;
        state.report(applied);
    }
    Ok(applied)
}

/// Whether the restore runs entry `e`: what the options select, but never the session
/// settings (set on every connection) nor the database's own entries, which name the database
/// the dump was taken from (pg_restore runs them only with `--create`).
fn restored(e: &TocEntry, options: &Options) -> bool {
    let skipped = SESSION_ENTRIES.contains(&e.desc.as_str())
        || crate::archive::is_database_level(&e.desc, &e.tag)
        || (options.no_privileges && matches!(e.desc.as_str(), "ACL" | "DEFAULT ACL"));
    !skipped && options.selects(e)
}

/// `--clean`: drops what the archive creates, dependents first, each `IF EXISTS`. As with
/// pg_restore, a drop that fails (something else depends on the object) is reported and the
/// restore goes on; creating the object then fails if it is still there. The database's own
/// entries are not the target's: their `DROP DATABASE` would drop the source's namesake.
async fn clean(main: &Session, entries: &[TocEntry], options: &Options) {
    for e in entries.iter().rev().filter(|e| restored(e, options)) {
        let Some(drop) = e.drop_stmt.as_deref().filter(|d| !d.trim().is_empty()) else {
            continue;
        };
        if let Err(err) = main.batch_execute(&if_exists(drop)).await {
            tracing::warn!(item = %label(e), error = %PgError::from(err), "--clean could not drop");
        }
    }
}

/// What a plain dump's statement is, for running it.
#[derive(Debug, PartialEq, Eq)]
enum PlainKind {
    /// `SET ...` or `SELECT pg_catalog.set_config(...)`: session state, run every time.
    Session,
    /// The dump's own `BEGIN`/`COMMIT`: ferry runs each statement in its own transaction.
    Transaction,
    /// Cannot run inside a transaction block.
    Outside,
    Owner,
    Grant,
    Plain,
}

/// A statement without its leading `--` comment lines.
fn uncommented(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn plain_kind(sql: &str) -> PlainKind {
    let body = uncommented(sql);
    let upper = body.trim().to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["SET", ..] | ["RESET", ..] => PlainKind::Session,
        ["SELECT", f, ..]
            if f.starts_with("PG_CATALOG.SET_CONFIG") || f.starts_with("SET_CONFIG") =>
        {
            PlainKind::Session
        }
        ["BEGIN"] | ["START", "TRANSACTION", ..] | ["COMMIT"] | ["END"] | ["ROLLBACK"] => {
            PlainKind::Transaction
        }
        ["CREATE", "DATABASE", ..] | ["VACUUM", ..] | ["ALTER", "SYSTEM", ..] => PlainKind::Outside,
        ["CREATE", "INDEX", "CONCURRENTLY", ..]
        | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
        | ["REINDEX", ..] => PlainKind::Outside,
        ["ALTER", ..] if upper.contains(" OWNER TO ") => PlainKind::Owner,
        ["GRANT", ..] | ["REVOKE", ..] | ["ALTER", "DEFAULT", "PRIVILEGES", ..] => PlainKind::Grant,
        _ => PlainKind::Plain,
    }
}

/// Restores a plain SQL dump, statement by statement on one connection (a script has no
/// dependency information to parallelise on). Each statement commits with its progress row,
/// as archive items do, so an interrupted run resumes; session settings run every time.
async fn run_plain(
    store: &Store,
    url: &ObjectUrl,
    target: &PgConfig,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    let archive_id = url.to_string();
    let mut main = session(target, BASE_SETUP).await?;
    if options.single_transaction {
        return Err(RestoreError::Failed(
            "--single-transaction applies to archives; a plain dump runs statement by statement"
                .into(),
        ));
    }
    let mut done = prepare(&main, &archive_id, options.clean, false).await?;
    // Every database the script worked in (it may `\connect` to others), to finish at the end.
    // Each database's session with the event-trigger statements held back for its end.
    let mut finished: Vec<(Session, Vec<String>)> = Vec::new();
    let mut deferred: Vec<String> = Vec::new();
    // The dump's `SET SESSION AUTHORIZATION` in force, if any.
    let mut authorized: Option<String> = None;
    let state = State {
        archive_id: archive_id.clone(),
        options: options.clone(),
        progress: progress.clone(),
        total: 0,
        blob_groups: HashMap::new(),
        created_tables: HashSet::new(),
        tablespaces: HashSet::new(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<plain::Piece, RestoreError>>(8);
    let reader = source::plain_reader(store, url).await?;
    let errors = tx.clone();
    let splitter = tokio::task::spawn_blocking(move || {
        let result = plain::split(std::io::BufReader::with_capacity(256 * 1024, reader), |p| {
            tx.blocking_send(Ok(p)).is_ok()
        });
        if let Err(e) = result {
            let _ = errors.blocking_send(Err(RestoreError::Failed(e.to_string())));
        }
    });
    let mut outcome = Outcome {
        already_done: done.len(),
        ..Outcome::default()
    };
    let mut ordinal = 0i32;
    let mut block: Option<String> = None;
    let fail = |item: String, reason: String, outcome: &Outcome| RestoreError::ItemFailed {
        item,
        reason,
        applied: outcome.applied + outcome.already_done,
        total: outcome.items,
    };
    while let Some(piece) = rx.recv().await {
        match piece? {
            plain::Piece::Sql(sql) => {
                let kind = plain_kind(&sql);
                // The dump's own transaction blocks (pg_dump writes large objects inside one:
                // `lo_open` returns a descriptor that lives only until COMMIT) run as one item.
                if kind == PlainKind::Transaction {
                    let upper = uncommented(&sql)
                        .trim()
                        .trim_end_matches(';')
                        .trim()
                        .to_ascii_uppercase();
                    if upper == "BEGIN" || upper.starts_with("START TRANSACTION") {
                        block = Some(String::new());
                        continue;
                    }
                    if let Some(body) = block.take() {
                        if upper == "ROLLBACK" {
                            continue;
                        }
                        ordinal += 1;
                        outcome.items += 1;
                        if done.contains(&ordinal) {
                            continue;
                        }
                        let mut record = format!(
                            "INSERT INTO ferry_restore.progress (archive, dump_id) VALUES ({}, {ordinal})",
                            literal(&archive_id)
                        );
                        if let Some(authorization) = &authorized {
                            record =
                                format!("RESET SESSION AUTHORIZATION; {record}; {authorization}");
                        }
                        if let Err(e) = main
                            .batch_execute(&format!("BEGIN;\n{body}\n;{record}; COMMIT;"))
                            .await
                        {
                            let _ = main.batch_execute("ROLLBACK").await;
                            return Err(fail(
                                statement_label(&body),
                                PgError::from(e).to_string(),
                                &outcome,
                            ));
                        }
                        outcome.applied += 1;
                        state.report(outcome.applied + outcome.already_done);
                    }
                    continue;
                }
                if let Some(body) = block.as_mut() {
                    body.push_str(&sql);
                    body.push('\n');
                    continue;
                }
                if kind == PlainKind::Session {
                    // A dump may run statements as another role (a grant made by someone
                    // other than the owner). Without owners or privileges that is not wanted
                    // (and needs a superuser); otherwise progress rows are written as the
                    // restoring role, between the two.
                    let upper = uncommented(&sql).trim().to_ascii_uppercase();
                    if upper.starts_with("SET SESSION AUTHORIZATION")
                        || upper.starts_with("RESET SESSION AUTHORIZATION")
                    {
                        if options.no_owner || options.no_privileges {
                            continue;
                        }
                        authorized = upper.starts_with("SET").then(|| sql.clone());
                    }
                    match main.batch_execute(&sql).await {
                        Ok(()) => {}
                        // A setting newer than the server (pg_dump 18 writes `SET
                        // transaction_timeout`, which PostgreSQL 16 and older do not know) only
                        // shapes the dump's own session: psql reports it and goes on, as here.
                        Err(e)
                            if e.code()
                                == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT)
                                && e.as_db_error().is_some_and(|d| {
                                    d.message()
                                        .starts_with("unrecognized configuration parameter")
                                }) =>
                        {
                            tracing::warn!(statement = %statement_label(&sql), error = %PgError::from(e), "the server does not know this setting; skipped");
                        }
                        Err(e) => {
                            return Err(fail(
                                statement_label(&sql),
                                PgError::from(e).to_string(),
                                &outcome,
                            ));
                        }
                    }
                    continue;
                }
                if kind == PlainKind::Transaction
                    || (kind == PlainKind::Owner && options.no_owner)
                    || (kind == PlainKind::Grant && options.no_privileges)
                {
                    continue;
                }
                // Event triggers come last, after ferry's own statements (see `finish`).
                let upper = uncommented(&sql).trim().to_ascii_uppercase();
                if [
                    "CREATE EVENT TRIGGER",
                    "ALTER EVENT TRIGGER",
                    "COMMENT ON EVENT TRIGGER",
                ]
                .iter()
                .any(|p| upper.starts_with(p))
                {
                    deferred.push(sql);
                    continue;
                }
                ordinal += 1;
                outcome.items += 1;
                if done.contains(&ordinal) {
                    continue;
                }
                let mut record = format!(
                    "INSERT INTO ferry_restore.progress (archive, dump_id) VALUES ({}, {ordinal})",
                    literal(&archive_id)
                );
                if let Some(authorization) = &authorized {
                    record = format!("RESET SESSION AUTHORIZATION; {record}; {authorization}");
                }
                let result = if kind == PlainKind::Outside {
                    match main.batch_execute(&sql).await {
                        Ok(()) => main.batch_execute(&record).await,
                        Err(e) => Err(e),
                    }
                } else {
                    main.batch_execute(&format!("BEGIN;\n{sql}\n;{record}; COMMIT;"))
                        .await
                };
                if let Err(e) = result {
                    let _ = main.batch_execute("ROLLBACK").await;
                    return Err(fail(
                        statement_label(&sql),
                        PgError::from(e).to_string(),
                        &outcome,
                    ));
                }
                outcome.applied += 1;
                state.report(outcome.applied + outcome.already_done);
            }
            plain::Piece::Copy(statement) => {
                if block.is_some() {
                    return Err(RestoreError::Failed(format!(
                        "{}: a COPY inside the dump's own BEGIN ... COMMIT block is not supported",
                        statement_label(&statement)
                    )));
                }
                ordinal += 1;
                outcome.items += 1;
                let skip = done.contains(&ordinal);
                let rows = copy_plain(
                    &main,
                    &statement,
                    &mut rx,
                    skip,
                    &archive_id,
                    ordinal,
                    authorized.as_deref(),
                )
                .await
                .map_err(|reason| fail(statement_label(&statement), reason, &outcome))?;
                if !skip {
                    outcome.applied += 1;
                    outcome.tables += 1;
                    outcome.rows += rows;
                }
            }
            plain::Piece::Connect(database) => {
                // `\connect` (pg_dump --create writes one after CREATE DATABASE): go on in that
                // database of the same server, with its own progress.
                if block.is_some() {
                    return Err(RestoreError::Failed(
                        "\\connect inside the dump's own BEGIN ... COMMIT block".into(),
                    ));
                }
                let next = session(&target.with_dbname(&database), BASE_SETUP).await?;
                done = prepare(&next, &archive_id, options.clean, false).await?;
                authorized = None;
                finished.push((
                    std::mem::replace(&mut main, next),
                    std::mem::take(&mut deferred),
                ));
            }
            plain::Piece::Rows(_) | plain::Piece::EndCopy => {
                return Err(RestoreError::Failed("COPY rows outside a COPY".into()));
            }
        }
    }
    splitter
        .await
        .map_err(|e| RestoreError::Failed(format!("reading the dump: {e}")))?;
    finished.push((main, deferred));
    for (session, triggers) in &finished {
        // As the restoring role again, whatever role the dump ended as.
        session.batch_execute("RESET SESSION AUTHORIZATION").await?;
        // Statistics are a courtesy (see `restore_items`).
        if let Err(e) = session.batch_execute("ANALYZE").await {
            tracing::warn!(error = %PgError::from(e), "ANALYZE failed; left to autovacuum");
        }
        let sql = format!(
            "BEGIN;\nDROP SCHEMA IF EXISTS ferry_restore CASCADE;\n{}\nCOMMIT;",
            triggers.join("\n;\n")
        );
        if let Err(e) = session.batch_execute(&sql).await {
            let _ = session.batch_execute("ROLLBACK").await;
            let what = if triggers.is_empty() {
                "removing the progress schema"
            } else {
                "the event triggers (created last, with the progress schema's removal)"
            };
            return Err(fail(what.into(), PgError::from(e).to_string(), &outcome));
        }
    }
    Ok(outcome)
}

/// The first line of a statement, for error messages.
fn statement_label(sql: &str) -> String {
    let line = sql
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        .unwrap_or("")
        .trim();
    let short: String = line.chars().take(80).collect();
    format!("statement {short:?}")
}

/// One COPY of a plain dump: its rows go to the server (or are skipped when an earlier run
/// committed them), and the load commits with its progress row.
async fn copy_plain(
    session: &Session,
    statement: &str,
    rx: &mut tokio::sync::mpsc::Receiver<Result<plain::Piece, RestoreError>>,
    skip: bool,
    archive_id: &str,
    ordinal: i32,
    authorized: Option<&str>,
) -> Result<u64, String> {
    let pg = |e: tokio_postgres::Error| PgError::from(e).to_string();
    if skip {
        while let Some(piece) = rx.recv().await {
            match piece.map_err(|e| e.to_string())? {
                plain::Piece::EndCopy => return Ok(0),
                plain::Piece::Rows(_) => {}
                other => return Err(format!("unexpected {other:?} inside COPY data")),
            }
        }
        return Err("the dump ended inside COPY data".into());
    }
    session.batch_execute("BEGIN").await.map_err(pg)?;
    let result = async {
        let sink = session
            .copy_in::<_, bytes::Bytes>(statement)
            .await
            .map_err(pg)?;
        pin_mut!(sink);
        loop {
            match rx.recv().await {
                Some(Ok(plain::Piece::Rows(rows))) => {
                    sink.send(bytes::Bytes::from(rows)).await.map_err(pg)?
                }
                Some(Ok(plain::Piece::EndCopy)) => break,
                Some(Ok(other)) => return Err(format!("unexpected {other:?} inside COPY data")),
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("the dump ended inside COPY data".into()),
            }
        }
        let rows = sink.finish().await.map_err(pg)?;
        // The progress row is the restoring role's, whatever role the dump runs as.
        let record = format!(
            "INSERT INTO ferry_restore.progress (archive, dump_id, rows) VALUES ({}, {ordinal}, {rows})",
            literal(archive_id)
        );
        let record = match authorized {
            Some(authorization) => {
                format!("RESET SESSION AUTHORIZATION; {record}; {authorization}")
            }
            None => record,
        };
        session
            .batch_execute(&format!("{record}; COMMIT;"))
            .await
            .map_err(pg)?;
        Ok(rows)
    }
    .await;
    if result.is_err() && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

/// Whether a qualified name (`schema.table`, identifiers possibly quoted) names the table `tag`.
fn names_table(qualified: &str, tag: &str) -> bool {
    let quoted = format!("\"{}\"", tag.replace('"', "\"\""));
    qualified.ends_with(&format!(".{quoted}")) || qualified.ends_with(&format!(".{tag}"))
}

/// The qualified table name a `COPY` statement loads (quoted identifiers kept whole).
fn copy_table_name(statement: &str) -> Option<&str> {
    let rest = statement.strip_prefix("COPY ")?;
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '(' if !quoted => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// A primary key or unique constraint in two steps: `build` creates its unique index (an item
/// of its own, with a negative id: an interrupted run leaves the index, and the next one keeps
/// it), `attach` is the archive's item, making that index the constraint.
struct SplitConstraint {
    build: TocEntry,
    attach: TocEntry,
}

/// The parts of `ALTER TABLE ONLY t ADD CONSTRAINT c PRIMARY KEY (cols);` (or `UNIQUE`) as
/// pg_dump writes it: table, constraint name, kind and columns. Anything more (`INCLUDE`,
/// `WITH`, `DEFERRABLE`, `NULLS NOT DISTINCT`, ...) is not matched and runs as written.
fn unique_constraint(defn: &str) -> Option<(&str, &str, &str, &str)> {
    /// A possibly quoted, possibly qualified name, up to unquoted whitespace.
    fn name(s: &str) -> Option<(&str, &str)> {
        let mut quoted = false;
        for (i, c) in s.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    return (i > 0).then(|| (&s[..i], &s[i..]));
                }
                '(' | ')' | ';' | ',' if !quoted => return None,
                _ => {}
            }
        }
        None
    }
    let rest = defn.strip_prefix("ALTER TABLE ONLY ")?;
    let (table, rest) = name(rest)?;
    let rest = rest.trim_start().strip_prefix("ADD CONSTRAINT ")?;
    let (constraint, rest) = name(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (kind, rest) = match rest.strip_prefix("PRIMARY KEY (") {
        Some(r) => ("PRIMARY KEY", r),
        None => ("UNIQUE", rest.strip_prefix("UNIQUE (")?),
    };
    // Column names only, each a plain identifier or a quoted one, separated by ", " (not
    // `WITHOUT OVERLAPS` or anything else a newer pg_dump may write there).
    let bytes = rest.as_bytes();
    let mut at = 0;
    loop {
        if bytes.get(at) == Some(&b'"') {
            at += 1;
            loop {
                match bytes.get(at)? {
                    b'"' if bytes.get(at + 1) == Some(&b'"') => at += 2,
                    b'"' => break,
                    _ => at += 1,
                }
            }
            at += 1;
        } else {
            let start = at;
            while bytes.get(at).is_some_and(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'$'
            }) {
                at += 1;
            }
            if at == start {
                return None;
            }
        }
        let after = &rest[at..];
        if after.starts_with(", ") {
            at += 2;
        } else if let Some(end) = after.strip_prefix(')') {
            return (end.trim() == ";").then_some((table, constraint, kind, &rest[..at]));
        } else {
            return None;
        }
    }
}

/// The primary keys and unique constraints of `phase` that can be split (see
/// [`SplitConstraint`]): pg_dump's plain form, on a table that is not partitioned (a
/// partitioned table's constraint cannot take an index). Each attach waits for the other index
/// builds on its table, so that it does not hold a connection while it waits for their locks.
fn split_unique_constraints(
    phase: &[&TocEntry],
    all: &[TocEntry],
    first_id: i32,
) -> Vec<SplitConstraint> {
    let tables: HashMap<i32, &TocEntry> = all
        .iter()
        .filter(|t| t.desc == "TABLE")
        .map(|t| (t.dump_id, t))
        .collect();
    let table_of = |e: &TocEntry| e.dependencies.iter().find_map(|d| tables.get(d).copied());
    let mut out: Vec<SplitConstraint> = Vec::new();
    for e in phase.iter().filter(|e| e.desc == "CONSTRAINT") {
        let Some((table, name, kind, columns)) = e.defn.as_deref().and_then(unique_constraint)
        else {
            continue;
        };
        let partitioned = table_of(e)
            .and_then(|t| t.defn.as_deref())
            .is_none_or(|d| d.contains("PARTITION BY "));
        if partitioned {
            continue;
        }
        let mut build = TocEntry::new(
            first_id - out.len() as i32,
            &e.desc,
            &e.tag,
            Section::PostData,
        );
        build.namespace = e.namespace.clone();
        build.tablespace = e.tablespace.clone();
        build.dependencies = e.dependencies.clone();
        build.defn = Some(format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} USING btree ({columns});\n"
        ));
        let mut attach = (*e).clone();
        attach.defn = Some(format!(
            "ALTER TABLE ONLY {table}\n    ADD CONSTRAINT {name} {kind} USING INDEX {name};\n"
        ));
        attach.dependencies.push(build.dump_id);
        out.push(SplitConstraint { build, attach });
    }
    // Each attach after every index build on its table, its own and the others (but not an
    // index that itself waits for the constraint).
    let mut builds_on: HashMap<i32, Vec<&TocEntry>> = HashMap::new();
    for b in phase.iter().copied().filter(|o| o.desc == "INDEX") {
        if let Some(t) = table_of(b) {
            builds_on.entry(t.dump_id).or_default().push(b);
        }
    }
    let own: Vec<(i32, i32)> = out
        .iter()
        .filter_map(|s| Some((table_of(&s.build)?.dump_id, s.build.dump_id)))
        .collect();
    for s in &mut out {
        let Some(table) = table_of(&s.attach).map(|t| t.dump_id) else {
            continue;
        };
        let indexes = builds_on.get(&table).into_iter().flatten();
        let waits: Vec<i32> = indexes
            .filter(|b| !b.dependencies.contains(&s.attach.dump_id))
            .map(|b| b.dump_id)
            .chain(own.iter().filter(|(t, _)| *t == table).map(|(_, id)| *id))
            .filter(|id| !s.attach.dependencies.contains(id))
            .collect();
        s.attach.dependencies.extend(waits);
    }
    out
}

/// `ANALYZE` items (negative ids, not recorded as progress): one per table whose data is
/// loaded in this pass, after its data and the indexes and constraints on it.
fn analyze_items(phase: &[&TocEntry], all: &[TocEntry]) -> Vec<TocEntry> {
    let mut out = Vec::new();
    for e in phase.iter().filter(|e| e.had_dumper) {
        let Some(statement) = e.copy_stmt.as_deref() else {
            continue;
        };
        let Some(table) = copy_table_name(statement) else {
            continue;
        };
        let table_entries: Vec<i32> = e.dependencies.clone();
        let mut item = TocEntry::new(
            -(out.len() as i32) - 1,
            "ANALYZE",
            &e.tag,
            Section::PostData,
        );
        item.namespace = e.namespace.clone();
        item.defn = Some(format!("ANALYZE {table};\n"));
        item.dependencies.push(e.dump_id);
        for other in all.iter().filter(|o| {
            matches!(o.desc.as_str(), "INDEX" | "CONSTRAINT")
                && o.dependencies.iter().any(|d| table_entries.contains(d))
        }) {
            item.dependencies.push(other.dump_id);
        }
        out.push(item);
    }
    out
}

struct State {
    archive_id: String,
    options: Options,
    progress: SharedProgress,
    total: usize,
    /// The oids of each `BLOB METADATA` entry (a group of large objects), by dump id.
    blob_groups: HashMap<i32, Vec<String>>,
    /// The tables this restore creates, as (schema, name): only those may be emptied before
    /// their load (an extension's configuration table holds the extension's own rows).
    created_tables: HashSet<(String, String)>,
    /// The archive's tablespaces that the target has: objects go there, as pg_restore puts
    /// them; those of others go to the target's default tablespace (with a warning).
    tablespaces: HashSet<String>,
}

impl State {
    fn report(&self, done: usize) {
        self.progress.report(ProgressEvent {
            job: "restore",
            step: "restoring".into(),
            done: done as u64,
            total: Some(self.total as u64),
            unit: Unit::Steps,
        });
    }
}

/// The oids of the large-object group an `ACL` or `COMMENT` entry applies to (archive 1.16).
fn blob_group_of<'a>(e: &TocEntry, state: &'a State) -> Option<&'a Vec<String>> {
    if !e.tag.starts_with("LARGE OBJECTS ") {
        return None;
    }
    e.dependencies
        .iter()
        .find_map(|d| state.blob_groups.get(d))
        .filter(|g| !g.is_empty())
}

/// The tablespaces the archive's entries are in that the target has; a warning names the
/// others (Neon has none: everything goes to the default tablespace there).
async fn target_tablespaces(
    session: &Session,
    items: &[&TocEntry],
) -> Result<HashSet<String>, PgError> {
    let wanted: HashSet<&str> = items
        .iter()
        .filter_map(|e| e.tablespace.as_deref())
        .filter(|t| !t.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let existing: HashSet<String> = session
        .query("SELECT spcname::text FROM pg_tablespace", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|t| !existing.contains(*t))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        tracing::warn!(
            tablespaces = ?missing,
            "the target has no such tablespaces: what the archive puts there goes to its default tablespace"
        );
    }
    Ok(wanted
        .into_iter()
        .filter(|t| existing.contains(*t))
        .map(str::to_string)
        .collect())
}

/// Runs one statement item and records it, in one transaction.
async fn apply(session: &Session, e: &TocEntry, state: &State) -> Result<(), String> {
    let single = state.options.single_transaction;
    let mut sql = String::from(if single { "" } else { "BEGIN;\n" });
    if let Some(am) = e.tableam.as_deref().filter(|a| !a.is_empty()) {
        sql.push_str(&format!(
            "SET LOCAL default_table_access_method = \"{}\";\n",
            am.replace('"', "\"\"")
        ));
    }
    if let Some(space) = e
        .tablespace
        .as_deref()
        .filter(|t| state.tablespaces.contains(*t))
    {
        sql.push_str(&format!(
            "SET LOCAL default_tablespace = {};\n",
            crate::pg::ident(space)
        ));
    }
    if e.desc == "BLOB METADATA" {
        // A group of large objects: the entry lists their oids, one per line (archive 1.16).
        for oid in crate::archive::plain::blob_group_oids(e) {
            sql.push_str(&format!("SELECT pg_catalog.lo_create('{oid}');\n"));
        }
    } else if let Some(group) = blob_group_of(e, state) {
        // Grants (or comments) on a group of large objects: the entry states them for the
        // group's first object; pg_restore repeats them for every object of the group.
        let defn = e.defn.as_deref().unwrap_or("");
        let first = &group[0];
        for oid in group {
            sql.push_str(&defn.replace(
                &format!("LARGE OBJECT {first} "),
                &format!("LARGE OBJECT {oid} "),
            ));
            sql.push('\n');
        }
    } else if let Some(defn) = e.defn.as_deref() {
        sql.push_str(defn);
        sql.push('\n');
        // A partitioned table has no storage to make with the default access method: its
        // own (17+, archive 1.16) is set afterwards, as pg_restore sets it.
        if let (b'p', Some(am), Some(ns)) = (
            e.relkind,
            e.tableam.as_deref().filter(|a| !a.is_empty()),
            e.namespace.as_deref(),
        ) && e.desc == "TABLE"
        {
            sql.push_str(&format!(
                "ALTER TABLE {}.{} SET ACCESS METHOD {};\n",
                crate::pg::ident(ns),
                crate::pg::ident(&e.tag),
                crate::pg::ident(am)
            ));
        }
    }
    if !state.options.no_owner
        && let Some(owner) = owner_statement(e)
    {
        sql.push_str(&owner);
    }
    if single {
        return session
            .batch_execute(&sql)
            .await
            .map_err(|err| PgError::from(err).to_string());
    }
    if e.dump_id > 0 {
        sql.push_str(&format!(
            "INSERT INTO ferry_restore.progress (archive, dump_id) VALUES ({}, {});\n",
            literal(&state.archive_id),
            e.dump_id
        ));
    }
    sql.push_str("COMMIT;");
    if let Err(err) = session.batch_execute(&sql).await {
        let _ = session.batch_execute("ROLLBACK").await;
        return Err(PgError::from(err).to_string());
    }
    Ok(())
}

/// Loads the large objects of a BLOBS entry (created empty by the BLOB entries before data),
/// in one transaction with its progress row, as pg_restore writes them: `lo_open` for
/// writing, `lowrite` per chunk, `lo_close`.
async fn load_blobs(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
) -> Result<u64, String> {
    let single = state.options.single_transaction;
    let pg = |e: tokio_postgres::Error| PgError::from(e).to_string();
    let result = async {
        if !single {
            session.batch_execute("BEGIN").await.map_err(pg)?;
        }
        let mut pieces = archive.blobs(e);
        let mut fd: Option<i32> = None;
        let mut count = 0u64;
        while let Some(piece) = pieces.recv().await {
            match piece.map_err(|e| e.to_string())? {
                source::BlobPiece::Start(oid) => {
                    let row = session
                        .query_one("SELECT pg_catalog.lo_open($1, 131072)", &[&oid])
                        .await
                        .map_err(pg)?;
                    fd = Some(row.get(0));
                }
                source::BlobPiece::Data(bytes) => {
                    let fd = fd.ok_or("large object data before its start")?;
                    session
                        .query_one("SELECT pg_catalog.lowrite($1, $2)", &[&fd, &bytes.as_ref()])
                        .await
                        .map_err(pg)?;
                }
                source::BlobPiece::End => {
                    let open = fd.take().ok_or("a large object ended twice")?;
                    session
                        .query_one("SELECT pg_catalog.lo_close($1)", &[&open])
                        .await
                        .map_err(pg)?;
                    count += 1;
                }
            }
        }
        if !single {
            session
                .batch_execute(&format!(
                    "INSERT INTO ferry_restore.progress (archive, dump_id, rows) VALUES ({}, {}, {count}); COMMIT;",
                    literal(&state.archive_id),
                    e.dump_id
                ))
                .await
                .map_err(pg)?;
        }
        Ok::<u64, String>(count)
    }
    .await;
    if result.is_err() && !single && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

/// `TRUNCATE ONLY` of the table entry `e` loads, when its load may empty it first: not in one
/// transaction, not for a load through a partition root (which would empty every
/// partition), and only for a table this restore creates (not an extension's configuration
/// table, whose extension put rows of its own in it, nor a table a data-only archive fills).
fn truncate_statement(e: &TocEntry, state: &State) -> Option<String> {
    let key = (e.namespace.clone().unwrap_or_default(), e.tag.clone());
    if state.options.single_transaction || !state.created_tables.contains(&key) {
        return None;
    }
    let statement = copy_statement(e)?;
    copy_table_name(&statement)
        .filter(|name| names_table(name, &e.tag))
        .map(|name| format!("TRUNCATE ONLY {name}"))
}

/// Connections the parallel pass hands to a running load while they have nothing else to do;
/// the load hands them back when it ends (see [`load_shared`]).
struct Joiners {
    offered: tokio::sync::mpsc::UnboundedReceiver<Session>,
    /// Whether the load still takes connections (not all its rows are read).
    open: Arc<AtomicBool>,
    done_with: Vec<Session>,
}

impl Joiners {
    /// Every connection offered: those that joined, and those that came too late.
    fn give_back(mut self) -> Vec<Session> {
        self.open.store(false, Ordering::Relaxed);
        self.offered.close();
        while let Ok(s) = self.offered.try_recv() {
            self.done_with.push(s);
        }
        self.done_with
    }
}

/// Loads one table: its COPY and its progress row commit together. With `joiners`, other
/// connections may take a share of the rows (see [`load_shared`]).
async fn load(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
    joiners: Option<&mut Joiners>,
) -> Result<u64, String> {
    let mut statement = copy_statement(e).ok_or_else(|| "no COPY statement".to_string())?;
    // The table is empty (a restore goes into an empty database, and a COPY that did not
    // finish rolled back): emptying it in the load's own transaction lets COPY write its rows
    // frozen, so that the index builds and ANALYZE that read them next do not rewrite every
    // page to set hint bits. Skipped if the server refuses the TRUNCATE.
    let single = state.options.single_transaction;
    let truncate = truncate_statement(e, state);
    let mut frozen = false;
    if let Some(truncate) = &truncate {
        match session.batch_execute(&format!("BEGIN; {truncate}")).await {
            Ok(()) => frozen = true,
            Err(_) => {
                let _ = session.batch_execute("ROLLBACK").await;
            }
        }
    }
    if let Some(joiners) = joiners {
        if let (true, Some(truncate)) = (frozen, &truncate) {
            return load_shared(session, e, archive, state, &statement, truncate, joiners).await;
        }
        joiners.open.store(false, Ordering::Relaxed);
    }
    if frozen {
        statement.push_str(" WITH (FREEZE)");
    }
    let result = async {
        if !frozen && !single {
            session
                .batch_execute("BEGIN")
                .await
                .map_err(|e| PgError::from(e).to_string())?;
        }
        let sink = session
            .copy_in::<_, bytes::Bytes>(statement.as_str())
            .await
            .map_err(|e| PgError::from(e).to_string())?;
        pin_mut!(sink);
        let mut data = archive.data(e);
        let mut terminator = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        while let Some(chunk) = data.recv().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            if let Some(out) = terminator.push(&chunk) {
                sink.send(out)
                    .await
                    .map_err(|e| PgError::from(e).to_string())?;
            }
        }
        let rest = terminator.finish();
        if !rest.is_empty() {
            sink.send(rest)
                .await
                .map_err(|e| PgError::from(e).to_string())?;
        }
        let rows = sink
            .finish()
            .await
            .map_err(|e| PgError::from(e).to_string())?;
        if single {
            return Ok(rows);
        }
        session
            .batch_execute(&format!("{}; COMMIT", progress_row(state, e, rows)))
            .await
            .map_err(|e| PgError::from(e).to_string())?;
        Ok::<u64, String>(rows)
    }
    .await;
    if result.is_err() && !single && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

/// The statement recording that entry `e` is done.
fn progress_row(state: &State, e: &TocEntry, rows: u64) -> String {
    format!(
        "INSERT INTO ferry_restore.progress (archive, dump_id, rows) VALUES ({}, {}, {rows})",
        literal(&state.archive_id),
        e.dump_id
    )
}

/// The COPY text of `e` in chunks of whole rows (a raw newline ends a row in COPY text), the
/// archive's terminator cut, so that any chunk can go to any connection.
fn whole_rows(
    e: &TocEntry,
    archive: &source::Archive,
) -> tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut data = archive.data(e);
    tokio::spawn(async move {
        let mut terminator = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        // The start of a row whose end is in a later chunk.
        let mut partial: Vec<u8> = Vec::new();
        while let Some(chunk) = data.recv().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string())).await;
                    return;
                }
            };
            let Some(out) = terminator.push(&chunk) else {
                continue;
            };
            let (Some(first), Some(last)) =
                (memchr::memchr(b'\n', &out), memchr::memrchr(b'\n', &out))
            else {
                partial.extend_from_slice(&out);
                continue;
            };
            partial.extend_from_slice(&out[..=first]);
            let head = bytes::Bytes::from(std::mem::take(&mut partial));
            if tx.send(Ok(head)).await.is_err() {
                return;
            }
            if last > first && tx.send(Ok(out.slice(first + 1..=last))).await.is_err() {
                return;
            }
            partial.extend_from_slice(&out[last + 1..]);
        }
        partial.extend_from_slice(&terminator.finish());
        if !partial.is_empty() {
            let _ = tx.send(Ok(partial.into())).await;
        }
    });
    rx
}

/// A load that other connections may join. It starts alone, frozen, in the transaction that
/// emptied the table; when a connection joins, what is in commits (frozen) and the rest of the
/// rows is shared, chunk by chunk, among COPYs on every connection taking part, each in its own
/// transaction. The progress row is written when all of them have committed: a run interrupted
/// before that leaves the table unrecorded, and the next run empties and reloads it. A failed
/// load empties the table again where it still can.
async fn load_shared(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
    statement: &str,
    truncate: &str,
    joiners: &mut Joiners,
) -> Result<u64, String> {
    let pg = |e: tokio_postgres::Error| PgError::from(e).to_string();
    let mut rows = whole_rows(e, archive);
    let alone = async {
        let frozen = format!("{statement} WITH (FREEZE)");
        let sink = session
            .copy_in::<_, bytes::Bytes>(frozen.as_str())
            .await
            .map_err(pg)?;
        pin_mut!(sink);
        let joined = loop {
            tokio::select! {
                biased;
                Some(s) = joiners.offered.recv() => break Some(s),
                chunk = rows.recv() => match chunk {
                    Some(Ok(b)) => sink.send(b).await.map_err(pg)?,
                    Some(Err(e)) => return Err(e),
                    None => break None,
                },
            }
        };
        let count = sink.finish().await.map_err(pg)?;
        let Some(joined) = joined else {
            joiners.open.store(false, Ordering::Relaxed);
            session
                .batch_execute(&format!("{}; COMMIT", progress_row(state, e, count)))
                .await
                .map_err(pg)?;
            return Ok((count, None));
        };
        session.batch_execute("COMMIT").await.map_err(pg)?;
        Ok((count, Some(joined)))
    }
    .await;
    let (mut total, joined) = match alone {
        Ok(r) => r,
        Err(reason) => {
            if !session.is_closed() {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            return Err(reason);
        }
    };
    let Some(joined) = joined else {
        return Ok(total);
    };
    tracing::debug!(table = %label(e), "another connection joins the load");
    let rows = tokio::sync::Mutex::new(rows);
    let stop = AtomicBool::new(false);
    let open = joiners.open.clone();
    let mut parts = futures::stream::FuturesUnordered::new();
    parts.push(joined_part(joined, statement, &rows, &stop, &open));
    let own = copy_part(session, statement, &rows, &stop, &open);
    pin_mut!(own);
    let mut own_done = false;
    let mut failure: Option<String> = None;
    loop {
        tokio::select! {
            r = &mut own, if !own_done => {
                own_done = true;
                match r {
                    Ok(n) => total += n,
                    Err(reason) => keep_first(&mut failure, reason),
                }
            }
            Some((s, r)) = futures::StreamExt::next(&mut parts), if !parts.is_empty() => {
                joiners.done_with.push(s);
                match r {
                    Ok(n) => total += n,
                    Err(reason) => keep_first(&mut failure, reason),
                }
            }
            Some(s) = joiners.offered.recv(), if open.load(Ordering::Relaxed) && failure.is_none() => {
                parts.push(joined_part(s, statement, &rows, &stop, &open));
            }
            else => break,
        }
    }
    if let Some(reason) = failure {
        if !session.is_closed() {
            let _ = session.batch_execute(truncate).await;
        }
        return Err(reason);
    }
    session
        .batch_execute(&progress_row(state, e, total))
        .await
        .map_err(pg)?;
    Ok(total)
}

/// Why a COPY sharing a load stopped when another one failed.
const ANOTHER_FAILED: &str = "another connection loading this table failed";

/// Keeps the failure that stopped a shared load rather than the stops it caused.
fn keep_first(failure: &mut Option<String>, reason: String) {
    if failure.as_deref().is_none_or(|f| f == ANOTHER_FAILED) {
        *failure = Some(reason);
    }
}

/// One COPY of a shared load (see [`load_shared`]): takes chunks of rows until there are no
/// more, then commits; rolls back on failure, and tells the others to stop.
async fn copy_part(
    session: &Session,
    statement: &str,
    rows: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>>,
    stop: &AtomicBool,
    open: &AtomicBool,
) -> Result<u64, String> {
    let pg = |e: tokio_postgres::Error| PgError::from(e).to_string();
    let result = async {
        session.batch_execute("BEGIN").await.map_err(pg)?;
        let sink = session
            .copy_in::<_, bytes::Bytes>(statement)
            .await
            .map_err(pg)?;
        pin_mut!(sink);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(ANOTHER_FAILED.to_string());
            }
            let next = rows.lock().await.recv().await;
            match next {
                Some(Ok(b)) => sink.send(b).await.map_err(pg)?,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        open.store(false, Ordering::Relaxed);
        let count = sink.finish().await.map_err(pg)?;
        session.batch_execute("COMMIT").await.map_err(pg)?;
        Ok(count)
    }
    .await;
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
        if !session.is_closed() {
            let _ = session.batch_execute("ROLLBACK").await;
        }
    }
    result
}

/// [`copy_part`] on a connection that joined, which it hands back.
async fn joined_part(
    session: Session,
    statement: &str,
    rows: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>>,
    stop: &AtomicBool,
    open: &AtomicBool,
) -> (Session, Result<u64, String>) {
    let result = copy_part(&session, statement, rows, stop, open).await;
    (session, result)
}

/// Data and post-data items over `jobs` connections: each starts when the items it depends on
/// (and, for anything that depends on a table, that table's data) are done.
#[allow(clippy::too_many_arguments)]
async fn run_parallel(
    target: &PgConfig,
    setup: &str,
    archive: &source::Archive,
    items: &[&TocEntry],
    all: &[TocEntry],
    state: &State,
    applied_before: usize,
    finished_tx: tokio::sync::mpsc::UnboundedSender<i32>,
) -> Result<(u64, usize, usize), RestoreError> {
    let in_phase: HashMap<i32, usize> = items
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    // A table's data entry, by the table entry's dump id.
    let data_of: HashMap<i32, i32> = all
        .iter()
        .filter(|e| e.had_dumper)
        .filter_map(|e| {
            let table = all.iter().find(|t| {
                t.desc == "TABLE"
                    && t.tag == e.tag
                    && t.namespace == e.namespace
                    && e.dependencies.contains(&t.dump_id)
            })?;
            Some((table.dump_id, e.dump_id))
        })
        .collect();
    let mut waits: Vec<BTreeSet<usize>> = items
        .iter()
        .map(|e| {
            let mut w = BTreeSet::new();
            for d in &e.dependencies {
                if let Some(&i) = in_phase.get(d) {
                    w.insert(i);
                }
                if !e.had_dumper
                    && let Some(data) = data_of.get(d)
                    && let Some(&i) = in_phase.get(data)
                {
                    w.insert(i);
                }
            }
            w
        })
        .collect();
    for (i, w) in waits.iter_mut().enumerate() {
        w.remove(&i);
    }
    let n = items.len();
    let workers = state.options.jobs.max(1).min(n.max(1));
    let mut sessions = Vec::with_capacity(workers);
    for _ in 0..workers {
        sessions.push(session(target, setup).await?);
    }
    let mut idle: Vec<Session> = sessions;
    let mut started = vec![false; n];
    let mut finished = vec![false; n];
    let mut running = futures::stream::FuturesUnordered::new();
    // Running loads that connections with nothing else to do may join: where to hand them,
    // whether the load still takes them, and how many it was given.
    let mut joinable: HashMap<usize, (UnboundedSender<Session>, Arc<AtomicBool>, usize)> =
        HashMap::new();
    let (mut rows, mut tables, mut count) = (0u64, 0usize, 0usize);
    let mut failure: Option<RestoreError> = None;
    loop {
        if failure.is_none() {
            // Start what is ready, in archive order, while connections are free.
            for i in 0..n {
                if idle.is_empty() {
                    break;
                }
                if started[i] || !waits[i].iter().all(|&w| finished[w]) {
                    continue;
                }
                started[i] = true;
                let s = idle.pop().expect("checked");
                let e = items[i];
                let mut joiners =
                    (e.had_dumper && e.desc != "BLOBS" && truncate_statement(e, state).is_some())
                        .then(|| {
                            let (tx, offered) = tokio::sync::mpsc::unbounded_channel();
                            let open = Arc::new(AtomicBool::new(true));
                            joinable.insert(i, (tx, open.clone(), 0));
                            Joiners {
                                offered,
                                open,
                                done_with: Vec::new(),
                            }
                        });
                running.push(async move {
                    let result = if e.desc == "BLOBS" {
                        load_blobs(&s, e, archive, state).await.map(|_| None)
                    } else if e.had_dumper {
                        load(&s, e, archive, state, joiners.as_mut())
                            .await
                            .map(Some)
                    } else {
                        apply(&s, e, state).await.map(|()| None)
                    };
                    let mut back = joiners.map(Joiners::give_back).unwrap_or_default();
                    back.push(s);
                    (i, back, result)
                });
            }
            // Nothing else is ready: free connections join the running loads, fewest helped
            // first.
            while let Some(s) = idle.pop() {
                let Some((tx, open, given)) = joinable
                    .values_mut()
                    .filter(|(_, open, _)| open.load(Ordering::Relaxed))
                    .min_by_key(|(_, _, given)| *given)
                else {
                    idle.push(s);
                    break;
                };
                match tx.send(s) {
                    Ok(()) => *given += 1,
                    Err(refused) => {
                        open.store(false, Ordering::Relaxed);
                        idle.push(refused.0);
                    }
                }
            }
        }
        let Some((i, back, result)) = futures::StreamExt::next(&mut running).await else {
            break;
        };
        finished[i] = true;
        joinable.remove(&i);
        match result {
            Ok(loaded) => {
                let _ = finished_tx.send(items[i].dump_id);
                if let Some(n) = loaded {
                    rows += n;
                    tables += 1;
                }
                if items[i].dump_id > 0 {
                    count += 1;
                    state.report(applied_before + count);
                }
                for s in back {
                    if !s.is_closed() {
                        idle.push(s);
                    } else {
                        match session(target, setup).await {
                            Ok(fresh) => idle.push(fresh),
                            Err(e) => failure = failure.or(Some(e.into())),
                        }
                    }
                }
            }
            Err(reason) => {
                failure = failure.or(Some(RestoreError::ItemFailed {
                    item: label(items[i]),
                    reason,
                    applied: applied_before + count,
                    total: state.total,
                }));
            }
        }
        if failure.is_none() && finished.iter().all(|f| *f) {
            break;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(i) = (0..n).find(|&i| !finished[i]) {
        return Err(RestoreError::Failed(format!(
            "{} waits on an item that never ran (a dependency cycle in the archive)",
            label(items[i])
        )));
    }
    Ok((rows, tables, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(parts: &[&[u8]]) -> Vec<u8> {
        let mut t = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        let mut out = Vec::new();
        for p in parts {
            if let Some(b) = t.push(p) {
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&t.finish());
        out
    }

    #[test]
    fn the_archive_terminator_is_cut_and_nothing_else() {
        assert_eq!(strip(&[b"1\ta\n2\tb\n", b"\\.\n\n\n"]), b"1\ta\n2\tb\n");
        assert_eq!(strip(&[b"\\.\n\n\n"]), b"");
        assert_eq!(
            strip(&[b"a row long enough to be sent\n\\", b".\n"]),
            b"a row long enough to be sent\n"
        );
        // A value ending in a backslash-dot is data, not the terminator.
        assert_eq!(strip(&[b"x\\.\n"]), b"x\\.\n");
        assert_eq!(strip(&[b"1\n2\n"]), b"1\n2\n");
    }

    #[test]
    fn drops_gain_if_exists_where_pg_restore_puts_it() {
        assert_eq!(
            if_exists("DROP TABLE public.t;\n"),
            "DROP TABLE IF EXISTS public.t;"
        );
        assert_eq!(
            if_exists("DROP MATERIALIZED VIEW app.\"Odd\";"),
            "DROP MATERIALIZED VIEW IF EXISTS app.\"Odd\";"
        );
        assert_eq!(
            if_exists("ALTER TABLE ONLY public.t DROP CONSTRAINT t_pkey;"),
            "ALTER TABLE IF EXISTS ONLY public.t DROP CONSTRAINT IF EXISTS t_pkey;"
        );
        assert_eq!(
            if_exists("DROP FUNCTION public.f(integer);"),
            "DROP FUNCTION IF EXISTS public.f(integer);"
        );
    }

    #[test]
    fn use_lists_are_read_like_pg_restore_reads_them() {
        let ids =
            parse_use_list(";\n; comment\n4; 1259 16386 TABLE public t me\n\n7; 0 0 ACL - x\n")
                .unwrap();
        assert_eq!(ids, HashSet::from([4, 7]));
        assert!(parse_use_list("TABLE t\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn filters_select_schemas_tables_and_lists() {
        let mut e = TocEntry::new(9, "TABLE DATA", "orders", Section::Data);
        e.namespace = Some("app".into());
        let mut index = TocEntry::new(10, "INDEX", "orders_idx", Section::PostData);
        index.namespace = Some("app".into());
        let tables = Options {
            tables: vec!["app.ord*".into()],
            ..Options::default()
        };
        assert!(tables.selects(&e) && !tables.selects(&index));
        let schemas = Options {
            schemas: vec!["public".into()],
            ..Options::default()
        };
        assert!(!schemas.selects(&e));
        let list = Options {
            use_list: Some(HashSet::from([10])),
            ..Options::default()
        };
        assert!(!list.selects(&e) && list.selects(&index));
    }

    #[test]
    fn only_plain_unique_constraints_are_split() {
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n"
            ),
            Some(("public.orders", "orders_pkey", "PRIMARY KEY", "id"))
        );
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY \"Odd Schema\".\"t (x)\"\n    ADD CONSTRAINT \"a b)\" UNIQUE (\"c)\", d);\n"
            ),
            Some((
                "\"Odd Schema\".\"t (x)\"",
                "\"a b)\"",
                "UNIQUE",
                "\"c)\", d"
            ))
        );
        for other in [
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id) INCLUDE (v);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (id) DEFERRABLE;\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (id);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id) WITH (fillfactor='70');\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k EXCLUDE USING gist (r WITH &&);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k CHECK ((id > 0));\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id, during WITHOUT OVERLAPS);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (\"a\"\"\", Upper);\n",
            "ALTER TABLE s.t\n    ADD CONSTRAINT k PRIMARY KEY (id);\n",
        ] {
            assert_eq!(unique_constraint(other), None, "{other}");
        }
    }

    #[test]
    fn split_key_columns_may_be_quoted_with_quotes_inside() {
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (\"a\"\"b\", c_1$);\n"
            ),
            Some(("s.t", "k", "UNIQUE", "\"a\"\"b\", c_1$"))
        );
    }

    #[test]
    fn split_constraints_wait_for_the_index_builds_on_their_table() {
        let table = |id: i32, tag: &str, defn: &str| {
            let mut t = TocEntry::new(id, "TABLE", tag, Section::PreData);
            t.defn = Some(defn.into());
            t
        };
        let on = |id: i32, desc: &str, table: i32, defn: &str| {
            let mut e = TocEntry::new(id, desc, "x", Section::PostData);
            e.dependencies = vec![table];
            e.defn = Some(defn.into());
            e
        };
        let all = vec![
            table(1, "t", "CREATE TABLE s.t (id integer, v integer);\n"),
            table(
                2,
                "p",
                "CREATE TABLE s.p (\n    id integer\n)\nPARTITION BY RANGE (id);\n",
            ),
            on(
                10,
                "CONSTRAINT",
                1,
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n",
            ),
            on(11, "INDEX", 1, "CREATE INDEX t_v ON s.t USING btree (v);\n"),
            on(
                12,
                "CONSTRAINT",
                2,
                "ALTER TABLE ONLY s.p\n    ADD CONSTRAINT p_pkey PRIMARY KEY (id);\n",
            ),
            on(
                13,
                "INDEX",
                2,
                "CREATE INDEX p_id ON ONLY s.p USING btree (id);\n",
            ),
        ];
        let phase: Vec<&TocEntry> = all[2..].iter().collect();
        let split = split_unique_constraints(&phase, &all, -5);
        assert_eq!(
            split.len(),
            1,
            "the partitioned table's key is left as written"
        );
        let s = &split[0];
        assert_eq!(s.build.dump_id, -5);
        assert_eq!(
            s.build.defn.as_deref(),
            Some("CREATE UNIQUE INDEX IF NOT EXISTS t_pkey ON s.t USING btree (id);\n")
        );
        assert_eq!(
            s.attach.defn.as_deref(),
            Some(
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;\n"
            )
        );
        assert_eq!(s.attach.dump_id, 10);
        assert_eq!(s.attach.dependencies, vec![1, -5, 11]);
        assert_eq!(s.build.dependencies, vec![1]);
    }

    #[test]
    fn copy_targets_are_read_whole() {
        assert_eq!(
            copy_table_name("COPY public.\"a (b\" (id) FROM STDIN"),
            Some("public.\"a (b\"")
        );
        assert_eq!(copy_table_name("COPY s.t FROM STDIN"), Some("s.t"));
    }

    #[test]
    fn copy_statements_turn_to_stdin() {
        let mut e = TocEntry::new(5, "TABLE DATA", "t", Section::Data);
        e.copy_stmt = Some("COPY public.\"a FROM stdin\" (id) FROM stdin;\n".into());
        assert_eq!(
            copy_statement(&e).unwrap(),
            "COPY public.\"a FROM stdin\" (id) FROM STDIN"
        );
    }
}
