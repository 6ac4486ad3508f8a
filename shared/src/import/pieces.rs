//! Files too large for one invocation: imported in pieces that each end before the deadline.
//!
//! Each piece runs in one transaction that locks the import's row in `ferry_import.pieces`,
//! loads batches from where the last piece stopped (a record boundary: a byte offset in the
//! decompressed file and its line) into a stage table, and commits the rows with the new
//! position. The stage is a logged table: Neon empties unlogged tables when a compute restarts
//! or scales to zero, which happens between invocations, and the staged rows would be gone.
//! Whatever happens to them, the last piece checks that every row read was moved into the
//! table or set aside, or the import fails and starts over. Bad rows set aside go to `ferry_import.rejects` in the same transaction. The
//! piece that reaches the end moves the staged rows into the table as the mode says, writes the
//! ledger row and the rejects object, and drops the stage, all in one transaction: readers see
//! the whole file or nothing, as for a file imported at once. A strict failure (or too many
//! bad rows) in any piece drops the stage: nothing was imported.

use std::{
    sync::{Arc, Mutex},
    time::SystemTime,
};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::{
    Compression, CsvError, ImportError, Ledger, Options, RejectedRow, Report, Source, Status,
    ledger::Entry,
    load::{Budget, CopyInto, analyze, load},
    members::{EntryPoint, EntryPoints, entry_before},
    reader::{Piece, Resume, read_object},
    rejects::{rejects_csv, rejects_location},
    stage::{apply_stage, check_mode, copy_statement, stage_like},
    table::{Table, header_columns},
};
use crate::{
    pg::Session,
    sql::ident,
    store::{BlockingRead, Store, StoreConfig},
};

/// Whether an import of `entry` is under way in pieces.
pub(super) async fn under_way(session: &Session, entry: &Entry) -> Result<bool, ImportError> {
    let row = session
        .query_opt(
            "SELECT 1 FROM ferry_import.pieces \
             WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4",
            &[&entry.bucket, &entry.key, &entry.version, &entry.table],
        )
        .await?;
    Ok(row.is_some())
}

/// Whether a file of `size` bytes may not load before the deadline at the assumed rate.
pub(super) fn needed(size: u64, options: &Options) -> bool {
    let Some(deadline) = options.deadline else {
        return false;
    };
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(options.deadline_margin);
    size as f64 > left.as_secs_f64() * options.assumed_rate as f64
}

/// The state of an import under way.
struct State {
    stage: String,
    columns: Vec<String>,
    resume: Resume,
    rows_read: u64,
    rows_loaded: u64,
    rows_rejected: u64,
    blank_lines: u64,
    pieces: u32,
}

fn compression_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Zstd => "zstd",
    }
}

fn compression_of(name: &str) -> Compression {
    match name {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    }
}

async fn state(session: &Session, entry: &Entry) -> Result<Option<State>, ImportError> {
    let row = session
        .query_opt(
            "SELECT stage, columns, compression, next_offset, next_line, rows_read, rows_loaded, \
                    rows_rejected, blank_lines, pieces, entry_offset, entry_decompressed \
             FROM ferry_import.pieces \
             WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4 FOR UPDATE",
            &[&entry.bucket, &entry.key, &entry.version, &entry.table],
        )
        .await?;
    Ok(row.map(|r| {
        let n = |i: usize| r.get::<_, i64>(i).max(0) as u64;
        State {
            stage: r.get(0),
            columns: r.get(1),
            resume: Resume {
                compression: compression_of(r.get(2)),
                offset: n(3),
                line: n(4),
                entry: EntryPoint {
                    compressed: n(10),
                    decompressed: n(11),
                },
            },
            rows_read: n(5),
            rows_loaded: n(6),
            rows_rejected: n(7),
            blank_lines: n(8),
            pieces: r.get::<_, i32>(9).max(0) as u32,
        }
    }))
}

/// The stage table's name for `entry` (in the `ferry_import` schema).
fn stage_name(entry: &Entry) -> String {
    let mut h = Sha256::new();
    for part in [&entry.bucket, &entry.key, &entry.version, &entry.table] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("stage_{}", &hex::encode(h.finalize())[..24])
}

/// Runs one piece; the last one finishes the import.
pub(super) async fn run(
    session: &Session,
    source: &Source,
    target: &Table,
    entry: &Entry,
    options: &Options,
    store_config: &StoreConfig,
) -> Result<Report, ImportError> {
    session.batch_execute("BEGIN").await?;
    let result = piece(session, source, target, entry, options, store_config).await;
    match result {
        Ok(report) => Ok(report),
        Err(e) => {
            if !session.is_closed() {
                let _ = session.batch_execute("ROLLBACK").await;
                if e.is_rejection() || matches!(e, ImportError::Miscounted { .. }) {
                    // The import failed for good, or its stage cannot be trusted: its stage and
                    // position go (a miscounted import starts over when run again).
                    let _ = forget(session, entry).await;
                }
            }
            Err(e)
        }
    }
}

/// Drops what an import under way keeps, in its own transaction.
async fn forget(session: &Session, entry: &Entry) -> Result<(), ImportError> {
    session.batch_execute("BEGIN").await?;
    clear(session, entry).await?;
    session.batch_execute("COMMIT").await?;
    Ok(())
}

/// Drops an import's stage, position and set-aside rows (in the open transaction).
async fn clear(session: &Session, entry: &Entry) -> Result<(), ImportError> {
    session
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS ferry_import.{}",
            ident(&stage_name(entry))
        ))
        .await?;
    for table in ["pieces", "rejects"] {
        session
            .execute(
                &format!(
                    "DELETE FROM ferry_import.{table} \
                     WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4"
                ),
                &[&entry.bucket, &entry.key, &entry.version, &entry.table],
            )
            .await?;
    }
    Ok(())
}

async fn piece(
    session: &Session,
    source: &Source,
    target: &Table,
    entry: &Entry,
    options: &Options,
    store_config: &StoreConfig,
) -> Result<Report, ImportError> {
    let url = source.url.to_string();
    let known = state(session, entry).await?;
    let resume = known.as_ref().map(|s| s.resume);
    // An uncompressed object is read from where the last piece stopped, a compressed one from
    // the start of the member or frame that holds that place.
    let range = match resume {
        Some(r) if r.compression == Compression::None => Some(r.offset..source.meta.size),
        Some(r) if r.entry.compressed > 0 => Some(r.entry.compressed..source.meta.size),
        _ => None,
    };
    let stream = source.store.get_version(&source.meta, range).await?;
    let declared = Compression::declared(
        source.url.key.as_str(),
        source.meta.content_encoding.as_deref(),
    );
    let (tx, mut rx) = mpsc::channel(2);
    let points = EntryPoints::default();
    let reader = {
        let options = options.clone();
        let input = BlockingRead::new(stream);
        let hash = Arc::new(Mutex::new((Sha256::new(), 0u64)));
        let points = points.clone();
        tokio::task::spawn_blocking(move || {
            let failed = tx.clone();
            if let Err(e) = read_object(input, declared, &options, resume, hash, points, tx) {
                let _ = failed.blocking_send(Err(e));
            }
        })
    };
    let result = async {
        let state = match known {
            Some(state) => state,
            None => {
                first_piece(
                    session,
                    &mut rx,
                    target,
                    entry,
                    options,
                    &url,
                    source.meta.size,
                )
                .await?
            }
        };
        let stage = format!("ferry_import.{}", ident(&state.stage));
        let statement = copy_statement(&stage, &state.columns, &options.dialect);
        let stop_at = options
            .deadline
            .map(|d| d.checked_sub(options.deadline_margin).unwrap_or(d));
        let loaded = load(
            session,
            &mut rx,
            CopyInto {
                statement: &statement,
                relname: &state.stage,
                columns: &state.columns,
            },
            options,
            &url,
            Budget {
                already_rejected: state.rows_rejected,
                stop_at,
            },
        )
        .await?;
        Ok::<_, ImportError>((state, stage, loaded))
    }
    .await;
    drop(rx);
    let _ = reader.await;
    let (state, stage, loaded) = result?;
    for row in &loaded.rejected {
        session
            .execute(
                "INSERT INTO ferry_import.rejects \
                 (bucket, key, version, target_table, line, col, value, reason, record) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &[
                    &entry.bucket,
                    &entry.key,
                    &entry.version,
                    &entry.table,
                    &(row.line as i64),
                    &row.column,
                    &row.value,
                    &row.reason,
                    &row.record.as_ref(),
                ],
            )
            .await?;
    }
    let rows_read = state.rows_read + loaded.rows_read;
    let staged = state.rows_loaded + loaded.rows_loaded;
    let rows_rejected = state.rows_rejected + loaded.rejected.len() as u64;
    let blank_lines = state.blank_lines + loaded.blank_lines;
    let pieces = state.pieces + 1;
    let mut report = Report {
        status: Status::InProgress,
        table: target.name.quoted(),
        mode: options.mode,
        version: entry.version.clone(),
        rows_read,
        rows_loaded: staged,
        rows_rejected,
        blank_lines,
        bytes: source.meta.size,
        sha256: None,
        columns: state.columns.clone(),
        rejects: None,
        imported_at: None,
        pieces: Some(pieces),
        next_line: None,
    };
    // The move into the table runs in the piece that ends the file only if it has the time
    // (at the assumed rate for everything staged); otherwise the next invocation, which stages
    // nothing more, does it with all of its time.
    let move_time = std::time::Duration::from_secs_f64(
        loaded.end_offset.max(state.resume.offset) as f64 / options.assumed_rate.max(1) as f64,
    );
    let stop_at = options
        .deadline
        .map(|d| d.checked_sub(options.deadline_margin).unwrap_or(d));
    let short_of_time = stop_at
        .is_some_and(|t| t.duration_since(SystemTime::now()).unwrap_or_default() < move_time);
    if !loaded.finished || (short_of_time && loaded.rows_read > 0) {
        let (offset, line) = if loaded.rows_read == 0 && loaded.end_offset == 0 {
            (state.resume.offset, state.resume.line)
        } else {
            (loaded.end_offset, loaded.next_line)
        };
        // Where the next piece enters a compressed object: the last member or frame start at
        // or before that place (the one it entered at, if the reader saw none since).
        let enter_at = entry_before(&points, offset)
            .filter(|e| e.decompressed >= state.resume.entry.decompressed)
            .unwrap_or(state.resume.entry);
        session
            .execute(
                "UPDATE ferry_import.pieces SET next_offset = $5, next_line = $6, rows_read = $7, \
                 rows_loaded = $8, rows_rejected = $9, blank_lines = $10, pieces = $11, \
                 entry_offset = $12, entry_decompressed = $13 \
                 WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4",
                &[
                    &entry.bucket,
                    &entry.key,
                    &entry.version,
                    &entry.table,
                    &(offset as i64),
                    &(line as i64),
                    &(rows_read as i64),
                    &(staged as i64),
                    &(rows_rejected as i64),
                    &(blank_lines as i64),
                    &(pieces as i32),
                    &(enter_at.compressed as i64),
                    &(enter_at.decompressed as i64),
                ],
            )
            .await?;
        session.batch_execute("COMMIT").await?;
        report.next_line = Some(line);
        tracing::info!(source = %url, pieces, rows_read, next_line = line, "import piece committed; run again to go on");
        return Ok(report);
    }
    // The end: into the table, all at once.
    let ledger = Ledger;
    if let Some(done) = ledger.claim(session, entry, options.mode).await? {
        session.batch_execute("ROLLBACK").await?;
        return Ok(done);
    }
    check_mode(target, &state.columns, options.mode)?;
    report.rows_loaded = apply_stage(session, target, &state.columns, options.mode, &stage).await?;
    super::check_counts(
        &url,
        rows_read,
        report.rows_loaded,
        rows_rejected,
        " (the staged rows were lost; run the import again: it starts over)",
    )?;
    if rows_rejected > 0
        && let Some(to) = &options.rejects_to
    {
        let rows = session
            .query(
                "SELECT line, col, value, reason, record FROM ferry_import.rejects \
                 WHERE bucket = $1 AND key = $2 AND version = $3 AND target_table = $4 ORDER BY line",
                &[&entry.bucket, &entry.key, &entry.version, &entry.table],
            )
            .await?;
        let rejected: Vec<RejectedRow> = rows
            .iter()
            .map(|r| RejectedRow {
                line: r.get::<_, i64>(0) as u64,
                column: r.get(1),
                value: r.get(2),
                reason: r.get(3),
                summary: "in the rejects file".into(),
                record: bytes::Bytes::from(r.get::<_, Vec<u8>>(4)),
            })
            .collect();
        let location = rejects_location(to, &source.url)?;
        let store = Store::for_url(&location, store_config).await?;
        store.put(&location.key, rejects_csv(&rejected)).await?;
        report.rejects = Some(location.to_string());
    }
    report.status = Status::Imported;
    ledger.finish(session, entry, &report).await?;
    clear(session, entry).await?;
    session.batch_execute("COMMIT").await?;
    analyze(session, &target.name).await;
    Ok(report)
}

/// The first piece: the header, the stage table, the import's row.
async fn first_piece(
    session: &Session,
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    target: &Table,
    entry: &Entry,
    options: &Options,
    url: &str,
    size: u64,
) -> Result<State, ImportError> {
    let (compression, columns) = header_columns(rx, target, options, url, size).await?;
    check_mode(target, &columns, options.mode)?;
    let stage = stage_name(entry);
    session
        .batch_execute(&format!(
            "CREATE TABLE ferry_import.{} ({})",
            ident(&stage),
            stage_like(target)
        ))
        .await?;
    session
        .execute(
            "INSERT INTO ferry_import.pieces (bucket, key, version, target_table, stage, columns, \
             compression, next_offset, next_line, rows_read, rows_loaded, rows_rejected, \
             blank_lines, pieces) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 1, 0, 0, 0, 0, 0)",
            &[
                &entry.bucket,
                &entry.key,
                &entry.version,
                &entry.table,
                &stage,
                &columns,
                &compression_name(compression),
            ],
        )
        .await?;
    Ok(State {
        stage,
        columns,
        resume: Resume {
            offset: 0,
            line: 1,
            compression,
            entry: EntryPoint::default(),
        },
        rows_read: 0,
        rows_loaded: 0,
        rows_rejected: 0,
        blank_lines: 0,
        pieces: 0,
    })
}
