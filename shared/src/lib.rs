//! ferry: move data in and out of Neon Postgres branches.
//!
//! All real work lives in this crate. The Lambda functions under `functions/` and the `ferry`
//! command line under `cli/` are thin shells that parse their input and call one async function
//! of [`jobs`]; nothing here depends on them.
//!
//! The modules are split by job, not by technical kind:
//! - [`pg`]: connecting to PostgreSQL (URLs, `PG*` variables, `sslmode` over rustls, Neon pooler
//!   hosts, retries while a compute starts);
//! - [`store`]: the object store (`s3://` and `file://`), shaped like S3;
//! - [`jobs`]: one async function per job, typed input to typed output;
//! - [`sql`]: the one quoting layer every statement, script and listing goes through;
//! - [`secret`] and [`retry`]: the two policies every other module shares (secrets never print,
//!   retries have one shape).

pub mod archive;
mod aws;
pub mod catalog;
pub mod import;
pub mod jobs;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod manifest;
pub mod neon;
pub mod pattern;
pub mod pg;
pub mod progress;
pub mod restore;
pub mod retry;
pub mod secret;
pub mod secrets_manager;
pub mod snapshot;
pub mod sql;
pub mod store;
pub mod validate;

/// The version of ferry, recorded in manifests and reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
