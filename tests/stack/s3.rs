//! A real S3-compatible server for tests: `s3-server` (the `s3s-fs` backend, built with the
//! workspace), a process of its own on 127.0.0.1.

use std::{
    path::PathBuf,
    process::{Child, Stdio},
    sync::OnceLock,
    time::Duration,
};

use ferry::{secret::Secret, store::StoreConfig};

use crate::process::{free_port, register, scratch, wait_for_port};

pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    root: PathBuf,
    _child: Child,
}

/// The S3-compatible server binary: `FERRY_S3_SERVER` (the benchmark points it at the release
/// build), else the workspace's `s3-server` beside this binary.
fn s3_server() -> PathBuf {
    match std::env::var_os("FERRY_S3_SERVER") {
        Some(path) => PathBuf::from(path),
        None => crate::lambda::workspace_binary("s3-server"),
    }
}

impl S3Server {
    pub fn start() -> S3Server {
        let root = scratch().join(crate::unique_name("s3"));
        std::fs::create_dir_all(&root).unwrap();
        let port = free_port();
        let access_key = "ferry-test-access".to_string();
        let secret_key = uuid::Uuid::new_v4().simple().to_string();
        let log_path = root.with_extension("log");
        let log = std::fs::File::create(&log_path).unwrap();
        let child = std::process::Command::new(s3_server())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", &access_key, "--secret-key", &secret_key])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start s3-server");
        register(&child, libc::SIGTERM);
        wait_for_port(port, Duration::from_secs(30), "s3-server", &log_path);
        S3Server {
            endpoint: format!("http://127.0.0.1:{port}"),
            access_key,
            secret_key,
            root,
            _child: child,
        }
    }

    /// Creates a bucket of the test's own and returns its name.
    pub fn create_bucket(&self, prefix: &str) -> String {
        let name = crate::unique_name(prefix);
        std::fs::create_dir_all(self.root.join(&name)).unwrap();
        name
    }

    /// Store settings that reach this server.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            credentials: Some((
                self.access_key.clone(),
                Secret::new(self.secret_key.clone()),
            )),
            ..StoreConfig::default()
        }
    }

    /// The environment the `ferry` binary needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
            ("FERRY_S3_PATH_STYLE", "true".into()),
        ]
    }

    /// Where the server keeps an object on disk (to check from outside the S3 API).
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.root.join(bucket).join(key)
    }
}

pub fn shared_s3() -> &'static S3Server {
    static SERVER: OnceLock<S3Server> = OnceLock::new();
    SERVER.get_or_init(S3Server::start)
}
