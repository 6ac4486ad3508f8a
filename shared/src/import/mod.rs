//! CSV import: one object into one table, exactly once.
//!
//! The object streams from the store through decompression and a record splitter (on a
//! blocking thread) into `COPY ... FROM STDIN` batches; the server parses the fields. Every
//! import runs in one transaction that also writes its row in the ledger
//! (`ferry_import.ledger`), so an object version is imported once or not at all: a repeated
//! event finds the committed row, a concurrent one waits on its key, a failed one leaves nothing.
//!
//! Bad rows: strict by default (the first one fails the import, named by line, column and
//! value). With a budget of rejected rows, each batch is loaded under a savepoint; a row the
//! server refuses is set aside (it is named by the error's context), the rows before it are
//! loaded again, and the load goes on after it. This works the same on PostgreSQL 14 to 18.

pub mod csv;
pub mod events;
mod ledger;
mod pieces;
pub mod route;

use std::{
    collections::VecDeque,
    io::{BufRead, BufReader, Read},
    ops::Range,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use futures::{SinkExt, pin_mut};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use csv::{CsvError, Dialect, Encoding};
pub use ledger::{Ledger, Recorded, recorded, rows_of};

use crate::{
    pg::{PgConfig, PgError, Session, literal},
    store::{BlockingRead, ObjectMeta, ObjectUrl, Store, StoreError},
};

pub use crate::pg::ident;

/// A table named `schema.table` (either part may be double-quoted; without a schema, `public`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<TableName, String> {
        let bad = |why: &str| format!("{text:?} is not a table name (schema.table): {why}");
        let mut parts = Vec::new();
        let mut rest = text.trim();
        loop {
            let (part, after) = if let Some(quoted) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.char_indices().peekable();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    if c == '"' {
                        if chars.peek().is_some_and(|(_, n)| *n == '"') {
                            chars.next();
                            out.push('"');
                        } else {
                            end = Some(i + 1);
                            break;
                        }
                    } else {
                        out.push(c);
                    }
                }
                let end = end.ok_or_else(|| bad("a quote is not closed"))?;
                (out, &quoted[end..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (rest[..end].to_string(), &rest[end..])
            };
            if part.is_empty() {
                return Err(bad("an empty name"));
            }
            parts.push(part);
            match after.strip_prefix('.') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                None => return Err(bad("text after a quoted name")),
            }
        }
        match <[String; 2]>::try_from(parts) {
            Ok([schema, table]) => Ok(TableName { schema, table }),
            Err(parts) if parts.len() == 1 => Ok(TableName {
                schema: "public".into(),
                table: parts.into_iter().next().unwrap_or_default(),
            }),
            Err(_) => Err(bad("more than two parts")),
        }
    }

    /// `"schema"."table"`, for SQL and for the ledger.
    pub fn quoted(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// How rows join the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Added to what is there.
    #[default]
    Append,
    /// Inserted, or updating the row with the same primary key.
    Upsert,
    /// The table's rows become the file's, in one transaction (readers see the old rows until
    /// it commits, never an empty table).
    Replace,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "append" => Ok(Mode::Append),
            "upsert" => Ok(Mode::Upsert),
            "replace" => Ok(Mode::Replace),
            other => Err(format!(
                "unknown mode {other:?}: expected append, upsert or replace"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Upsert => "upsert",
            Mode::Replace => "replace",
        }
    }
}

/// Bytes per second an import is assumed to load when it decides whether a file fits one
/// invocation: a fraction of what the benchmark measures on 2 cores (see the README), so that
/// a Lambda with less CPU still finishes in time.
pub const ASSUMED_RATE: u64 = 8 * 1024 * 1024;

/// How the object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// What the key's extension or the stored `Content-Encoding` declare.
    pub fn declared(key: &str, content_encoding: Option<&str>) -> Option<Compression> {
        match content_encoding
            .map(|e| e.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("gzip" | "x-gzip") => return Some(Compression::Gzip),
            Some("zstd") => return Some(Compression::Zstd),
            _ => {}
        }
        let lower = key.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".gzip") {
            Some(Compression::Gzip)
        } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// What the first bytes say.
    fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What to do with a file.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    pub dialect: Dialect,
    /// The file's fields in order, as table columns (instead of matching the header).
    pub columns: Option<Vec<String>>,
    /// Bad rows set aside before the import fails; 0 is strict.
    pub max_rejected_rows: u64,
    /// Where set-aside rows are written (an object, or a prefix ending in `/`).
    pub rejects_to: Option<ObjectUrl>,
    /// Bytes of records per `COPY`.
    pub batch_bytes: usize,
    /// The longest record accepted.
    pub max_record_bytes: usize,
    /// When the invocation must have stopped (a Lambda's deadline). A file that may not load
    /// by then is imported in pieces: each invocation loads what it can into a stage table and
    /// commits where it stopped; the last moves the rows into the table in one transaction.
    pub deadline: Option<SystemTime>,
    /// Time kept back before the deadline to commit a piece (or the whole import).
    pub deadline_margin: Duration,
    /// The rate assumed when deciding whether a file fits one invocation, in bytes per second.
    pub assumed_rate: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: Mode::Append,
            dialect: Dialect::default(),
            columns: None,
            max_rejected_rows: 0,
            rejects_to: None,
            batch_bytes: 1024 * 1024,
            max_record_bytes: 64 * 1024 * 1024,
            deadline: None,
            deadline_margin: Duration::from_secs(60),
            assumed_rate: ASSUMED_RATE,
        }
    }
}

/// One bad row that was set aside.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    pub line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub reason: String,
    #[serde(skip)]
    pub record: Bytes,
}

impl std::fmt::Display for RejectedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(column) = &self.column {
            write!(f, ", column {column}")?;
        }
        if let Some(value) = &self.value {
            write!(f, ", value {value:?}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why an import failed. Nothing was committed in every case.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The request cannot be carried out as given (options, target table, columns).
    #[error("{0}")]
    BadInput(String),
    /// The object is not the CSV it should be.
    #[error("{url}: {error}")]
    BadFile { url: String, error: CsvError },
    /// A row the server refused, in strict mode.
    #[error("{url}: {row}; nothing was imported")]
    BadRow { url: String, row: Box<RejectedRow> },
    /// More bad rows than allowed.
    #[error("{url}: more than {max} rows were bad (the first: {first}); nothing was imported")]
    TooManyRejected {
        url: String,
        max: u64,
        first: Box<RejectedRow>,
    },
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ImportError {
    /// Whether the object itself (or what it was routed to) is at fault, so that running again
    /// cannot help and the object belongs aside.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            ImportError::BadInput(_)
                | ImportError::BadFile { .. }
                | ImportError::BadRow { .. }
                | ImportError::TooManyRejected { .. }
        )
    }
}

fn pg(e: tokio_postgres::Error) -> ImportError {
    ImportError::Postgres(PgError::from(e))
}

/// Whether the import ran now or had already run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Imported,
    AlreadyImported,
    /// A piece of a large file was loaded and committed; run the same import again to go on.
    InProgress,
}

/// What an import did (or, when already imported, what the ledger recorded).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub status: Status,
    pub table: String,
    pub mode: Mode,
    /// The object version imported: its S3 version id, or its ETag.
    pub version: String,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// Lines with nothing on them (skipped, not rows).
    pub blank_lines: u64,
    /// The object's size and the SHA-256 of its bytes as stored.
    pub bytes: u64,
    pub sha256: Option<String>,
    /// The columns loaded, in the file's order.
    pub columns: Vec<String>,
    /// Where the rejected rows were written.
    pub rejects: Option<String>,
    pub imported_at: Option<String>,
    /// For a file imported in pieces: the pieces so far, and where the next one starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pieces: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_line: Option<u64>,
}

/// Where a file comes from: its store, its location and the version to read.
pub struct Source {
    pub store: Store,
    pub url: ObjectUrl,
    pub meta: ObjectMeta,
}

impl Source {
    /// Looks the object up (its current version).
    pub async fn open(store: Store, url: ObjectUrl) -> Result<Source, StoreError> {
        let meta = store.head(&url.key).await?;
        Ok(Source { store, url, meta })
    }

    /// The identity the ledger keeps: bucket (empty for local files), key, version.
    pub fn identity(&self) -> (String, String, String) {
        (
            self.url.bucket.clone().unwrap_or_default(),
            self.url.key.as_str().to_string(),
            self.version(),
        )
    }

    fn version(&self) -> String {
        self.meta
            .version_id
            .clone()
            .or_else(|| self.meta.etag.clone())
            .unwrap_or_else(|| format!("size-{}", self.meta.size))
    }
}

/// A column of the target table.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    not_null: bool,
    has_default: bool,
    generated: bool,
    identity: bool,
    in_primary_key: bool,
}

/// The target table as the catalog describes it.
struct Table {
    name: TableName,
    columns: Vec<Column>,
}

async fn describe_table(session: &Session, name: &TableName) -> Result<Table, ImportError> {
    let found = session
        .query_opt(
            "SELECT c.oid, c.relkind::text, has_table_privilege(c.oid, 'INSERT') \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&name.schema, &name.table],
        )
        .await
        .map_err(pg)?;
    let Some(row) = found else {
        return Err(ImportError::BadInput(format!(
            "the table {name} does not exist in the target database"
        )));
    };
    let (oid, kind, can_insert): (u32, String, bool) = (row.get(0), row.get(1), row.get(2));
    if kind != "r" && kind != "p" {
        return Err(ImportError::BadInput(format!(
            "{name} is not a table (relkind {kind}); CSV imports go into tables"
        )));
    }
    if !can_insert {
        return Err(ImportError::BadInput(format!(
            "the target role may not insert into {name}"
        )));
    }
    let rows = session
        .query(
            "SELECT a.attname::text, a.attnotnull, a.atthasdef, a.attgenerated <> '', \
                    a.attidentity <> '', \
                    coalesce(a.attnum = ANY (i.indkey::int2[]), false) \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(pg)?;
    let columns = rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            not_null: r.get(1),
            has_default: r.get(2),
            generated: r.get(3),
            identity: r.get(4),
            in_primary_key: r.get(5),
        })
        .collect();
    Ok(Table {
        name: name.clone(),
        columns,
    })
}

/// The table columns the file's fields load, in the file's order.
fn map_columns(
    table: &Table,
    names: &[String],
    explicit: bool,
    header_line: u64,
) -> Result<Vec<String>, ImportError> {
    let what = if explicit {
        "the column list".to_string()
    } else {
        format!("the header (line {header_line})")
    };
    let mut mapped: Vec<String> = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(ImportError::BadInput(format!(
                "{what} has an empty column name (field {})",
                mapped.len() + unknown.len() + 1
            )));
        }
        let exact = table
            .columns
            .iter()
            .find(|c| c.name == *name || c.name == trimmed);
        let folded: Vec<&Column> = table
            .columns
            .iter()
            .filter(|c| c.name.to_lowercase() == trimmed.to_lowercase())
            .collect();
        let column = match (exact, folded.as_slice()) {
            (Some(c), _) => c,
            (None, [c]) => *c,
            _ => {
                unknown.push(name.clone());
                continue;
            }
        };
        if column.generated {
            return Err(ImportError::BadInput(format!(
                "{what} names {}, a generated column of {}; leave it out of the file",
                ident(&column.name),
                table.name
            )));
        }
        if mapped.contains(&column.name) {
            return Err(ImportError::BadInput(format!(
                "{what} names the column {} twice",
                ident(&column.name)
            )));
        }
        mapped.push(column.name.clone());
    }
    if !unknown.is_empty() {
        let available: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        return Err(ImportError::BadInput(format!(
            "{what} names columns {} does not have: {:?} (its columns: {})",
            table.name,
            unknown,
            available.join(", ")
        )));
    }
    let missing: Vec<String> = table
        .columns
        .iter()
        .filter(|c| {
            c.not_null && !c.has_default && !c.identity && !c.generated && !mapped.contains(&c.name)
        })
        .map(|c| ident(&c.name))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::BadInput(format!(
            "{what} leaves out {}, NOT NULL without a default in {}",
            missing.join(", "),
            table.name
        )));
    }
    Ok(mapped)
}

/// What the reading thread hands the loader.
enum Piece {
    Compression(Compression),
    Header(Option<(Vec<String>, u64)>),
    /// A batch, and whether it is the file's last.
    Batch(csv::Batch, bool),
    End {
        blank_lines: u64,
    },
}

/// Where a resumed import goes on: an offset in the decompressed file, its line, and how the
/// object is compressed.
#[derive(Debug, Clone, Copy)]
struct Resume {
    offset: u64,
    line: u64,
    compression: Compression,
}

/// Counts and hashes the bytes of the object as stored.
struct Hashing<R> {
    inner: R,
    state: Arc<Mutex<(Sha256, u64)>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

/// Reads the object on a blocking thread: decompression, records, batches.
fn read_object(
    input: BlockingRead,
    declared: Option<Compression>,
    options: &Options,
    resume: Option<Resume>,
    hash: Arc<Mutex<(Sha256, u64)>>,
    tx: mpsc::Sender<Result<Piece, CsvError>>,
) -> Result<(), CsvError> {
    let io = |line: u64| {
        move |e: std::io::Error| CsvError {
            line,
            reason: format!("reading the object failed: {e}"),
        }
    };
    let mut raw = BufReader::with_capacity(
        256 * 1024,
        Hashing {
            inner: input,
            state: hash,
        },
    );
    let sniffed = match resume {
        // Known from the first piece: a range of the object does not start with its magic.
        Some(r) => r.compression,
        None => Compression::sniff(raw.fill_buf().map_err(io(1))?),
    };
    if let Some(declared) = declared
        && declared != sniffed
        && resume.is_none()
    {
        return Err(CsvError {
            line: 1,
            reason: format!(
                "the object is declared {declared:?}-compressed (by its name or Content-Encoding) \
                 but its bytes are {sniffed:?}"
            ),
        });
    }
    let decoded: Box<dyn Read> = match sniffed {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(raw).map_err(io(1))?)
        }
    };
    let mut decoded = decoded;
    let mut splitter = match resume {
        Some(r) => {
            if r.compression != Compression::None {
                // A compressed stream cannot be entered in the middle: decompress up to there.
                let skipped =
                    std::io::copy(&mut (&mut decoded).take(r.offset), &mut std::io::sink())
                        .map_err(io(r.line))?;
                if skipped != r.offset {
                    return Err(CsvError {
                        line: r.line,
                        reason: "the object is shorter than when its import began".into(),
                    });
                }
            }
            csv::Splitter::new(
                decoded,
                options.dialect.clone(),
                options.batch_bytes,
                options.max_record_bytes,
            )
            .resumed_at(r.offset, r.line)
        }
        None => csv::Splitter::new(
            decoded,
            options.dialect.clone(),
            options.batch_bytes,
            options.max_record_bytes,
        ),
    };
    let header = if resume.is_some() || !options.dialect.header {
        Some((Vec::new(), 0))
    } else {
        splitter.header()?
    };
    if resume.is_none() {
        let _ = tx.blocking_send(Ok(Piece::Compression(sniffed)));
    }
    let send = |piece| tx.blocking_send(Ok(piece)).is_ok();
    if !send(Piece::Header(header)) {
        return Ok(());
    }
    // One batch is held back so that the last one goes out marked as such.
    let mut held: Option<csv::Batch> = None;
    while let Some(batch) = splitter.next_batch()? {
        if let Some(previous) = held.replace(batch)
            && !send(Piece::Batch(previous, false))
        {
            return Ok(());
        }
    }
    if let Some(last) = held
        && !send(Piece::Batch(last, true))
    {
        return Ok(());
    }
    send(Piece::End {
        blank_lines: splitter.blank_lines,
    });
    Ok(())
}

/// A row-level refusal from the server, read from its error context
/// (`COPY t, line N, column c: "value"`).
fn row_error(
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
    Some((
        copy_line,
        RejectedRow {
            line: 0,
            column,
            value,
            reason,
            record: Bytes::new(),
        },
    ))
}

/// Sends records as one `COPY`; the number of rows the server took.
async fn copy(
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
const AFTER_ERROR_RECORDS: usize = 500;

struct Loaded {
    rows_read: u64,
    rows_loaded: u64,
    rejected: Vec<RejectedRow>,
    blank_lines: u64,
    /// Whether the whole file was read (else it stopped for the deadline after a batch).
    finished: bool,
    /// Where the file goes on after the last batch loaded.
    end_offset: u64,
    next_line: u64,
}

/// Where batches go: the `COPY` statement, the relation's name as the server's error context
/// prints it, and the columns loaded.
struct CopyInto<'a> {
    statement: &'a str,
    relname: &'a str,
    columns: &'a [String],
}

/// How far a load may go: bad rows set aside earlier (by other pieces), and when to stop.
struct Budget {
    already_rejected: u64,
    stop_at: Option<SystemTime>,
}

/// Loads the batches, setting aside bad rows within budget.
async fn load(
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
    let mut out = Loaded {
        rows_read: 0,
        rows_loaded: 0,
        rejected: Vec::new(),
        blank_lines: 0,
        finished: false,
        end_offset: 0,
        next_line: 0,
    };
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
                session
                    .batch_execute("SAVEPOINT ferry_batch")
                    .await
                    .map_err(pg)?;
            }
            match copy(session, statement, batch.slice(range.clone())).await {
                Ok(rows) => {
                    out.rows_loaded += rows;
                    if lenient {
                        session
                            .batch_execute("RELEASE SAVEPOINT ferry_batch")
                            .await
                            .map_err(pg)?;
                    }
                }
                Err(e) => {
                    let Some((copy_line, mut row)) = row_error(&e, relname, columns) else {
                        return Err(pg(e));
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
                        .await
                        .map_err(pg)?;
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
async fn load_streaming(
    session: &Session,
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    statement: &str,
    relname: &str,
    columns: &[String],
    url: &str,
    stop_at: Option<SystemTime>,
) -> Result<Loaded, ImportError> {
    let mut out = Loaded {
        rows_read: 0,
        rows_loaded: 0,
        rejected: Vec::new(),
        blank_lines: 0,
        finished: false,
        end_offset: 0,
        next_line: 0,
    };
    let sink = session.copy_in::<_, Bytes>(statement).await.map_err(pg)?;
    pin_mut!(sink);
    // (line sent, line of the file) where a run of consecutive lines starts.
    let mut anchors: Vec<(u64, u64)> = Vec::new();
    let mut sent = 1u64;
    let mut expected_file_line = None;
    let refused = |e: tokio_postgres::Error, anchors: &[(u64, u64)]| {
        let Some((copy_line, mut row)) = row_error(&e, relname, columns) else {
            return pg(e);
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

/// What the reader hands the loader next: a batch (and whether it is the last), or the end.
enum Next {
    Batch(csv::Batch, bool),
    End { blank_lines: u64 },
}

async fn next_piece(
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    url: &str,
) -> Result<Next, ImportError> {
    loop {
        match rx.recv().await {
            Some(Ok(Piece::Batch(batch, last))) => return Ok(Next::Batch(batch, last)),
            Some(Ok(Piece::End { blank_lines })) => return Ok(Next::End { blank_lines }),
            Some(Ok(Piece::Header(_) | Piece::Compression(_))) => continue,
            Some(Err(error)) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error,
                });
            }
            None => {
                return Err(ImportError::BadInput(format!(
                    "{url}: reading the object stopped unexpectedly"
                )));
            }
        }
    }
}

/// The first things the reader hands over: how the object is compressed and its header,
/// turned into the table columns the file loads.
async fn header_columns(
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    target: &Table,
    options: &Options,
    url: &str,
    size: u64,
) -> Result<(Compression, Vec<String>), ImportError> {
    let mut compression = Compression::None;
    let (names, header_line) = loop {
        match rx.recv().await {
            Some(Ok(Piece::Compression(c))) => compression = c,
            Some(Ok(Piece::Header(Some(header)))) => break header,
            Some(Ok(Piece::Header(None))) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error: CsvError {
                        line: 1,
                        reason: if size == 0 {
                            "the object is empty (0 bytes): there is no header line".into()
                        } else {
                            "the file holds no header line (only blank lines)".into()
                        },
                    },
                });
            }
            Some(Err(error)) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error,
                });
            }
            _ => {
                return Err(ImportError::BadInput(format!(
                    "{url}: reading the object stopped unexpectedly"
                )));
            }
        }
    };
    let columns = match &options.columns {
        Some(list) => map_columns(target, list, true, header_line),
        None => map_columns(target, &names, false, header_line),
    }
    .map_err(|e| ImportError::BadInput(format!("{url}: {e}")))?;
    Ok((compression, columns))
}

/// Statistics for the planner once an import's rows are committed (a failure is logged: the
/// rows are in).
async fn analyze(session: &Session, table: &TableName) {
    if let Err(e) = session
        .batch_execute(&format!("ANALYZE {}", table.quoted()))
        .await
    {
        tracing::warn!(table = %table, error = %PgError::from(e), "ANALYZE after the import failed");
    }
}

/// The rejected rows as CSV: line, column, value, reason, and the record as the file had it.
fn rejects_csv(rows: &[RejectedRow]) -> Bytes {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(b'"');
        for &b in bytes {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    }
    let mut out = b"line,column,value,reason,record\n".to_vec();
    for r in rows {
        out.extend_from_slice(r.line.to_string().as_bytes());
        out.push(b',');
        field(&mut out, r.column.as_deref().unwrap_or("").as_bytes());
        out.push(b',');
        field(&mut out, r.value.as_deref().unwrap_or("").as_bytes());
        out.push(b',');
        field(&mut out, r.reason.as_bytes());
        out.push(b',');
        let record = r
            .record
            .strip_suffix(b"\n")
            .map(|x| x.strip_suffix(b"\r").unwrap_or(x))
            .unwrap_or(&r.record);
        field(&mut out, record);
        out.push(b'\n');
    }
    out.into()
}

/// Where the rejects of `source` go: the given object, or `<prefix><file name>.rejects.csv`.
pub fn rejects_location(
    rejects_to: &ObjectUrl,
    source: &ObjectUrl,
) -> Result<ObjectUrl, StoreError> {
    let to = rejects_to.key.as_str();
    if to.is_empty() || to.ends_with('/') {
        let name = source.key.as_str().rsplit('/').next().unwrap_or("import");
        rejects_to.join(&format!("{name}.rejects.csv"))
    } else {
        Ok(rejects_to.clone())
    }
}

/// What the ledger of the database at `config` recorded of an import of this object version
/// into `table`, if it was imported.
pub async fn already_imported(
    config: &PgConfig,
    bucket: &str,
    key: &str,
    version: &str,
    table: &TableName,
) -> Result<Option<Report>, ImportError> {
    let session = crate::pg::connect(config).await?;
    Ledger::lookup(
        &session,
        &ledger::Entry {
            bucket: bucket.into(),
            key: key.into(),
            version: version.into(),
            table: table.quoted(),
        },
    )
    .await
}

/// Imports `source` into `table`, exactly once per object version and table.
pub async fn run(
    config: &PgConfig,
    source: &Source,
    table: &TableName,
    options: &Options,
    store_config: &crate::store::StoreConfig,
) -> Result<Report, ImportError> {
    if options.max_rejected_rows > 0 && options.rejects_to.is_none() {
        return Err(ImportError::BadInput(
            "--max-rejected-rows needs --rejects-to: the rejected rows must go somewhere".into(),
        ));
    }
    if options.columns.is_none() && !options.dialect.header {
        return Err(ImportError::BadInput(
            "a file without a header needs an explicit column list".into(),
        ));
    }
    let session = crate::pg::connect(config).await?;
    let ledger = Ledger::ensure(&session).await?;
    let target = describe_table(&session, table).await?;
    let (bucket, key, version) = source.identity();
    let entry = ledger::Entry {
        bucket,
        key,
        version: version.clone(),
        table: table.quoted(),
    };
    if pieces::under_way(&session, &entry).await? || pieces::needed(source.meta.size, options) {
        if let Some(done) = Ledger::lookup(&session, &entry).await? {
            return Ok(done);
        }
        return pieces::run(&session, source, &target, &entry, options, store_config).await;
    }

    session.batch_execute("BEGIN").await.map_err(pg)?;
    let result = async {
        if let Some(done) = ledger.claim(&session, &entry, options.mode).await? {
            return Ok(done);
        }
        let report =
            import_in_transaction(&session, source, &target, options, store_config).await?;
        ledger.finish(&session, &entry, &report).await?;
        session.batch_execute("COMMIT").await.map_err(pg)?;
        Ok(report)
    }
    .await;
    match result {
        Ok(mut report) => {
            if report.status == Status::AlreadyImported {
                let _ = session.batch_execute("ROLLBACK").await;
            } else {
                analyze(&session, table).await;
                report.version = version;
            }
            Ok(report)
        }
        Err(e) => {
            if !session.is_closed() {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            Err(e)
        }
    }
}

async fn import_in_transaction(
    session: &Session,
    source: &Source,
    target: &Table,
    options: &Options,
    store_config: &crate::store::StoreConfig,
) -> Result<Report, ImportError> {
    let url = source.url.to_string();
    let stream = source.store.get_version(&source.meta, None).await?;
    let declared = Compression::declared(
        source.url.key.as_str(),
        source.meta.content_encoding.as_deref(),
    );
    let hash = Arc::new(Mutex::new((Sha256::new(), 0u64)));
    let (tx, mut rx) = mpsc::channel(2);
    let reader = {
        let options = options.clone();
        let hash = hash.clone();
        let input = BlockingRead::new(stream);
        tokio::task::spawn_blocking(move || {
            let failed = tx.clone();
            if let Err(e) = read_object(input, declared, &options, None, hash, tx) {
                let _ = failed.blocking_send(Err(e));
            }
        })
    };
    let result = async {
        let (_, columns) = header_columns(&mut rx, target, options, &url, source.meta.size).await?;
        // Rows set aside roll back a savepoint, and rows written under one carry its
        // subtransaction's id: with a budget for bad rows, append goes through a stage too, so
        // that every row of an import carries the import's transaction id (validate finds them
        // by it).
        let staged = options.mode != Mode::Append || options.max_rejected_rows > 0;
        let (relname, copy_into) = match staged {
            false => (target.name.table.clone(), target.name.quoted()),
            true => {
                check_mode(target, &columns, options.mode)?;
                session
                    .batch_execute(&format!(
                        "CREATE TEMPORARY TABLE ferry_import_stage ({}) ON COMMIT DROP",
                        stage_like(target)
                    ))
                    .await
                    .map_err(pg)?;
                (
                    "ferry_import_stage".to_string(),
                    "pg_temp.ferry_import_stage".to_string(),
                )
            }
        };
        let statement = copy_statement(&copy_into, &columns, &options.dialect);
        let loaded = load(
            session,
            &mut rx,
            CopyInto {
                statement: &statement,
                relname: &relname,
                columns: &columns,
            },
            options,
            &url,
            Budget {
                already_rejected: 0,
                stop_at: None,
            },
        )
        .await?;
        let rows_loaded = match staged {
            false => loaded.rows_loaded,
            true => {
                apply_stage(
                    session,
                    target,
                    &columns,
                    options.mode,
                    "pg_temp.ferry_import_stage",
                )
                .await?
            }
        };
        Ok::<_, ImportError>((columns, loaded, rows_loaded))
    }
    .await;
    drop(rx);
    let _ = reader.await;
    let (columns, loaded, rows_loaded) = result?;
    let (digest, bytes) = {
        let state = hash.lock().unwrap_or_else(|e| e.into_inner());
        (hex::encode(state.0.clone().finalize()), state.1)
    };
    let mut rejects = None;
    if !loaded.rejected.is_empty()
        && let Some(to) = &options.rejects_to
    {
        let location = rejects_location(to, &source.url)?;
        let store = Store::for_url(&location, store_config).await?;
        store
            .put(&location.key, rejects_csv(&loaded.rejected))
            .await?;
        rejects = Some(location.to_string());
    }
    Ok(Report {
        status: Status::Imported,
        table: target.name.quoted(),
        mode: options.mode,
        version: String::new(),
        rows_read: loaded.rows_read,
        rows_loaded,
        rows_rejected: loaded.rejected.len() as u64,
        blank_lines: loaded.blank_lines,
        bytes,
        sha256: Some(digest),
        columns,
        rejects,
        imported_at: None,
        pieces: None,
        next_line: None,
    })
}

/// A stage table's definition: the target's columns with their defaults, NOT NULL, CHECK and
/// unique constraints, so that a bad row is refused (and named) as it is staged. Foreign keys
/// and conflicts with rows already in the table are checked when the rows move into it.
fn stage_like(target: &Table) -> String {
    format!(
        "LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS \
         INCLUDING INDEXES",
        target.name.quoted()
    )
}

/// What a mode needs of the file's columns (upsert: the whole primary key).
fn check_mode(target: &Table, columns: &[String], mode: Mode) -> Result<(), ImportError> {
    if mode != Mode::Upsert {
        return Ok(());
    }
    let key: Vec<&Column> = target.columns.iter().filter(|c| c.in_primary_key).collect();
    if key.is_empty() {
        return Err(ImportError::BadInput(format!(
            "upsert needs a primary key and {} has none",
            target.name
        )));
    }
    if let Some(c) = key.iter().find(|c| !columns.contains(&c.name)) {
        return Err(ImportError::BadInput(format!(
            "upsert matches rows on the primary key, and the file has no {} column",
            ident(&c.name)
        )));
    }
    Ok(())
}

/// `COPY into (columns) FROM STDIN` in the file's dialect.
fn copy_statement(into: &str, columns: &[String], d: &Dialect) -> String {
    let char_literal = |b: u8| literal(&(b as char).to_string());
    format!(
        "COPY {into} ({}) FROM STDIN WITH (FORMAT csv, DELIMITER {}, QUOTE {}, ESCAPE {}, NULL {}, ENCODING {})",
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        char_literal(d.delimiter),
        char_literal(d.quote),
        char_literal(d.escape),
        literal(&d.null),
        literal(d.encoding.copy_name()),
    )
}

/// Moves the staged rows into the table: upsert on the primary key, or replace its rows.
async fn apply_stage(
    session: &Session,
    target: &Table,
    columns: &[String],
    mode: Mode,
    stage: &str,
) -> Result<u64, ImportError> {
    let list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let list = list.join(", ");
    let table = target.name.quoted();
    let insert = format!("INSERT INTO {table} ({list}) SELECT {list} FROM {stage}");
    let statement = match mode {
        Mode::Upsert => {
            let key: Vec<String> = target
                .columns
                .iter()
                .filter(|c| c.in_primary_key)
                .map(|c| ident(&c.name))
                .collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| {
                    !target
                        .columns
                        .iter()
                        .any(|t| t.in_primary_key && t.name == **c)
                })
                .map(|c| format!("{0} = EXCLUDED.{0}", ident(c)))
                .collect();
            if updates.is_empty() {
                format!("{insert} ON CONFLICT ({}) DO NOTHING", key.join(", "))
            } else {
                format!(
                    "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    updates.join(", ")
                )
            }
        }
        Mode::Replace => {
            session
                .execute(&format!("DELETE FROM {table}"), &[])
                .await
                .map_err(pg)?;
            insert
        }
        Mode::Append => insert,
    };
    session.execute(&statement, &[]).await.map_err(|e| {
        let cardinality = e.code() == Some(&tokio_postgres::error::SqlState::CARDINALITY_VIOLATION);
        if cardinality {
            ImportError::BadInput(format!(
                "the file holds the same primary key of {} more than once, so an upsert cannot \
                 tell which row wins",
                target.name
            ))
        } else {
            pg(e)
        }
    })
}
