//! Connecting to PostgreSQL: from a libpq-style URL or the usual `PG*` variables, with every
//! `sslmode` over rustls, Neon pooler hosts recognised, and retries while a server starts.
//!
//! [`PgConfig`] is what to connect to (it redacts its password when printed); [`connect`] opens
//! one session with the retry policy; [`tls`] builds the rustls configuration for each `sslmode`.
//! Dump and restore call [`PgConfig::direct`] first: Neon's `-pooler` hosts run PgBouncer in
//! transaction mode, which breaks session state that `COPY`, exported snapshots and `SET` rely on.

mod config;
mod connect;
mod error;
pub mod tls;

pub use config::{PgConfig, SslMode};
pub use connect::{Session, connect};
pub use error::{PgError, WITHHELD, server_message, values_shown};
