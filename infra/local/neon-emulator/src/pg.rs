//! The emulator's work on the real PostgreSQL server: roles, database copies, drops.
//!
//! It quotes with two helpers of its own rather than ferry's `sql` module, on purpose: the
//! emulator stands in for Neon and shares no code with the product it tests, so that a bug in
//! ferry's quoting layer cannot hide behind the same bug here.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Config, NoTls, error::SqlState};

/// A quoted SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal, meaning the same whatever `standard_conforming_strings` is
/// (`E'...'` with backslashes doubled when the text holds one).
fn literal(value: &str) -> String {
    let quoted = value.replace('\'', "''");
    if value.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

pub struct Admin {
    config: Config,
    /// Host and port clients use to reach the server.
    pub host: String,
    pub port: u16,
    pub sslmode: String,
}

impl Admin {
    pub fn new(url: &str, connect_host: Option<String>, sslmode: String) -> Result<Admin, String> {
        let config: Config = url.parse().map_err(|e| format!("--postgres: {e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => return Err("--postgres must name a TCP host".into()),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Ok(Admin {
            config,
            host: connect_host.unwrap_or(host),
            port,
            sslmode,
        })
    }

    async fn connect(&self, dbname: Option<&str>) -> Result<Client, String> {
        let mut config = self.config.clone();
        if let Some(db) = dbname {
            config.dbname(db);
        }
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(|e| format!("admin connection: {e}"))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    async fn execute(&self, sql: &str) -> Result<(), String> {
        let client = self.connect(None).await?;
        client.batch_execute(sql).await.map_err(|e| describe(&e))
    }

    /// Creates the login role (or resets its password) that connection URIs use. Several
    /// emulators may start at once on one server: they take turns (an advisory lock), since
    /// two concurrent changes of one role fail with "tuple concurrently updated".
    pub async fn ensure_role(&self, role: &str, password: &str) -> Result<(), String> {
        let mut client = self.connect(None).await?;
        let tx = client.transaction().await.map_err(|e| describe(&e))?;
        tx.batch_execute("SELECT pg_advisory_xact_lock(7310431)")
            .await
            .map_err(|e| describe(&e))?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&role],
            )
            .await
            .map_err(|e| describe(&e))?
            .is_some();
        let verb = if exists { "ALTER" } else { "CREATE" };
        tx.batch_execute(&format!(
            "{verb} ROLE {} LOGIN CREATEDB PASSWORD {}",
            ident(role),
            literal(password)
        ))
        .await
        .map_err(|e| describe(&e))?;
        tx.commit().await.map_err(|e| describe(&e))
    }

    pub async fn create_database(
        &self,
        real: &str,
        owner: &str,
        template: Option<&str>,
    ) -> Result<(), String> {
        let template = template
            .map(|t| format!(" TEMPLATE {}", ident(t)))
            .unwrap_or_default();
        let sql = format!(
            "CREATE DATABASE {} OWNER {}{template}",
            ident(real),
            ident(owner)
        );
        let client = self.connect(None).await?;
        // CREATE DATABASE ... TEMPLATE fails while anyone is connected to the template. Wait a
        // little for them to leave, then end their sessions (as a compute restart would).
        let started = Instant::now();
        loop {
            match client.batch_execute(&sql).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                    if started.elapsed() > Duration::from_secs(5)
                        && let Some(t) = template_name(&sql)
                    {
                        tracing::warn!(template = %t, "ending sessions on the parent database to copy it");
                        client
                            .execute(
                                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                                &[&t],
                            )
                            .await
                            .map_err(|e| describe(&e))?;
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        return Err(describe(&e));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(describe(&e)),
            }
        }
    }

    /// Removes the rows of every table, keeping the schema (`init_source: schema-only`).
    pub async fn truncate_all(&self, real: &str) -> Result<(), String> {
        let client = self.connect(Some(real)).await?;
        let tables = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND n.nspname NOT LIKE 'pg_toast%'",
                &[],
            )
            .await
            .map_err(|e| describe(&e))?;
        let names: Vec<String> = tables.iter().map(|r| r.get(0)).collect();
        if !names.is_empty() {
            client
                .batch_execute(&format!("TRUNCATE {} CASCADE", names.join(", ")))
                .await
                .map_err(|e| describe(&e))?;
        }
        Ok(())
    }

    pub async fn allow_connections(&self, real: &str, allow: bool) -> Result<(), String> {
        self.execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS {allow}",
            ident(real)
        ))
        .await
    }

    pub async fn drop_database(&self, real: &str) -> Result<(), String> {
        self.execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            ident(real)
        ))
        .await
    }

    pub async fn database_exists(&self, name: &str) -> Result<bool, String> {
        let client = self.connect(None).await?;
        Ok(client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await
            .map_err(|e| describe(&e))?
            .is_some())
    }
}

fn template_name(sql: &str) -> Option<String> {
    let start = sql.find(" TEMPLATE \"")? + " TEMPLATE \"".len();
    let rest = &sql[start..];
    let end = rest.rfind('"')?;
    Some(rest[..end].replace("\"\"", "\""))
}

fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}
