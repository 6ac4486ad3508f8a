//! Progress bookkeeping: the restoring sessions, the `ferry_restore.progress` rows that make a
//! restore resumable, the check that the target is empty (or holds this restore, unfinished),
//! and the state every item of a run reads.

use std::collections::{HashMap, HashSet};

use crate::{
    archive::TocEntry,
    pg::{PgConfig, PgError, Session, connect},
    progress::{ProgressEvent, SharedProgress, Unit},
    sql::literal,
};

use super::RestoreError;
use super::options::Options;

pub(super) const PROGRESS_SETUP: &str = "CREATE SCHEMA IF NOT EXISTS ferry_restore; \
     CREATE TABLE IF NOT EXISTS ferry_restore.progress (archive text NOT NULL, dump_id integer NOT NULL, \
       rows bigint, done_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (archive, dump_id))";

pub(super) fn label(e: &TocEntry) -> String {
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
pub(super) async fn session(config: &PgConfig, setup: &str) -> Result<Session, PgError> {
    let session = connect(config).await?;
    session.batch_execute(setup).await?;
    Ok(session)
}

/// Objects already in the target's user schemas (besides ferry's progress schema).
pub(super) async fn existing_objects(session: &Session) -> Result<Option<String>, PgError> {
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

/// The advisory lock a restore holds on its target database ("ferry" in ASCII).
const RESTORE_LOCK: i64 = 0x0066_6572_7279;

/// Settings of every restoring session, before the archive's own.
pub(super) const BASE_SETUP: &str = "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = 0; \
     SET client_min_messages = warning; SET check_function_bodies = false; SET xmloption = content; \
     SET row_security = off; SET maintenance_work_mem = '256MB'; SET synchronous_commit = off; ";

/// Checks that the target is empty, or holds an unfinished restore of this same archive, and
/// returns the items that restore finished.
pub(super) async fn prepare(
    main: &Session,
    archive_id: &str,
    clean: bool,
    single_transaction: bool,
) -> Result<HashSet<i32>, RestoreError> {
    // One restore at a time into a database: a second one would take the first's progress for
    // its own and load the same tables again. Held by the main session until it ends.
    let alone: bool = main
        .query_one(
            "SELECT pg_catalog.pg_try_advisory_lock($1)",
            &[&RESTORE_LOCK],
        )
        .await?
        .get(0);
    if !alone {
        return Err(RestoreError::Failed(
            "another ferry restore is running in this database; wait for it to end".into(),
        ));
    }
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

/// The failure of item `e`, with how far the restore got.
pub(super) fn item_failed(
    e: &TocEntry,
    reason: RestoreError,
    applied: usize,
    total: usize,
) -> RestoreError {
    RestoreError::ItemFailed {
        item: label(e),
        reason: reason.to_string(),
        applied,
        total,
    }
}

pub(super) struct State {
    pub(super) archive_id: String,
    pub(super) options: Options,
    pub(super) progress: SharedProgress,
    pub(super) total: usize,
    /// The oids of each `BLOB METADATA` entry (a group of large objects), by dump id.
    pub(super) blob_groups: HashMap<i32, Vec<String>>,
    /// The tables this restore creates, as (schema, name): only those may be emptied before
    /// their load (an extension's configuration table holds the extension's own rows).
    pub(super) created_tables: HashSet<(String, String)>,
    /// The archive's tablespaces that the target has: objects go there, as pg_restore puts
    /// them; those of others go to the target's default tablespace (with a warning).
    pub(super) tablespaces: HashSet<String>,
    /// How to open another session to the target (its settings, then the restore's setup):
    /// a failed shared load empties its table through one when its own session is gone.
    pub(super) reconnect: Option<(PgConfig, String)>,
}

impl State {
    pub(super) fn report(&self, done: usize) {
        self.progress.report(ProgressEvent {
            job: "restore",
            step: "restoring".into(),
            done: done as u64,
            total: Some(self.total as u64),
            unit: Unit::Steps,
        });
    }
}

/// The statement recording that entry `e` is done, with the rows it loaded.
pub(super) fn progress_row(state: &State, e: &TocEntry, rows: u64) -> String {
    progress_record(&state.archive_id, e.dump_id, Some(rows))
}

/// The statement recording that item `dump_id` of archive `archive_id` is done (with the rows
/// it loaded, for a load): committed in the item's own transaction.
pub(super) fn progress_record(archive_id: &str, dump_id: i32, rows: Option<u64>) -> String {
    let rows = rows.map_or_else(|| "NULL".to_string(), |n| n.to_string());
    format!(
        "INSERT INTO ferry_restore.progress (archive, dump_id, rows) VALUES ({}, {dump_id}, {rows})",
        literal(archive_id)
    )
}
