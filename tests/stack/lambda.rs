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
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
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
                            let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
                                + Duration::from_secs(60);
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
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the function binary");
    let result = tokio::time::timeout(Duration::from_secs(60), done_rx.recv())
        .await
        .expect("the function answered within 60 s")
        .expect("an answer");
    child.kill().await.ok();
    server.abort();
    Invocation {
        result,
        logs: std::fs::read_to_string(&log_path).unwrap_or_default(),
    }
}
