//! One async function per job: typed input in, typed output out.
//!
//! `functions/*` and `cli/` call only these. Each input and output is a serde type whose JSON
//! shape is the contract with Step Functions; each failure is a [`JobError`] whose
//! [`JobError::error_type`] is the stable `errorType` the state machines' Retry and Catch match.

mod branch;
mod check;
mod import_csv;
mod restore;
mod snapshot;
mod snapshots;
mod validate;

use std::{sync::Arc, time::SystemTime};

pub use branch::{BranchAction, BranchInput, BranchOutput, BranchSummary, branch};
pub use check::{CheckInput, CheckOutput, PgCheck, StoreCheck, check};
pub use import_csv::{
    BatchItemFailure, ImportCsvInput, ImportCsvOutput, ImportOutcome, ImportRequest, ImportStatus,
    UploadEvent, import_csv,
};
pub use restore::{RestoreInput, RestoreOutput, restore};
pub use snapshot::{
    DatabaseSnapshot, DatabasesOutput, Distribute, FinishInput, PieceInput, PieceOutput,
    PieceStatus, PieceWork, PlanOutput, SnapshotInput, SnapshotOutput, SnapshotRequest,
    SnapshotResponse, plan_snapshot, snapshot, snapshot_databases, snapshot_finish, snapshot_piece,
    snapshot_request,
};
pub use snapshots::{ListInput, ListOutput, PruneInput, PruneOutput, list_snapshots, prune};
pub use validate::{ValidateInput, ValidateOutput, validate, validate_or_fail};

// The option types the jobs' inputs carry and the progress a caller may watch, so that a caller
// (the CLI, a function) speaks to `jobs` only.
pub use crate::{
    catalog::RetentionPolicy,
    import::route::CsvOptions,
    progress::{Progress, ProgressEvent, Unit},
    store::WriteSettings,
};

use crate::{
    neon::{NeonClient, NeonError},
    pg::{PgConfig, PgError},
    progress::{SharedProgress, Silent},
    secrets_manager::SecretError,
    store::{StoreConfig, StoreError},
};

/// When the invocation's work must stop: its deadline, and the time kept back before it for
/// what follows the last step (committing, answering): a quarter of the time left, at most a
/// minute, or `FERRY_DEADLINE_MARGIN_SECONDS` when set.
pub(crate) fn stop_by(
    ctx: &Context,
) -> Result<Option<(SystemTime, std::time::Duration)>, JobError> {
    let Some(deadline) = ctx.deadline else {
        return Ok(None);
    };
    let margin = match std::env::var("FERRY_DEADLINE_MARGIN_SECONDS") {
        Ok(v) if !v.is_empty() => v
            .parse::<u64>()
            .map(std::time::Duration::from_secs)
            .map_err(|_| {
                JobError::BadInput(format!(
                    "FERRY_DEADLINE_MARGIN_SECONDS {v:?} is not a number of seconds"
                ))
            })?,
        _ => {
            let left = deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            (left / 4).min(std::time::Duration::from_secs(60))
        }
    };
    Ok(Some((deadline, margin)))
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The input is wrong; retrying the same input cannot help.
    #[error("bad input: {0}")]
    BadInput(String),
    /// One option of a job that works otherwise is not built yet.
    #[error("not built yet: {0}")]
    NotBuilt(String),
    /// The database holds objects this version cannot carry; nothing was written as complete.
    #[error("{0}")]
    Unsupported(String),
    /// An archive is malformed or cannot be written as asked.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// Two readings that must agree did not (for example rows copied against rows counted).
    #[error("{0}")]
    Inconsistent(String),
    /// A restore stopped at an item; running it again continues where it stopped.
    #[error("{0}")]
    RestoreFailed(String),
    /// An object cannot be imported as it is (no table for it, a malformed file, bad rows past
    /// the budget); running again cannot help. Nothing was imported.
    #[error("{0}")]
    ImportRejected(String),
    /// Part of the work was done and committed; the same input again goes on from there.
    #[error("{0}")]
    InProgress(String),
    /// A restore's target already holds objects (and is not a restore of the same archive
    /// to resume).
    #[error("{0}")]
    TargetNotEmpty(String),
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Neon(#[from] NeonError),
    /// The comparison found differences (the message lists them).
    #[error("validation failed: {0}")]
    ValidationFailed(String),
    /// The work cannot end within this invocation; what was started is undone.
    #[error("{0}")]
    DeadlineExceeded(String),
}

impl JobError {
    /// The stable `errorType` a Lambda failure carries (see infra/README.md for the list).
    pub fn error_type(&self) -> &'static str {
        match self {
            JobError::BadInput(_) => "Ferry.BadInput",
            JobError::NotBuilt(_) => "Ferry.NotImplemented",
            JobError::Unsupported(_) => "Ferry.Unsupported",
            JobError::Archive(_) => "Ferry.BadArchive",
            JobError::Inconsistent(_) => "Ferry.Inconsistent",
            JobError::RestoreFailed(_) => "Ferry.RestoreFailed",
            JobError::ImportRejected(_) => "Ferry.ImportRejected",
            JobError::InProgress(_) => "Ferry.InProgress",
            JobError::TargetNotEmpty(_) => "Ferry.TargetNotEmpty",
            JobError::Postgres(PgError::BadConfig(_)) => "Ferry.BadInput",
            JobError::Postgres(PgError::Auth { .. }) => "Ferry.AuthFailed",
            JobError::Postgres(PgError::Secret(e)) | JobError::Secret(e) => match e {
                SecretError::NotFound { .. } | SecretError::Malformed { .. } => "Ferry.BadInput",
                SecretError::Access { .. } => "Ferry.SecretUnavailable",
            },
            JobError::Postgres(e) if e.is_retryable() => "Ferry.PostgresUnavailable",
            JobError::Postgres(_) => "Ferry.PostgresError",
            JobError::Store(StoreError::BadUrl { .. } | StoreError::BadKey { .. }) => {
                "Ferry.BadInput"
            }
            JobError::Store(StoreError::NotFound { .. }) => "Ferry.NotFound",
            JobError::Store(e) if e.is_retryable() => "Ferry.StoreUnavailable",
            JobError::Store(_) => "Ferry.StoreError",
            JobError::Neon(NeonError::Locked { .. }) => "Ferry.NeonLocked",
            JobError::Neon(NeonError::BadInput(_) | NeonError::MissingKey) => "Ferry.BadInput",
            JobError::Neon(NeonError::NotFound { .. }) => "Ferry.NotFound",
            JobError::Neon(NeonError::AlreadyExists { .. }) => "Ferry.AlreadyExists",
            JobError::Neon(NeonError::OperationFailed { .. }) => "Ferry.NeonOperationFailed",
            JobError::Neon(NeonError::TimedOut { .. }) => "Ferry.TimedOut",
            JobError::Neon(NeonError::Secret(_)) => "Ferry.SecretUnavailable",
            JobError::Neon(e) if e.is_retryable() => "Ferry.NeonUnavailable",
            JobError::Neon(_) => "Ferry.NeonError",
            JobError::ValidationFailed(_) => "Ferry.ValidationFailed",
            JobError::DeadlineExceeded(_) => "Ferry.DeadlineExceeded",
        }
    }

    /// Whether running the same job again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Postgres(e) => e.is_retryable(),
            JobError::Store(e) => e.is_retryable(),
            JobError::Secret(e) => e.is_retryable(),
            JobError::Neon(e) => e.is_retryable(),
            JobError::InProgress(_) => true,
            JobError::BadInput(_)
            | JobError::NotBuilt(_)
            | JobError::Unsupported(_)
            | JobError::Archive(_)
            | JobError::Inconsistent(_)
            | JobError::RestoreFailed(_)
            | JobError::ImportRejected(_)
            | JobError::TargetNotEmpty(_)
            | JobError::ValidationFailed(_)
            | JobError::DeadlineExceeded(_) => false,
        }
    }
}

impl From<crate::snapshot::SnapshotError> for JobError {
    fn from(e: crate::snapshot::SnapshotError) -> JobError {
        use crate::snapshot::SnapshotError as S;
        match e {
            S::Postgres(e) => JobError::Postgres(e),
            S::Store(e) => JobError::Store(e),
            S::Archive(crate::archive::ArchiveError::NotBuilt(what)) => {
                JobError::NotBuilt(what.to_string())
            }
            S::Archive(e) => JobError::Archive(e),
            e @ S::Unsupported(_) => JobError::Unsupported(e.to_string()),
            e @ S::Inconsistent(_) => JobError::Inconsistent(e.to_string()),
            S::Pieces(e) => JobError::BadInput(e),
        }
    }
}

/// What every job gets besides its input: how to reach the object store, where to report
/// progress, and when it must stop (a Lambda's invocation deadline).
#[derive(Clone)]
pub struct Context {
    pub store: StoreConfig,
    pub progress: SharedProgress,
    pub deadline: Option<SystemTime>,
}

impl Context {
    /// Settings from the environment, silent progress, no deadline.
    pub fn from_env() -> Result<Context, JobError> {
        Ok(Context {
            store: StoreConfig::from_env()?,
            progress: Arc::new(Silent),
            deadline: None,
        })
    }
}

/// The `neon://` reference of a database on a branch: it names where the password can be read
/// (the Neon API) without carrying it.
pub fn neon_reference(project: &str, branch_id: &str, database: &str, role: &str) -> String {
    crate::neon::Reference {
        project: project.into(),
        branch: branch_id.into(),
        database: database.into(),
        role: role.into(),
    }
    .to_string()
}

/// Resolves where a job connects: a PostgreSQL URL, a `key=value` string, a Secrets Manager
/// reference, or a `neon://PROJECT/BRANCH/DATABASE?role=ROLE` reference, whose connection URI
/// (direct, not pooled) is read from the Neon API with `NEON_API_KEY`.
pub async fn database(spec: &str) -> Result<PgConfig, JobError> {
    if !crate::neon::Reference::is_reference(spec) {
        return Ok(PgConfig::resolve(spec).await?);
    }
    let crate::neon::Reference {
        project,
        branch,
        database: db,
        role,
    } = crate::neon::Reference::parse(spec).ok_or_else(|| {
        JobError::BadInput(format!(
            "{spec:?} is not a neon://PROJECT/BRANCH/DATABASE?role=ROLE reference"
        ))
    })?;
    let client = NeonClient::from_env().await?;
    let branch = client.resolve_branch(&project, &branch).await?;
    let uri = client
        .connection_uri(&project, &branch.id, &db, &role, false)
        .await?;
    // Neon's URIs say `sslmode=require` (any certificate): what the API hands out is verified
    // (an API reached over plain http is a local emulator, whose URIs stand as they are).
    let verify = client.config().host.starts_with("https://");
    // Do not echo the URI in an error: it holds the password.
    PgConfig::parse(uri.expose())
        .map(|c| {
            if verify {
                c.direct().verified()
            } else {
                c.direct()
            }
        })
        .map_err(|_| {
            JobError::BadInput(format!(
                "the Neon API returned an unusable connection URI for {spec}"
            ))
        })
}

/// The connection URL, password included, of a `neon://PROJECT/BRANCH/DATABASE?role=ROLE`
/// reference (the pooled host with `pooled`), for a caller that hands it on on purpose (a CI
/// job's `DATABASE_URL`). Nothing in ferry prints it unless asked.
pub async fn neon_connection_url(
    reference: &str,
    pooled: bool,
) -> Result<crate::secret::Secret, JobError> {
    let crate::neon::Reference {
        project,
        branch,
        database: db,
        role,
    } = crate::neon::Reference::parse(reference).ok_or_else(|| {
        JobError::BadInput(format!(
            "{reference:?} is not a neon://PROJECT/BRANCH/DATABASE?role=ROLE reference"
        ))
    })?;
    let client = NeonClient::from_env().await?;
    let branch = client.resolve_branch(&project, &branch).await?;
    Ok(client
        .connection_uri(&project, &branch.id, &db, &role, pooled)
        .await?)
}

/// The JSON Schemas of every job's input and output, by file name (`snapshot.input.json`, …),
/// as committed under `infra/schemas/`: the contract between the Lambdas and the state machines.
pub fn schemas() -> Vec<(String, serde_json::Value)> {
    fn schema<T: schemars::JsonSchema>() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialize")
    }
    vec![
        ("snapshot.input.json".into(), schema::<SnapshotRequest>()),
        ("snapshot.output.json".into(), schema::<SnapshotResponse>()),
        ("restore.input.json".into(), schema::<RestoreInput>()),
        ("restore.output.json".into(), schema::<RestoreOutput>()),
        ("import-csv.input.json".into(), schema::<ImportCsvInput>()),
        ("import-csv.output.json".into(), schema::<ImportCsvOutput>()),
        ("validate.input.json".into(), schema::<ValidateInput>()),
        ("validate.output.json".into(), schema::<ValidateOutput>()),
        ("branch.input.json".into(), schema::<BranchInput>()),
        ("branch.output.json".into(), schema::<BranchOutput>()),
        ("check.input.json".into(), schema::<CheckInput>()),
        ("check.output.json".into(), schema::<CheckOutput>()),
    ]
}
