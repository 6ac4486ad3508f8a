//! The S3 backend (aws-sdk-s3), for AWS and S3-compatible servers.
//!
//! Retries are the SDK's (its standard retry mode); this module does not retry on its own.
//! Uploads stream: bytes are cut into parts of `part_size`, at most `max_parts_in_flight` parts
//! upload at once, and any failure aborts the multipart upload so no object appears. An upload
//! smaller than one part is a single atomic `PutObject`.

use std::ops::Range;

use aws_sdk_s3::{
    Client,
    config::{Credentials, Region},
    error::{DisplayErrorContext, ProvideErrorMetadata, SdkError},
    primitives::ByteStream as SdkBody,
    types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart},
};
use bytes::{Bytes, BytesMut};
use futures::stream;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use tokio::task::JoinSet;

use super::{ByteStream, Key, MAX_PARTS, ObjectMeta, StoreConfig, StoreError};

/// Characters escaped in `x-amz-copy-source` (everything but unreserved characters and `/`).
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    part_size: usize,
    max_parts: i32,
    max_parts_in_flight: usize,
    max_single_copy: u64,
    copy_part_size: u64,
    write: super::WriteSettings,
}

/// Maps an SDK error to a [`StoreError`]: 404s become `NotFound`, and whether a retry can help
/// is decided from the kind of failure and the status code.
fn sdk_error<E>(
    operation: &'static str,
    location: String,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default().to_string();
    if status == Some(404) || code == "NoSuchKey" || code == "NotFound" {
        return StoreError::NotFound { location };
    }
    // Only conditional requests (a version pinned by its ETag) can fail a precondition.
    if status == Some(412) || code == "PreconditionFailed" {
        return StoreError::Changed { location };
    }
    let retryable = matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_))
        || status.is_some_and(|s| s == 429 || s >= 500);
    StoreError::S3 {
        operation,
        location,
        reason: DisplayErrorContext(&e).to_string(),
        retryable,
    }
}

impl S3Store {
    pub(super) async fn new(bucket: &str, config: &StoreConfig) -> Result<S3Store, StoreError> {
        let mut loader = crate::aws::config_loader();
        if let Some(endpoint) = &config.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = &config.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &config.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret.expose(),
                None,
                None,
                "ferry",
            ));
        }
        let sdk = loader.load().await;
        let mut builder =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(config.path_style);
        if sdk.region().is_none() {
            // S3-compatible servers rarely care, but requests must be signed for some region.
            builder = builder.region(Region::from_static("us-east-1"));
        }
        Ok(S3Store {
            client: Client::from_conf(builder.build()),
            bucket: bucket.to_string(),
            part_size: config.part_size,
            max_parts: config.max_parts.clamp(1, MAX_PARTS),
            max_parts_in_flight: config.max_parts_in_flight.max(1),
            max_single_copy: config.max_single_copy,
            copy_part_size: config.copy_part_size.max(super::MIN_PART_SIZE as u64),
            write: config.write.clone(),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(super) fn write_settings(&self) -> &super::WriteSettings {
        &self.write
    }

    fn encryption(&self) -> Option<aws_sdk_s3::types::ServerSideEncryption> {
        self.write
            .encryption
            .as_deref()
            .map(aws_sdk_s3::types::ServerSideEncryption::from)
    }

    fn lock_mode(&self) -> Option<aws_sdk_s3::types::ObjectLockMode> {
        self.write
            .lock_mode
            .as_deref()
            .map(aws_sdk_s3::types::ObjectLockMode::from)
    }

    fn lock_until(&self) -> Option<aws_sdk_s3::primitives::DateTime> {
        self.write
            .locked_until()
            .map(aws_sdk_s3::primitives::DateTime::from)
    }

    fn storage_class(&self) -> Option<aws_sdk_s3::types::StorageClass> {
        self.write
            .storage_class
            .as_deref()
            .map(aws_sdk_s3::types::StorageClass::from)
    }

    /// Encryption, KMS key, storage class and tags of an object, as S3 reports them.
    pub(super) async fn stored_as(&self, key: &Key) -> Result<super::WriteSettings, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("HeadObject", self.location(key), e))?;
        let tags = self
            .client
            .get_object_tagging()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("GetObjectTagging", self.location(key), e))?;
        Ok(super::WriteSettings {
            encryption: head
                .server_side_encryption()
                .map(|e| e.as_str().to_string()),
            kms_key_id: head.ssekms_key_id().map(str::to_string),
            storage_class: head.storage_class().map(|c| c.as_str().to_string()),
            tags: tags
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
            // A lock is a date on each version, not a setting: see `ObjectMeta::locked_until`.
            lock_mode: None,
            lock_days: None,
        })
    }

    /// `x-amz-copy-source` for `key`.
    fn copy_source(&self, key: &Key) -> String {
        format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(key.as_str(), COPY_SOURCE)
        )
    }

    /// `x-amz-copy-source` for exactly the version `meta` describes, when it has an id.
    fn version_source(&self, meta: &ObjectMeta) -> String {
        match &meta.version_id {
            Some(v) => format!(
                "{}?versionId={}",
                self.copy_source(&meta.key),
                utf8_percent_encode(v, COPY_SOURCE)
            ),
            None => self.copy_source(&meta.key),
        }
    }

    /// The ETag condition that pins `meta` when the bucket keeps no versions.
    fn version_condition(&self, meta: &ObjectMeta) -> Option<String> {
        match (&meta.version_id, &meta.etag) {
            (None, Some(etag)) => Some(format!("\"{etag}\"")),
            _ => None,
        }
    }

    fn location(&self, key: &Key) -> String {
        format!("s3://{}/{}", self.bucket, key)
    }

    pub(super) async fn head(&self, key: &Key) -> Result<ObjectMeta, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| sdk_error("HeadObject", self.location(key), e))?;
        Ok(ObjectMeta {
            key: key.clone(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: out.e_tag().map(|t| t.trim_matches('"').to_string()),
            last_modified: out
                .last_modified()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
            version_id: out
                .version_id()
                .filter(|v| *v != "null")
                .map(str::to_string),
            content_encoding: out.content_encoding().map(str::to_string),
            locked_until: out
                .object_lock_retain_until_date()
                .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
        })
    }

    pub(super) async fn get(
        &self,
        key: &Key,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        self.get_if(key, None, range).await
    }

    pub(super) async fn get_version(
        &self,
        meta: &ObjectMeta,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        self.get_if(&meta.key, Some(meta), range).await
    }

    async fn get_if(
        &self,
        key: &Key,
        version: Option<&ObjectMeta>,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StoreError> {
        let bad_range = |size: u64, range: &Range<u64>| StoreError::BadRange {
            location: self.location(key),
            start: range.start,
            end: range.end,
            size,
        };
        let mut request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str());
        match version {
            Some(ObjectMeta {
                version_id: Some(v),
                ..
            }) => request = request.version_id(v),
            Some(ObjectMeta { etag: Some(e), .. }) => {
                request = request.if_match(format!("\"{e}\""))
            }
            _ => {}
        }
        if let Some(range) = &range {
            if range.start >= range.end {
                // S3 cannot express an empty range; check existence and bounds instead.
                let size = self.head(key).await?.size;
                if range.start > range.end || range.end > size {
                    return Err(bad_range(size, range));
                }
                return Ok(Box::pin(stream::empty()));
            }
            request = request.range(format!("bytes={}-{}", range.start, range.end - 1));
        }
        let out = match request.send().await {
            Ok(out) => out,
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                let size = self.head(key).await?.size;
                return Err(bad_range(size, range.as_ref().unwrap_or(&(0..0))));
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                return Err(StoreError::Changed {
                    location: self.location(key),
                });
            }
            Err(e) => return Err(sdk_error("GetObject", self.location(key), e)),
        };
        if let Some(range) = &range {
            // S3 shortens a range that runs past the end instead of refusing it.
            let got = out.content_length().unwrap_or(0).max(0) as u64;
            if got != range.end - range.start {
                let size = self.head(key).await?.size;
                return Err(bad_range(size, range));
            }
        }
        let location = self.location(key);
        Ok(Box::pin(stream::try_unfold(
            (out.body, location),
            |(mut body, location): (SdkBody, String)| async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => Ok(Some((chunk, (body, location)))),
                    Ok(None) => Ok(None),
                    Err(e) => Err(StoreError::S3 {
                        operation: "GetObject",
                        location,
                        reason: format!("reading the body: {}", DisplayErrorContext(&e)),
                        retryable: true,
                    }),
                }
            },
        )))
    }

    pub(super) fn upload(&self, key: &Key) -> S3Upload {
        S3Upload {
            store: self.clone(),
            key: key.clone(),
            buffer: BytesMut::new(),
            upload_id: None,
            next_part: 1,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            written: 0,
            done: false,
        }
    }

    pub(super) async fn list(&self, prefix: &Key) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix.as_str())
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_error("ListObjectsV2", self.location(prefix), e))?;
            for object in out.contents() {
                let Some(name) = object.key() else { continue };
                let Ok(key) = Key::new(name) else {
                    tracing::warn!(
                        key = name,
                        "skipping an object whose key ferry cannot address"
                    );
                    continue;
                };
                found.push(ObjectMeta {
                    key,
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: object.e_tag().map(|t| t.trim_matches('"').to_string()),
                    last_modified: object
                        .last_modified()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok()),
                    version_id: None,
                    content_encoding: None,
                    locked_until: None,
                });
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        found.sort_by(|a, b| a.key.as_str().as_bytes().cmp(b.key.as_str().as_bytes()));
        Ok(found)
    }

    pub(super) async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        self.delete_if(key, None).await
    }

    /// Deletes `key` if its current version is still `version` (S3's conditional delete,
    /// `If-Match` with the ETag): a newer upload fails with [`StoreError::Changed`] and stays.
    pub(super) async fn delete_version(&self, version: &ObjectMeta) -> Result<(), StoreError> {
        self.delete_if(&version.key, version.etag.as_deref()).await
    }

    async fn delete_if(&self, key: &Key, etag: Option<&str>) -> Result<(), StoreError> {
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_if_match(etag.map(|e| format!("\"{e}\"")))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // A conditional delete racing a write is answered 409 (ConditionalRequestConflict):
            // the object is being replaced.
            Err(e)
                if etag.is_some()
                    && e.raw_response().is_some_and(|r| r.status().as_u16() == 409) =>
            {
                Err(StoreError::Changed {
                    location: self.location(key),
                })
            }
            Err(e) => match sdk_error("DeleteObject", self.location(key), e) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    pub(super) async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectMeta, StoreError> {
        let version = self.head(from).await?;
        self.copy_version(&version, to).await
    }

    /// Copies exactly the version `from` describes: its version id when the bucket keeps
    /// versions, else on the condition that its ETag is still the current one (a newer upload
    /// fails with [`StoreError::Changed`] and is not copied).
    pub(super) async fn copy_version(
        &self,
        from: &ObjectMeta,
        to: &Key,
    ) -> Result<ObjectMeta, StoreError> {
        let source = self.version_source(from);
        let if_match = self.version_condition(from);
        let size = from.size;
        if size <= self.max_single_copy {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(to.as_str())
                .copy_source(&source)
                .set_copy_source_if_match(if_match)
                .set_server_side_encryption(self.encryption())
                .set_ssekms_key_id(self.write.kms_key_id.clone())
                .set_storage_class(self.storage_class())
                .set_object_lock_mode(self.lock_mode())
                .set_object_lock_retain_until_date(self.lock_until())
                .send()
                .await
                .map_err(|e| sdk_error("CopyObject", self.location(&from.key), e))?;
            return self.head(to).await;
        }
        let upload_id = self.create_multipart(to).await?;
        let result = async {
            let mut parts = Vec::new();
            // Parts large enough that S3's part count holds the object (5 TiB needs 525 MiB).
            let part = self
                .copy_part_size
                .max(size.div_ceil(super::MAX_PARTS as u64));
            let mut start = 0;
            let mut number = 1;
            while start < size {
                let end = (start + part).min(size);
                parts.push(
                    self.copy_part(
                        (&source, if_match.clone()),
                        start..end,
                        to,
                        &upload_id,
                        number,
                    )
                    .await?,
                );
                start = end;
                number += 1;
            }
            self.complete_multipart(to, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_multipart(to, &upload_id).await;
        }
        result?;
        self.head(to).await
    }

    /// Joins `sources` (keys with their sizes, in order) into the object `to`, server-side
    /// where S3 allows it: stretches of at least the minimum part size are copied by
    /// `UploadPartCopy`; shorter ones (S3 refuses parts under 5 MiB but the last) are read and
    /// sent with the start of what follows, so at most one part is held in memory.
    pub(super) async fn compose(
        &self,
        sources: &[(Key, u64)],
        to: &Key,
    ) -> Result<ObjectMeta, StoreError> {
        if let [(only, _)] = sources {
            return self.copy(only, to).await;
        }
        let min = super::MIN_PART_SIZE as u64;
        let total: u64 = sources.iter().map(|s| s.1).sum();
        if total < min {
            let mut upload = self.upload(to);
            for (key, size) in sources {
                let mut buffer = BytesMut::new();
                self.read_into(key, 0..*size, &mut buffer).await?;
                upload.write(buffer.freeze()).await?;
            }
            return upload.finish().await;
        }
        let upload_id = self.create_multipart(to).await?;
        let result = async {
            let mut parts = Vec::new();
            let mut buffer = BytesMut::new();
            for (key, size) in sources {
                let mut at = 0;
                if !buffer.is_empty() {
                    let take = (min - buffer.len() as u64).min(*size);
                    self.read_into(key, 0..take, &mut buffer).await?;
                    at = take;
                    if buffer.len() as u64 >= min {
                        let number = parts.len() as i32 + 1;
                        let part = buffer.split().freeze();
                        parts.push(upload_part(self, to, &upload_id, number, part).await?);
                    }
                }
                while at < *size {
                    let rest = size - at;
                    if rest < min {
                        self.read_into(key, at..*size, &mut buffer).await?;
                        break;
                    }
                    // Never leave a tail shorter than a part behind a copied range.
                    let mut end = at + self.copy_part_size.min(rest);
                    if size - end < min {
                        end = *size;
                    }
                    let number = parts.len() as i32 + 1;
                    let source = self.copy_source(key);
                    parts.push(
                        self.copy_part((&source, None), at..end, to, &upload_id, number)
                            .await?,
                    );
                    at = end;
                }
            }
            if !buffer.is_empty() {
                let number = parts.len() as i32 + 1;
                let part = buffer.split().freeze();
                parts.push(upload_part(self, to, &upload_id, number, part).await?);
            }
            self.complete_multipart(to, &upload_id, parts).await
        }
        .await;
        if result.is_err() {
            self.abort_multipart(to, &upload_id).await;
        }
        result?;
        let meta = self.head(to).await?;
        if meta.size != total {
            return Err(StoreError::Aborted {
                location: self.location(to),
                reason: format!(
                    "the pieces hold {total} bytes but the object has {}",
                    meta.size
                ),
            });
        }
        Ok(meta)
    }

    /// Appends the bytes `range` of `key` to `buffer`.
    async fn read_into(
        &self,
        key: &Key,
        range: Range<u64>,
        buffer: &mut BytesMut,
    ) -> Result<(), StoreError> {
        let mut body = self.get(key, Some(range)).await?;
        while let Some(chunk) = futures::TryStreamExt::try_next(&mut body).await? {
            buffer.extend_from_slice(&chunk);
        }
        Ok(())
    }

    /// Copies the bytes `range` of `from` as part `number` of the multipart upload of `to`.
    /// `source` is an `x-amz-copy-source`; `if_match` its ETag condition, if any.
    async fn copy_part(
        &self,
        (source, if_match): (&str, Option<String>),
        range: Range<u64>,
        to: &Key,
        upload_id: &str,
        number: i32,
    ) -> Result<CompletedPart, StoreError> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(to.as_str())
            .upload_id(upload_id)
            .part_number(number)
            .copy_source(source)
            .set_copy_source_if_match(if_match)
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
            .map_err(|e| sdk_error("UploadPartCopy", self.location(to), e))?;
        let result = out.copy_part_result();
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(result.and_then(|r| r.e_tag()).map(str::to_string))
            .set_checksum_crc32(result.and_then(|r| r.checksum_crc32()).map(str::to_string))
            .build())
    }

    async fn create_multipart(&self, key: &Key) -> Result<String, StoreError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .set_server_side_encryption(self.encryption())
            .set_ssekms_key_id(self.write.kms_key_id.clone())
            .set_storage_class(self.storage_class())
            .set_object_lock_mode(self.lock_mode())
            .set_object_lock_retain_until_date(self.lock_until())
            .set_tagging(self.write.tagging())
            .send()
            .await
            .map_err(|e| sdk_error("CreateMultipartUpload", self.location(key), e))?;
        out.upload_id()
            .map(str::to_string)
            .ok_or_else(|| StoreError::S3 {
                operation: "CreateMultipartUpload",
                location: self.location(key),
                reason: "the response carries no upload id".into(),
                retryable: false,
            })
    }

    async fn complete_multipart(
        &self,
        key: &Key,
        upload_id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        parts.sort_by_key(|p| p.part_number());
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| sdk_error("CompleteMultipartUpload", self.location(key), e))?;
        Ok(())
    }

    /// Best effort: an upload that cannot be aborted is left to the bucket's lifecycle rule
    /// (AbortIncompleteMultipartUpload); it never becomes a visible object either way.
    async fn abort_multipart(&self, key: &Key, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(location = %self.location(key), error = %DisplayErrorContext(&e), "could not abort a multipart upload");
        }
    }
}

/// A streamed S3 upload. See [`super::Upload`].
pub(crate) struct S3Upload {
    store: S3Store,
    key: Key,
    buffer: BytesMut,
    upload_id: Option<String>,
    next_part: i32,
    in_flight: JoinSet<Result<CompletedPart, StoreError>>,
    parts: Vec<CompletedPart>,
    written: u64,
    done: bool,
}

impl S3Upload {
    pub(super) fn written(&self) -> u64 {
        self.written
    }

    pub(super) async fn write(&mut self, data: Bytes) -> Result<(), StoreError> {
        self.written += data.len() as u64;
        self.buffer.extend_from_slice(&data);
        loop {
            let size = super::part_size(self.store.part_size, self.store.max_parts, self.next_part);
            if self.buffer.len() < size {
                break;
            }
            let part = self.buffer.split_to(size).freeze();
            if let Err(e) = self.send_part(part).await {
                self.abort_now().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Bytes) -> Result<(), StoreError> {
        if self.upload_id.is_none() {
            self.upload_id = Some(self.store.create_multipart(&self.key).await?);
        }
        if self.next_part > self.store.max_parts {
            return Err(StoreError::Limit {
                location: self.store.location(&self.key),
                reason: format!(
                    "the object outgrew S3's {} parts (the first of {} bytes, growing to {}); raise FERRY_S3_PART_SIZE",
                    self.store.max_parts,
                    self.store.part_size,
                    super::part_size(
                        self.store.part_size,
                        self.store.max_parts,
                        self.store.max_parts
                    )
                ),
            });
        }
        // As parts grow, fewer are in flight: the bytes held stay about what
        // `max_parts_in_flight` parts of the first size hold, and at least one part.
        let size = super::part_size(self.store.part_size, self.store.max_parts, self.next_part);
        let in_flight =
            (self.store.max_parts_in_flight * self.store.part_size / size.max(1)).max(1);
        while self.in_flight.len() >= in_flight {
            self.reap_one().await?;
        }
        let number = self.next_part;
        self.next_part += 1;
        let store = self.store.clone();
        let key = self.key.clone();
        let upload_id = self.upload_id.clone().unwrap_or_default();
        self.in_flight
            .spawn(async move { upload_part(&store, &key, &upload_id, number, part).await });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<(), StoreError> {
        match self.in_flight.join_next().await {
            Some(Ok(Ok(part))) => {
                self.parts.push(part);
                Ok(())
            }
            Some(Ok(Err(e))) => Err(e),
            Some(Err(join)) => Err(StoreError::S3 {
                operation: "UploadPart",
                location: self.store.location(&self.key),
                reason: format!("the part upload task failed: {join}"),
                retryable: false,
            }),
            None => Ok(()),
        }
    }

    pub(super) async fn finish(mut self) -> Result<ObjectMeta, StoreError> {
        let result = self.complete().await;
        if result.is_err() {
            self.abort_now().await;
        }
        self.done = true;
        result
    }

    async fn complete(&mut self) -> Result<ObjectMeta, StoreError> {
        let Some(upload_id) = self.upload_id.clone() else {
            let body = std::mem::take(&mut self.buffer).freeze();
            let out = self
                .store
                .client
                .put_object()
                .bucket(&self.store.bucket)
                .key(self.key.as_str())
                .body(SdkBody::from(body))
                .set_server_side_encryption(self.store.encryption())
                .set_ssekms_key_id(self.store.write.kms_key_id.clone())
                .set_storage_class(self.store.storage_class())
                .set_object_lock_mode(self.store.lock_mode())
                .set_object_lock_retain_until_date(self.store.lock_until())
                .set_tagging(self.store.write.tagging())
                .send()
                .await
                .map_err(|e| sdk_error("PutObject", self.store.location(&self.key), e))?;
            return Ok(ObjectMeta {
                key: self.key.clone(),
                size: self.written,
                etag: out.e_tag().map(|t| t.trim_matches('"').to_string()),
                last_modified: Some(std::time::SystemTime::now()),
                version_id: out.version_id().map(str::to_string),
                content_encoding: None,
                locked_until: None,
            });
        };
        if !self.buffer.is_empty() {
            let last = std::mem::take(&mut self.buffer).freeze();
            self.send_part(last).await?;
        }
        while !self.in_flight.is_empty() {
            self.reap_one().await?;
        }
        let parts = std::mem::take(&mut self.parts);
        self.store
            .complete_multipart(&self.key, &upload_id, parts)
            .await?;
        let mut meta = self.store.head(&self.key).await?;
        if meta.size != self.written {
            return Err(StoreError::Aborted {
                location: self.store.location(&self.key),
                reason: format!(
                    "{} bytes were sent but the object has {}",
                    self.written, meta.size
                ),
            });
        }
        meta.key = self.key.clone();
        Ok(meta)
    }

    pub(super) async fn abort(mut self) -> Result<(), StoreError> {
        self.abort_now().await;
        Ok(())
    }

    async fn abort_now(&mut self) {
        self.done = true;
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(upload_id) = self.upload_id.take() {
            self.store.abort_multipart(&self.key, &upload_id).await;
        }
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.in_flight.abort_all();
        let (Some(upload_id), Ok(runtime)) =
            (self.upload_id.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let store = self.store.clone();
        let key = self.key.clone();
        runtime.spawn(async move { store.abort_multipart(&key, &upload_id).await });
    }
}

/// Sends `part` as part `number` of the multipart upload of `key`.
async fn upload_part(
    store: &S3Store,
    key: &Key,
    upload_id: &str,
    number: i32,
    part: Bytes,
) -> Result<CompletedPart, StoreError> {
    let out = store
        .client
        .upload_part()
        .bucket(&store.bucket)
        .key(key.as_str())
        .upload_id(upload_id)
        .part_number(number)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .body(SdkBody::from(part))
        .send()
        .await
        .map_err(|e| sdk_error("UploadPart", store.location(key), e))?;
    Ok(CompletedPart::builder()
        .part_number(number)
        .set_e_tag(out.e_tag().map(str::to_string))
        .set_checksum_crc32(out.checksum_crc32().map(str::to_string))
        .build())
}
