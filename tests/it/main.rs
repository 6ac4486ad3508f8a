//! Integration tests: one binary, so the servers of the local stack start once per run.

mod cli;
mod lambda;
mod pg_connect;
mod store;
