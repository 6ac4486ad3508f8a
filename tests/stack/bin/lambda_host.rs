//! `lambda-host [--listen 127.0.0.1:PORT] [--timeout SECONDS]`: serves the Lambda Invoke API for
//! the workspace's five function binaries (see `ferry_tests::lambda::serve`), handing every
//! invocation this process's environment. Prints `listening on http://ADDR` when ready. The
//! local workflow runner (infra/local/run-workflow) sends its Task states here.

use std::time::Duration;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let listen = value("--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let timeout = value("--timeout")
        .map(|t| t.parse::<u64>().expect("--timeout SECONDS"))
        .unwrap_or(900);
    let listener = TcpListener::bind(&listen).await.expect("bind --listen");
    println!("listening on http://{}", listener.local_addr().unwrap());
    let env: Vec<(String, String)> = std::env::vars().collect();
    ferry_tests::lambda::serve(listener, env, Duration::from_secs(timeout)).await;
}
