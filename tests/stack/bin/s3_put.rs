//! `s3-put FILE URL`: uploads a local file to an object store URL through ferry's store (a
//! streamed multipart upload for S3), with the usual `AWS_*` and `FERRY_S3_*` settings. The
//! benchmark uses it so that the S3-compatible server holds the object as an upload made it.

use std::process::ExitCode;

use ferry::store::{ObjectUrl, Store, StoreConfig};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file, url] = args.as_slice() else {
        eprintln!("usage: s3-put FILE URL");
        return ExitCode::from(2);
    };
    match put(file, url).await {
        Ok(bytes) => {
            eprintln!("s3-put: {bytes} bytes to {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("s3-put: {e}");
            ExitCode::from(1)
        }
    }
}

async fn put(file: &str, url: &str) -> Result<u64, Box<dyn std::error::Error>> {
    let url = ObjectUrl::parse(url)?;
    let store = Store::for_url(&url, &StoreConfig::from_env()?).await?;
    let mut input = tokio::fs::File::open(file).await?;
    let mut upload = store.upload(&url.key).await?;
    let mut buffer = vec![0u8; 8 * 1024 * 1024];
    loop {
        let n = input.read(&mut buffer).await?;
        if n == 0 {
            break;
        }
        upload
            .write(bytes::Bytes::copy_from_slice(&buffer[..n]))
            .await?;
    }
    Ok(upload.finish().await?.size)
}
