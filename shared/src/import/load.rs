//! Load and bad-row handling: batches of records into `COPY ... FROM STDIN`, each under a
//! savepoint when rows may be rejected; when the server refuses a row (told by SQLSTATE), the
//! batch is bisected, each half under its own savepoint, down to the record it refuses, which
//! is set aside while the rest loads.

use std::{collections::VecDeque, ops::Range, time::SystemTime};

use bytes::Bytes;
use futures::{SinkExt, pin_mut};
use tokio::sync::mpsc;
use tokio_postgres::error::DbError;

use crate::pg::{PgError, Session};

use super::reader::{Next, Piece, next_piece};
use super::rejects::RejectedRow;
use super::table::TableName;
use super::{CsvError, ImportError, Options};

/// Whether the server refused a row rather than the load: a data exception (SQLSTATE class 22)
/// or an integrity constraint violation (class 23). Told by the code, never by the message,
/// which the server translates (`lc_messages`).
pub(super) fn refuses_a_row(e: &tokio_postgres::Error) -> Option<&DbError> {
    e.as_db_error()
        .filter(|db| matches!(&db.code().code()[..2], "22" | "23"))
}

/// A row the server refused, for the error and the rejects file. The line the caller knows (a
/// lenient load finds the record by bisection); the column and value, and the line within a
/// strict load's single `COPY`, only come from the server's error context
/// (`COPY t, line N, column c: "value"`), read when it is in English: they are what the
/// message says, never what decides.
pub(super) fn refused_row(
    db: &DbError,
    relname: &str,
    columns: &[String],
) -> (Option<u64>, RejectedRow) {
    let mut reason = db.message().to_string();
    let mut summary = crate::pg::server_message(db, false);
    if let Some(detail) = db.detail() {
        reason.push_str(&format!(" ({detail})"));
        summary.push_str(&format!(" (detail {})", crate::pg::WITHHELD));
    }
    summary.push_str(&format!(" (SQLSTATE {})", db.code().code()));
    let mut row = RejectedRow {
        line: 0,
        column: None,
        value: None,
        reason,
        summary,
        record: Bytes::new(),
    };
    let prefix = format!("COPY {relname}, line ");
    let Some(line_ctx) = db.where_().and_then(|context| {
        context
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }) else {
        return (None, row);
    };
    let digits = line_ctx.bytes().take_while(u8::is_ascii_digit).count();
    let copy_line = line_ctx[..digits].parse().ok();
    let rest = &line_ctx[digits..];
    if let Some(after) = rest.strip_prefix(", column ") {
        // The longest of our column names that the context names.
        if let Some(name) = columns
            .iter()
            .filter(|c| after.starts_with(c.as_str()) && after[c.len()..].starts_with(':'))
            .max_by_key(|c| c.len())
        {
            row.column = Some(name.clone());
            let v = after[name.len() + 1..].trim_start();
            if let Some(quoted) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                row.value = Some(quoted.to_string());
            }
        }
    }
    (copy_line, row)
}

/// Sends records as one `COPY`; the number of rows the server took.
pub(super) async fn copy(
    session: &Session,
    statement: &str,
    data: Vec<Bytes>,
) -> Result<u64, tokio_postgres::Error> {
    let sink = session.copy_in::<_, Bytes>(statement).await?;
    pin_mut!(sink);
    for piece in data {
        sink.feed(piece).await?;
    }
    sink.finish().await
}

#[derive(Default)]
pub(super) struct Loaded {
    pub(super) rows_read: u64,
    pub(super) rows_loaded: u64,
    pub(super) rejected: Vec<RejectedRow>,
    pub(super) blank_lines: u64,
    /// Whether the whole file was read (else it stopped for the deadline after a batch).
    pub(super) finished: bool,
    /// Where the file goes on after the last batch loaded.
    pub(super) end_offset: u64,
    pub(super) next_line: u64,
}

/// Where batches go: the `COPY` statement, the relation's name as the server's error context
/// prints it, and the columns loaded.
pub(super) struct CopyInto<'a> {
    pub(super) statement: &'a str,
    pub(super) relname: &'a str,
    pub(super) columns: &'a [String],
}

/// How far a load may go: bad rows set aside earlier (by other pieces), and when to stop.
pub(super) struct Budget {
    pub(super) already_rejected: u64,
    pub(super) stop_at: Option<SystemTime>,
}

/// Loads the batches, setting aside bad rows within budget.
pub(super) async fn load(
    session: &Session,
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    into: CopyInto<'_>,
    options: &Options,
    url: &str,
    budget: Budget,
) -> Result<Loaded, ImportError> {
    let CopyInto {
        statement,
        relname,
        columns,
    } = into;
    let Budget {
        already_rejected,
        stop_at,
    } = budget;
    let lenient = options.max_rejected_rows > 0;
    if !lenient {
        return load_streaming(session, rx, statement, relname, columns, url, stop_at).await;
    }
    let mut out = Loaded::default();
    loop {
        let (batch, last) = match next_piece(rx, url).await? {
            Next::Batch(batch, last) => (batch, last),
            Next::End { blank_lines } => {
                out.blank_lines = blank_lines;
                out.finished = true;
                return Ok(out);
            }
        };
        out.rows_read += batch.records.len() as u64;
        let mut todo: VecDeque<Range<usize>> = VecDeque::new();
        todo.push_back(0..batch.records.len());
        while let Some(range) = todo.pop_front() {
            if range.is_empty() {
                continue;
            }
            session.batch_execute("SAVEPOINT ferry_batch").await?;
            match copy(session, statement, batch.slice(range.clone())).await {
                Ok(rows) => {
                    out.rows_loaded += rows;
                    session
                        .batch_execute("RELEASE SAVEPOINT ferry_batch")
                        .await?;
                }
                Err(e) => {
                    let Some(db) = refuses_a_row(&e) else {
                        return Err(ImportError::from(e));
                    };
                    session
                        .batch_execute(
                            "ROLLBACK TO SAVEPOINT ferry_batch; RELEASE SAVEPOINT ferry_batch",
                        )
                        .await?;
                    // Which record: by bisection, each half under its own savepoint (the
                    // half that loads stays loaded), down to the one the server refuses.
                    if range.len() > 1 {
                        let middle = range.start + range.len() / 2;
                        todo.push_front(middle..range.end);
                        todo.push_front(range.start..middle);
                        continue;
                    }
                    let k = range.start;
                    let (_, mut row) = refused_row(db, relname, columns);
                    let record = batch.record(k);
                    row.line = batch.records[k].line;
                    row.record = Bytes::copy_from_slice(&record[..record.len().min(64 * 1024)]);
                    out.rejected.push(row);
                    if already_rejected + out.rejected.len() as u64 > options.max_rejected_rows {
                        return Err(ImportError::TooManyRejected {
                            url: url.to_string(),
                            max: options.max_rejected_rows,
                            first: Box::new(out.rejected.swap_remove(0)),
                        });
                    }
                }
            }
        }
        out.end_offset = batch.end_offset;
        out.next_line = batch.next_line;
        if !last && stop_at.is_some_and(|t| SystemTime::now() >= t) {
            return Ok(out);
        }
    }
}

/// Strict: every batch streams through one `COPY`, so the server never waits between batches;
/// the first row it refuses fails the load. Its error names a line counted from the start of
/// that `COPY`; anchors (where the file's lines and the lines sent part, after skipped blank
/// lines) turn it back into the file's line.
pub(super) async fn load_streaming(
    session: &Session,
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    statement: &str,
    relname: &str,
    columns: &[String],
    url: &str,
    stop_at: Option<SystemTime>,
) -> Result<Loaded, ImportError> {
    let mut out = Loaded::default();
    let sink = session.copy_in::<_, Bytes>(statement).await?;
    pin_mut!(sink);
    // (line sent, line of the file) where a run of consecutive lines starts.
    let mut anchors: Vec<(u64, u64)> = Vec::new();
    let mut sent = 1u64;
    let mut expected_file_line = None;
    let refused = |e: tokio_postgres::Error, anchors: &[(u64, u64)]| {
        let Some(db) = refuses_a_row(&e) else {
            return ImportError::from(e);
        };
        // One COPY carried the whole file: only the server's context says which line (0, not
        // known, when it is not in English).
        let (copy_line, mut row) = refused_row(db, relname, columns);
        if let Some(copy_line) = copy_line {
            let at = anchors.partition_point(|(s, _)| *s <= copy_line);
            row.line = match at.checked_sub(1).map(|i| anchors[i]) {
                Some((s, f)) => f + (copy_line - s),
                None => copy_line,
            };
        }
        ImportError::BadRow {
            url: url.to_string(),
            row: Box::new(row),
        }
    };
    loop {
        let (batch, last) = match next_piece(rx, url).await? {
            Next::Batch(batch, last) => (batch, last),
            Next::End { blank_lines } => {
                out.blank_lines = blank_lines;
                out.finished = true;
                break;
            }
        };
        for r in &batch.records {
            if expected_file_line != Some(r.line) {
                anchors.push((sent, r.line));
            }
            let lines = u64::from(r.lines.max(1));
            sent += lines;
            expected_file_line = Some(r.line + lines);
        }
        out.rows_read += batch.records.len() as u64;
        for piece in batch.slice(0..batch.records.len()) {
            if let Err(e) = sink.as_mut().feed(piece).await {
                return Err(refused(e, &anchors));
            }
        }
        if let Err(e) = sink.as_mut().flush().await {
            return Err(refused(e, &anchors));
        }
        out.end_offset = batch.end_offset;
        out.next_line = batch.next_line;
        if !last && stop_at.is_some_and(|t| SystemTime::now() >= t) {
            break;
        }
    }
    out.rows_loaded = sink.finish().await.map_err(|e| refused(e, &anchors))?;
    Ok(out)
}

/// Statistics for the planner once an import's rows are committed (a failure is logged: the
/// rows are in).
pub(super) async fn analyze(session: &Session, table: &TableName) {
    if let Err(e) = session
        .batch_execute(&format!("ANALYZE {}", table.quoted()))
        .await
    {
        tracing::warn!(table = %table, error = %PgError::from(e), "ANALYZE after the import failed");
    }
}
