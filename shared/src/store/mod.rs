//! The object store: `s3://bucket/key` (aws-sdk-s3) and `file:///path` (a local directory, the
//! embedded default), behind one type shaped like S3 rather than like a filesystem.
//!
//! Guarantees every backend keeps (the conformance suite in `tests/` checks them on each):
//! - a put is atomic: readers see the whole object or none of it;
//! - a streamed [`Upload`] keeps about `part_size × max_parts_in_flight` bytes in flight plus
//!   the part being filled (parts grow past 1,000 of them, and fewer are then in flight, at
//!   least one: past 8 GB of 8 MiB parts memory grows with the part size), and an upload that
//!   fails or is dropped before [`Upload::finish`] leaves nothing visible;
//! - keys are validated [`Key`]s: no empty segments, no `.` or `..`, at most 1,024 bytes;
//! - listings are complete (every page is read) and sorted by key bytes, as S3 sorts them.

mod blocking;
mod local;
mod s3;

use std::{fmt, ops::Range, pin::Pin, time::SystemTime};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};

use crate::secret::Secret;

pub use blocking::BlockingRead;
pub use local::LocalStore;
pub use s3::S3Store;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// S3's limit on key length, in bytes (Amazon S3 user guide, "Naming objects").
pub const MAX_KEY_BYTES: usize = 1024;

/// Prefix of the temporary files the local backend writes before renaming; keys may not use it.
pub(crate) const PARTIAL_PREFIX: &str = ".ferry-partial-";

/// Why an object-store call failed. Names the object, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid object location {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid object key {key:?}: {reason}")]
    BadKey { key: String, reason: String },
    /// Write settings (encryption, storage class, tags) that S3 would refuse.
    #[error("{0}")]
    BadSettings(String),
    #[error("{location} does not exist")]
    NotFound { location: String },
    #[error("range {start}..{end} is outside {location} ({size} bytes)")]
    BadRange {
        location: String,
        start: u64,
        end: u64,
        size: u64,
    },
    #[error("upload of {location} was aborted, nothing was written: {reason}")]
    Aborted { location: String, reason: String },
    #[error("{location}: {reason}")]
    Io {
        location: String,
        reason: String,
        #[source]
        source: std::io::Error,
    },
    #[error("S3 {operation} on {location} failed: {reason}")]
    S3 {
        operation: &'static str,
        location: String,
        reason: String,
        retryable: bool,
    },
    #[error("{location}: {reason}")]
    Limit { location: String, reason: String },
    /// The object was replaced between looking at it and reading it.
    #[error("{location} changed: a newer version was written after it was looked at")]
    Changed { location: String },
}

impl StoreError {
    /// Whether the same call may succeed later. The S3 SDK has already retried what it could.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::S3 { retryable, .. } => *retryable,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }
}

/// A validated object key (or key prefix, which may be empty or end with `/`).
///
/// Refused: a leading `/`, empty segments (`a//b`), `.` and `..` segments, control characters,
/// more than [`MAX_KEY_BYTES`] bytes, and segments starting with `.ferry-partial-` (reserved).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    /// A key naming one object: not empty, no trailing `/`.
    pub fn new(key: impl Into<String>) -> Result<Key, StoreError> {
        let key = key.into();
        let bad = |reason: &str| StoreError::BadKey {
            key: key.clone(),
            reason: reason.into(),
        };
        if key.is_empty() {
            return Err(bad("an object key cannot be empty"));
        }
        if key.ends_with('/') {
            return Err(bad(
                "an object key cannot end with \"/\" (that is a prefix)",
            ));
        }
        Self::check(&key)?;
        Ok(Key(key))
    }

    /// A prefix: empty, or segments that may end with `/`.
    pub fn prefix(prefix: impl Into<String>) -> Result<Key, StoreError> {
        let prefix = prefix.into();
        if !prefix.is_empty() {
            Self::check(prefix.strip_suffix('/').unwrap_or(&prefix))?;
        }
        Ok(Key(prefix))
    }

    fn check(key: &str) -> Result<(), StoreError> {
        let bad = |reason: String| StoreError::BadKey {
            key: key.to_string(),
            reason,
        };
        if key.len() > MAX_KEY_BYTES {
            return Err(bad(format!(
                "longer than S3's limit of {MAX_KEY_BYTES} bytes"
            )));
        }
        if key.starts_with('/') {
            return Err(bad("a key cannot start with \"/\"".into()));
        }
        if let Some(c) = key.chars().find(|c| c.is_control()) {
            return Err(bad(format!("control character {c:?} in key")));
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(bad("empty path segment (\"//\")".into())),
                "." | ".." => return Err(bad(format!("{segment:?} segment in key"))),
                s if s.starts_with(PARTIAL_PREFIX) => {
                    return Err(bad(format!(
                        "segments starting with {PARTIAL_PREFIX:?} are reserved"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This prefix (or key) followed by `name`, with exactly one `/` between them.
    pub fn join(&self, name: &str) -> Result<Key, StoreError> {
        if self.0.is_empty() {
            Key::new(name)
        } else if self.0.ends_with('/') {
            Key::new(format!("{}{name}", self.0))
        } else {
            Key::new(format!("{}/{name}", self.0))
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:?})", self.0)
    }
}

/// Where an object or prefix lives: `s3://bucket/key` or `file:///absolute/path`.
///
/// Everything after the bucket (or after `file://`) is the key, taken verbatim: no percent
/// decoding, so `s3://b/my file.csv` is the key `my file.csv`, as S3 tools print it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ObjectUrl {
    /// `Some(bucket)` for S3, `None` for the local filesystem.
    pub bucket: Option<String>,
    /// The key or prefix; for `file://` URLs, the absolute path without its leading `/`.
    pub key: Key,
}

impl ObjectUrl {
    pub fn parse(url: &str) -> Result<ObjectUrl, StoreError> {
        let bad = |reason: &str| StoreError::BadUrl {
            url: url.to_string(),
            reason: reason.into(),
        };
        let key = |k: &str| {
            Key::prefix(k).map_err(|e| match e {
                StoreError::BadKey { reason, .. } => bad(&reason),
                other => other,
            })
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, k) = rest.split_once('/').unwrap_or((rest, ""));
            if !valid_bucket(bucket) {
                return Err(bad(&format!("{bucket:?} is not a valid S3 bucket name")));
            }
            Ok(ObjectUrl {
                bucket: Some(bucket.to_string()),
                key: key(k)?,
            })
        } else if let Some(rest) = url.strip_prefix("file://") {
            let path = rest
                .strip_prefix('/')
                .ok_or_else(|| bad("a file URL needs an absolute path: file:///path/to/dir"))?;
            Ok(ObjectUrl {
                bucket: None,
                key: key(path)?,
            })
        } else {
            Err(bad("an object location starts with s3:// or file://"))
        }
    }

    /// This location with `name` appended as one more key segment.
    pub fn join(&self, name: &str) -> Result<ObjectUrl, StoreError> {
        Ok(ObjectUrl {
            bucket: self.bucket.clone(),
            key: self.key.join(name)?,
        })
    }

    /// The location of `key` in the same bucket.
    pub fn with_key(&self, key: Key) -> ObjectUrl {
        ObjectUrl {
            bucket: self.bucket.clone(),
            key,
        }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.bucket {
            Some(bucket) => write!(f, "s3://{bucket}/{}", self.key),
            None => write!(f, "file:///{}", self.key),
        }
    }
}

impl fmt::Debug for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectUrl({self})")
    }
}

/// S3 bucket naming rules (Amazon S3 user guide, "Bucket naming rules"), minus the historical
/// exceptions: 3 to 63 characters of lowercase letters, digits, `.` and `-`, starting and ending
/// with a letter or digit.
fn valid_bucket(bucket: &str) -> bool {
    let ok_chars = bucket
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    let ends_ok = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bucket.len())
        && ok_chars
        && ends_ok(bucket.bytes().next())
        && ends_ok(bucket.bytes().last())
        && !bucket.contains("..")
}

/// What a listing or a head call knows of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: Key,
    pub size: u64,
    /// S3's ETag (quotes removed); for local files, size and modification time.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// S3's version id, when the bucket keeps versions (head only).
    pub version_id: Option<String>,
    /// The `Content-Encoding` it was stored with (head only).
    pub content_encoding: Option<String>,
    /// Until when S3 Object Lock keeps this version (head only, when it is locked).
    pub locked_until: Option<SystemTime>,
}

/// How to reach S3 and how to upload. [`StoreConfig::from_env`] reads the environment; the AWS
/// SDK's own configuration (credentials, region, `AWS_ENDPOINT_URL`) applies where a field is
/// left empty.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Endpoint of an S3-compatible server; overrides `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`), which most S3-compatible servers need.
    pub path_style: bool,
    /// Static access key and secret, for S3-compatible servers; otherwise the SDK's chain.
    pub credentials: Option<(String, Secret)>,
    /// Bytes per multipart part at first. S3 wants at least 5 MiB for every part but the last
    /// and allows at most 10,000 parts: the part size doubles every tenth of that (see
    /// [`part_size`]), so that 8 MiB parts reach S3's 5 TiB object limit.
    pub part_size: usize,
    /// Parts an upload may have: S3's [`MAX_PARTS`]; tests lower it to reach the limit cheaply.
    pub max_parts: i32,
    /// Parts uploading at once; memory held is at most this many parts plus one being filled.
    pub max_parts_in_flight: usize,
    /// Objects up to this size are copied with one CopyObject (S3 allows at most 5 GiB, Amazon
    /// S3 API reference, CopyObject); larger ones part by part with UploadPartCopy.
    pub max_single_copy: u64,
    /// Bytes per UploadPartCopy part.
    pub copy_part_size: u64,
    /// Encryption, storage class and tags of the objects written (S3 only).
    pub write: WriteSettings,
    /// Refuse `file://` URLs: set in Lambda functions, where a `file://` URL in an event would
    /// read or write the function's own files (`/proc/self/environ` holds its credentials).
    /// The local stack, which runs the functions against a local directory, sets
    /// `FERRY_ALLOW_FILE_URLS=true`.
    pub refuse_local_files: bool,
}

/// How objects are stored when written to S3: server-side encryption, storage class, tags.
/// Reading needs nothing: S3 decrypts SSE-S3 and SSE-KMS objects for a reader allowed to.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WriteSettings {
    /// `AES256` (SSE-S3) or `aws:kms` (SSE-KMS); the bucket's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    /// The KMS key (id, ARN or `alias/...`) for `aws:kms`; S3's managed key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// `STANDARD`, `STANDARD_IA`, `INTELLIGENT_TIERING`, `ONEZONE_IA`, `GLACIER_IR`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Object tags (at most 10).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tags: std::collections::BTreeMap<String, String>,
    /// S3 Object Lock retention of what is written: `GOVERNANCE` or `COMPLIANCE` (the bucket
    /// must have Object Lock enabled), with `lockDays`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_mode: Option<String>,
    /// Days each object written stays locked (from when it is written), with `lockMode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_days: Option<u32>,
}

const STORAGE_CLASSES: [&str; 9] = [
    "STANDARD",
    "STANDARD_IA",
    "INTELLIGENT_TIERING",
    "ONEZONE_IA",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
    "REDUCED_REDUNDANCY",
    "EXPRESS_ONEZONE",
];

impl WriteSettings {
    pub fn is_empty(&self) -> bool {
        *self == WriteSettings::default()
    }

    /// Checks the settings before anything is written; the error names the setting.
    pub fn check(&self) -> Result<(), StoreError> {
        self.problem()
            .map_or(Ok(()), |reason| Err(StoreError::BadSettings(reason)))
    }

    /// What is wrong with the settings, if anything.
    fn problem(&self) -> Option<String> {
        match self.encryption.as_deref() {
            None | Some("AES256") | Some("aws:kms") | Some("aws:kms:dsse") => {}
            Some(other) => {
                return Some(format!(
                    "encryption {other:?}: use AES256 (SSE-S3), aws:kms or aws:kms:dsse (SSE-KMS)"
                ));
            }
        }
        if self.kms_key_id.is_some()
            && !self
                .encryption
                .as_deref()
                .is_some_and(|e| e.starts_with("aws:kms"))
        {
            return Some("kmsKeyId needs encryption aws:kms".into());
        }
        if let Some(class) = &self.storage_class
            && !STORAGE_CLASSES.contains(&class.as_str())
        {
            return Some(format!(
                "storage class {class:?}: use one of {}",
                STORAGE_CLASSES.join(", ")
            ));
        }
        match (self.lock_mode.as_deref(), self.lock_days) {
            (None, None) | (Some("GOVERNANCE" | "COMPLIANCE"), Some(1..=36500)) => {}
            (Some(mode @ ("GOVERNANCE" | "COMPLIANCE")), days) => {
                return Some(format!(
                    "lock mode {mode} needs lock days from 1 to 36500, not {days:?}"
                ));
            }
            (Some(other), _) => {
                return Some(format!(
                    "lock mode {other:?}: use GOVERNANCE or COMPLIANCE (S3 Object Lock)"
                ));
            }
            (None, Some(_)) => return Some("lock days need a lock mode".into()),
        }
        if self.tags.len() > 10 {
            return Some(format!(
                "{} tags: S3 allows at most 10 per object",
                self.tags.len()
            ));
        }
        // S3's tag rules: letters, numbers, spaces and `_ . : / = + - @`.
        let allowed = |c: char| c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c);
        for (k, v) in &self.tags {
            if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                return Some(format!(
                    "tag {k:?}: a key has 1 to 128 characters and a value at most 256"
                ));
            }
            if let Some(c) = k.chars().chain(v.chars()).find(|c| !allowed(*c)) {
                return Some(format!(
                    "tag {k:?}: {c:?} is not allowed in S3 tags (letters, numbers, spaces and _ . : / = + - @)"
                ));
            }
        }
        None
    }

    /// The tags as S3's `x-amz-tagging` header wants them (URL query encoding).
    pub fn tagging(&self) -> Option<String> {
        if self.tags.is_empty() {
            return None;
        }
        let enc = |s: &str| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        Some(
            self.tags
                .iter()
                .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
    }

    /// Overrides from `other` (what a job asks for, over what the environment set).
    pub fn over(&self, base: &WriteSettings) -> WriteSettings {
        WriteSettings {
            encryption: self.encryption.clone().or_else(|| base.encryption.clone()),
            kms_key_id: self.kms_key_id.clone().or_else(|| base.kms_key_id.clone()),
            storage_class: self
                .storage_class
                .clone()
                .or_else(|| base.storage_class.clone()),
            tags: if self.tags.is_empty() {
                base.tags.clone()
            } else {
                self.tags.clone()
            },
            lock_mode: self.lock_mode.clone().or_else(|| base.lock_mode.clone()),
            lock_days: self.lock_days.or(base.lock_days),
        }
    }

    /// When what is written now stays locked until, if it is locked.
    pub fn locked_until(&self) -> Option<SystemTime> {
        self.lock_mode.as_ref()?;
        let days = u64::from(self.lock_days?);
        Some(SystemTime::now() + std::time::Duration::from_secs(days * 86_400))
    }
}

/// S3's smallest part size for all but the last part (Amazon S3 multipart upload limits).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// S3's largest part number (Amazon S3 multipart upload limits).
pub const MAX_PARTS: i32 = 10_000;
/// S3's largest part (Amazon S3 multipart upload limits).
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;

/// The size of part `number` (from 1) of an upload of at most `max_parts` parts that starts
/// with parts of `first` bytes: doubled after every tenth of `max_parts`, at most
/// [`MAX_PART_SIZE`]. The object's size is unknown when it starts streaming; growing parts
/// keep small objects in small parts (memory is a few parts) and let a large one reach
/// `first × max_parts/10 × (2^10 − 1)` bytes (8 TiB from 8 MiB parts) instead of stopping at
/// `first × max_parts`.
pub fn part_size(first: usize, max_parts: i32, number: i32) -> usize {
    let step = (max_parts / 10).max(1);
    let doublings = ((number.max(1) - 1) / step).min(20) as u32;
    first
        .saturating_mul(1usize << doublings)
        .min(MAX_PART_SIZE)
        .max(first.min(MAX_PART_SIZE))
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            endpoint: None,
            region: None,
            path_style: false,
            credentials: None,
            part_size: 8 * 1024 * 1024,
            max_parts: MAX_PARTS,
            max_parts_in_flight: 4,
            max_single_copy: 5 * 1024 * 1024 * 1024,
            copy_part_size: 512 * 1024 * 1024,
            write: WriteSettings::default(),
            refuse_local_files: false,
        }
    }
}

impl StoreConfig {
    /// `FERRY_S3_PATH_STYLE` (true/1), `FERRY_S3_PART_SIZE` (bytes),
    /// `FERRY_S3_PARTS_IN_FLIGHT`, and for what is written `FERRY_S3_SSE` (`AES256`,
    /// `aws:kms`), `FERRY_S3_SSE_KMS_KEY_ID`, `FERRY_S3_STORAGE_CLASS`, `FERRY_S3_TAGS`
    /// (`k=v&k2=v2`), `FERRY_S3_LOCK_MODE` and `FERRY_S3_LOCK_DAYS` (Object Lock); the rest
    /// comes from the AWS SDK's standard configuration.
    pub fn from_env() -> Result<StoreConfig, StoreError> {
        let mut config = StoreConfig::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let bad = |name: &str, value: &str, want: &str| StoreError::BadUrl {
            url: format!("{name}={value}"),
            reason: want.into(),
        };
        if let Some(v) = var("FERRY_S3_PATH_STYLE") {
            config.path_style = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" => false,
                _ => return Err(bad("FERRY_S3_PATH_STYLE", &v, "expected true or false")),
            };
        }
        if let Some(v) = var("FERRY_S3_PART_SIZE") {
            config.part_size = v
                .parse()
                .ok()
                .filter(|n| *n >= MIN_PART_SIZE)
                .ok_or_else(|| {
                    bad(
                        "FERRY_S3_PART_SIZE",
                        &v,
                        "expected bytes, at least 5 MiB (S3's minimum part size)",
                    )
                })?;
        }
        config.write = WriteSettings {
            lock_mode: var("FERRY_S3_LOCK_MODE"),
            lock_days: match var("FERRY_S3_LOCK_DAYS") {
                None => None,
                Some(v) => Some(
                    v.parse()
                        .map_err(|_| bad("FERRY_S3_LOCK_DAYS", &v, "expected a number of days"))?,
                ),
            },
            encryption: var("FERRY_S3_SSE"),
            kms_key_id: var("FERRY_S3_SSE_KMS_KEY_ID"),
            storage_class: var("FERRY_S3_STORAGE_CLASS"),
            tags: match var("FERRY_S3_TAGS") {
                None => Default::default(),
                Some(v) => v
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        let dec = |s: &str| {
                            percent_encoding::percent_decode_str(s)
                                .decode_utf8_lossy()
                                .into_owned()
                        };
                        (dec(k), dec(v))
                    })
                    .collect(),
            },
        };
        config.write.check().map_err(|reason| {
            bad(
                "FERRY_S3_SSE / FERRY_S3_STORAGE_CLASS / FERRY_S3_TAGS",
                "",
                &reason.to_string(),
            )
        })?;
        if let Some(v) = var("FERRY_S3_PARTS_IN_FLIGHT") {
            config.max_parts_in_flight = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                bad(
                    "FERRY_S3_PARTS_IN_FLIGHT",
                    &v,
                    "expected a number of parts, at least 1",
                )
            })?;
        }
        Ok(config)
    }
}

/// One bucket (S3) or the local filesystem.
#[derive(Clone, Debug)]
pub enum Store {
    S3(S3Store),
    Local(LocalStore),
}

impl Store {
    /// The store that holds `url`.
    pub async fn for_url(url: &ObjectUrl, config: &StoreConfig) -> Result<Store, StoreError> {
        Ok(match &url.bucket {
            Some(bucket) => Store::S3(S3Store::new(bucket, config).await?),
            None if config.refuse_local_files => {
                return Err(StoreError::BadUrl {
                    url: url.to_string(),
                    reason: "a Lambda function reads and writes only s3:// URLs (a file:// URL \
                             would reach the function's own files)"
                        .into(),
                });
            }
            None => Store::Local(LocalStore::new("/")),
        })
    }

    /// The URL of `key` in this store.
    pub fn url(&self, key: &Key) -> ObjectUrl {
        ObjectUrl {
            bucket: match self {
                Store::S3(s) => Some(s.bucket().to_string()),
                Store::Local(_) => None,
            },
            key: key.clone(),
        }
    }

    pub async fn head(&self, key: &Key) -> Result<ObjectMeta, StoreError> {
        match self {
            Store::S3(s) => s.head(key).await,
            Store::Local(l) => l.head(key).await,
        }
    }

    /// Streams the object, or the bytes `range` of it.
    pub async fn get(
        &self,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        match self {
            Store::S3(s) => s.get(key, range).await,
            Store::Local(l) => l.get(key, range).await,
        }
    }

    /// Streams exactly the version `meta` describes (its S3 version id, or else its ETag): a
    /// newer object written meanwhile fails with [`StoreError::Changed`] instead of being read.
    pub async fn get_version(
        &self,
        meta: &ObjectMeta,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        match self {
            Store::S3(s) => s.get_version(meta, range).await,
            Store::Local(l) => {
                let now = l.head(&meta.key).await?;
                if now.etag != meta.etag {
                    return Err(StoreError::Changed {
                        location: self.url(&meta.key).to_string(),
                    });
                }
                l.get(&meta.key, range).await
            }
        }
    }

    /// The whole object in memory: for small objects such as manifests.
    pub async fn get_bytes(&self, key: &Key) -> Result<Bytes, StoreError> {
        let chunks: Vec<Bytes> = self.get(key, None).await?.try_collect().await?;
        Ok(chunks.concat().into())
    }

    /// Writes a whole object atomically.
    pub async fn put(&self, key: &Key, data: Bytes) -> Result<ObjectMeta, StoreError> {
        let mut upload = self.upload(key).await?;
        upload.write(data).await?;
        upload.finish().await
    }

    /// Starts a streamed upload. Nothing is visible until [`Upload::finish`] succeeds.
    pub async fn upload(&self, key: &Key) -> Result<Upload, StoreError> {
        Ok(Upload {
            inner: match self {
                Store::S3(s) => UploadInner::S3(s.upload(key)),
                Store::Local(l) => UploadInner::Local(l.upload(key).await?),
            },
        })
    }

    /// Uploads everything `stream` yields. If the stream fails, the upload is aborted and the
    /// stream's error is returned inside [`StoreError::Aborted`]; nothing becomes visible.
    pub async fn put_stream<S, E>(&self, key: &Key, stream: S) -> Result<ObjectMeta, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: fmt::Display,
    {
        let mut upload = self.upload(key).await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(chunk) => upload.write(chunk).await?,
                Err(e) => {
                    let location = self.url(key).to_string();
                    upload.abort().await?;
                    return Err(StoreError::Aborted {
                        location,
                        reason: e.to_string(),
                    });
                }
            }
        }
        upload.finish().await
    }

    /// Every object whose key starts with `prefix`, sorted by key, reading every page.
    pub async fn list(&self, prefix: &Key) -> Result<Vec<ObjectMeta>, StoreError> {
        match self {
            Store::S3(s) => s.list(prefix).await,
            Store::Local(l) => l.list(prefix).await,
        }
    }

    /// What objects written through this store are stored with.
    pub fn write_settings(&self) -> WriteSettings {
        match self {
            Store::S3(s) => s.write_settings().clone(),
            Store::Local(_) => WriteSettings::default(),
        }
    }

    /// How an object is stored, as the server reports it (S3: HeadObject and
    /// GetObjectTagging; local files: nothing to report).
    pub async fn stored_as(&self, key: &Key) -> Result<WriteSettings, StoreError> {
        match self {
            Store::S3(s) => s.stored_as(key).await,
            Store::Local(_) => Ok(WriteSettings::default()),
        }
    }

    /// Deletes an object; deleting one that does not exist succeeds (as on S3).
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match self {
            Store::S3(s) => s.delete(key).await,
            Store::Local(l) => l.delete(key).await,
        }
    }

    /// Joins `sources` (keys with their sizes, in order) into one object `to`, atomically at
    /// the destination: on S3 server-side (`UploadPartCopy`) wherever the parts are big enough.
    pub async fn compose(
        &self,
        sources: &[(Key, u64)],
        to: &Key,
    ) -> Result<ObjectMeta, StoreError> {
        match self {
            Store::S3(s) => s.compose(sources, to).await,
            Store::Local(_) => {
                let mut upload = self.upload(to).await?;
                for (key, size) in sources {
                    let mut body = self.get(key, Some(0..*size)).await?;
                    while let Some(chunk) = body.try_next().await? {
                        upload.write(chunk).await?;
                    }
                }
                upload.finish().await
            }
        }
    }

    /// Copies an object within this store, atomically at the destination.
    pub async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StoreError> {
        match self {
            Store::S3(s) => s.copy(from, to).await,
            Store::Local(l) => l.copy(from, to).await,
        }
    }

    /// Moves exactly the version `meta` describes to `to`: it is copied by its version id (or on
    /// the condition that its ETag is still current) and deleted on the condition that it is
    /// still the current version. A newer object written under the same key meanwhile is
    /// neither copied nor deleted.
    pub async fn move_version(&self, meta: &ObjectMeta, to: &Key) -> Result<Moved, StoreError> {
        let still_current = async || match self {
            Store::S3(_) => Ok(true),
            Store::Local(l) => Ok(l.head(&meta.key).await?.etag == meta.etag),
        };
        if !still_current().await? && meta.version_id.is_none() {
            return Ok(Moved::Replaced);
        }
        let copied = match self {
            Store::S3(s) => s.copy_version(meta, to).await,
            Store::Local(l) => l.copy(&meta.key, to).await,
        };
        match copied {
            Ok(_) => {}
            Err(StoreError::Changed { .. }) => return Ok(Moved::Replaced),
            Err(e) => return Err(e),
        }
        let deleted = match self {
            Store::S3(s) => s.delete_version(meta).await,
            Store::Local(l) if still_current().await? => l.delete(&meta.key).await,
            Store::Local(_) => Err(StoreError::Changed {
                location: self.url(&meta.key).to_string(),
            }),
        };
        match deleted {
            Ok(()) => Ok(Moved::Moved),
            Err(StoreError::Changed { .. }) => Ok(Moved::CopiedNewerKept),
            Err(e) => Err(e),
        }
    }
}

/// What [`Store::move_version`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// Copied to its new place and deleted from the old.
    Moved,
    /// Copied, but a newer object under the old key was left where it is.
    CopiedNewerKept,
    /// The version was overwritten before it could be copied (the bucket keeps no versions):
    /// nothing was copied, and the newer object was left where it is.
    Replaced,
}

/// A streamed upload in progress. Call [`Upload::finish`] to make the object visible; an upload
/// dropped without `finish` is aborted and leaves nothing behind.
pub struct Upload {
    inner: UploadInner,
}

enum UploadInner {
    S3(s3::S3Upload),
    Local(local::LocalUpload),
}

impl Upload {
    /// Adds bytes to the object. May wait while the maximum number of parts is in flight.
    pub async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        match &mut self.inner {
            UploadInner::S3(u) => u.write(data).await,
            UploadInner::Local(u) => u.write(data).await,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        match &self.inner {
            UploadInner::S3(u) => u.written(),
            UploadInner::Local(u) => u.written(),
        }
    }

    /// Completes the upload: the object becomes visible, whole, at once.
    pub async fn finish(self) -> Result<ObjectMeta, StoreError> {
        match self.inner {
            UploadInner::S3(u) => u.finish().await,
            UploadInner::Local(u) => u.finish().await,
        }
    }

    /// Abandons the upload and removes what was sent.
    pub async fn abort(self) -> Result<(), StoreError> {
        match self.inner {
            UploadInner::S3(u) => u.abort().await,
            UploadInner::Local(u) => u.abort().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_ten_thousand_reach_s3s_largest_object() {
        let first = 8 * 1024 * 1024;
        assert_eq!(part_size(first, MAX_PARTS, 1), first);
        assert_eq!(part_size(first, MAX_PARTS, 1000), first);
        assert_eq!(part_size(first, MAX_PARTS, 1001), 2 * first);
        assert_eq!(part_size(first, MAX_PARTS, MAX_PARTS), 512 * first);
        let total: u128 = (1..=MAX_PARTS)
            .map(|n| part_size(first, MAX_PARTS, n) as u128)
            .sum();
        assert!(total >= 5 << 40, "{total} bytes in 10,000 parts");
        // Never past S3's largest part, even from a large first part.
        assert_eq!(part_size(1 << 30, MAX_PARTS, MAX_PARTS), MAX_PART_SIZE);
        assert_eq!(part_size(first, 5, 3), 4 * first);
    }

    #[test]
    fn keys() {
        for good in [
            "a",
            "a/b.csv",
            "my file.csv",
            "données/été.csv",
            "a/.hidden",
        ] {
            Key::new(good).unwrap();
        }
        for bad in [
            "",
            "/a",
            "a//b",
            "a/../b",
            "..",
            "./a",
            "a/",
            "a\nb",
            ".ferry-partial-x",
        ] {
            assert!(Key::new(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Key::new("x".repeat(1025)).is_err());
        assert_eq!(Key::prefix("").unwrap().join("a").unwrap().as_str(), "a");
        assert_eq!(
            Key::prefix("p/").unwrap().join("a").unwrap().as_str(),
            "p/a"
        );
        assert_eq!(Key::prefix("p").unwrap().join("a").unwrap().as_str(), "p/a");
        assert!(Key::prefix("p//").is_err());
    }

    #[test]
    fn urls() {
        let u = ObjectUrl::parse("s3://my-bucket/snapshots/db 1/").unwrap();
        assert_eq!(u.bucket.as_deref(), Some("my-bucket"));
        assert_eq!(u.key.as_str(), "snapshots/db 1/");
        assert_eq!(u.to_string(), "s3://my-bucket/snapshots/db 1/");
        let f = ObjectUrl::parse("file:///tmp/x/y.csv").unwrap();
        assert_eq!((f.bucket.clone(), f.key.as_str()), (None, "tmp/x/y.csv"));
        assert_eq!(f.to_string(), "file:///tmp/x/y.csv");
        assert_eq!(ObjectUrl::parse("s3://b-1").unwrap().key.as_str(), "");
        for bad in [
            "s3://B/x",
            "s3://ab/x",
            "file://relative/x",
            "http://x/y",
            "s3://bucket/a/../b",
        ] {
            assert!(ObjectUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
