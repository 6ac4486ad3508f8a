//! The Neon API emulator (`neon-emulator`, built from infra/local) as a test server.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Stdio},
    time::Duration,
};

use ferry::{
    neon::{NeonClient, NeonConfig},
    retry::Backoff,
    secret::Secret,
};
use serde_json::Value;

use crate::{PgServer, lambda::workspace_binary, process::register};

pub struct NeonEmulator {
    /// Base URL of the API (`http://127.0.0.1:PORT`), for `NEON_API_HOST`.
    pub url: String,
    pub api_key: String,
    /// The project that exists at start.
    pub project_id: String,
    /// Every API exchange, as JSON lines, for the contract checks.
    pub record: PathBuf,
    _child: Child,
}

#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    pub operation_delay_ms: u64,
    /// Fill the starting project's `neondb` with a copy of this database of the server.
    pub seed_from: Option<String>,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            operation_delay_ms: 200,
            seed_from: None,
        }
    }
}

impl NeonEmulator {
    /// Starts an emulator backed by `pg` (its databases live there).
    pub fn start(pg: &PgServer, options: EmulatorOptions) -> NeonEmulator {
        let dir = crate::process::scratch().join(crate::unique_name("neon"));
        std::fs::create_dir_all(&dir).unwrap();
        let record = dir.join("exchanges.jsonl");
        let api_key = format!("neon-test-key-{}", uuid::Uuid::new_v4().simple());
        let log = std::fs::File::create(dir.join("emulator.log")).unwrap();
        let mut command = std::process::Command::new(workspace_binary("neon-emulator"));
        if let Some(seed) = &options.seed_from {
            command.args(["--seed-from", seed]);
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .args(["--postgres", &pg.url("postgres")])
            .args([
                "--operation-delay-ms",
                &options.operation_delay_ms.to_string(),
            ])
            .args(["--connect-host", "localhost"])
            .args(["--uri-sslmode", if pg.tls { "require" } else { "disable" }])
            .arg("--record")
            .arg(&record)
            .env("NEON_EMULATOR_API_KEY", &api_key)
            // Emulators sharing a server must agree on the role's password.
            .env(
                "NEON_EMULATOR_ROLE_PASSWORD",
                format!("role-{}", pg.password()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start neon-emulator");
        register(&child, libc::SIGTERM);
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "neon-emulator did not start ({e}); its log:\n{}",
                std::fs::read_to_string(dir.join("emulator.log")).unwrap_or_default()
            )
        });
        NeonEmulator {
            url: format!("http://{}", ready["listening"].as_str().unwrap()),
            api_key,
            project_id: ready["project_id"].as_str().unwrap().to_string(),
            record,
            _child: child,
        }
    }

    /// Client settings for this emulator, with short delays so retry paths run quickly.
    pub fn config(&self) -> NeonConfig {
        let mut config = NeonConfig::new(Secret::new(self.api_key.clone()), self.url.clone());
        config.retry = Backoff {
            initial: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            max_elapsed: Duration::from_secs(30),
        };
        config.poll_interval = Duration::from_millis(50);
        config.operation_timeout = Duration::from_secs(60);
        config
    }

    pub fn client(&self) -> NeonClient {
        NeonClient::new(self.config()).unwrap()
    }

    /// The environment the `ferry` binary and the Lambdas need to reach this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("NEON_API_KEY", self.api_key.clone()),
            ("NEON_API_HOST", self.url.clone()),
        ]
    }

    /// Switches faults on (see `POST /_emulator/faults`).
    pub async fn faults(&self, body: Value) {
        let response = http()
            .post(format!("{}/_emulator/faults", self.url))
            .bearer_auth(&self.api_key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "setting faults: {}",
            response.status()
        );
    }

    /// A raw API call, for checking the emulator's own answers.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let mut request = http().request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }
}

/// An HTTP client for talking to the emulator directly.
fn http() -> reqwest::Client {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::new()
}

/// The run's shared emulator, on the shared PostgreSQL server. Tests create projects of their
/// own in it; tests that switch faults on start an emulator of their own.
pub fn shared_emulator() -> &'static NeonEmulator {
    static EMULATOR: std::sync::OnceLock<NeonEmulator> = std::sync::OnceLock::new();
    EMULATOR.get_or_init(|| NeonEmulator::start(crate::shared_pg(), EmulatorOptions::default()))
}
