//! The object reader: the object streamed from the store, decompressed, hashed and split into
//! records on a blocking thread, handed over in batches of whole records.

use std::{
    io::{BufRead, BufReader, Read},
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::store::BlockingRead;

use super::{
    CsvError, ImportError, Options, csv,
    members::{EntryPoint, EntryPoints, Members},
};

/// Bytes per second an import is assumed to load when it decides whether a file fits one
/// invocation: a fraction of what the benchmark measures on 2 cores (see the README), so that
/// a Lambda with less CPU still finishes in time.
pub const ASSUMED_RATE: u64 = 8 * 1024 * 1024;

/// How the object is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// What the key's extension or the stored `Content-Encoding` declare.
    pub fn declared(key: &str, content_encoding: Option<&str>) -> Option<Compression> {
        match content_encoding
            .map(|e| e.trim().to_ascii_lowercase())
            .as_deref()
        {
            Some("gzip" | "x-gzip") => return Some(Compression::Gzip),
            Some("zstd") => return Some(Compression::Zstd),
            _ => {}
        }
        let lower = key.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".gzip") {
            Some(Compression::Gzip)
        } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// What the first bytes say.
    pub(super) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// What the reading thread hands the loader.
pub(super) enum Piece {
    Compression(Compression),
    Header(Option<(Vec<String>, u64)>),
    /// A batch, and whether it is the file's last.
    Batch(csv::Batch, bool),
    End {
        blank_lines: u64,
    },
}

/// Where a resumed import goes on: an offset in the decompressed file, its line, and how the
/// object is compressed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Resume {
    pub(super) offset: u64,
    pub(super) line: u64,
    pub(super) compression: Compression,
    /// For a compressed object: where the input starts (a member's or frame's start at or
    /// before `offset`, read with a ranged request; the object's start when none was kept).
    pub(super) entry: EntryPoint,
}

/// Counts and hashes the bytes of the object as stored.
pub(super) struct Hashing<R> {
    pub(super) inner: R,
    pub(super) state: Arc<Mutex<(Sha256, u64)>>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0.update(&buf[..n]);
        state.1 += n as u64;
        Ok(n)
    }
}

/// Reads the object on a blocking thread: decompression, records, batches. The starts of a
/// compressed object's members or frames go to `points`.
pub(super) fn read_object(
    input: BlockingRead,
    declared: Option<Compression>,
    options: &Options,
    resume: Option<Resume>,
    hash: Arc<Mutex<(Sha256, u64)>>,
    points: EntryPoints,
    tx: mpsc::Sender<Result<Piece, CsvError>>,
) -> Result<(), CsvError> {
    let io = |line: u64| {
        move |e: std::io::Error| CsvError {
            line,
            reason: format!("reading the object failed: {e}"),
        }
    };
    let mut raw = BufReader::with_capacity(
        256 * 1024,
        Hashing {
            inner: input,
            state: hash,
        },
    );
    let sniffed = match resume {
        // Known from the first piece: a range of the object does not start with its magic.
        Some(r) => r.compression,
        None => Compression::sniff(raw.fill_buf().map_err(io(1))?),
    };
    if let Some(declared) = declared
        && declared != sniffed
        && resume.is_none()
    {
        return Err(CsvError {
            line: 1,
            reason: format!(
                "the object is declared {declared:?}-compressed (by its name or Content-Encoding) \
                 but its bytes are {sniffed:?}"
            ),
        });
    }
    let start = resume.map(|r| r.entry).unwrap_or_default();
    let decoded: Box<dyn Read> = match sniffed {
        Compression::None => Box::new(raw),
        Compression::Gzip | Compression::Zstd => {
            Box::new(Members::new(raw, sniffed, start, points))
        }
    };
    let mut decoded = decoded;
    let mut splitter = match resume {
        Some(r) => {
            if r.compression != Compression::None {
                // A compressed stream is entered at a member's or frame's start: decompress
                // from there up to where the last piece stopped.
                let skip = r.offset.saturating_sub(start.decompressed);
                let skipped = std::io::copy(&mut (&mut decoded).take(skip), &mut std::io::sink())
                    .map_err(io(r.line))?;
                if skipped != skip {
                    return Err(CsvError {
                        line: r.line,
                        reason: "the object is shorter than when its import began".into(),
                    });
                }
            }
            csv::Splitter::new(
                decoded,
                options.dialect.clone(),
                options.batch_bytes,
                options.max_record_bytes,
            )
            .resumed_at(r.offset, r.line)
        }
        None => csv::Splitter::new(
            decoded,
            options.dialect.clone(),
            options.batch_bytes,
            options.max_record_bytes,
        ),
    };
    let header = if resume.is_some() || !options.dialect.header {
        Some((Vec::new(), 0))
    } else {
        splitter.header()?
    };
    if resume.is_none() {
        let _ = tx.blocking_send(Ok(Piece::Compression(sniffed)));
    }
    let send = |piece| tx.blocking_send(Ok(piece)).is_ok();
    if !send(Piece::Header(header)) {
        return Ok(());
    }
    // One batch is held back so that the last one goes out marked as such.
    let mut held: Option<csv::Batch> = None;
    while let Some(batch) = splitter.next_batch()? {
        if let Some(previous) = held.replace(batch)
            && !send(Piece::Batch(previous, false))
        {
            return Ok(());
        }
    }
    if let Some(last) = held
        && !send(Piece::Batch(last, true))
    {
        return Ok(());
    }
    send(Piece::End {
        blank_lines: splitter.blank_lines,
    });
    Ok(())
}

/// What the reader hands the loader next: a batch (and whether it is the last), or the end.
pub(super) enum Next {
    Batch(csv::Batch, bool),
    End { blank_lines: u64 },
}

pub(super) async fn next_piece(
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    url: &str,
) -> Result<Next, ImportError> {
    loop {
        match rx.recv().await {
            Some(Ok(Piece::Batch(batch, last))) => return Ok(Next::Batch(batch, last)),
            Some(Ok(Piece::End { blank_lines })) => return Ok(Next::End { blank_lines }),
            Some(Ok(Piece::Header(_) | Piece::Compression(_))) => continue,
            Some(Err(error)) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error,
                });
            }
            None => {
                return Err(ImportError::BadInput(format!(
                    "{url}: reading the object stopped unexpectedly"
                )));
            }
        }
    }
}
