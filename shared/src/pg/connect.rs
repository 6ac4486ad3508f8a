//! Opening a session: TLS per `sslmode`, and retries with the one backoff policy while the
//! server is starting or unreachable; permanent failures are classified into clear errors.

use std::{ops::Deref, time::Duration};

use tokio_postgres::{Client, NoTls, Row, error::SqlState, types::ToSql};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{
    PgConfig, PgError,
    error::{describe, io_error, is_transient, reach_hint, silent_hint, tls_error},
    tls,
};

/// An open session. The connection runs on its own task, which ends when the session is dropped.
pub struct Session {
    client: Client,
    connection: tokio::task::JoinHandle<()>,
}

impl Session {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether the server closed the session (it was terminated or the server went away).
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.connection.is_finished()
    }
}

/// Statements without parameters in one round trip, not two: the driver's `query` and
/// `execute` first prepare a named statement (Parse, Describe, Sync: one round trip) and then
/// run it (a second one), where the typed variants send Parse, Bind, Describe and Execute
/// together. Over the 1 to 2 ms between a Lambda and a Neon compute, a snapshot's few hundred
/// catalog queries are most of a small database's snapshot.
///
/// `execute` shadows [`Client::execute`] (it returns no rows). The queries are
/// `query_catalog*`, for catalog queries only, whose columns are of built-in types: the
/// driver's typed query (tokio-postgres 0.7.18) looks up a type it does not know (an enum, a
/// domain, an extension's type) in the middle of the response, and with more rows than its
/// channel holds that lookup never returns (rust-postgres pull requests 1348 and 1349). With
/// parameters they keep the driver's path (it learns the parameters' types from the server);
/// hot ones call `query_typed` with the types.
impl Session {
    pub async fn query_catalog(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        if params.is_empty() {
            self.client.query_typed(sql, &[]).await
        } else {
            self.client.query(sql, params).await
        }
    }

    pub async fn query_catalog_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        if params.is_empty() {
            self.client.query_typed_one(sql, &[]).await
        } else {
            self.client.query_one(sql, params).await
        }
    }

    pub async fn query_catalog_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        if params.is_empty() {
            self.client.query_typed_opt(sql, &[]).await
        } else {
            self.client.query_opt(sql, params).await
        }
    }

    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        if params.is_empty() {
            self.client.execute_typed(sql, &[]).await
        } else {
            self.client.execute(sql, params).await
        }
    }
}

impl Deref for Session {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// Opens a session, retrying with `config.retry` while the server is starting, restarting or
/// refusing connections (a Neon compute waking up). Fails at once on a bad password, a TLS or
/// certificate problem, or a missing database; fails with [`PgError::Unreachable`] when the
/// retry budget runs out.
pub async fn connect(config: &PgConfig) -> Result<Session, PgError> {
    let tls = tls::client_config(config)?.map(MakeRustlsConnect::new);
    let driver = config.driver_config();
    let mut attempts = config.retry.start();
    loop {
        let attempt = async {
            match &tls {
                Some(tls) => driver
                    .connect(tls.clone())
                    .await
                    .map(|(client, conn)| Session {
                        client,
                        connection: tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "PostgreSQL connection ended");
                            }
                        }),
                    }),
                None => driver.connect(NoTls).await.map(|(client, conn)| Session {
                    client,
                    connection: tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "PostgreSQL connection ended");
                        }
                    }),
                }),
            }
        };
        // The driver's connect_timeout covers the TCP connect only; a host that accepts and
        // then says nothing (a proxy or firewall swallowing the packets) would hang the whole
        // attempt. The handshake gets the same limit, plus TLS setup time.
        let limit = config.connect_timeout + Duration::from_secs(5);
        let (last_error, hint) = match tokio::time::timeout(limit, attempt).await {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(error)) => {
                if !is_transient(&error) {
                    return Err(classify(config, &error));
                }
                (describe(&error), reach_hint(&error, config.connect_timeout))
            }
            Err(_) => (
                format!(
                    "the server accepted the connection but did not answer within {}s",
                    limit.as_secs()
                ),
                silent_hint(config.connect_timeout),
            ),
        };
        let Some(delay) = attempts.next_delay(None) else {
            return Err(PgError::Unreachable {
                target: config.target(),
                attempts: attempts.count(),
                elapsed: attempts.elapsed(),
                last_error,
                hint,
            });
        };
        tracing::info!(
            target = %config.target(),
            attempt = attempts.count() - 1,
            retry_in_ms = delay.as_millis() as u64,
            error = %last_error,
            "PostgreSQL not reachable yet; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Turns a permanent connection failure into an error that says what to fix.
fn classify(config: &PgConfig, error: &tokio_postgres::Error) -> PgError {
    let target = config.target();
    if let Some(code) = error.code() {
        if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
        {
            return PgError::Auth {
                target,
                reason: describe(error),
            };
        }
        return PgError::Connect {
            target,
            reason: describe(error),
        };
    }
    if let Some(rustls) = io_error(error).and_then(tls_error) {
        return PgError::Tls {
            target,
            sslmode: config.sslmode.as_str(),
            reason: rustls.to_string(),
        };
    }
    let reason = describe(error);
    // tokio-postgres reports a server without TLS only in its message; it has no error kind.
    if reason.contains("server does not support TLS") {
        return PgError::Tls {
            target,
            sslmode: config.sslmode.as_str(),
            reason: "the server does not accept TLS connections".into(),
        };
    }
    PgError::Connect { target, reason }
}
