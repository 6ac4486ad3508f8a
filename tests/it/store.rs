//! The object-store conformance suite, run against every backend: the local directory and a
//! real S3-compatible server process (s3s-fs).

use std::time::Duration;

use bytes::Bytes;
use ferry::store::{Key, ObjectUrl, Store, StoreConfig, StoreError};
use ferry_tests::{process::scratch, shared_s3, unique_name};
use futures::{StreamExt, TryStreamExt, stream};

/// A store and a prefix of the test's own inside it.
struct Fixture {
    store: Store,
    prefix: Key,
    /// Where the backend keeps files, to check from outside that nothing half-written is left.
    disk: std::path::PathBuf,
}

impl Fixture {
    fn key(&self, name: &str) -> Key {
        self.prefix.join(name).unwrap()
    }

    /// A listing prefix under the test's prefix (may end inside a name or with `/`).
    fn sub(&self, name: &str) -> Key {
        Key::prefix(format!("{}{name}", self.prefix)).unwrap()
    }
}

async fn local(config: StoreConfig) -> Fixture {
    let dir = scratch().join(unique_name("store"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = ObjectUrl::parse(&format!("file://{}/", dir.display())).unwrap();
    Fixture {
        store: Store::for_url(&url, &config).await.unwrap(),
        prefix: url.key,
        disk: dir,
    }
}

async fn s3(config: StoreConfig) -> Fixture {
    let server = shared_s3();
    let bucket = server.create_bucket("conformance");
    let config = StoreConfig {
        part_size: config.part_size,
        max_parts: config.max_parts,
        max_parts_in_flight: config.max_parts_in_flight,
        max_single_copy: config.max_single_copy,
        copy_part_size: config.copy_part_size,
        ..server.store_config()
    };
    let url = ObjectUrl::parse(&format!("s3://{bucket}/prefix/")).unwrap();
    Fixture {
        store: Store::for_url(&url, &config).await.unwrap(),
        prefix: url.key,
        disk: server.object_path(&bucket, "prefix"),
    }
}

/// Small parts so that multipart behaviour shows with modest data.
fn small_parts() -> StoreConfig {
    StoreConfig {
        part_size: ferry::store::MIN_PART_SIZE,
        max_parts_in_flight: 2,
        ..StoreConfig::default()
    }
}

/// Deterministic, non-repeating-per-part content.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + i / 7919) as u8).wrapping_add(seed))
        .collect()
}

/// Every file under `dir`, recursively (none when it does not exist).
pub(crate) fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

async fn multipart_with_more_than_five_parts(f: Fixture) {
    let data = pattern(6 * ferry::store::MIN_PART_SIZE + 12_345, 1);
    let key = f.key("big/object.bin");
    let mut upload = f.store.upload(&key).await.unwrap();
    // Uneven chunks, as a COPY stream produces them.
    for chunk in data.chunks(1_000_003) {
        upload.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    assert_eq!(upload.written(), data.len() as u64);
    let meta = upload.finish().await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(f.store.head(&key).await.unwrap().size, data.len() as u64);
    let back = f.store.get_bytes(&key).await.unwrap();
    assert!(back == data, "the object reads back differently");
}

async fn failure_mid_upload_leaves_nothing_visible(f: Fixture) {
    let key = f.key("failed.bin");
    // A source that dies after three parts' worth of data, like a COPY killed mid-stream.
    let part = ferry::store::MIN_PART_SIZE;
    let chunks: Vec<Result<Bytes, String>> = (0..3)
        .map(|i| Ok(Bytes::from(pattern(part, i))))
        .chain([Err("the source connection was terminated".to_string())])
        .collect();
    let error = f
        .store
        .put_stream(&key, stream::iter(chunks))
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Aborted { .. }), "{error:?}");
    assert!(error.to_string().contains("terminated"), "{error}");
    assert!(f.store.head(&key).await.unwrap_err().is_not_found());
    assert!(f.store.list(&f.prefix).await.unwrap().is_empty());

    // An upload dropped before finish (a cancelled task) is aborted too.
    let dropped = f.key("dropped.bin");
    let mut upload = f.store.upload(&dropped).await.unwrap();
    upload
        .write(Bytes::from(pattern(2 * part + 10, 9)))
        .await
        .unwrap();
    drop(upload);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(f.store.head(&dropped).await.unwrap_err().is_not_found());
    assert!(f.store.list(&f.prefix).await.unwrap().is_empty());
    let left = files_under(&f.disk);
    assert!(left.is_empty(), "files left behind: {left:?}");
}

async fn ranged_reads(f: Fixture) {
    let data = pattern(1_000_000, 3);
    let key = f.key("ranged.bin");
    f.store.put(&key, Bytes::from(data.clone())).await.unwrap();
    let size = data.len() as u64;
    for range in [0..1, 0..10, 100..1000, 999_990..size, 0..size, 5..5] {
        let got: Vec<Bytes> = f
            .store
            .get(&key, Some(range.clone()))
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let got = got.concat();
        assert_eq!(
            got,
            data[range.start as usize..range.end as usize],
            "range {range:?}"
        );
    }
    for bad in [0..size + 1, size + 10..size + 20] {
        match f.store.get(&key, Some(bad.clone())).await {
            Err(StoreError::BadRange { size: s, .. }) => assert_eq!(s, size),
            Err(other) => panic!("range {bad:?}: {other:?}"),
            Ok(_) => panic!("range {bad:?} accepted"),
        }
    }
    let missing = f.store.get(&f.key("missing.bin"), None).await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
    // Streams come in several chunks for larger objects; the whole equals the object.
    let chunks: Vec<Bytes> = f
        .store
        .get(&key, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(chunks.concat(), data);
}

async fn listing_past_1000_keys(f: Fixture) {
    let names: Vec<String> = (0..1005).map(|i| format!("many/{i:05}.txt")).collect();
    stream::iter(names.clone())
        .map(|name| {
            let store = f.store.clone();
            let key = f.key(&name);
            async move { store.put(&key, Bytes::from(name.into_bytes())).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    f.store
        .put(&f.key("other/x.txt"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let listed = f.store.list(&f.sub("many/")).await.unwrap();
    assert_eq!(listed.len(), 1005);
    let expected: Vec<Key> = names.iter().map(|n| f.key(n)).collect();
    let got: Vec<Key> = listed.iter().map(|m| m.key.clone()).collect();
    assert_eq!(got, expected, "complete and sorted");
    assert!(
        listed
            .iter()
            .all(|m| m.size == "many/00000.txt".len() as u64)
    );
    // A prefix that ends inside a name, as S3 allows.
    assert_eq!(f.store.list(&f.sub("many/0099")).await.unwrap().len(), 10);
    assert_eq!(f.store.list(&f.prefix).await.unwrap().len(), 1006);
    assert!(f.store.list(&f.sub("none/")).await.unwrap().is_empty());
}

async fn keys_with_spaces_and_unicode(f: Fixture) {
    let names = [
        "with space/a b.csv",
        "données/été 2026.csv",
        "emoji/🚀 launch.txt",
        "symbols/plus+and%percent&amp=eq.txt",
        "日本語/ファイル.csv",
    ];
    for (i, name) in names.iter().enumerate() {
        let key = f.key(name);
        let body = Bytes::from(format!("object {i}: {name}"));
        f.store.put(&key, body.clone()).await.unwrap();
        assert_eq!(f.store.get_bytes(&key).await.unwrap(), body, "{name}");
        assert_eq!(f.store.head(&key).await.unwrap().size, body.len() as u64);
        let copy = f.key(&format!("copies/{name}"));
        f.store.copy(&key, &copy).await.unwrap();
        assert_eq!(
            f.store.get_bytes(&copy).await.unwrap(),
            body,
            "copy of {name}"
        );
    }
    let listed: Vec<String> = f
        .store
        .list(&f.prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    for name in names {
        assert!(
            listed.contains(&f.key(name).to_string()),
            "{name} missing from {listed:?}"
        );
    }
    for name in names {
        f.store.delete(&f.key(name)).await.unwrap();
        f.store.delete(&f.key(name)).await.unwrap(); // deleting twice is fine
        assert!(f.store.head(&f.key(name)).await.unwrap_err().is_not_found());
    }
    assert_eq!(
        f.store.list(&f.prefix).await.unwrap().len(),
        names.len(),
        "only the copies remain"
    );
}

async fn rejected_keys(f: Fixture) {
    for bad in ["..", "a/../b", "a//b", "/abs", "./x", "", "trailing/"] {
        assert!(
            matches!(f.prefix.join(bad), Err(StoreError::BadKey { .. })),
            "{bad:?} accepted"
        );
    }
    let scheme = match &f.store {
        Store::S3(s) => format!("s3://{}/", s.bucket()),
        Store::Local(_) => "file:///tmp/".to_string(),
    };
    for bad in ["x/../../etc/passwd", "a//b", "./a"] {
        let url = format!("{scheme}{bad}");
        assert!(
            matches!(ObjectUrl::parse(&url), Err(StoreError::BadUrl { .. })),
            "{url} accepted"
        );
    }
    // Nothing was written by the attempts.
    assert!(f.store.list(&f.prefix).await.unwrap().is_empty());
}

async fn overwrite_is_atomic_and_copy_replaces(f: Fixture) {
    let key = f.key("doc.json");
    f.store
        .put(&key, Bytes::from_static(b"{\"v\":1}"))
        .await
        .unwrap();
    f.store
        .put(&key, Bytes::from_static(b"{\"v\":2,\"longer\":true}"))
        .await
        .unwrap();
    assert_eq!(
        &f.store.get_bytes(&key).await.unwrap()[..],
        b"{\"v\":2,\"longer\":true}"
    );
    let target = f.key("doc-copy.json");
    f.store
        .put(&target, Bytes::from_static(b"old"))
        .await
        .unwrap();
    f.store.copy(&key, &target).await.unwrap();
    assert_eq!(
        f.store.get_bytes(&target).await.unwrap(),
        f.store.get_bytes(&key).await.unwrap()
    );
    let missing = f
        .store
        .copy(&f.key("nope"), &f.key("nope2"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing:?}");
    // Empty objects are objects.
    let empty = f.key("empty");
    f.store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(f.store.head(&empty).await.unwrap().size, 0);
    assert!(f.store.get_bytes(&empty).await.unwrap().is_empty());
}

/// Above the single-copy limit, S3 copies go part by part (UploadPartCopy); shown here with
/// small limits, since the real one is 5 GiB.
/// Parts grow as an upload goes on, so that S3's part count does not cap the object at
/// `part size × 10,000`: here the count is lowered to 4 (5 MiB parts would hold 20 MiB); the
/// parts grow to 10, 20 and 40 MiB and hold 50 MiB, and past what they can hold the upload
/// stops with a clear error and leaves nothing.
#[tokio::test]
async fn s3_parts_grow_past_the_part_count_limit() {
    let f = s3(StoreConfig {
        part_size: ferry::store::MIN_PART_SIZE,
        max_parts: 4,
        max_parts_in_flight: 2,
        ..StoreConfig::default()
    })
    .await;
    let data = pattern(10 * ferry::store::MIN_PART_SIZE, 7);
    let key = f.key("grown.bin");
    let mut upload = f.store.upload(&key).await.unwrap();
    for chunk in data.chunks(3_000_017) {
        upload.write(Bytes::copy_from_slice(chunk)).await.unwrap();
    }
    upload.finish().await.unwrap();
    assert!(f.store.get_bytes(&key).await.unwrap() == data);

    let too_big = f.key("too-big.bin");
    let mut upload = f.store.upload(&too_big).await.unwrap();
    let mut failed = None;
    for chunk in pattern(16 * ferry::store::MIN_PART_SIZE, 3).chunks(4_000_037) {
        if let Err(e) = upload.write(Bytes::copy_from_slice(chunk)).await {
            failed = Some(e);
            break;
        }
    }
    let err = match failed {
        Some(e) => e,
        None => upload
            .finish()
            .await
            .expect_err("75 MiB of parts cannot hold 80 MiB"),
    };
    assert!(err.to_string().contains("outgrew"), "{err}");
    assert!(f.store.head(&too_big).await.is_err());
}

#[tokio::test]
async fn s3_copies_large_objects_part_by_part() {
    let f = s3(StoreConfig {
        max_single_copy: 6 * 1024 * 1024,
        copy_part_size: ferry::store::MIN_PART_SIZE as u64,
        ..small_parts()
    })
    .await;
    let data = pattern(2 * ferry::store::MIN_PART_SIZE + 3_333_333, 7);
    let from = f.key("large/source.bin");
    let to = f.key("large/copy of source.bin");
    f.store.put(&from, Bytes::from(data.clone())).await.unwrap();
    let meta = f.store.copy(&from, &to).await.unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert!(
        f.store.get_bytes(&to).await.unwrap() == data,
        "the copy reads back differently"
    );
}

/// Pieces joined into one object: small ones between big ones (S3 refuses parts under 5 MiB
/// but the last: s3s-fs checks), a piece longer than a copied part, an empty piece.
async fn compose_joins_pieces_of_every_size(f: Fixture) {
    let mib = 1024 * 1024;
    let sizes = [
        1_000,
        7 * mib + 5,
        0,
        2 * mib,
        3 * mib + 1,
        12 * mib + 7,
        100,
    ];
    let mut sources = Vec::new();
    let mut whole = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let data = pattern(size, i as u8);
        let key = f.key(&format!("pieces/{i}.bin"));
        f.store.put(&key, Bytes::from(data.clone())).await.unwrap();
        sources.push((key, size as u64));
        whole.extend(data);
    }
    let to = f.key("joined.bin");
    let meta = f.store.compose(&sources, &to).await.unwrap();
    assert_eq!(meta.size, whole.len() as u64);
    assert!(
        f.store.get_bytes(&to).await.unwrap() == whole,
        "the joined object reads back differently"
    );
    // Small pieces only, and a single piece.
    let small = f.key("small.bin");
    f.store.compose(&sources[..1], &small).await.unwrap();
    assert!(f.store.get_bytes(&small).await.unwrap() == whole[..1_000]);
    f.store
        .compose(&[sources[0].clone(), sources[6].clone()], &small)
        .await
        .unwrap();
    let mut expected = pattern(1_000, 0);
    expected.extend(pattern(100, 6));
    assert!(f.store.get_bytes(&small).await.unwrap() == expected);
    // A missing piece fails and leaves the destination as it was.
    let missing = (f.key("pieces/none.bin"), 6 * mib as u64);
    let err = f
        .store
        .compose(&[sources[1].clone(), missing], &small)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(f.store.get_bytes(&small).await.unwrap() == expected);
}

macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn multipart_with_more_than_five_parts() {
                super::multipart_with_more_than_five_parts(super::$backend(small_parts()).await)
                    .await
            }

            #[tokio::test]
            async fn failure_mid_upload_leaves_nothing_visible() {
                super::failure_mid_upload_leaves_nothing_visible(
                    super::$backend(small_parts()).await,
                )
                .await
            }

            #[tokio::test]
            async fn ranged_reads() {
                super::ranged_reads(super::$backend(StoreConfig::default()).await).await
            }

            #[tokio::test]
            async fn listing_past_1000_keys() {
                super::listing_past_1000_keys(super::$backend(StoreConfig::default()).await).await
            }

            #[tokio::test]
            async fn keys_with_spaces_and_unicode() {
                super::keys_with_spaces_and_unicode(super::$backend(StoreConfig::default()).await)
                    .await
            }

            #[tokio::test]
            async fn compose_joins_pieces_of_every_size() {
                super::compose_joins_pieces_of_every_size(
                    super::$backend(StoreConfig {
                        copy_part_size: ferry::store::MIN_PART_SIZE as u64,
                        ..small_parts()
                    })
                    .await,
                )
                .await
            }

            #[tokio::test]
            async fn rejected_keys() {
                super::rejected_keys(super::$backend(StoreConfig::default()).await).await
            }

            #[tokio::test]
            async fn overwrite_is_atomic_and_copy_replaces() {
                super::overwrite_is_atomic_and_copy_replaces(
                    super::$backend(StoreConfig::default()).await,
                )
                .await
            }
        }
    };
}

conformance!(local);
conformance!(s3);
