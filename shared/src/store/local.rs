//! The local-directory backend: objects are files under a root directory.
//!
//! Writes go to `.ferry-partial-<uuid>` beside the destination and are renamed into place only
//! after the exact byte count has reached the disk, so a reader never sees half an object.
//! Listings skip those temporary files.

use std::{
    io::SeekFrom,
    ops::Range,
    path::{Path, PathBuf},
    time::UNIX_EPOCH,
};

use bytes::{Bytes, BytesMut};
use futures::stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::{ByteStream, Key, ObjectMeta, PARTIAL_PREFIX, StoreError};

const READ_CHUNK: usize = 256 * 1024;

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_error(location: &Path, source: std::io::Error) -> StoreError {
    // A key under a name that is a file (`a.dump/toc.dat`) does not exist, as on S3.
    if matches!(
        source.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    ) {
        return StoreError::NotFound {
            location: format!("file://{}", location.display()),
        };
    }
    StoreError::Io {
        location: format!("file://{}", location.display()),
        reason: source.to_string(),
        source,
    }
}

fn meta(key: &Key, m: &std::fs::Metadata) -> ObjectMeta {
    let modified = m.modified().ok();
    let nanos = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    ObjectMeta {
        key: key.clone(),
        size: m.len(),
        etag: Some(format!("{:x}-{:x}", m.len(), nanos)),
        last_modified: modified,
        version_id: None,
        content_encoding: None,
        locked_until: None,
    }
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        LocalStore { root: root.into() }
    }

    fn path(&self, key: &Key) -> PathBuf {
        self.root.join(key.as_str())
    }

    pub(super) async fn head(&self, key: &Key) -> Result<ObjectMeta, StoreError> {
        let path = self.path(key);
        let m = tokio::fs::metadata(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        if !m.is_file() {
            return Err(StoreError::NotFound {
                location: format!("file://{}", path.display()),
            });
        }
        Ok(meta(key, &m))
    }

    pub(super) async fn get(
        &self,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        let path = self.path(key);
        let size = self.head(key).await?.size;
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(StoreError::BadRange {
                location: format!("file://{}", path.display()),
                start: range.start,
                end: range.end,
                size,
            });
        }
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| io_error(&path, e))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_error(&path, e))?;
        let remaining = range.end - range.start;
        Ok(Box::pin(stream::try_unfold(
            (file, remaining, path),
            |(mut file, remaining, path)| async move {
                if remaining == 0 {
                    return Ok(None);
                }
                let want = remaining.min(READ_CHUNK as u64) as usize;
                let mut buf = BytesMut::zeroed(want);
                let mut filled = 0;
                while filled < want {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| io_error(&path, e))?;
                    if n == 0 {
                        return Err(io_error(
                            &path,
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "file shrank while being read",
                            ),
                        ));
                    }
                    filled += n;
                }
                Ok(Some((buf.freeze(), (file, remaining - want as u64, path))))
            },
        )))
    }

    pub(super) async fn upload(&self, key: &Key) -> Result<LocalUpload, StoreError> {
        let path = self.path(key);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| io_error(&dir, e))?;
        let temp = dir.join(format!("{PARTIAL_PREFIX}{}", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&temp)
            .await
            .map_err(|e| io_error(&temp, e))?;
        Ok(LocalUpload {
            key: key.clone(),
            file: Some(file),
            temp,
            path,
            written: 0,
        })
    }

    pub(super) async fn list(&self, prefix: &Key) -> Result<Vec<ObjectMeta>, StoreError> {
        // Walk only the deepest directory the prefix names fully.
        let start = match prefix.as_str().rfind('/') {
            Some(i) => self.root.join(&prefix.as_str()[..i]),
            None => self.root.clone(),
        };
        let root = self.root.clone();
        let prefix = prefix.clone();
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let mut dirs = vec![start];
            while let Some(dir) = dirs.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_error(&dir, e)),
                };
                for entry in entries {
                    let entry = entry.map_err(|e| io_error(&dir, e))?;
                    let path = entry.path();
                    let file_type = entry.file_type().map_err(|e| io_error(&path, e))?;
                    let Ok(relative) = path.strip_prefix(&root) else { continue };
                    let Some(name) = relative.to_str() else {
                        tracing::warn!(path = %path.display(), "skipping a file whose name is not UTF-8");
                        continue;
                    };
                    if file_type.is_dir() {
                        let as_prefix = format!("{name}/");
                        if as_prefix.starts_with(prefix.as_str()) || prefix.as_str().starts_with(&as_prefix) {
                            dirs.push(path);
                        }
                    } else if file_type.is_file() && name.starts_with(prefix.as_str()) {
                        if entry.file_name().to_string_lossy().starts_with(PARTIAL_PREFIX) {
                            continue;
                        }
                        let Ok(key) = Key::new(name) else { continue };
                        let m = entry.metadata().map_err(|e| io_error(&path, e))?;
                        found.push(meta(&key, &m));
                    }
                }
            }
            found.sort_by(|a, b| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()));
            Ok(found)
        })
        .await
        .map_err(|e| StoreError::Io {
            location: "file listing".into(),
            reason: e.to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
    }

    pub(super) async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&path, e)),
        }
    }

    pub(super) async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StoreError> {
        let source = self.path(from);
        self.head(from).await?;
        let upload = self.upload(to).await?;
        let temp = upload.temp.clone();
        let copied = tokio::fs::copy(&source, &temp).await;
        let mut upload = upload;
        match copied {
            Ok(n) => {
                upload.written = n;
                upload.finish().await
            }
            Err(e) => {
                upload.abort().await?;
                Err(io_error(&source, e))
            }
        }
    }
}

/// A local write in progress: a temporary file renamed into place by [`LocalUpload::finish`].
pub(crate) struct LocalUpload {
    key: Key,
    file: Option<tokio::fs::File>,
    temp: PathBuf,
    path: PathBuf,
    written: u64,
}

impl LocalUpload {
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    pub(super) async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        let file = self.file.as_mut().expect("write after finish");
        file.write_all(&data)
            .await
            .map_err(|e| io_error(&self.temp, e))?;
        self.written += data.len() as u64;
        Ok(())
    }

    pub(super) async fn finish(mut self) -> Result<ObjectMeta, StoreError> {
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(|e| io_error(&self.temp, e))?;
            file.sync_all().await.map_err(|e| io_error(&self.temp, e))?;
        }
        let on_disk = tokio::fs::metadata(&self.temp)
            .await
            .map_err(|e| io_error(&self.temp, e))?;
        if on_disk.len() != self.written {
            return Err(StoreError::Aborted {
                location: format!("file://{}", self.path.display()),
                reason: format!(
                    "{} bytes were written but {} reached the disk",
                    self.written,
                    on_disk.len()
                ),
            });
        }
        tokio::fs::rename(&self.temp, &self.path)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        let m = tokio::fs::metadata(&self.path)
            .await
            .map_err(|e| io_error(&self.path, e))?;
        Ok(meta(&self.key, &m))
    }

    pub(super) async fn abort(mut self) -> Result<(), StoreError> {
        self.file.take();
        match tokio::fs::remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error(&self.temp, e)),
        }
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        // Finished uploads have renamed the file away; anything else must not stay behind.
        let _ = std::fs::remove_file(&self.temp);
    }
}
