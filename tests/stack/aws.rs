//! moto's server: a local AWS Secrets Manager for the credential-reference tests, and an S3
//! that keeps and reports encryption, storage class and tags (which s3s-fs ignores).

use std::{
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use crate::process::{free_port, register, scratch, wait_for_port};

pub struct SecretsServer {
    pub endpoint: String,
    _child: Child,
}

/// Starts a moto server process of its own (logging to a file named after `name`): its
/// endpoint, and the process, stopped when the tests exit.
pub fn start_moto(name: &str) -> (String, Child) {
    let port = free_port();
    let log_path = scratch()
        .join(crate::unique_name(name))
        .with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start moto_server (./dev/setup installs moto[server])");
    register(&child, libc::SIGTERM);
    wait_for_port(port, Duration::from_secs(60), "moto_server", &log_path);
    (format!("http://127.0.0.1:{port}"), child)
}

impl SecretsServer {
    fn start() -> SecretsServer {
        let (endpoint, child) = start_moto("moto");
        SecretsServer {
            endpoint,
            _child: child,
        }
    }

    /// The environment that points AWS SDKs at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Stores a secret and returns its ARN (through boto3, which moto ships with).
    pub fn create_secret(&self, name: &str, value: &str) -> String {
        let out = Command::new("python3")
            .args([
                "-c",
                "import boto3, sys; c = boto3.client('secretsmanager', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id='testing', aws_secret_access_key='testing'); \
                 print(c.create_secret(Name=sys.argv[2], SecretString=sys.argv[3])['ARN'])",
                &self.endpoint,
                name,
                value,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create_secret: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }
}

impl SecretsServer {
    /// Creates an S3 bucket on this server.
    pub fn create_s3_bucket(&self, name: &str) {
        self.create_bucket(name, false);
    }

    /// Creates an S3 bucket with Object Lock enabled (and so versioning) on this server.
    pub fn create_locked_s3_bucket(&self, name: &str) {
        self.create_bucket(name, true);
    }

    fn create_bucket(&self, name: &str, locked: bool) {
        let out = Command::new("python3")
            .args([
                "-c",
                "import boto3, sys; from botocore.config import Config; \
                 c = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', \
                 aws_access_key_id='testing', aws_secret_access_key='testing', \
                 config=Config(s3={'addressing_style': 'path'})); \
                 c.create_bucket(Bucket=sys.argv[2], ObjectLockEnabledForBucket=sys.argv[3] == 'true')",
                &self.endpoint,
                name,
                if locked { "true" } else { "false" },
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "create_bucket: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Store settings that reach this server's S3.
    pub fn store_config(&self) -> ferry::store::StoreConfig {
        ferry::store::StoreConfig {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            path_style: true,
            credentials: Some((
                "testing".into(),
                ferry::secret::Secret::new("testing".to_string()),
            )),
            ..ferry::store::StoreConfig::default()
        }
    }
}

pub fn shared_secrets() -> &'static SecretsServer {
    static SERVER: OnceLock<SecretsServer> = OnceLock::new();
    SERVER.get_or_init(SecretsServer::start)
}
