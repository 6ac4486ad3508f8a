//! Integration tests: one binary, so the servers of the local stack start once per run.

mod action;
mod archive;
mod cli;
mod contract;
mod iam;
mod import;
mod lambda;
mod neon;
mod pg_connect;
mod pieces;
mod restore;
mod schemas;
mod secrets;
mod snapshot;
mod snapshots;
mod store;
mod validate;
mod validate_mutations;
mod workflows;
