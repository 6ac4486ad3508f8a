//! Load and bad-row handling: batches of records into `COPY ... FROM STDIN`, each under a
//! savepoint when rows may be rejected; a row the server refuses is set aside and the rows
//! before it loaded again.

use std::{collections::VecDeque, ops::Range, time::SystemTime};

use bytes::Bytes;
use futures::{SinkExt, pin_mut};
use tokio::sync::mpsc;

use crate::pg::{PgError, Session};

use super::reader::{Next, Piece, next_piece};
use super::rejects::RejectedRow;
use super::table::TableName;
use super::{CsvError, ImportError, Options};

/// A row-level refusal from the server, read from its error context
/// (`COPY t, line N, column c: "value"`).
pub(super) fn row_error(
    e: &tokio_postgres::Error,
    relname: &str,
    columns: &[String],
) -> Option<(u64, RejectedRow)> {
    let db = e.as_db_error()?;
    let class = &db.code().code()[..2];
    if class != "22" && class != "23" {
        return None;
    }
    let context = db.where_()?;
    let prefix = format!("COPY {relname}, line ");
    let line_ctx = context
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))?;
    let digits = line_ctx.bytes().take_while(u8::is_ascii_digit).count();
    let copy_line: u64 = line_ctx[..digits].parse().ok()?;
    let rest = &line_ctx[digits..];
    let (mut column, mut value) = (None, None);
    if let Some(after) = rest.strip_prefix(", column ") {
        // The longest of our column names that the context names.
        if let Some(name) = columns
            .iter()
            .filter(|c| after.starts_with(c.as_str()) && after[c.len()..].starts_with(':'))
            .max_by_key(|c| c.len())
        {
            column = Some(name.clone());
            let v = after[name.len() + 1..].trim_start();
            if let Some(quoted) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                value = Some(quoted.to_string());
            } else if v == "null input" {
                value = None;
            }
        }
    }
    let mut reason = db.message().to_string();
    if let Some(detail) = db.detail() {
        reason.push_str(&format!(" ({detail})"));
    }
    let mut summary = crate::pg::server_message(db, false);
    if db.detail().is_some() {
        summary.push_str(&format!(" (detail {})", crate::pg::WITHHELD));
    }
    summary.push_str(&format!(" (SQLSTATE {})", db.code().code()));
    Some((
        copy_line,
        RejectedRow {
            line: 0,
            column,
            value,
            reason,
            summary,
            record: Bytes::new(),
        },
    ))
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

/// Records per `COPY` after a batch had a bad row (to bound the rows sent again per bad row).
pub(super) const AFTER_ERROR_RECORDS: usize = 500;

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
            if lenient {
                session.batch_execute("SAVEPOINT ferry_batch").await?;
            }
            match copy(session, statement, batch.slice(range.clone())).await {
                Ok(rows) => {
                    out.rows_loaded += rows;
                    if lenient {
                        session
                            .batch_execute("RELEASE SAVEPOINT ferry_batch")
                            .await?;
                    }
                }
                Err(e) => {
                    let Some((copy_line, mut row)) = row_error(&e, relname, columns) else {
                        return Err(ImportError::from(e));
                    };
                    let k = batch.record_at_copy_line(range.clone(), copy_line);
                    let record = batch.record(k);
                    row.line = batch.records[k].line;
                    row.record = Bytes::copy_from_slice(&record[..record.len().min(64 * 1024)]);
                    if !lenient {
                        return Err(ImportError::BadRow {
                            url: url.to_string(),
                            row: Box::new(row),
                        });
                    }
                    session
                        .batch_execute(
                            "ROLLBACK TO SAVEPOINT ferry_batch; RELEASE SAVEPOINT ferry_batch",
                        )
                        .await?;
                    out.rejected.push(row);
                    if already_rejected + out.rejected.len() as u64 > options.max_rejected_rows {
                        return Err(ImportError::TooManyRejected {
                            url: url.to_string(),
                            max: options.max_rejected_rows,
                            first: Box::new(out.rejected.swap_remove(0)),
                        });
                    }
                    // After the bad row, in small pieces; before it, as one piece again.
                    let mut rest = k + 1;
                    let mut after = Vec::new();
                    while rest < range.end {
                        let end = (rest + AFTER_ERROR_RECORDS).min(range.end);
                        after.push(rest..end);
                        rest = end;
                    }
                    for r in after.into_iter().rev() {
                        todo.push_front(r);
                    }
                    todo.push_front(range.start..k);
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
        let Some((copy_line, mut row)) = row_error(&e, relname, columns) else {
            return ImportError::from(e);
        };
        let at = anchors.partition_point(|(s, _)| *s <= copy_line);
        row.line = match at.checked_sub(1).map(|i| anchors[i]) {
            Some((s, f)) => f + (copy_line - s),
            None => copy_line,
        };
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
