//! The local stack the integration tests run against: real server processes, started on
//! loopback by the test run itself and stopped when it ends.
//!
//! - [`PgServer`]: a private PostgreSQL cluster (`initdb` + `postgres`), on a free port, with TLS
//!   from a CA generated for the run, SCRAM passwords on TCP; it can be stopped and started again
//!   to stand in for a Neon compute restart.
//! - [`S3Server`]: `s3-server` (the `s3s-fs` backend), a real S3-compatible server process.
//!
//! Servers shared by many tests ([`shared_pg`], [`shared_s3`]) start once per test binary; every
//! process started here is killed when the test binary exits (see [`process`]).

pub mod aws;
pub mod lambda;
pub mod neon;
pub mod pg;
pub mod process;
pub mod s3;

pub use lambda::LambdaHost;
pub use neon::{EmulatorOptions, NeonEmulator, shared_emulator};
pub use pg::{
    PgServer, PgServerOptions, shared_pg, shared_pg_without_tls, shared_pg14, shared_pg17,
    shared_pg18,
};
pub use s3::{S3Server, shared_s3};

/// A fresh lowercase name for a test's own database, bucket or prefix.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}
