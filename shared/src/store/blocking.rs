//! A synchronous `Read` over an object's byte stream, for parsers and decompressors that run on
//! a blocking thread while the download continues on the runtime.

use std::{
    io::{self, Read},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::{ByteStream, StoreError};

/// Reads an object's stream synchronously; a task on the runtime forwards its chunks.
pub struct BlockingRead {
    rx: mpsc::Receiver<Result<Bytes, StoreError>>,
    current: Bytes,
    /// Bytes handed out so far.
    pub position: Arc<AtomicU64>,
}

impl BlockingRead {
    /// From the runtime (the forwarding task is spawned on it).
    pub fn new(mut stream: ByteStream) -> BlockingRead {
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        BlockingRead {
            rx,
            current: Bytes::new(),
            position: Arc::default(),
        }
    }

    /// From a blocking thread (the forwarding task goes on the runtime that started it).
    pub fn new_blocking(stream: ByteStream) -> BlockingRead {
        let handle = tokio::runtime::Handle::current();
        let _guard = handle.enter();
        BlockingRead::new(stream)
    }
}

impl Read for BlockingRead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(bytes)) => self.current = bytes,
                Some(Err(e)) => return Err(io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        self.position.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}
