//! The Neon API v2 client: branches, operations, connection URIs, databases, roles, projects.
//!
//! Shaped by what has hurt Neon's own clients (see the project's notes on the API):
//! - every write is asynchronous: [`NeonClient`] waits for every operation a write returns
//!   before handing the result back, so nobody connects to a branch that is not ready;
//! - 423, 429, 503 (and other 5xx and timeouts, for requests that are safe to repeat) are retried
//!   with the one [`Backoff`] policy, honouring `Retry-After`;
//! - after a network error on a write that is not safe to repeat, the client reads the state
//!   back instead of replaying the write blindly;
//! - branches are got-or-created by exact name ([`NeonClient::get_or_create_branch`]);
//! - the API key lives in a [`Secret`] and never reaches a log line or an error.

mod client;
pub mod models;

use std::time::Duration;

pub(crate) use client::segment;
pub use client::{
    BranchInfo, CreateBranch, InitSource, NeonClient, PointInTime, UpdateBranch, parse_expiry,
};

use crate::{retry::Backoff, secret::Secret, secrets_manager::SecretError};

/// A database on a Neon branch, named without its password:
/// `neon://PROJECT/BRANCH/DATABASE?role=ROLE` (each part percent-encoded). The password is read
/// from the Neon API when a job connects, so the reference can travel in workflow payloads and
/// logs. The one parser and writer of these references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub project: String,
    /// The branch's id or name.
    pub branch: String,
    pub database: String,
    pub role: String,
}

impl Reference {
    /// The parts of a `neon://` reference, decoded; `None` when `spec` is not one (another
    /// scheme, a missing part or role, bad percent-encoding).
    pub fn parse(spec: &str) -> Option<Reference> {
        let rest = spec.strip_prefix("neon://")?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let dec = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        let [project, branch, database] = path.split('/').collect::<Vec<_>>()[..] else {
            return None;
        };
        let role = query.split('&').find_map(|kv| kv.strip_prefix("role="))?;
        Some(Reference {
            project: dec(project)?,
            branch: dec(branch)?,
            database: dec(database)?,
            role: dec(role)?,
        })
    }

    /// Whether `spec` is meant as a `neon://` reference (well formed or not).
    pub fn is_reference(spec: &str) -> bool {
        spec.starts_with("neon://")
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "neon://{}/{}/{}?role={}",
            segment(&self.project),
            segment(&self.branch),
            segment(&self.database),
            segment(&self.role)
        )
    }
}

/// Neon's public API.
pub const DEFAULT_API_HOST: &str = "https://console.neon.tech/api/v2";

/// Neon refuses `expires_at` more than 30 days ahead (API reference, "Create a branch").
pub const MAX_EXPIRY: Duration = Duration::from_secs(30 * 24 * 3600);

/// How to reach the Neon API.
#[derive(Debug, Clone)]
pub struct NeonConfig {
    pub api_key: Secret,
    /// Base URL, `https://console.neon.tech/api/v2` unless `NEON_API_HOST` says otherwise.
    pub host: String,
    /// Retry policy for 423/429/5xx and network errors.
    pub retry: Backoff,
    /// Time limit of one HTTP request.
    pub request_timeout: Duration,
    /// How long to wait for the operations of one write to finish.
    pub operation_timeout: Duration,
    /// First delay between operation polls (grows to 2 s).
    pub poll_interval: Duration,
    /// Branches per page when listing.
    pub page_size: u32,
}

impl NeonConfig {
    pub fn new(api_key: Secret, host: impl Into<String>) -> NeonConfig {
        NeonConfig {
            api_key,
            host: host.into().trim_end_matches('/').to_string(),
            retry: Backoff {
                initial: Duration::from_millis(500),
                max_delay: Duration::from_secs(10),
                max_elapsed: Duration::from_secs(120),
            },
            request_timeout: Duration::from_secs(30),
            operation_timeout: Duration::from_secs(600),
            poll_interval: Duration::from_millis(250),
            page_size: 100,
        }
    }

    /// `NEON_API_KEY` (the key itself, or a Secrets Manager reference to it), `NEON_API_HOST`,
    /// and `FERRY_NEON_RETRY_SECONDS`: how long one call keeps retrying 423/429/5xx (default
    /// 120; a workflow may prefer to retry in its own state instead).
    pub async fn from_env() -> Result<NeonConfig, NeonError> {
        let key = std::env::var("NEON_API_KEY")
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or(NeonError::MissingKey)?;
        let key = if crate::secrets_manager::is_reference(&key) {
            crate::secrets_manager::fetch(&key).await?
        } else {
            Secret::new(key)
        };
        let host = std::env::var("NEON_API_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| DEFAULT_API_HOST.to_string());
        let mut config = NeonConfig::new(key, host);
        if let Ok(seconds) = std::env::var("FERRY_NEON_RETRY_SECONDS") {
            config.retry.max_elapsed = seconds
                .trim()
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| {
                    NeonError::BadInput(format!(
                        "FERRY_NEON_RETRY_SECONDS {seconds:?} is not a number of seconds"
                    ))
                })?;
        }
        Ok(config)
    }
}

/// Why a Neon API call failed. Never carries the API key or a password.
#[derive(Debug, thiserror::Error)]
pub enum NeonError {
    #[error("no Neon API key: set NEON_API_KEY (the key, or a Secrets Manager reference to it)")]
    MissingKey,
    #[error("bad input: {0}")]
    BadInput(String),
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// 423: the project kept running a conflicting operation for the whole retry budget.
    #[error(
        "Neon project is busy with another operation (423 Locked) on {method} {path}; gave up after {attempts} attempts"
    )]
    Locked {
        method: String,
        path: String,
        attempts: u32,
    },
    /// 429 or 5xx for the whole retry budget.
    #[error(
        "Neon API unavailable on {method} {path}: HTTP {status} after {attempts} attempts: {message}"
    )]
    Unavailable {
        method: String,
        path: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    #[error("network error on {method} {path}: {reason}")]
    Network {
        method: String,
        path: String,
        reason: String,
    },
    #[error("Neon API refused {method} {path}: HTTP {status}: {message}")]
    Api {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    #[error("unexpected response to {method} {path}: {reason}")]
    Decode {
        method: String,
        path: String,
        reason: String,
    },
    #[error("Neon operation {id} ({action}) ended {status}{}", error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    OperationFailed {
        id: String,
        action: String,
        status: String,
        error: Option<String>,
    },
    #[error("timed out after {}s waiting for {what}", after.as_secs())]
    TimedOut { what: String, after: Duration },
    #[error(transparent)]
    Secret(#[from] SecretError),
}

impl NeonError {
    /// Whether running the same step again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            NeonError::Locked { .. }
            | NeonError::Unavailable { .. }
            | NeonError::Network { .. }
            | NeonError::TimedOut { .. } => true,
            NeonError::Secret(e) => e.is_retryable(),
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, NeonError::NotFound { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_read_back_what_they_write() {
        let r = Reference {
            project: "p-1".into(),
            branch: "br/main x".into(),
            database: "my db?".into(),
            role: "app&role".into(),
        };
        let text = r.to_string();
        assert!(
            !text[7..].contains(' ') && text.matches('?').count() == 1,
            "{text}"
        );
        assert_eq!(Reference::parse(&text), Some(r));
        assert_eq!(
            Reference::parse("neon://p/b/d?role=r"),
            Some(Reference {
                project: "p".into(),
                branch: "b".into(),
                database: "d".into(),
                role: "r".into()
            })
        );
        for bad in [
            "neon://p/b/d",
            "neon://p/b?role=r",
            "neon://p/b/d/e?role=r",
            "neon://p/b/%ff?role=r",
            "postgres://p/b/d?role=r",
        ] {
            assert_eq!(Reference::parse(bad), None, "{bad}");
        }
    }
}
