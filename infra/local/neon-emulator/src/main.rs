//! `neon-emulator`: a local stand-in for the Neon API v2, backed by a real PostgreSQL server.
//!
//! It serves the calls ferry's workflows make (projects, branches, endpoints, operations,
//! databases, roles, connection URIs) with the JSON shapes of Neon's OpenAPI document. A branch
//! is a real copy of its parent's databases (`CREATE DATABASE ... TEMPLATE`), reachable through
//! the connection URI the API hands out, with a role whose password works (the server must ask
//! for passwords on TCP). Writes return operations that move scheduling -> running -> finished
//! in the background; until they finish, the branch's databases refuse connections, as a Neon
//! branch does before its compute is up.
//!
//! Faults can be switched on at run time through `POST /_emulator/faults` (429/503 bursts, slow
//! or failing operations, dropped connections) or per request with `X-Neon-Emulator-Fault`.
//!
//! This crate shares no code with ferry's client on purpose: two independent sides of one
//! contract are what make the contract tests mean something.

mod api;
mod names;
mod pg;
mod state;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use clap::Parser;

/// A local Neon API v2 backed by a real PostgreSQL server.
#[derive(Parser, Debug)]
#[command(name = "neon-emulator", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen one is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Superuser connection URL of the PostgreSQL server that holds the branches' databases
    /// (plain TCP: `sslmode=disable`).
    #[arg(long, env = "NEON_EMULATOR_POSTGRES")]
    postgres: String,
    /// The API key clients must send as `Authorization: Bearer KEY`.
    #[arg(long, env = "NEON_EMULATOR_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Id of the project that exists at start (random when omitted).
    #[arg(long)]
    project_id: Option<String>,
    /// Fill the starting project's `neondb` with a copy of this existing database.
    #[arg(long)]
    seed_from: Option<String>,
    /// Password of the `neondb_owner` role (random when omitted). Emulators sharing one
    /// PostgreSQL server must agree on it, since roles belong to the whole server.
    #[arg(long, env = "NEON_EMULATOR_ROLE_PASSWORD", hide_env_values = true)]
    role_password: Option<String>,
    /// How long operations take from scheduling to finished.
    #[arg(long, default_value = "300")]
    operation_delay_ms: u64,
    /// Host name put in endpoint hosts and connection URIs (default: the PostgreSQL host).
    #[arg(long)]
    connect_host: Option<String>,
    /// `sslmode` put in connection URIs.
    #[arg(long, default_value = "prefer")]
    uri_sslmode: String,
    /// Append every API exchange (method, path, query, bodies, status) to this file as JSON
    /// lines, for contract checks.
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("RUST_LOG").unwrap_or_else(|_| "neon_emulator=info".into()),
        ))
        .with_writer(std::io::stderr)
        .init();
    // A dropped connection is injected by abandoning the request's task: keep that quiet.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() == Some(&api::DROP_CONNECTION) {
            tracing::info!("fault injection: dropping the connection");
        } else {
            default_hook(info);
        }
    }));
    let args = Args::parse();
    let admin = pg::Admin::new(
        &args.postgres,
        args.connect_host.clone(),
        args.uri_sslmode.clone(),
    )?;
    let role_password = args.role_password.clone().unwrap_or_else(names::password);
    admin.ensure_role(names::OWNER_ROLE, &role_password).await?;
    let state = state::Emulator::new(
        args.api_key.clone(),
        admin,
        role_password,
        Duration::from_millis(args.operation_delay_ms),
        args.record.clone(),
    )?;
    let project_id = state
        .create_initial_project(args.project_id.clone(), args.seed_from.as_deref())
        .await?;
    let state = Arc::new(state);
    state::spawn_expiry_sweeper(state.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    // The first line on stdout tells a harness where to connect.
    println!(
        "{}",
        serde_json::json!({"listening": addr.to_string(), "project_id": project_id})
    );
    tracing::info!(%addr, %project_id, "neon-emulator ready");
    axum::serve(listener, api::router(state)).await?;
    Ok(())
}
