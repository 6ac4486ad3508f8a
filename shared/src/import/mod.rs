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
mod load;
mod members;
mod pieces;
mod reader;
mod rejects;
pub mod route;
mod stage;
mod table;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

pub use csv::{CsvError, Dialect, Encoding};
pub use ledger::{Ledger, Recorded, recorded, rows_of};
pub use reader::{ASSUMED_RATE, Compression};
pub use rejects::{RejectedRow, rejects_location};
pub use stage::Mode;
pub use table::TableName;

use crate::{
    pg::{PgConfig, PgError, Session},
    store::{BlockingRead, ObjectMeta, ObjectUrl, Store, StoreError},
};
use load::{Budget, CopyInto, analyze, load};
use reader::read_object;
use rejects::rejects_csv;
use stage::{apply_stage, check_mode, copy_statement, stage_like};
use table::{Table, describe_table, header_columns};

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
    /// The rows read are not the rows loaded plus the rows set aside: rows were lost on the
    /// way (a stage emptied under an import in pieces). Nothing was imported.
    #[error(
        "{url}: {read} rows were read but {loaded} loaded and {rejected} set aside; nothing was imported{again}"
    )]
    Miscounted {
        url: String,
        read: u64,
        loaded: u64,
        rejected: u64,
        again: &'static str,
    },
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Every row read is loaded or set aside, or the import fails (before it commits).
pub(crate) fn check_counts(
    url: &str,
    read: u64,
    loaded: u64,
    rejected: u64,
    again: &'static str,
) -> Result<(), ImportError> {
    if read == loaded.saturating_add(rejected) {
        return Ok(());
    }
    Err(ImportError::Miscounted {
        url: url.to_string(),
        read,
        loaded,
        rejected,
        again,
    })
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

impl From<tokio_postgres::Error> for ImportError {
    fn from(e: tokio_postgres::Error) -> ImportError {
        ImportError::Postgres(PgError::from(e))
    }
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

    session.batch_execute("BEGIN").await?;
    let result = async {
        if let Some(done) = ledger.claim(&session, &entry, options.mode).await? {
            return Ok(done);
        }
        let report =
            import_in_transaction(&session, source, &target, options, store_config).await?;
        ledger.finish(&session, &entry, &report).await?;
        session.batch_execute("COMMIT").await?;
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
            let points = members::EntryPoints::default();
            if let Err(e) = read_object(input, declared, &options, None, hash, points, tx) {
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
                    .await?;
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
    check_counts(
        &url,
        loaded.rows_read,
        rows_loaded,
        loaded.rejected.len() as u64,
        "",
    )?;
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
