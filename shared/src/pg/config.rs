//! Connection settings: parsing libpq-style URLs, `key=value` strings, `PG*` variables and
//! Secrets Manager values into one [`PgConfig`] that never prints its password.

use std::{fmt, str::FromStr, time::Duration};

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};

use super::PgError;
use crate::{retry::Backoff, secret::Secret};

/// libpq's `sslmode`, with libpq's meaning for each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// Plain first; ferry treats it as `prefer` (TLS when offered, without verification).
    Allow,
    /// TLS when the server offers it, plain otherwise; the certificate is not verified.
    #[default]
    Prefer,
    /// TLS or nothing; the certificate is not verified unless `sslrootcert` is given, in which
    /// case it is verified as with `verify-ca` (as libpq does).
    Require,
    /// TLS, and the server's certificate chain must lead to a trusted root.
    VerifyCa,
    /// As `verify-ca`, and the certificate must name the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, PgError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(PgError::BadConfig(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                )));
            }
        })
    }
}

/// Where and how to connect to one PostgreSQL database.
///
/// Built from a libpq-style URL (`postgres://user:password@host:port/db?sslmode=...`), a
/// `key=value` connection string, the `PG*` environment variables, or a mix (fields the URL
/// leaves out come from the environment, as with libpq). Printing it never shows the password.
#[derive(Clone, Debug, PartialEq)]
pub struct PgConfig {
    /// Host name, IP address, or a directory holding a Unix socket (starts with `/`).
    pub host: String,
    /// libpq's `hostaddr`: the address to connect to instead of resolving `host`, which stays
    /// the name that TLS verifies and sends (and that the Neon rule looks at).
    pub hostaddr: Option<std::net::IpAddr>,
    pub port: u16,
    pub user: String,
    pub password: Option<Secret>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// A PEM file of trusted roots, or `system` for the bundled public roots (the default).
    pub sslrootcert: Option<String>,
    /// `channel_binding=require` refuses servers that cannot bind SCRAM to the TLS channel.
    pub channel_binding_required: bool,
    pub application_name: Option<String>,
    /// Server options (`-c name=value ...`), for example Neon's `endpoint=ep-...`.
    pub options: Option<String>,
    /// Time limit for one connection attempt.
    pub connect_timeout: Duration,
    /// Time limit for one statement (`FERRY_PG_STATEMENT_TIMEOUT`, seconds); the server's own
    /// setting when `None`. Restores lift it for their own statements.
    pub statement_timeout: Option<Duration>,
    /// How long to keep retrying while the server is not up yet (60 s, or
    /// `FERRY_PG_RETRY_SECONDS`).
    pub retry: Backoff,
}

/// A setting given in whole seconds, more than zero.
fn positive_seconds(name: &str, value: &str) -> Result<Duration, PgError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| {
            PgError::BadConfig(format!(
                "{name} {value:?} is not a positive number of seconds"
            ))
        })
}

/// Environment variables, injectable so parsing can be tested without touching the process.
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl PgConfig {
    /// Parses a URL or `key=value` string; what it leaves out comes from `PG*` variables.
    pub fn parse(s: &str) -> Result<Self, PgError> {
        Self::parse_with_env(s, &process_env)
    }

    /// Everything from the `PG*` variables (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGAPPNAME`, `PGCONNECT_TIMEOUT`, `PGOPTIONS`,
    /// `PGCHANNELBINDING`).
    pub fn from_env() -> Result<Self, PgError> {
        Self::parse_with_env("", &process_env)
    }

    /// Like [`PgConfig::parse`], and also accepts a Secrets Manager reference whose value is a
    /// connection URL or the JSON object RDS and others store (`host`, `port`, `username`,
    /// `password`, `dbname`, optional `sslmode`).
    pub async fn resolve(spec: &str) -> Result<Self, PgError> {
        if !crate::secrets_manager::is_reference(spec) {
            return Self::parse(spec);
        }
        let value = crate::secrets_manager::fetch(spec).await?;
        Self::from_secret_value(spec, value.expose(), &process_env)
    }

    pub(crate) fn from_secret_value(
        reference: &str,
        value: &str,
        env: Env<'_>,
    ) -> Result<Self, PgError> {
        let malformed = |reason: String| {
            PgError::Secret(crate::secrets_manager::SecretError::Malformed {
                reference: reference.to_string(),
                reason,
            })
        };
        let trimmed = value.trim();
        if !trimmed.starts_with('{') {
            // Do not echo the parse error: it could quote the value.
            return Self::parse_with_env(trimmed, env).map_err(|_| {
                malformed("the value is neither a connection URL nor a JSON object".into())
            });
        }
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
            .map_err(|_| malformed("the value is not a JSON object".into()))?;
        let mut fields = Fields::default();
        for (key, value) in object {
            let key = match key.as_str() {
                "username" => "user",
                "database" => "dbname",
                "engine" | "dbClusterIdentifier" | "dbInstanceIdentifier" | "dbname_default" => {
                    continue;
                }
                other => other,
            };
            let value = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(malformed(format!(
                        "the field {key:?} is not a string or number"
                    )));
                }
            };
            fields.set(key, value)?;
        }
        fields.into_config(env)
    }

    pub(crate) fn parse_with_env(s: &str, env: Env<'_>) -> Result<Self, PgError> {
        let s = s.trim();
        let mut fields = Fields::default();
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            fields.parse_url(s)?;
        } else if s.contains("://") {
            return Err(PgError::BadConfig(
                "a connection URL starts with postgres:// or postgresql://".into(),
            ));
        } else if !s.is_empty() {
            fields.parse_keywords(s)?;
        }
        fields.into_config(env)
    }

    /// `host:port/db` with the user, for messages; never the password.
    pub fn target(&self) -> String {
        format!("{}@{}:{}/{}", self.user, self.host, self.port, self.dbname)
    }

    /// The same settings, with the server's certificate and host name verified (`verify-full`):
    /// for connection URIs that the Neon API hands out, whatever `sslmode` they carry.
    pub fn verified(mut self) -> PgConfig {
        self.sslmode = SslMode::VerifyFull;
        self
    }

    /// Whether the host is a Neon connection pooler (`ep-...-pooler.region...`).
    pub fn is_pooler(&self) -> bool {
        self.host
            .split('.')
            .next()
            .is_some_and(|label| label.starts_with("ep-") && label.ends_with("-pooler"))
    }

    /// The same settings aimed at the direct (unpooled) compute when the host is a Neon pooler.
    /// Dump and restore need a real session: PgBouncer in transaction mode loses `SET`,
    /// exported snapshots and temporary state between statements.
    pub fn direct(&self) -> PgConfig {
        let mut direct = self.clone();
        if self.is_pooler() {
            let (label, rest) = self.host.split_once('.').unwrap_or((&self.host, ""));
            let label = label.trim_end_matches("-pooler");
            direct.host = if rest.is_empty() {
                label.to_string()
            } else {
                format!("{label}.{rest}")
            };
            // An address given for the pooler is not the compute's.
            direct.hostaddr = None;
            tracing::info!(
                pooler = %self.host,
                direct = %direct.host,
                "Neon pooler host given; using the direct host (dump and restore need a session)"
            );
        }
        direct
    }

    /// The same server, another database.
    pub fn with_dbname(&self, dbname: &str) -> PgConfig {
        PgConfig {
            dbname: dbname.to_string(),
            ..self.clone()
        }
    }

    pub(crate) fn driver_config(&self) -> tokio_postgres::Config {
        use tokio_postgres::config::{ChannelBinding, SslMode as DriverSsl};
        let mut c = tokio_postgres::Config::new();
        c.host(&self.host);
        if let Some(address) = self.hostaddr {
            c.hostaddr(address);
        }
        c.port(self.port)
            .user(&self.user)
            .dbname(&self.dbname)
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match self.sslmode {
                SslMode::Disable => DriverSsl::Disable,
                SslMode::Allow | SslMode::Prefer => DriverSsl::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => DriverSsl::Require,
            })
            .channel_binding(if self.channel_binding_required {
                ChannelBinding::Require
            } else {
                ChannelBinding::Prefer
            });
        if let Some(password) = &self.password {
            c.password(password.expose());
        }
        c.application_name(self.application_name.as_deref().unwrap_or("ferry"));
        if let Some(options) = self.startup_options() {
            c.options(&options);
        }
        c
    }

    /// The startup `options`: what was given, the statement timeout, and for a Neon endpoint
    /// host the `endpoint=ep-...` that Neon's proxy reads when the client's TLS handshake does
    /// not name the endpoint (no SNI: an IP address, a CNAME, a proxy in between).
    fn startup_options(&self) -> Option<String> {
        let mut parts: Vec<String> = self.options.iter().cloned().collect();
        if let Some(t) = self.statement_timeout {
            parts.push(format!("-c statement_timeout={}", t.as_millis()));
        }
        if let Some(endpoint) = self.neon_endpoint()
            && !parts.iter().any(|p| p.contains("endpoint="))
        {
            parts.push(format!("endpoint={endpoint}"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    /// The Neon endpoint id of a `ep-....neon.tech` host (without `-pooler`).
    pub fn neon_endpoint(&self) -> Option<String> {
        let (label, rest) = self.host.split_once('.')?;
        (label.starts_with("ep-") && (rest.ends_with("neon.tech") || rest.ends_with("neon.build")))
            .then(|| label.trim_end_matches("-pooler").to_string())
    }
}

impl fmt::Display for PgConfig {
    /// A URL with the password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_some() { ":***" } else { "" };
        write!(
            f,
            "postgres://{}{}@{}:{}/{}?sslmode={}",
            self.user, password, self.host, self.port, self.dbname, self.sslmode
        )
    }
}

/// The settings as given, before defaults and the environment fill the gaps.
#[derive(Default)]
struct Fields {
    host: Option<String>,
    hostaddr: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<Secret>,
    dbname: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    channel_binding: Option<String>,
    application_name: Option<String>,
    options: Option<String>,
    connect_timeout: Option<String>,
}

impl Fields {
    fn set(&mut self, key: &str, value: String) -> Result<(), PgError> {
        let slot = match key {
            "host" => &mut self.host,
            "hostaddr" => &mut self.hostaddr,
            "port" => &mut self.port,
            "user" => &mut self.user,
            "password" => {
                self.password = Some(Secret::new(value));
                return Ok(());
            }
            "dbname" => &mut self.dbname,
            "sslmode" => &mut self.sslmode,
            "sslrootcert" => &mut self.sslrootcert,
            "channel_binding" => &mut self.channel_binding,
            "application_name" => &mut self.application_name,
            "options" => &mut self.options,
            "connect_timeout" => &mut self.connect_timeout,
            // Accepted for compatibility with connection strings copied from elsewhere; ferry
            // always connects to one host and negotiates TLS the classic way.
            "target_session_attrs" | "sslnegotiation" | "gssencmode" | "client_encoding" => {
                return Ok(());
            }
            other => {
                return Err(PgError::BadConfig(format!(
                    "unknown connection parameter {other:?}"
                )));
            }
        };
        *slot = Some(value);
        Ok(())
    }

    fn parse_url(&mut self, s: &str) -> Result<(), PgError> {
        let url = url::Url::parse(s).map_err(|e| {
            PgError::BadConfig(format!(
                "not a valid URL ({e}); special characters in the password must be percent-encoded"
            ))
        })?;
        let decode = |v: &str, what: &str| {
            percent_decode_str(v)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    PgError::BadConfig(format!("the {what} is not valid UTF-8 once decoded"))
                })
        };
        if let Some(host) = url.host_str().filter(|h| !h.is_empty()) {
            let host = decode(host, "host")?;
            if host.contains(',') {
                return Err(PgError::BadConfig(
                    "several hosts in one URL are not supported: give one host".into(),
                ));
            }
            self.host = Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            );
        }
        if let Some(port) = url.port() {
            self.port = Some(port.to_string());
        }
        if !url.username().is_empty() {
            self.user = Some(decode(url.username(), "user name")?);
        }
        if let Some(password) = url.password() {
            self.password = Some(Secret::new(decode(password, "password")?));
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() {
            self.dbname = Some(decode(path, "database name")?);
        }
        for (key, value) in url.query_pairs() {
            self.set(&key, value.into_owned())?;
        }
        Ok(())
    }

    /// `host=... port=... dbname='my db'`: values may be single-quoted, with `\'` and `\\`.
    fn parse_keywords(&mut self, s: &str) -> Result<(), PgError> {
        let mut chars = s.chars().peekable();
        loop {
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.peek().is_none() {
                return Ok(());
            }
            let mut key = String::new();
            while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
                key.push(c);
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            if chars.next() != Some('=') {
                return Err(PgError::BadConfig(format!(
                    "missing \"=\" after {key:?} in the connection string"
                )));
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let mut value = String::new();
            if chars.next_if_eq(&'\'').is_some() {
                loop {
                    match chars.next() {
                        Some('\\') => value.extend(chars.next()),
                        Some('\'') => break,
                        Some(c) => value.push(c),
                        None => {
                            return Err(PgError::BadConfig(format!(
                                "unterminated quoted value for {key:?}"
                            )));
                        }
                    }
                }
            } else {
                while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                    if c == '\\' {
                        value.extend(chars.next());
                    } else {
                        value.push(c);
                    }
                }
            }
            self.set(&key, value)?;
        }
    }

    fn into_config(self, env: Env<'_>) -> Result<PgConfig, PgError> {
        let hostaddr_text = self.hostaddr.or_else(|| env("PGHOSTADDR"));
        let hostaddr = hostaddr_text
            .as_deref()
            .map(|a| {
                a.parse::<std::net::IpAddr>()
                    .map_err(|_| PgError::BadConfig(format!("hostaddr {a:?} is not an IP address")))
            })
            .transpose()?;
        let host = self
            .host
            .or_else(|| env("PGHOST"))
            .or(hostaddr_text)
            .unwrap_or_else(|| "localhost".into());
        let port = self
            .port
            .or_else(|| env("PGPORT"))
            .unwrap_or_else(|| "5432".into());
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                PgError::BadConfig(format!("port {port:?} is not a number from 1 to 65535"))
            })?;
        let user = self
            .user
            .or_else(|| env("PGUSER"))
            .or_else(|| env("USER"))
            .ok_or_else(|| {
                PgError::BadConfig("no user name: give one in the URL or PGUSER".into())
            })?;
        let password = self.password.or_else(|| env("PGPASSWORD").map(Secret::new));
        let dbname = self
            .dbname
            .or_else(|| env("PGDATABASE"))
            .unwrap_or_else(|| user.clone());
        let sslmode = match self.sslmode.or_else(|| env("PGSSLMODE")) {
            Some(mode) => mode.parse()?,
            None => SslMode::default(),
        };
        let mut sslrootcert = self.sslrootcert.or_else(|| env("PGSSLROOTCERT"));
        // A Neon host is reached only with its certificate verified against the public roots,
        // whatever the URL says (`prefer` would fall back to plaintext, `require` would take
        // any certificate): Neon's computes all have publicly trusted certificates.
        let sslmode = if is_neon_host(&host) {
            sslrootcert = None;
            SslMode::VerifyFull
        } else {
            sslmode
        };
        let channel_binding_required = match self
            .channel_binding
            .or_else(|| env("PGCHANNELBINDING"))
            .as_deref()
        {
            None | Some("prefer") | Some("disable") => false,
            Some("require") => true,
            Some(other) => {
                return Err(PgError::BadConfig(format!(
                    "channel_binding {other:?} is not one of disable, prefer, require"
                )));
            }
        };
        let connect_timeout = match self.connect_timeout.or_else(|| env("PGCONNECT_TIMEOUT")) {
            None => Duration::from_secs(10),
            Some(t) => positive_seconds("connect_timeout", &t)?,
        };
        let mut retry = Backoff::default();
        if let Some(seconds) = env("FERRY_PG_RETRY_SECONDS") {
            retry.max_elapsed = seconds
                .parse::<u64>()
                .map(Duration::from_secs)
                .map_err(|_| {
                    PgError::BadConfig(format!(
                        "FERRY_PG_RETRY_SECONDS {seconds:?} is not a number of seconds"
                    ))
                })?;
        }
        Ok(PgConfig {
            host,
            hostaddr,
            port,
            user,
            password,
            dbname,
            sslmode,
            sslrootcert,
            channel_binding_required,
            application_name: self.application_name.or_else(|| env("PGAPPNAME")),
            options: self.options.or_else(|| env("PGOPTIONS")),
            connect_timeout,
            statement_timeout: env("FERRY_PG_STATEMENT_TIMEOUT")
                .map(|t| positive_seconds("FERRY_PG_STATEMENT_TIMEOUT", t.trim()))
                .transpose()?,
            retry,
        })
    }
}

/// Whether `host` is one of Neon's (`*.neon.tech`, and `*.neon.build`, which
/// [`PgConfig::neon_endpoint`] knows too), whose connections are always verified.
pub fn is_neon_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    ["neon.tech", "neon.build"]
        .iter()
        .any(|domain| host == *domain || host.ends_with(&format!(".{domain}")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn parse(s: &str, env: &[(&str, &str)]) -> Result<PgConfig, PgError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PgConfig::parse_with_env(s, &move |k| env.get(k).cloned())
    }

    #[test]
    fn url_with_everything() {
        let c = parse(
            "postgresql://alex:p%40ss%2Fw0rd@ep-cool-rain-123456.us-east-2.aws.neon.tech:6543/my%20db?sslmode=verify-full&sslrootcert=system&channel_binding=require&application_name=x",
            &[],
        )
        .unwrap();
        assert_eq!(c.user, "alex");
        assert_eq!(c.password.as_ref().unwrap().expose(), "p@ss/w0rd");
        assert_eq!(c.host, "ep-cool-rain-123456.us-east-2.aws.neon.tech");
        assert_eq!(c.port, 6543);
        assert_eq!(c.dbname, "my db");
        assert_eq!(c.sslmode, SslMode::VerifyFull);
        // A Neon host is verified against the public (bundled) roots, whatever was given.
        assert_eq!(c.sslrootcert, None);
        assert!(c.channel_binding_required);
        assert_eq!(c.application_name.as_deref(), Some("x"));
    }

    /// A Neon host is always `verify-full` against the public roots: `prefer` would fall back
    /// to plaintext and `require` takes any certificate (a man in the middle's too).
    #[test]
    fn neon_hosts_are_always_verified() {
        for url in [
            "postgres://u:p@ep-a-1.us-east-2.aws.neon.tech/db?sslmode=prefer",
            "postgres://u:p@ep-a-1-pooler.us-east-2.aws.neon.tech/db?sslmode=require",
            "postgres://u:p@EP-A-1.US-EAST-2.AWS.NEON.TECH./db?sslmode=disable&sslrootcert=/tmp/mine.pem",
            "postgres://u:p@ep-a-1.us-east-2.aws.neon.tech/db",
            "postgres://u:p@ep-a-1.us-east-2.aws.neon.build/db?sslmode=prefer",
        ] {
            let c = parse(url, &[("PGSSLMODE", "allow"), ("PGSSLROOTCERT", "/x.pem")]).unwrap();
            assert_eq!(c.sslmode, SslMode::VerifyFull, "{url}");
            assert_eq!(c.sslrootcert, None, "{url}");
            assert_eq!(c.direct().sslmode, SslMode::VerifyFull, "{url}");
        }
        for url in [
            "postgres://u:p@neon.tech.example.com/db?sslmode=prefer",
            "postgres://u:p@myneon.tech/db?sslmode=prefer",
        ] {
            assert_eq!(parse(url, &[]).unwrap().sslmode, SslMode::Prefer, "{url}");
        }
        // hostaddr is where to connect; the name stays, and with it the rule.
        for spec in [
            "host=ep-a-1.us-east-2.aws.neon.tech hostaddr=3.1.2.3 sslmode=require user=u",
            "postgres://u@ep-a-1.us-east-2.aws.neon.tech/db?hostaddr=3.1.2.3&sslmode=require",
        ] {
            let c = parse(spec, &[]).unwrap();
            assert_eq!(c.host, "ep-a-1.us-east-2.aws.neon.tech", "{spec}");
            assert_eq!(c.hostaddr, Some("3.1.2.3".parse().unwrap()), "{spec}");
            assert_eq!(c.sslmode, SslMode::VerifyFull, "{spec}");
        }
        assert!(parse("host=h hostaddr=not-an-ip user=u", &[]).is_err());
        let from_api = parse("postgres://u:p@localhost/db?sslmode=require", &[]).unwrap();
        assert_eq!(from_api.verified().sslmode, SslMode::VerifyFull);
    }

    #[test]
    fn environment_fills_the_gaps() {
        let c = parse(
            "postgres://db.example.com/app",
            &[
                ("PGUSER", "u"),
                ("PGPASSWORD", "secret"),
                ("PGSSLMODE", "require"),
                ("PGPORT", "5433"),
            ],
        )
        .unwrap();
        assert_eq!(
            (c.user.as_str(), c.port, c.sslmode),
            ("u", 5433, SslMode::Require)
        );
        assert_eq!(c.password.unwrap().expose(), "secret");
        let c = parse("", &[("PGHOST", "h"), ("PGUSER", "u")]).unwrap();
        assert_eq!(
            (c.host.as_str(), c.dbname.as_str(), c.port),
            ("h", "u", 5432)
        );
        assert_eq!(c.sslmode, SslMode::Prefer);
    }

    #[test]
    fn keyword_strings() {
        let c = parse(
            r"host=/tmp port=5499 user=me dbname='my \'db\'' password=x\ y",
            &[],
        )
        .unwrap();
        assert_eq!(c.host, "/tmp");
        assert_eq!(c.port, 5499);
        assert_eq!(c.dbname, "my 'db'");
        assert_eq!(c.password.unwrap().expose(), "x y");
    }

    #[test]
    fn ipv6_host() {
        let c = parse("postgres://u@[::1]:5555/d", &[]).unwrap();
        assert_eq!(c.host, "::1");
    }

    #[test]
    fn bad_settings_are_named() {
        for (input, needle) in [
            (
                "postgres://u@h/d?sslmode=sometimes",
                "sslmode \"sometimes\"",
            ),
            ("postgres://u@h:0/d", "port"),
            ("postgres://u@h/d?frobnicate=1", "frobnicate"),
            ("mysql://u@h/d", "postgres://"),
            ("postgres://u@h1,h2/d", "several hosts"),
            ("host=x user", "missing \"=\""),
            ("postgres://u@h/d?connect_timeout=-1", "connect_timeout"),
        ] {
            let err = parse(input, &[]).unwrap_err().to_string();
            assert!(err.contains(needle), "{input}: {err}");
        }
    }

    #[test]
    fn printing_hides_the_password() {
        let c = parse("postgres://u:topsecret@h/d", &[]).unwrap();
        for printed in [format!("{c}"), format!("{c:?}"), c.target()] {
            assert!(!printed.contains("topsecret"), "{printed}");
        }
        assert_eq!(c.to_string(), "postgres://u:***@h:5432/d?sslmode=prefer");
    }

    #[test]
    fn secret_values() {
        let env = |_: &str| None;
        let c = PgConfig::from_secret_value(
            "arn:x",
            r#"{"username":"app","password":"pw","host":"db","port":5433,"dbname":"d","engine":"postgres"}"#,
            &env,
        )
        .unwrap();
        assert_eq!(
            (c.user.as_str(), c.host.as_str(), c.port, c.dbname.as_str()),
            ("app", "db", 5433, "d")
        );
        assert_eq!(c.password.unwrap().expose(), "pw");
        let c = PgConfig::from_secret_value("arn:x", "postgres://a:b@h/d", &env).unwrap();
        assert_eq!(c.password.unwrap().expose(), "b");
        let err = PgConfig::from_secret_value("arn:x", "hunter2", &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("arn:x") && !err.contains("hunter2"), "{err}");
    }

    #[test]
    fn startup_options_carry_the_neon_endpoint_and_the_statement_timeout() {
        let neon = parse(
            "postgres://u@ep-misty-truth-a5favp6j-pooler.c-2.us-east-1.aws.neon.tech/d",
            &[("FERRY_PG_STATEMENT_TIMEOUT", "30")],
        )
        .unwrap();
        assert_eq!(
            neon.startup_options().as_deref(),
            Some("-c statement_timeout=30000 endpoint=ep-misty-truth-a5favp6j")
        );
        // Given explicitly (an IP address or a CNAME in front of Neon): kept, not doubled.
        let given = parse(
            "postgres://u@ep-a-1.us-east-2.aws.neon.tech/d?options=endpoint%3Dep-other",
            &[],
        )
        .unwrap();
        assert_eq!(
            given.startup_options().as_deref(),
            Some("endpoint=ep-other")
        );
        let plain = parse("postgres://u@db.example.com/d", &[]).unwrap();
        assert_eq!(plain.startup_options(), None);
        assert_eq!(plain.neon_endpoint(), None);
        let err = parse(
            "postgres://u@db.example.com/d",
            &[("FERRY_PG_STATEMENT_TIMEOUT", "soon")],
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("FERRY_PG_STATEMENT_TIMEOUT"),
            "{err}"
        );
    }

    #[test]
    fn pooler_hosts_become_direct() {
        let c = parse(
            "postgres://u@ep-misty-truth-a5favp6j-pooler.c-2.us-east-1.aws.neon.tech/d",
            &[],
        )
        .unwrap();
        assert!(c.is_pooler());
        let d = c.direct();
        assert_eq!(
            d.host,
            "ep-misty-truth-a5favp6j.c-2.us-east-1.aws.neon.tech"
        );
        assert!(!d.is_pooler());
        let plain = parse("postgres://u@db-pooler.example.com/d", &[]).unwrap();
        assert!(!plain.is_pooler(), "only Neon endpoint hosts are poolers");
        assert_eq!(plain.direct().host, "db-pooler.example.com");
    }
}
