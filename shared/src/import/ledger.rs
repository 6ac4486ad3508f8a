//! The ledger of imports, in the target database: one row per object version and table, written
//! in the transaction that loads the rows.
//!
//! An import inserts its row first (`ON CONFLICT DO NOTHING`): a committed row means the object
//! is already imported; an uncommitted one (a concurrent import of the same version) makes the
//! insert wait until that transaction ends, so two deliveries of one event never both load.

use super::{ImportError, Mode, Report, Status};
use crate::pg::Session;

const SCHEMA: &str = "\
CREATE SCHEMA IF NOT EXISTS ferry_import;
CREATE TABLE IF NOT EXISTS ferry_import.ledger (
    bucket text NOT NULL,
    key text NOT NULL,
    version text NOT NULL,
    target_table text NOT NULL,
    mode text NOT NULL,
    rows_read bigint,
    rows_loaded bigint,
    rows_rejected bigint,
    bytes bigint,
    sha256 text,
    rejects text,
    imported_at timestamptz NOT NULL DEFAULT now(),
    xid text,
    PRIMARY KEY (bucket, key, version, target_table)
);
COMMENT ON COLUMN ferry_import.ledger.xid IS
    'the transaction that wrote the rows: every row of the import has it as xmin until changed';
COMMENT ON TABLE ferry_import.ledger IS
    'ferry import-csv: one row per object version imported into a table, committed with its rows';
CREATE TABLE IF NOT EXISTS ferry_import.pieces (
    bucket text NOT NULL,
    key text NOT NULL,
    version text NOT NULL,
    target_table text NOT NULL,
    stage text NOT NULL,
    columns text[] NOT NULL,
    compression text NOT NULL,
    next_offset bigint NOT NULL,
    next_line bigint NOT NULL,
    rows_read bigint NOT NULL,
    rows_loaded bigint NOT NULL,
    rows_rejected bigint NOT NULL,
    blank_lines bigint NOT NULL,
    pieces int NOT NULL,
    PRIMARY KEY (bucket, key, version, target_table)
);
-- Where a compressed object can be entered again (see import/members.rs); added after the
-- table first shipped.
ALTER TABLE ferry_import.pieces ADD COLUMN IF NOT EXISTS entry_offset bigint NOT NULL DEFAULT 0;
ALTER TABLE ferry_import.pieces ADD COLUMN IF NOT EXISTS entry_decompressed bigint NOT NULL DEFAULT 0;
COMMENT ON TABLE ferry_import.pieces IS
    'ferry import-csv: imports of large files under way, one invocation at a time, into a stage table';
CREATE TABLE IF NOT EXISTS ferry_import.rejects (
    bucket text NOT NULL,
    key text NOT NULL,
    version text NOT NULL,
    target_table text NOT NULL,
    line bigint NOT NULL,
    col text,
    value text,
    reason text NOT NULL,
    record bytea NOT NULL
);";

/// Whether `ferry_import.<table>` exists.
async fn exists(session: &Session, table: &str) -> Result<bool, ImportError> {
    Ok(session
        .query_one(
            "SELECT to_regclass(format('ferry_import.%I', $1::text)) IS NOT NULL",
            &[&table],
        )
        .await?
        .get(0))
}

/// What the ledger recorded of one import, for validation.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub mode: String,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    pub sha256: Option<String>,
    /// The transaction that wrote the rows.
    pub xid: Option<String>,
}

/// The ledger's record of importing `key` (version `version`) of `bucket` (empty for local
/// files) into `table` (`"schema"."table"`), if any.
pub async fn recorded(
    session: &Session,
    bucket: &str,
    key: &str,
    version: &str,
    table: &str,
) -> Result<Option<Recorded>, ImportError> {
    if !exists(session, "ledger").await? {
        return Ok(None);
    }
    let row = session
        .query_opt(
            "SELECT mode, rows_read, rows_loaded, rows_rejected, sha256, xid \
             FROM ferry_import.ledger \
             WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4",
            &[&bucket, &key, &version, &table],
        )
        .await?;
    Ok(row.map(|r| {
        let n = |i: usize| r.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64;
        Recorded {
            mode: r.get(0),
            rows_read: n(1),
            rows_loaded: n(2),
            rows_rejected: n(3),
            sha256: r.get(4),
            xid: r.get(5),
        }
    }))
}

/// Rows of `table` written by transaction `xid` (and not changed since), and all its rows.
pub async fn rows_of(
    session: &Session,
    table: &super::TableName,
    xid: &str,
) -> Result<(u64, u64), ImportError> {
    let row = session
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE xmin = $1::text::xid), count(*) FROM {}",
                table.quoted()
            ),
            &[&xid],
        )
        .await?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// The ledger of one target database.
pub struct Ledger;

/// The key of one import.
pub(super) struct Entry {
    pub bucket: String,
    pub key: String,
    pub version: String,
    pub table: String,
}

impl Ledger {
    /// Creates the ledger where it is missing (two first imports at once may race: the loser
    /// finds it made).
    pub async fn ensure(session: &Session) -> Result<Ledger, ImportError> {
        if exists(session, "rejects").await? {
            return Ok(Ledger);
        }
        for attempt in 0..3 {
            match session
                .batch_execute(&format!("BEGIN; {SCHEMA} COMMIT;"))
                .await
            {
                Ok(()) => return Ok(Ledger),
                Err(e) => {
                    let _ = session.batch_execute("ROLLBACK").await;
                    let raced = e
                        .code()
                        .is_some_and(|c| matches!(c.code(), "23505" | "42P06" | "42P07" | "42710"));
                    if !raced || attempt == 2 {
                        return Err(ImportError::BadInput(format!(
                            "cannot create the import ledger ferry_import.ledger in the target \
                             database (the target role needs CREATE on the database, or the \
                             ledger created beforehand): {}",
                            crate::pg::PgError::from(e)
                        )));
                    }
                }
            }
        }
        Ok(Ledger)
    }

    /// Claims `entry` inside the open transaction. `Some(report)` when it was imported before.
    pub(super) async fn claim(
        &self,
        session: &Session,
        entry: &Entry,
        mode: Mode,
    ) -> Result<Option<Report>, ImportError> {
        let inserted = session
            .execute(
                "INSERT INTO ferry_import.ledger (bucket, key, version, target_table, mode) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                &[
                    &entry.bucket,
                    &entry.key,
                    &entry.version,
                    &entry.table,
                    &mode.as_str(),
                ],
            )
            .await?;
        if inserted == 1 {
            return Ok(None);
        }
        Ledger::lookup(session, entry).await
    }

    /// The committed record of `entry`, if any (no ledger: none).
    pub(super) async fn lookup(
        session: &Session,
        entry: &Entry,
    ) -> Result<Option<Report>, ImportError> {
        if !exists(session, "ledger").await? {
            return Ok(None);
        }
        let Some(row) = session
            .query_opt(
                "SELECT mode, rows_read, rows_loaded, rows_rejected, bytes, sha256, rejects, \
                        to_char(imported_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM ferry_import.ledger \
                 WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4",
                &[&entry.bucket, &entry.key, &entry.version, &entry.table],
            )
            .await?
        else {
            return Ok(None);
        };
        let count = |i: usize| row.get::<_, Option<i64>>(i).unwrap_or(0).max(0) as u64;
        Ok(Some(Report {
            status: Status::AlreadyImported,
            table: entry.table.clone(),
            mode: Mode::parse(row.get::<_, &str>(0)).unwrap_or_default(),
            version: entry.version.clone(),
            rows_read: count(1),
            rows_loaded: count(2),
            rows_rejected: count(3),
            blank_lines: 0,
            bytes: count(4),
            sha256: row.get(5),
            columns: Vec::new(),
            rejects: row.get(6),
            imported_at: row.get(7),
            pieces: None,
            next_line: None,
        }))
    }

    /// Records what the import did, in its transaction.
    pub(super) async fn finish(
        &self,
        session: &Session,
        entry: &Entry,
        report: &Report,
    ) -> Result<(), ImportError> {
        let n = |v: u64| v as i64;
        session
            .execute(
                "UPDATE ferry_import.ledger SET rows_read = $5, rows_loaded = $6, \
                 rows_rejected = $7, bytes = $8, sha256 = $9, rejects = $10, imported_at = now(), \
                 xid = pg_current_xact_id()::xid::text \
                 WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4",
                &[
                    &entry.bucket,
                    &entry.key,
                    &entry.version,
                    &entry.table,
                    &n(report.rows_read),
                    &n(report.rows_loaded),
                    &n(report.rows_rejected),
                    &n(report.bytes),
                    &report.sha256,
                    &report.rejects,
                ],
            )
            .await?;
        Ok(())
    }
}
