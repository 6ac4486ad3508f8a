//! Runs a function binary under a local Lambda Runtime API, for one invocation.
//!
//! The binary is the real `bootstrap` code: it polls `/runtime/invocation/next`, gets the event
//! with the same headers AWS sends, and posts a response or an error. This serves exactly that
//! protocol (HTTP/1.1 with keep-alive) and hands the outcome back to the test.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

/// What one invocation produced.
#[derive(Debug)]
pub struct Invocation {
    /// The response body, or `Err((errorType, errorMessage))`.
    pub result: Result<Value, (String, String)>,
    /// What the function logged (its stdout and stderr).
    pub logs: String,
}

/// The path of a binary built from this workspace (`cargo build --workspace --bins` first).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/it-<hash> (a test) or target/<profile>/local-stack -> target/<profile>
    let mut dir = exe.parent().unwrap();
    if dir.ends_with("deps") {
        dir = dir.parent().unwrap();
    }
    if FUNCTIONS.contains(&name) {
        return function_link(dir, name);
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// The Lambda functions, all in the `ferry-lambda` binary.
pub const FUNCTIONS: [&str; 5] = ["branch", "snapshot", "restore", "validate", "import-csv"];

/// A link named `name` to the `ferry-lambda` binary in `dir` (which runs the job it is started
/// as), under `dir/functions/`; made once, atomically, whichever test asks first.
fn function_link(dir: &Path, name: &str) -> PathBuf {
    let binary = dir.join("ferry-lambda");
    assert!(
        binary.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        binary.display()
    );
    let links = dir.join("functions");
    std::fs::create_dir_all(&links).unwrap();
    let link = links.join(name);
    if std::fs::read_link(&link).ok().as_deref() != Some(binary.as_path()) {
        let temporary = links.join(crate::unique_name(name));
        std::os::unix::fs::symlink(&binary, &temporary).unwrap();
        std::fs::rename(&temporary, &link).unwrap();
    }
    link
}

struct Request {
    method: String,
    path: String,
    body: Vec<u8>,
}

async fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    Some(Request { method, path, body })
}

async fn respond(
    stream: &mut BufReader<TcpStream>,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let stream = stream.get_mut();
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

/// Invokes the function binary once with `event` and returns what it answered.
pub async fn invoke(binary: &Path, event: Value, env: &[(&str, String)]) -> Invocation {
    invoke_with_timeout(binary, event, env, Duration::from_secs(60)).await
}

/// [`invoke`] with the function's timeout: its deadline, and how long the caller waits.
pub async fn invoke_with_timeout(
    binary: &Path,
    event: Value,
    env: &[(&str, String)],
    timeout: Duration,
) -> Invocation {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = listener.local_addr().unwrap();
    let (done_tx, mut done_rx) = mpsc::channel::<Result<Value, (String, String)>>(1);
    let event_body = serde_json::to_vec(&event).unwrap();
    let server = tokio::spawn(async move {
        let mut delivered = false;
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let done_tx = done_tx.clone();
            let event_body = event_body.clone();
            let first = !delivered;
            delivered = true;
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let mut served_event = !first;
                while let Some(request) = read_request(&mut stream).await {
                    match (request.method.as_str(), request.path.as_str()) {
                        ("GET", p) if p.ends_with("/runtime/invocation/next") => {
                            if served_event {
                                // One invocation only: leave the next poll hanging.
                                std::future::pending::<()>().await;
                            }
                            served_event = true;
                            let deadline =
                                SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + timeout;
                            let headers = [
                                ("content-type", "application/json".to_string()),
                                (
                                    "lambda-runtime-aws-request-id",
                                    "test-request-1".to_string(),
                                ),
                                (
                                    "lambda-runtime-deadline-ms",
                                    deadline.as_millis().to_string(),
                                ),
                                (
                                    "lambda-runtime-invoked-function-arn",
                                    "arn:aws:lambda:us-east-1:000000000000:function:test"
                                        .to_string(),
                                ),
                                (
                                    "lambda-runtime-trace-id",
                                    "Root=1-00000000-000000000000000000000000".to_string(),
                                ),
                            ];
                            respond(&mut stream, "200 OK", &headers, &event_body).await;
                        }
                        ("POST", p) if p.ends_with("/response") => {
                            respond(&mut stream, "202 Accepted", &[], b"{}").await;
                            let body = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                            let _ = done_tx.send(Ok(body)).await;
                        }
                        ("POST", p) if p.ends_with("/error") => {
                            respond(&mut stream, "202 Accepted", &[], b"{}").await;
                            let body: Value =
                                serde_json::from_slice(&request.body).unwrap_or(Value::Null);
                            let field =
                                |name: &str| body[name].as_str().unwrap_or_default().to_string();
                            let _ = done_tx
                                .send(Err((field("errorType"), field("errorMessage"))))
                                .await;
                        }
                        _ => respond(&mut stream, "404 Not Found", &[], b"").await,
                    }
                }
            });
        }
    });
    let log_path = crate::process::scratch()
        .join(crate::unique_name("lambda"))
        .with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = tokio::process::Command::new(binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        // The local stack's bucket is a local directory (a test's env may say "false").
        .env("FERRY_ALLOW_FILE_URLS", "true")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the function binary");
    let result = tokio::time::timeout(timeout + Duration::from_secs(5), done_rx.recv())
        .await
        .unwrap_or_else(|_| {
            Some(Err((
                "Sandbox.Timedout".to_string(),
                format!("Task timed out after {} seconds", timeout.as_secs()),
            )))
        })
        .unwrap_or_else(|| {
            Err((
                "Runtime.ExitError".to_string(),
                "the function exited without answering".to_string(),
            ))
        });
    child.kill().await.ok();
    server.abort();
    Invocation {
        result,
        logs: std::fs::read_to_string(&log_path).unwrap_or_default(),
    }
}

/// Serves the Lambda Invoke API (`POST /2015-03-31/functions/NAME/invocations`) for the
/// workspace's function binaries, the way `cargo lambda watch` does: each invocation runs the
/// real bootstrap under [`invoke_with_timeout`] with `env`. A function error answers 200 with
/// `X-Amz-Function-Error: Unhandled` and `{"errorType", "errorMessage"}`, as AWS does.
///
/// `POST /states/aws-sdk/s3/copyObject` and `.../deleteObject` stand in for the Step Functions
/// AWS SDK integrations the workflows use, through ferry's store (the S3 settings of `env`).
pub async fn serve(listener: TcpListener, env: Vec<(String, String)>, timeout: Duration) {
    let env = std::sync::Arc::new(env);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let env = env.clone();
        tokio::spawn(async move {
            let mut stream = BufReader::new(stream);
            while let Some(request) = read_request(&mut stream).await {
                let (status, headers, body) = host_request(&request, &env, timeout).await;
                respond(&mut stream, status, &headers, body.to_string().as_bytes()).await;
            }
        });
    }
}

async fn host_request(
    request: &Request,
    env: &[(String, String)],
    timeout: Duration,
) -> (&'static str, Vec<(&'static str, String)>, Value) {
    let json = [("content-type", "application/json".to_string())];
    let bad = |message: String| {
        (
            "400 Bad Request",
            json.to_vec(),
            serde_json::json!({"message": message}),
        )
    };
    let Ok(event) = serde_json::from_slice::<Value>(&request.body) else {
        return bad("the request body is not JSON".into());
    };
    let path = request.path.as_str();
    if let Some(name) = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|p| p.strip_suffix("/invocations"))
    {
        if !FUNCTIONS.contains(&name) {
            return (
                "404 Not Found",
                json.to_vec(),
                serde_json::json!({"Type": "User", "message": format!("Function not found: {name}")}),
            );
        }
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let invocation = invoke_with_timeout(&workspace_binary(name), event, &env, timeout).await;
        eprintln!(
            "== {name}: {}\n{}",
            match &invocation.result {
                Ok(_) => "ok".to_string(),
                Err((error_type, _)) => error_type.clone(),
            },
            invocation.logs.trim_end()
        );
        return match invocation.result {
            Ok(body) => ("200 OK", json.to_vec(), body),
            Err((error_type, error_message)) => (
                "200 OK",
                vec![
                    json[0].clone(),
                    ("x-amz-function-error", "Unhandled".to_string()),
                ],
                serde_json::json!({"errorType": error_type, "errorMessage": error_message}),
            ),
        };
    }
    match path {
        "/states/aws-sdk/s3/copyObject" | "/states/aws-sdk/s3/deleteObject" => {
            match s3_integration(path, &event).await {
                Ok(out) => ("200 OK", json.to_vec(), out),
                Err(e) => (
                    "200 OK",
                    vec![
                        json[0].clone(),
                        ("x-amz-function-error", "Unhandled".to_string()),
                    ],
                    serde_json::json!({"errorType": "S3.S3Exception", "errorMessage": e}),
                ),
            }
        }
        _ => bad(format!("no such route: {} {path}", request.method)),
    }
}

/// `s3:copyObject` (`Bucket`, `Key`, `CopySource` = `bucket/key`, URL-encoded) and
/// `s3:deleteObject` (`Bucket`, `Key`), with the AWS SDK integration's parameter names.
async fn s3_integration(path: &str, event: &Value) -> Result<Value, String> {
    use ferry::store::{Key, ObjectUrl, Store, StoreConfig};
    let field = |name: &str| {
        event[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("missing parameter {name}"))
    };
    let url =
        ObjectUrl::parse(&format!("s3://{}/", field("Bucket")?)).map_err(|e| e.to_string())?;
    // The host runs with the S3 settings it hands the functions.
    let config = StoreConfig::from_env().map_err(|e| e.to_string())?;
    let store = Store::for_url(&url, &config)
        .await
        .map_err(|e| e.to_string())?;
    let key = Key::new(field("Key")?).map_err(|e| e.to_string())?;
    if path.ends_with("deleteObject") {
        store.delete(&key).await.map_err(|e| e.to_string())?;
        return Ok(serde_json::json!({}));
    }
    let source = field("CopySource")?;
    let source = ferry::import::events::decode_key(&source).map_err(|e| e.to_string())?;
    let (bucket, from) = source
        .split_once('/')
        .ok_or_else(|| format!("CopySource {source:?} is not bucket/key"))?;
    if Some(bucket) != url.bucket.as_deref() {
        return Err(format!("CopySource bucket {bucket:?} differs from Bucket"));
    }
    let from = Key::new(from).map_err(|e| e.to_string())?;
    let meta = store.copy(&from, &key).await.map_err(|e| e.to_string())?;
    Ok(serde_json::json!({"CopyObjectResult": {"ETag": meta.etag}}))
}

/// `lambda-host` as a server process: the Lambda Invoke API for the function binaries, each
/// invocation run with `env` (and `PATH`, `HOME`) only, as a deployed function sees only its
/// configuration.
pub struct LambdaHost {
    /// `http://127.0.0.1:PORT`, for `FERRY_LAMBDA_HOST`.
    pub url: String,
    /// What the functions logged.
    pub log: PathBuf,
    _child: std::process::Child,
}

impl LambdaHost {
    pub fn start(env: &[(String, String)]) -> LambdaHost {
        use std::io::BufRead;
        let log = crate::process::scratch()
            .join(crate::unique_name("lambda-host"))
            .with_extension("log");
        let mut child = std::process::Command::new(workspace_binary("lambda-host"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start lambda-host");
        crate::process::register(&child, libc::SIGTERM);
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("lambda-host did not start: {line:?}"))
            .to_string();
        LambdaHost {
            url,
            log,
            _child: child,
        }
    }
}

impl Drop for LambdaHost {
    fn drop(&mut self) {
        crate::process::unregister(self._child.id());
        let _ = self._child.kill();
        let _ = self._child.wait();
    }
}
