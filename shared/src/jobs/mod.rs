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
mod validate;

use std::{sync::Arc, time::SystemTime};

pub use branch::{BranchAction, BranchInput, BranchOutput, branch};
pub use check::{CheckInput, CheckOutput, PgCheck, StoreCheck, check};
pub use import_csv::{ImportCsvInput, ImportCsvOutput, import_csv};
pub use restore::{RestoreInput, RestoreOutput, restore};
pub use snapshot::{SnapshotInput, SnapshotOutput, snapshot};
pub use validate::{ValidateInput, ValidateOutput, validate};

use crate::{
    pg::PgError,
    progress::{SharedProgress, Silent},
    secrets_manager::SecretError,
    store::{StoreConfig, StoreError},
};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The input is wrong; retrying the same input cannot help.
    #[error("bad input: {0}")]
    BadInput(String),
    /// The job is not built yet. Never a fake success.
    #[error("ferry {job} is not implemented yet (tracked in issue #{issue})")]
    NotImplemented { job: &'static str, issue: u32 },
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl JobError {
    /// The stable `errorType` a Lambda failure carries (see infra/README.md for the list).
    pub fn error_type(&self) -> &'static str {
        match self {
            JobError::BadInput(_) => "Ferry.BadInput",
            JobError::NotImplemented { .. } => "Ferry.NotImplemented",
            JobError::Postgres(PgError::BadConfig(_)) => "Ferry.BadInput",
            JobError::Postgres(PgError::Auth { .. }) => "Ferry.AuthFailed",
            JobError::Postgres(e) if e.is_retryable() => "Ferry.PostgresUnavailable",
            JobError::Postgres(_) => "Ferry.PostgresError",
            JobError::Store(StoreError::BadUrl { .. } | StoreError::BadKey { .. }) => {
                "Ferry.BadInput"
            }
            JobError::Store(StoreError::NotFound { .. }) => "Ferry.NotFound",
            JobError::Store(e) if e.is_retryable() => "Ferry.StoreUnavailable",
            JobError::Store(_) => "Ferry.StoreError",
            JobError::Secret(SecretError::NotFound { .. } | SecretError::Malformed { .. }) => {
                "Ferry.BadInput"
            }
            JobError::Secret(_) => "Ferry.SecretUnavailable",
        }
    }

    /// Whether running the same job again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            JobError::Postgres(e) => e.is_retryable(),
            JobError::Store(e) => e.is_retryable(),
            JobError::Secret(e) => e.is_retryable(),
            JobError::BadInput(_) | JobError::NotImplemented { .. } => false,
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
