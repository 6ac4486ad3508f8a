//! `s3-server --host H --port P --access-key K --secret-key S ROOT`: a real S3-compatible server
//! process for the tests, the demo and the benchmark, serving the directory ROOT (one directory
//! per bucket) over HTTP with SigV4 authentication: the `s3s` crate's protocol layer over its
//! `s3s-fs` file-system backend.
//!
//! It is built with the workspace rather than installed on its own (`cargo install s3s-fs`),
//! so that it shares the workspace's compiled dependencies: a fresh machine builds it in seconds
//! instead of minutes. Runs until it receives SIGTERM or SIGINT.

use std::{path::PathBuf, process::ExitCode};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
};

struct Options {
    host: String,
    port: u16,
    access_key: String,
    secret_key: String,
    root: PathBuf,
}

const USAGE: &str =
    "usage: s3-server --host HOST --port PORT --access-key KEY --secret-key SECRET ROOT";

fn options() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let (mut host, mut port, mut access_key, mut secret_key, mut root) =
        (None, None, None, None, None);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => host = Some(value()?),
            "--port" => {
                let text = value()?;
                port = Some(text.parse().map_err(|_| format!("bad port {text:?}"))?);
            }
            "--access-key" => access_key = Some(value()?),
            "--secret-key" => secret_key = Some(value()?),
            _ if !arg.starts_with("--") && root.is_none() => root = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok(Options {
        host: host.unwrap_or_else(|| "127.0.0.1".into()),
        port: port.ok_or("--port is required")?,
        access_key: access_key.ok_or("--access-key is required")?,
        secret_key: secret_key.ok_or("--secret-key is required")?,
        root: root.ok_or("ROOT is required")?,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("s3-server: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match serve(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3-server: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let backend = s3s_fs::FileSystem::new(&options.root)
        .map_err(|e| format!("cannot serve {}: {e:?}", options.root.display()))?;
    let mut builder = S3ServiceBuilder::new(backend);
    builder.set_auth(SimpleAuth::from_single(
        options.access_key,
        options.secret_key,
    ));
    let service = builder.build();
    let listener = TcpListener::bind((options.host.as_str(), options.port)).await?;
    eprintln!(
        "s3-server: serving {} at http://{}",
        options.root.display(),
        listener.local_addr()?
    );
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let connections = Builder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(e) => {
                    eprintln!("s3-server: accept: {e}");
                    continue;
                }
            },
            _ = terminate.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        };
        let connection = connections
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}
