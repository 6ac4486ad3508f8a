//! CSV import: load CSV objects into tables, exactly once.
//!
//! The input is a direct request (the CLI, a Step Functions task) or an S3 upload event as AWS
//! delivers it: an S3 event notification, an EventBridge `Object Created` event, or an SQS
//! batch of either. For events, the target database and the routing rules come from the
//! function's environment (`FERRY_IMPORT_TARGET`, `FERRY_IMPORT_ROUTES`); an object that cannot
//! be imported is moved under the rejected prefix with a report beside it, and in an SQS batch
//! only the messages that failed for a reason worth retrying are handed back.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Context, JobError};
use crate::{
    import::{
        self, ImportError, Report, Source, TableName,
        events::{self, Upload},
        route::{CsvOptions, Route, Routes},
    },
    pg::PgConfig,
    store::{Key, Moved, ObjectMeta, ObjectUrl, Store, StoreError},
};

/// One CSV object to import (`ferry import-csv`, a Step Functions task).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ImportRequest {
    /// The CSV object (`s3://...` or `file:///...`), optionally gzip or zstd compressed.
    pub from: String,
    /// A PostgreSQL URL, Secrets Manager or `neon://` reference (default: `FERRY_IMPORT_TARGET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// `schema.table`; when absent, the routes decide (from the object's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Routing rules as JSON (default: `FERRY_IMPORT_ROUTES`), used when `table` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<Routes>,
    /// Move an object that cannot be imported under this prefix (of its bucket), with a report,
    /// and answer with status `rejected` instead of failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected_prefix: Option<String>,
    /// Move an imported object under this prefix (of its bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processed_prefix: Option<String>,
    /// Import nothing: move the object under `rejectedPrefix` with a report giving this reason
    /// (a workflow's compensation when an import did not validate). Status `rejected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_aside: Option<String>,
    /// The version of the object this request is about, as an import's report gives it (its S3
    /// version id, or its ETag): with `setAside`, or with `processedPrefix` after an import,
    /// only that version is moved, and when a newer object has replaced it under the key,
    /// nothing is imported or moved (the newer one is left for its own import).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(flatten)]
    pub options: CsvOptions,
}

/// What the `import-csv` function accepts: a request, or an S3 upload event.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ImportCsvInput {
    Request(Box<ImportRequest>),
    /// An S3 event notification (`Records` of `aws:s3`), an EventBridge `Object Created` event,
    /// or an SQS batch (`Records` of `aws:sqs`) whose bodies are either.
    Event(UploadEvent),
}

/// An S3 upload event as AWS delivers it (see [`crate::import::events`]).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(
    description = "An S3 event notification, an EventBridge Object Created event, or an SQS batch of either"
)]
pub struct UploadEvent(pub serde_json::Map<String, Value>);

impl<'de> Deserialize<'de> for ImportCsvInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = Value::deserialize(d)?;
        if events::is_event(&value) {
            let Value::Object(map) = value else {
                return Err(D::Error::custom("an event is a JSON object"));
            };
            return Ok(ImportCsvInput::Event(UploadEvent(map)));
        }
        // `flatten` cannot deny unknown fields; the schema knows them all.
        let schema = schemars::schema_for!(ImportRequest);
        let known: Vec<&str> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if let Some(map) = value.as_object()
            && let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str()))
        {
            return Err(D::Error::custom(format!(
                "unknown field `{unknown}`, expected one of {}",
                known.join(", ")
            )));
        }
        serde_json::from_value(value)
            .map(|r| ImportCsvInput::Request(Box::new(r)))
            .map_err(D::Error::custom)
    }
}

/// What became of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// Its rows are in the table now.
    Imported,
    /// The ledger shows this version was imported before; nothing was done.
    AlreadyImported,
    /// A file too large for one invocation: a piece was loaded (into a stage, not the table
    /// yet). Run the same import again to go on; the last piece moves every row in at once.
    InProgress,
    /// It cannot be imported as it is (no table, bad file, too many bad rows); it was moved
    /// under the rejected prefix when one applies.
    Rejected,
    /// Not for import (ferry's own rejected or processed objects, events other than uploads).
    Ignored,
    /// Something outside the file failed (database, store); running again may succeed.
    Failed,
}

/// The outcome of one object.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportOutcome {
    pub source: String,
    pub status: ImportStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// What the import did, or what the ledger recorded of the earlier one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Where the object was moved (processed or rejected prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
    /// The JSON report written beside a rejected object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejection_report: Option<String>,
}

impl ImportOutcome {
    /// Not for import, and why.
    fn ignored(source: String, table: Option<String>, why: String) -> ImportOutcome {
        ImportOutcome {
            source,
            status: ImportStatus::Ignored,
            table,
            report: None,
            error: Some(why),
            error_type: None,
            moved_to: None,
            rejection_report: None,
        }
    }

    /// Failed for a reason outside the file.
    fn failed(source: String, error: &JobError) -> ImportOutcome {
        ImportOutcome {
            source,
            status: ImportStatus::Failed,
            table: None,
            report: None,
            error: Some(error.to_string()),
            error_type: Some(error.error_type().to_string()),
            moved_to: None,
            rejection_report: None,
        }
    }
}

/// An SQS message to deliver again (AWS Lambda's partial batch response).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BatchItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportCsvOutput {
    pub imports: Vec<ImportOutcome>,
    pub rows_read: u64,
    pub rows_loaded: u64,
    pub rows_rejected: u64,
    /// For SQS batches: the messages that failed and should be delivered again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_item_failures: Option<Vec<BatchItemFailure>>,
}

impl ImportCsvOutput {
    fn of(imports: Vec<ImportOutcome>) -> ImportCsvOutput {
        let sum = |f: fn(&Report) -> u64| {
            imports
                .iter()
                .filter(|o| o.status == ImportStatus::Imported)
                .filter_map(|o| o.report.as_ref())
                .map(f)
                .sum()
        };
        ImportCsvOutput {
            rows_read: sum(|r| r.rows_read),
            rows_loaded: sum(|r| r.rows_loaded),
            rows_rejected: sum(|r| r.rows_rejected),
            imports,
            batch_item_failures: None,
        }
    }
}

impl From<ImportError> for JobError {
    fn from(e: ImportError) -> JobError {
        match e {
            ImportError::Postgres(e) => JobError::Postgres(e),
            ImportError::Store(e) => JobError::Store(e),
            e @ ImportError::Miscounted { .. } => JobError::Inconsistent(e.to_string()),
            e => JobError::ImportRejected(e.to_string()),
        }
    }
}

const TARGET_VAR: &str = "FERRY_IMPORT_TARGET";
const ROUTES_VAR: &str = "FERRY_IMPORT_ROUTES";
const ALLOW_VAR: &str = "FERRY_IMPORT_ALLOW";

/// The routes of the environment (JSON text, or the URL of a JSON object), with the tables
/// `FERRY_IMPORT_ALLOW` allows added to their allow list.
async fn routes_from_env(ctx: &Context) -> Result<Routes, JobError> {
    let allow = std::env::var(ALLOW_VAR).unwrap_or_default();
    Ok(routes_of_env(ctx).await?.allowing(&allow))
}

async fn routes_of_env(ctx: &Context) -> Result<Routes, JobError> {
    let Some(text) = std::env::var(ROUTES_VAR)
        .ok()
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(Routes::default());
    };
    let text = if text.trim_start().starts_with('{') {
        text
    } else {
        let url = ObjectUrl::parse(text.trim())?;
        let store = Store::for_url(&url, &ctx.store).await?;
        String::from_utf8(store.get_bytes(&url.key).await?.to_vec())
            .map_err(|_| JobError::BadInput(format!("{url} is not UTF-8 JSON")))?
    };
    Routes::from_json(&text).map_err(|e| JobError::BadInput(format!("{ROUTES_VAR}: {e}")))
}

async fn target_from(spec: Option<&str>) -> Result<PgConfig, JobError> {
    let spec = match spec {
        Some(s) => s.to_string(),
        None => std::env::var(TARGET_VAR).map_err(|_| {
            JobError::BadInput(format!(
                "no target database: give `target` or set {TARGET_VAR}"
            ))
        })?,
    };
    Ok(super::database(&spec).await?.direct())
}

pub async fn import_csv(input: ImportCsvInput, ctx: Context) -> Result<ImportCsvOutput, JobError> {
    match input {
        ImportCsvInput::Request(request) => Box::pin(import_request(*request, &ctx)).await,
        ImportCsvInput::Event(UploadEvent(event)) => {
            Box::pin(import_event(Value::Object(event), &ctx)).await
        }
    }
}

async fn import_request(
    request: ImportRequest,
    ctx: &Context,
) -> Result<ImportCsvOutput, JobError> {
    let url = ObjectUrl::parse(&request.from)?;
    if let Some(reason) = &request.set_aside {
        let prefix = request.rejected_prefix.as_deref().ok_or_else(|| {
            JobError::BadInput("setAside needs rejectedPrefix: where to move the object".into())
        })?;
        let table = request
            .table
            .as_deref()
            .map(TableName::parse)
            .transpose()
            .map_err(|e| JobError::BadInput(e.to_string()))?;
        let store = Store::for_url(&url, &ctx.store).await?;
        let why = JobError::ImportRejected(format!("set aside: {reason}"));
        let current = match &request.version {
            Some(version) => match pinned(&store, &url, version).await? {
                Some(meta) => Some(meta),
                None => {
                    return Ok(ImportCsvOutput::of(vec![ImportOutcome::ignored(
                        url.to_string(),
                        table.as_ref().map(TableName::quoted),
                        format!(
                            "{url}: version {version} was replaced by a newer upload, which is left where it is"
                        ),
                    )]));
                }
            },
            None => None,
        };
        let outcome = reject(&store, &url, current.as_ref(), table.as_ref(), &why, prefix).await?;
        return Ok(ImportCsvOutput::of(vec![outcome]));
    }
    let config = target_from(request.target.as_deref()).await?;
    let (table, options) = match &request.table {
        Some(t) => {
            let table = TableName::parse(t).map_err(|e| JobError::BadInput(e.to_string()))?;
            import::route::writable(&table).map_err(|e| JobError::BadInput(e.to_string()))?;
            (table, request.options.clone())
        }
        None => {
            let routes = match &request.routes {
                Some(r) => r.clone(),
                None => routes_from_env(ctx).await?,
            };
            match routes
                .route(url.key.as_str())
                .map_err(|e| JobError::ImportRejected(e.to_string()))?
            {
                Route::Table(table, options) => (table, request.options.over(&options)),
                Route::Ignore(why) => {
                    return Ok(ImportCsvOutput::of(vec![ImportOutcome::ignored(
                        url.to_string(),
                        None,
                        why,
                    )]));
                }
            }
        }
    };
    let mut options = options
        .to_options(url.key.as_str())
        .map_err(|e| JobError::BadInput(e.to_string()))?;
    set_deadline(&mut options, ctx)?;
    let store = Store::for_url(&url, &ctx.store).await?;
    let source = match (&request.version, &request.processed_prefix) {
        (Some(version), Some(_)) => match pinned(&store, &url, version).await? {
            // Exactly that version, not whatever is there when it is read.
            Some(meta) => Source {
                store: store.clone(),
                url: url.clone(),
                meta,
            },
            None => {
                // Replaced (or moved) since that version was imported: the ledger says what
                // it was.
                let bucket = url.bucket.clone().unwrap_or_default();
                let recorded =
                    import::already_imported(&config, &bucket, url.key.as_str(), version, &table)
                        .await?;
                return match recorded {
                    Some(report) => Ok(ImportCsvOutput::of(vec![imported(
                        &url, &table, report, None,
                    )])),
                    None => Err(JobError::BadInput(format!(
                        "{url}: version {version} was not imported, and a newer object has replaced it"
                    ))),
                };
            }
        },
        _ => Source::open(store.clone(), url.clone()).await?,
    };
    match Box::pin(import::run(&config, &source, &table, &options, &ctx.store)).await {
        Ok(report) => {
            let moved_to = match &request.processed_prefix {
                Some(_) if report.status == import::Status::InProgress => None,
                Some(prefix) => move_object(&store, &url, Some(&source.meta), prefix).await?,
                None => None,
            };
            Ok(ImportCsvOutput::of(vec![imported(
                &url, &table, report, moved_to,
            )]))
        }
        Err(e) if e.is_rejection() && request.rejected_prefix.is_some() => {
            let prefix = request.rejected_prefix.as_deref().unwrap_or_default();
            let outcome = reject(
                &store,
                &url,
                Some(&source.meta),
                Some(&table),
                &JobError::from(e),
                prefix,
            )
            .await?;
            Ok(ImportCsvOutput::of(vec![outcome]))
        }
        Err(e) => Err(e.into()),
    }
}

/// The invocation's deadline, with time kept back to commit (see [`super::stop_by`]).
fn set_deadline(options: &mut import::Options, ctx: &Context) -> Result<(), JobError> {
    if let Some((deadline, margin)) = super::stop_by(ctx)? {
        options.deadline = Some(deadline);
        options.deadline_margin = margin;
    }
    Ok(())
}

fn imported(
    url: &ObjectUrl,
    table: &TableName,
    report: Report,
    moved_to: Option<String>,
) -> ImportOutcome {
    ImportOutcome {
        source: url.to_string(),
        status: match report.status {
            import::Status::Imported => ImportStatus::Imported,
            import::Status::AlreadyImported => ImportStatus::AlreadyImported,
            import::Status::InProgress => ImportStatus::InProgress,
        },
        table: Some(table.quoted()),
        report: Some(report),
        error: None,
        error_type: None,
        moved_to,
        rejection_report: None,
    }
}

/// Moves the object under `prefix` (same bucket, same key after it): exactly `version`, the
/// version that was imported or looked at (the current one when `None`). Its new location, or
/// `None` when a newer upload had already replaced that version, which stays where it is for
/// its own import.
async fn move_object(
    store: &Store,
    url: &ObjectUrl,
    version: Option<&ObjectMeta>,
    prefix: &str,
) -> Result<Option<String>, JobError> {
    let to = Key::new(format!("{prefix}{}", url.key.as_str()))?;
    let moved = match version {
        Some(version) => store.move_version(version, &to).await,
        None => match store.head(&url.key).await {
            Ok(current) => store.move_version(&current, &to).await,
            Err(e) => Err(e),
        },
    };
    match moved {
        Ok(Moved::Moved) => {}
        Ok(Moved::CopiedNewerKept) => tracing::warn!(
            source = %url,
            "a newer upload arrived under this key while it was imported; it stays for its own import"
        ),
        Ok(Moved::Replaced) => {
            tracing::warn!(
                source = %url,
                "a newer upload replaced the imported version before it could be moved; it stays for its own import"
            );
            return Ok(None);
        }
        // Moved already by an earlier delivery.
        Err(StoreError::NotFound { .. }) if store.head(&to).await.is_ok() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Some(store.url(&to).to_string()))
}

/// The object at `url` if its current version is `version` (its S3 version id or ETag), else
/// `None` (replaced by a newer upload, or gone).
async fn pinned(
    store: &Store,
    url: &ObjectUrl,
    version: &str,
) -> Result<Option<ObjectMeta>, JobError> {
    match store.head(&url.key).await {
        Ok(meta)
            if meta.version_id.as_deref() == Some(version)
                || meta.etag.as_deref() == Some(version) =>
        {
            Ok(Some(meta))
        }
        Ok(_) | Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Moves a rejected object aside with a JSON report beside it.
async fn reject(
    store: &Store,
    url: &ObjectUrl,
    version: Option<&ObjectMeta>,
    table: Option<&TableName>,
    error: &JobError,
    prefix: &str,
) -> Result<ImportOutcome, JobError> {
    let report_key = Key::new(format!("{prefix}{}.error.json", url.key.as_str()))?;
    let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let body = serde_json::json!({
        "source": url.to_string(),
        "table": table.map(TableName::quoted),
        "errorType": error.error_type(),
        "error": error.to_string(),
        "rejectedAt": at,
        "tool": format!("ferry {}", crate::VERSION),
    });
    let body = serde_json::to_vec_pretty(&body).unwrap_or_default();
    let moved_to = match move_object(store, url, version, prefix).await {
        Ok(to) => to,
        Err(JobError::Store(StoreError::NotFound { .. })) => None,
        Err(e) => return Err(e),
    };
    // Not moved because a newer upload replaced it: no report about the old version beside
    // a place where the newer one may never go.
    let replaced = moved_to.is_none() && version.is_some() && store.head(&url.key).await.is_ok();
    if !replaced {
        store.put(&report_key, body.into()).await?;
    }
    Ok(ImportOutcome {
        source: url.to_string(),
        status: ImportStatus::Rejected,
        table: table.map(TableName::quoted),
        report: None,
        error: Some(error.to_string()),
        error_type: Some(error.error_type().to_string()),
        moved_to,
        rejection_report: (!replaced).then(|| store.url(&report_key).to_string()),
    })
}

async fn import_event(event: Value, ctx: &Context) -> Result<ImportCsvOutput, JobError> {
    let deliveries = events::parse(&event).map_err(|e| JobError::BadInput(e.to_string()))?;
    let routes = routes_from_env(ctx).await?;
    let config = target_from(None).await?;
    let sqs = deliveries.iter().any(|d| d.message_id.is_some());
    let mut outcomes = Vec::new();
    let mut failures = Vec::new();
    let mut first_error: Option<JobError> = None;
    for delivery in deliveries {
        let uploads = match delivery.uploads {
            Ok(uploads) => uploads,
            Err(why) => {
                tracing::error!(message_id = ?delivery.message_id, error = %why, "an unreadable delivery");
                let error = JobError::BadInput(why.to_string());
                outcomes.push(ImportOutcome::failed(String::new(), &error));
                failures.extend(delivery.message_id.clone());
                first_error.get_or_insert(error);
                continue;
            }
        };
        let mut failed = false;
        for upload in uploads {
            let outcome = match Box::pin(import_upload(&upload, &routes, &config, ctx)).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::error!(bucket = %upload.bucket, key = %upload.key, error_type = e.error_type(), error = %e, "import failed");
                    let outcome =
                        ImportOutcome::failed(format!("s3://{}/{}", upload.bucket, upload.key), &e);
                    first_error.get_or_insert(e);
                    outcome
                }
            };
            failed |= outcome.status == ImportStatus::Failed;
            outcomes.push(outcome);
        }
        if failed {
            failures.extend(delivery.message_id.clone());
        }
    }
    let mut output = ImportCsvOutput::of(outcomes);
    if sqs {
        output.batch_item_failures = Some(
            failures
                .into_iter()
                .map(|item_identifier| BatchItemFailure { item_identifier })
                .collect(),
        );
        return Ok(output);
    }
    // A direct or EventBridge invocation is retried whole by Lambda: the ledger makes the
    // objects that did import no-ops the second time.
    match first_error {
        Some(e) => Err(e),
        None => Ok(output),
    }
}

/// Imports one announced upload; `Err` only for failures worth retrying.
async fn import_upload(
    upload: &Upload,
    routes: &Routes,
    config: &PgConfig,
    ctx: &Context,
) -> Result<ImportOutcome, JobError> {
    let bucket_url = ObjectUrl::parse(&format!("s3://{}", upload.bucket))?;
    let store = Store::for_url(&bucket_url, &ctx.store).await?;
    let mut key = upload.key.clone();
    let mut meta = store.head(&Key::new(&key)?).await;
    if let (Err(StoreError::NotFound { .. }), Some(other)) = (&meta, &upload.alternative_key) {
        meta = store.head(&Key::new(other)?).await;
        key = other.clone();
    }
    let url = bucket_url.with_key(Key::new(&key)?);
    let (table, options) = match routes.route(&key) {
        Ok(Route::Table(table, options)) => (table, options),
        Ok(Route::Ignore(why)) => {
            return Ok(ImportOutcome::ignored(url.to_string(), None, why));
        }
        Err(why) => {
            return reject(
                &store,
                &url,
                meta.as_ref().ok(),
                None,
                &JobError::ImportRejected(why.to_string()),
                &routes.rejected_prefix,
            )
            .await;
        }
    };
    let meta: ObjectMeta = match meta {
        Ok(meta) => meta,
        Err(StoreError::NotFound { .. }) => {
            // Gone: imported and moved by an earlier delivery, or deleted.
            let version = upload.version_id.clone().or_else(|| upload.etag.clone());
            if let Some(version) = version
                && let Some(report) =
                    import::already_imported(config, &upload.bucket, &key, &version, &table).await?
            {
                return Ok(imported(&url, &table, report, None));
            }
            return Ok(ImportOutcome::ignored(
                url.to_string(),
                Some(table.quoted()),
                format!("{url} no longer exists and was not imported"),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut options = match options.to_options(&key) {
        Ok(o) => o,
        Err(why) => {
            return reject(
                &store,
                &url,
                Some(&meta),
                Some(&table),
                &JobError::BadInput(why.to_string()),
                &routes.rejected_prefix,
            )
            .await;
        }
    };
    set_deadline(&mut options, ctx)?;
    if options.max_rejected_rows > 0 && options.rejects_to.is_none() {
        options.rejects_to = Some(bucket_url.with_key(Key::new(format!(
            "{}{key}.rejects.csv",
            routes.rejected_prefix
        ))?));
    }
    let source = Source {
        store: store.clone(),
        url: url.clone(),
        meta,
    };
    match Box::pin(import::run(config, &source, &table, &options, &ctx.store)).await {
        Ok(report) if report.status == import::Status::InProgress => {
            // Delivered again (SQS after the visibility timeout, Lambda's retries of an
            // asynchronous event), the import goes on from where this piece stopped.
            Err(JobError::InProgress(format!(
                "{url}: a piece of a file too large for one invocation was loaded (up to line {}); \
                 the import goes on when the event is delivered again",
                report.next_line.unwrap_or(0)
            )))
        }
        Ok(report) => {
            let moved_to = match &routes.processed_prefix {
                Some(prefix) => move_object(&store, &url, Some(&source.meta), prefix).await?,
                None => None,
            };
            Ok(imported(&url, &table, report, moved_to))
        }
        Err(e) if e.is_rejection() => {
            reject(
                &store,
                &url,
                Some(&source.meta),
                Some(&table),
                &JobError::from(e),
                &routes.rejected_prefix,
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
