//! What can go wrong talking to PostgreSQL, and which failures a retry can fix (asked of the
//! error, never read from message text, except where the driver offers nothing else).

use std::time::Duration;

use tokio_postgres::error::SqlState;

/// Why talking to PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The connection string or a `PG*` variable is malformed.
    #[error("invalid PostgreSQL connection settings: {0}")]
    BadConfig(String),

    /// The server refused the credentials. Never retried: the password will not get better.
    #[error("authentication failed connecting to {target}: {reason}")]
    Auth { target: String, reason: String },

    /// TLS could not be established or the server's certificate was not trusted.
    #[error("TLS failure connecting to {target} (sslmode={sslmode}): {reason}")]
    Tls {
        target: String,
        sslmode: &'static str,
        reason: String,
    },

    /// The server could not be reached, every attempt failed with a transient error.
    #[error(
        "could not connect to {target} after {attempts} attempt(s) over {:.1}s: {last_error}{hint}",
        elapsed.as_secs_f64()
    )]
    Unreachable {
        target: String,
        attempts: u32,
        elapsed: Duration,
        last_error: String,
        /// What to check, when the failure suggests it (empty or starting with `; `).
        hint: String,
    },

    /// Connecting failed for a reason retrying would not fix.
    #[error("could not connect to {target}: {reason}")]
    Connect { target: String, reason: String },

    /// Reading a credential from AWS Secrets Manager failed.
    #[error(transparent)]
    Secret(#[from] crate::secrets_manager::SecretError),

    /// A statement failed on an open session.
    #[error("{}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
}

impl PgError {
    /// Whether retrying the same thing later can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            PgError::Unreachable { .. } => true,
            PgError::Query(e) => is_transient(e),
            _ => false,
        }
    }
}

/// What to check when nothing answered: the usual cause is a network path that does not exist
/// (a Lambda function in a VPC without a route to the database).
pub(crate) fn reach_hint(error: &tokio_postgres::Error, connect_timeout: Duration) -> String {
    let silent = match io_error(error) {
        Some(io) => matches!(
            io.kind(),
            std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable
        ),
        None => error.to_string().contains("timed out") && error.as_db_error().is_none(),
    };
    if !silent {
        return String::new();
    }
    silent_hint(connect_timeout)
}

/// The hint for a host that did not answer: which timeout, and the network path to check.
pub(crate) fn silent_hint(connect_timeout: Duration) -> String {
    format!(
        "; nothing answered within the connect timeout ({}s; connect_timeout in the URL or \
         PGCONNECT_TIMEOUT): check the network path. A Lambda function attached to a VPC reaches \
         only what the VPC routes to: a public database such as Neon needs a NAT gateway (or \
         the function outside the VPC); a private one, the right subnets and security groups",
        connect_timeout.as_secs()
    )
}

/// The SQLSTATE codes a starting, restarting or overloaded server answers with.
const TRANSIENT_STATES: &[SqlState] = &[
    SqlState::ADMIN_SHUTDOWN,     // 57P01: the compute was stopped under us
    SqlState::CANNOT_CONNECT_NOW, // 57P03: the server is starting up
    SqlState::CRASH_SHUTDOWN,     // 57P02
    SqlState::TOO_MANY_CONNECTIONS,
    SqlState::CONNECTION_FAILURE,
];

/// Whether a driver error is one that waiting and trying again can fix: a refused or dropped
/// connection, a timeout, or one of [`TRANSIENT_STATES`].
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    if let Some(code) = e.code() {
        return TRANSIENT_STATES.contains(code);
    }
    if e.is_closed() {
        return true;
    }
    match io_error(e) {
        Some(io) => {
            use std::io::ErrorKind::*;
            if tls_error(io).is_some() {
                return false;
            }
            matches!(
                io.kind(),
                ConnectionRefused
                    | ConnectionReset
                    | ConnectionAborted
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | AddrNotAvailable
            )
        }
        // tokio-postgres reports its own connect timeout without an io::Error inside.
        None => e.to_string().contains("timed out") && e.as_db_error().is_none(),
    }
}

pub(crate) fn io_error(e: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = s.source();
    }
    None
}

/// The rustls error inside an io::Error, when TLS is what failed.
pub(crate) fn tls_error(io: &std::io::Error) -> Option<&rustls::Error> {
    io.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Whether errors may quote values from the data: `FERRY_ERROR_VALUES=true`. By default they
/// do not, since errors travel to logs, workflow payloads and notifications: a server's DETAIL
/// (`Key (email)=(ada@example.com) already exists`, `Failing row contains (...)`) is withheld,
/// and so is the message of a data exception (SQLSTATE class 22), which quotes the value it
/// refused (`invalid input syntax for type integer: "..."`).
pub fn values_shown() -> bool {
    static SHOWN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOWN.get_or_init(|| std::env::var("FERRY_ERROR_VALUES").as_deref() == Ok("true"))
}

/// What is said instead of a withheld message or detail.
pub const WITHHELD: &str = "withheld: it can quote row values; FERRY_ERROR_VALUES=true shows it";

/// A server error's message as ferry reports it: a data exception's (class 22, which quotes the
/// value) or a PL/pgSQL `RAISE`'s (class P0, whose text a trigger may build from the row's
/// values) replaced by what the error's fields say, unless values are shown.
pub fn server_message(db: &tokio_postgres::error::DbError, values: bool) -> String {
    let code = db.code().code();
    if values || !(code.starts_with("22") || code.starts_with("P0")) {
        return db.message().to_string();
    }
    let mut s = "a value was refused".to_string();
    if let Some(column) = db.column() {
        s.push_str(&format!(" in column {}", crate::sql::display_name(column)));
    }
    if let Some(datatype) = db.datatype() {
        s.push_str(&format!(" (type {datatype})"));
    }
    s.push_str(&format!(" (the server's message {WITHHELD})"));
    s
}

/// A driver error with its server-side detail, which tokio-postgres leaves out of `Display`;
/// without values (see [`values_shown`]).
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let values = values_shown();
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "{}: {} (SQLSTATE {})",
                db.severity(),
                server_message(db, values),
                db.code().code()
            );
            match db.detail() {
                Some(detail) if values => s.push_str(&format!("; detail: {detail}")),
                Some(_) => s.push_str(&format!("; detail {WITHHELD}")),
                None => {}
            }
            if let Some(hint) = db.hint() {
                s.push_str(&format!("; hint: {hint}"));
            }
            if *db.code() == SqlState::QUERY_CANCELED && db.message().contains("statement timeout")
            {
                s.push_str(
                    "; the statement timeout stopped it (FERRY_PG_STATEMENT_TIMEOUT, or \
                     -c statement_timeout in the connection's options): raise it or leave it unset",
                );
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                let text = inner.to_string();
                if !s.contains(&text) {
                    s.push_str(": ");
                    s.push_str(&text);
                }
                source = inner.source();
            }
            s
        }
    }
}
