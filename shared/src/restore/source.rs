//! Reading an archive out of the object store: its table of contents, and each table's data as
//! a stream of COPY text.
//!
//! The archive parsers in [`crate::archive`] are synchronous readers over bytes; here they run
//! on blocking threads fed by the store's async byte streams through small channels, so memory
//! stays bounded and no runtime worker is blocked. Data is read by ranged GETs from each block's
//! offset (custom format: from the table of contents when pg_dump wrote it to a file, from the
//! manifest for ferry's own streamed archives, else found by one scanning pass) or from each
//! table's own object (directory format), so tables load in parallel.

use std::{
    collections::HashMap,
    io::{self, Read, Write},
    sync::atomic::Ordering,
};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::RestoreError;
use crate::{
    archive::{
        ArchiveError, Header, Layout, Offset, TocEntry,
        custom::{BlobSink, Reader, decode_data_file, directory_file_suffix, parse_blobs_toc},
    },
    manifest::Manifest,
    store::{BlockingRead, Key, ObjectUrl, Store},
};

/// Bytes of COPY text per message from a decoding thread.
const CHUNK: usize = 256 * 1024;

/// A `Write` that hands COPY text to the async side in chunks.
struct ChunkSink {
    tx: mpsc::Sender<Result<Bytes, RestoreError>>,
    buffer: Vec<u8>,
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the COPY stopped"))
    }
}

/// One piece of a BLOBS entry's large objects.
#[derive(Debug)]
pub(super) enum BlobPiece {
    Start(u32),
    Data(Bytes),
    End,
}

/// A [`BlobSink`] that hands large objects to the async side in chunks.
struct BlobChannel {
    tx: mpsc::Sender<Result<BlobPiece, RestoreError>>,
    buffer: Vec<u8>,
}

impl BlobChannel {
    fn send(&self, piece: BlobPiece) -> io::Result<()> {
        self.tx
            .blocking_send(Ok(piece))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the load stopped"))
    }
}

impl Write for BlobChannel {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.send(BlobPiece::Data(chunk))
    }
}

impl BlobSink for BlobChannel {
    fn start(&mut self, oid: u32) -> io::Result<()> {
        self.send(BlobPiece::Start(oid))
    }

    fn end(&mut self) -> io::Result<()> {
        self.flush()?;
        self.send(BlobPiece::End)
    }
}

/// An archive in the store, opened.
pub(super) struct Archive {
    store: Store,
    /// The custom archive's object, or the directory archive's prefix (ending in `/`).
    key: Key,
    pub header: Header,
    pub layout: Layout,
    pub entries: Vec<TocEntry>,
    /// Custom format: where each data block starts.
    offsets: HashMap<i32, u64>,
    /// Custom format: the object's size.
    size: u64,
}

/// Where an archive URL points, by its name: a directory archive when it ends with `/` or
/// `toc.dat`, else an object (see [`locate`] for a directory named without its slash).
fn locate_by_name(url: &ObjectUrl) -> (Key, Option<Key>) {
    let key = url.key.as_str();
    if key.ends_with('/') {
        let prefix = url.key.clone();
        let toc = prefix.join("toc.dat").ok();
        (prefix, toc)
    } else if let Some(prefix) = key.strip_suffix("toc.dat") {
        let prefix = Key::prefix(prefix).unwrap_or_else(|_| url.key.clone());
        (prefix, Some(url.key.clone()))
    } else {
        (url.key.clone(), None)
    }
}

/// Where an archive URL points: a custom archive object, or a directory archive (its prefix,
/// its `toc.dat`, or its name without a trailing slash, as pg_restore takes a directory's
/// path: a name that is no object but has a `toc.dat` under it).
async fn locate(store: &Store, url: &ObjectUrl) -> Result<(Key, Option<Key>), RestoreError> {
    let (key, toc) = locate_by_name(url);
    if toc.is_some() {
        return Ok((key, toc));
    }
    // The object of that name, if there is one (it wins over a directory of the same name).
    let missing = match store.head(&key).await {
        Ok(_) => return Ok((key, None)),
        Err(e) => e,
    };
    // Else a directory archive, if a `toc.dat` is under the name. (Asked for a directory's
    // name, some S3-compatible servers answer an error rather than "not found"; and S3 says
    // 403 for a missing key to a role without s3:ListBucket: any failure of the name is
    // followed by the look under it, and the name's own error is the one reported.)
    let under = Key::prefix(format!("{}/", key.as_str()))
        .and_then(|prefix| Ok((prefix.join("toc.dat")?, prefix)));
    match under {
        Ok((toc, prefix)) if store.head(&toc).await.is_ok() => Ok((prefix, Some(toc))),
        _ => Err(missing.into()),
    }
}

impl Archive {
    pub async fn open(store: &Store, url: &ObjectUrl) -> Result<Archive, RestoreError> {
        let (key, toc) = locate(store, url).await?;
        let read_key = toc.clone().unwrap_or_else(|| key.clone());
        let stream = store.get(&read_key, None).await?;
        // The header and table of contents, parsed on a blocking thread; the stream is dropped
        // after the table of contents (the data is read later, block by block).
        let (reader, entries, position) = tokio::task::spawn_blocking(move || {
            let input = BlockingRead::new_blocking(stream);
            let position = input.position.clone();
            let (reader, entries) = Reader::open(input)?;
            Ok::<_, ArchiveError>((reader, entries, position))
        })
        .await
        .map_err(|e| RestoreError::Failed(format!("reading the archive: {e}")))?
        .map_err(RestoreError::Archive)?;
        let header = reader.header.clone();
        let layout = reader.layout;
        drop(reader);
        let mut archive = Archive {
            store: store.clone(),
            key: if layout == Layout::Directory {
                match toc {
                    Some(_) => key,
                    None => {
                        return Err(RestoreError::Archive(ArchiveError::Corrupt(
                            "a directory archive's toc.dat was given as an object; give its prefix"
                                .into(),
                        )));
                    }
                }
            } else {
                key
            },
            header,
            layout,
            entries,
            offsets: HashMap::new(),
            size: 0,
        };
        if archive.layout == Layout::Custom {
            archive.size = store.head(&archive.key).await?.size;
            archive
                .find_offsets(url, position.load(Ordering::Relaxed))
                .await?;
        }
        Ok(archive)
    }

    /// Custom format: each data block's offset, from the table of contents, else from a
    /// ferry manifest beside the archive, else by scanning the archive once.
    async fn find_offsets(&mut self, url: &ObjectUrl, toc_end: u64) -> Result<(), RestoreError> {
        let with_data: Vec<&TocEntry> = self.entries.iter().filter(|e| e.had_dumper).collect();
        for e in &with_data {
            if let Offset::Set(position) = e.offset {
                self.offsets.insert(e.dump_id, position);
            }
        }
        if self.offsets.len() == with_data.len() {
            return Ok(());
        }
        if let Some(manifest) = self.manifest_beside(url).await
            && with_data
                .iter()
                .all(|e| manifest.data_offsets.contains_key(&e.dump_id))
        {
            self.offsets = manifest.data_offsets.into_iter().collect();
            return Ok(());
        }
        tracing::info!("the archive has no data offsets: scanning it once to find them");
        if toc_end >= self.size {
            return Ok(()); // no data at all
        }
        let stream = self.store.get(&self.key, Some(toc_end..self.size)).await?;
        let header = self.header.clone();
        let found = tokio::task::spawn_blocking(move || {
            let input = BlockingRead::new_blocking(stream);
            let position = input.position.clone();
            let mut reader = Reader::at_block(input, header);
            let mut found = HashMap::new();
            loop {
                let at = toc_end + position.load(Ordering::Relaxed);
                match reader.next_block()? {
                    Some(id) => {
                        found.insert(id, at);
                        reader.skip_block()?;
                    }
                    None => return Ok::<_, ArchiveError>(found),
                }
            }
        })
        .await
        .map_err(|e| RestoreError::Failed(format!("scanning the archive: {e}")))??;
        self.offsets = found;
        Ok(())
    }

    async fn manifest_beside(&self, url: &ObjectUrl) -> Option<Manifest> {
        let key = url.key.as_str();
        let prefix = key.rsplit_once('/').map_or("", |(p, _)| p);
        let manifest = Key::prefix(prefix).ok()?.join("manifest.json").ok()?;
        let bytes = self.store.get_bytes(&manifest).await.ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        (manifest.archive.as_deref() == Some(&url.to_string())).then_some(manifest)
    }

    /// The large objects of a BLOBS entry, each as `Start(oid)`, its bytes, `End`.
    pub fn blobs(&self, entry: &TocEntry) -> mpsc::Receiver<Result<BlobPiece, RestoreError>> {
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let header = self.header.clone();
        let dump_id = entry.dump_id;
        let layout = self.layout;
        let key = self.key.clone();
        let offset = self.offsets.get(&dump_id).copied();
        let size = self.size;
        let toc_file = entry.file.clone().unwrap_or_default();
        tokio::spawn(async move {
            let errors = tx.clone();
            let result: Result<(), RestoreError> = async {
                match layout {
                    Layout::Custom => {
                        let at = offset.ok_or_else(|| {
                            ArchiveError::Corrupt(format!("no data block for entry {dump_id}"))
                        })?;
                        let stream = store.get(&key, Some(at..size)).await?;
                        tokio::task::spawn_blocking(move || {
                            let input = BlockingRead::new_blocking(stream);
                            let mut reader = Reader::at_block(input, header);
                            match reader.next_block()? {
                                Some(id) if id == dump_id => {}
                                other => {
                                    return Err(ArchiveError::Corrupt(format!(
                                        "expected the large objects of entry {dump_id}, found {other:?}"
                                    )));
                                }
                            }
                            let mut sink = BlobChannel {
                                tx,
                                buffer: Vec::new(),
                            };
                            reader.read_blobs(&mut sink).map(|_| ())
                        })
                        .await
                        .map_err(|e| RestoreError::Failed(format!("reading large objects: {e}")))??;
                    }
                    Layout::Directory => {
                        let toc = store.get_bytes(&key.join(&toc_file)?).await?;
                        let list = parse_blobs_toc(&String::from_utf8_lossy(&toc))?;
                        let suffix = directory_file_suffix(header.compression);
                        for (oid, file) in list {
                            let name = format!("{file}{suffix}");
                            let stream = store.get(&key.join(&name)?, None).await?;
                            let tx = tx.clone();
                            tokio::task::spawn_blocking(move || {
                                let input = BlockingRead::new_blocking(stream);
                                let mut sink = BlobChannel {
                                    tx,
                                    buffer: Vec::new(),
                                };
                                sink.start(oid).map_err(ArchiveError::Decompress)?;
                                decode_data_file(&name, input, &mut sink)?;
                                sink.end().map_err(ArchiveError::Decompress)
                            })
                            .await
                            .map_err(|e| {
                                RestoreError::Failed(format!("reading large objects: {e}"))
                            })??;
                        }
                    }
                }
                Ok(())
            }
            .await;
            if let Err(e) = result {
                let _ = errors.send(Err(e)).await;
            }
        });
        rx
    }

    /// The COPY text of entry `entry`, decompressed, as a stream of chunks.
    pub fn data(&self, entry: &TocEntry) -> mpsc::Receiver<Result<Bytes, RestoreError>> {
        let (tx, rx) = mpsc::channel(4);
        let store = self.store.clone();
        let header = self.header.clone();
        let dump_id = entry.dump_id;
        let size = self.size;
        let source = match self.layout {
            Layout::Custom => match self.offsets.get(&dump_id) {
                Some(&at) => Ok((self.key.clone(), Some(at), None)),
                None => Err(RestoreError::Archive(ArchiveError::Corrupt(format!(
                    "no data block for entry {dump_id}"
                )))),
            },
            Layout::Directory => {
                let file = entry.file.clone().unwrap_or_default();
                let name = format!("{file}{}", directory_file_suffix(header.compression));
                self.key
                    .join(&name)
                    .map(|k| (k, None, Some(name)))
                    .map_err(RestoreError::from)
            }
        };
        tokio::spawn(async move {
            let (key, offset, file) = match source {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let stream = match store.get(&key, offset.map(|at| at..size)).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            };
            let errors = tx.clone();
            let decoded = tokio::task::spawn_blocking(move || {
                let input = BlockingRead::new_blocking(stream);
                let mut sink = ChunkSink {
                    tx,
                    buffer: Vec::with_capacity(CHUNK),
                };
                match file {
                    Some(name) => {
                        decode_data_file(&name, input, &mut sink)?;
                    }
                    None => {
                        let mut reader = Reader::at_block(input, header);
                        match reader.next_block()? {
                            Some(id) if id == dump_id => {
                                reader.read_block_data(&mut sink)?;
                            }
                            other => {
                                return Err(ArchiveError::Corrupt(format!(
                                    "expected the data block of entry {dump_id}, found {other:?}"
                                )));
                            }
                        }
                    }
                }
                sink.flush().map_err(ArchiveError::Decompress)
            })
            .await;
            let failure = match decoded {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(RestoreError::Archive(e)),
                Err(e) => Some(RestoreError::Failed(format!("decoding table data: {e}"))),
            };
            if let Some(e) = failure {
                let _ = errors.send(Err(e)).await;
            }
        });
        rx
    }
}

/// Whether the object at `url` is a plain SQL dump rather than an archive: it is an object
/// (not a directory prefix or `toc.dat`) and does not start with the archive magic `PGDMP`.
pub(super) async fn is_plain(store: &Store, url: &ObjectUrl) -> Result<bool, RestoreError> {
    let (key, toc) = locate(store, url).await?;
    if toc.is_some() {
        return Ok(false);
    }
    let size = store.head(&key).await?.size;
    if size < 5 {
        return Ok(true);
    }
    let head = store.get(&key, Some(0..5)).await?;
    let bytes: Vec<Bytes> = futures::TryStreamExt::try_collect(head).await?;
    Ok(bytes.concat() != b"PGDMP")
}

/// The whole object as a synchronous reader (to be read on a blocking thread).
pub(super) async fn plain_reader(
    store: &Store,
    url: &ObjectUrl,
) -> Result<impl Read + Send + 'static, RestoreError> {
    let stream = store.get(&url.key, None).await?;
    Ok(BlockingRead::new(stream))
}
