//! Finding and pruning snapshots on the S3-compatible server: listing past 1,000 objects, the
//! latest and as-of choices (never an incomplete snapshot), each retention rule as a dry run
//! and for real (whole snapshots only), and `restore --latest` end to end.

use std::time::{Duration, SystemTime};

use ferry::{
    catalog::RetentionPolicy,
    jobs::{self, ListInput, PruneInput, RestoreInput},
    manifest::{FORMAT_VERSION, Manifest, ManifestSource, ManifestTable},
    store::{Key, ObjectUrl, Store},
};
use ferry_tests::{shared_pg, shared_s3};
use futures::StreamExt;

use crate::snapshot::context;

const DAY: u64 = 86_400;
/// A fixed "now" for the made-up snapshots: 2026-11-20T00:00:00Z.
const BASE: u64 = 1_795_132_800;

fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .to_string()
}

fn manifest(created: u64, rows: u64) -> Vec<u8> {
    serde_json::to_vec(&Manifest {
        format_version: FORMAT_VERSION,
        tool_version: "test".into(),
        created_at: rfc3339(created),
        source: ManifestSource {
            server_version: "15".into(),
            database: "app".into(),
            neon_project: None,
            neon_branch: None,
            lsn: None,
        },
        archive: None,
        tables: vec![ManifestTable {
            schema: "public".into(),
            name: "t".into(),
            rows,
            bytes: None,
            checksum: None,
        }],
        objects: Vec::new(),
        schema: None,
        integrity: Vec::new(),
        data_offsets: Default::default(),
        storage: None,
    })
    .unwrap()
}

struct Bucket {
    store: Store,
    name: String,
}

impl Bucket {
    async fn new() -> Bucket {
        let name = shared_s3().create_bucket("snaps");
        let url = ObjectUrl::parse(&format!("s3://{name}/")).unwrap();
        let store = Store::for_url(&url, &shared_s3().store_config())
            .await
            .unwrap();
        Bucket { store, name }
    }

    fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.name)
    }

    /// Writes objects, sixteen at a time.
    async fn put_all(&self, objects: Vec<(String, Vec<u8>)>) {
        futures::stream::iter(objects)
            .map(|(key, body)| {
                let store = self.store.clone();
                async move {
                    store
                        .put(&Key::new(key).unwrap(), body.into())
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    /// A complete custom-format snapshot (archive, then manifest) taken at `created`.
    fn snapshot(prefix: &str, created: u64) -> Vec<(String, Vec<u8>)> {
        let dir = format!("{prefix}{}/", rfc3339(created));
        vec![
            (format!("{dir}archive.dump"), b"PGDMP fake".to_vec()),
            (
                format!("{dir}manifest.json"),
                manifest(created, created % 1000),
            ),
        ]
    }

    async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .store
            .list(&Key::prefix(prefix).unwrap())
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.as_str().to_string())
            .collect();
        keys.sort();
        keys
    }
}

fn ctx() -> jobs::Context {
    context(shared_s3().store_config())
}

#[tokio::test]
async fn latest_and_as_of_past_a_thousand_objects_never_choose_an_incomplete_snapshot() {
    let b = Bucket::new().await;
    let series = "backups/app/";
    let mut objects = Vec::new();
    // 450 hourly snapshots (900 objects), one a directory archive of 200 files.
    for i in 0..450u64 {
        objects.extend(Bucket::snapshot(series, BASE - i * 3600));
    }
    let dir = format!("{series}{}/", rfc3339(BASE - 500 * 3600));
    for f in 0..200 {
        objects.push((format!("{dir}archive/{}.dat.gz", 3000 + f), b"x".to_vec()));
    }
    objects.push((format!("{dir}archive/toc.dat"), b"PGDMP".to_vec()));
    objects.push((
        format!("{dir}manifest.json"),
        manifest(BASE - 500 * 3600, 7),
    ));
    // The newest of all has no manifest: still being written (or failed).
    let newest = format!("{series}{}/", rfc3339(BASE + 3600));
    objects.push((format!("{newest}archive.dump"), b"PGDMP half".to_vec()));
    // Something else in the bucket that is not a snapshot.
    objects.push((format!("{series}README.txt"), b"not a snapshot".to_vec()));
    b.put_all(objects).await;
    assert!(b.keys(series).await.len() > 1100);

    let listed = jobs::list_snapshots(
        ListInput {
            from: b.url("backups/"),
        },
        ctx(),
    )
    .await
    .unwrap();
    assert_eq!(listed.snapshots.len(), 451);
    assert_eq!(listed.snapshots[0].created_at, rfc3339(BASE));
    assert_eq!(listed.snapshots[450].created_at, rfc3339(BASE - 500 * 3600));
    assert!(
        listed
            .snapshots
            .windows(2)
            .all(|w| w[0].created_at > w[1].created_at),
        "newest first"
    );
    assert_eq!(
        listed.snapshots[450].archive,
        b.url(&format!("{dir}archive/"))
    );
    assert_eq!(listed.incomplete.len(), 1);
    assert_eq!(listed.incomplete[0].location, b.url(&newest));

    let found = ferry::catalog::catalog(&b.store, &ObjectUrl::parse(&b.url(series)).unwrap())
        .await
        .unwrap();
    let latest = found.choose(None).unwrap();
    assert_eq!(latest.created_at, rfc3339(BASE));
    assert_eq!(
        latest.archive,
        b.url(&format!("{series}{}/archive.dump", rfc3339(BASE)))
    );
    // As of a time between two snapshots: the one before it.
    let as_of = SystemTime::UNIX_EPOCH + Duration::from_secs(BASE - 10 * 3600 - 60);
    assert_eq!(
        found.choose(Some(as_of)).unwrap().created_at,
        rfc3339(BASE - 11 * 3600)
    );
    // Exactly at a snapshot's time: that one.
    let exact = SystemTime::UNIX_EPOCH + Duration::from_secs(BASE - 3 * 3600);
    assert_eq!(
        found.choose(Some(exact)).unwrap().created_at,
        rfc3339(BASE - 3 * 3600)
    );
    let too_early = SystemTime::UNIX_EPOCH + Duration::from_secs(BASE - 600 * 3600);
    let err = found.choose(Some(too_early)).unwrap_err();
    assert!(err.to_string().contains("at or before"), "{err}");

    // Two series under one prefix: which one is meant is not guessed.
    b.put_all(Bucket::snapshot("backups/other/", BASE)).await;
    let both = ferry::catalog::catalog(&b.store, &ObjectUrl::parse(&b.url("backups/")).unwrap())
        .await
        .unwrap();
    let err = both.choose(None).unwrap_err();
    assert!(
        err.to_string().contains("backups/app/") && err.to_string().contains("backups/other/"),
        "{err}"
    );
}

/// Snapshots of one series at `times` (seconds), written to a fresh prefix; its name.
async fn series(b: &Bucket, name: &str, times: &[u64]) -> String {
    let prefix = format!("{name}/");
    let mut objects = Vec::new();
    for t in times {
        objects.extend(Bucket::snapshot(&prefix, *t));
    }
    b.put_all(objects).await;
    prefix
}

async fn prune(
    b: &Bucket,
    prefix: &str,
    policy: RetentionPolicy,
    delete: bool,
) -> jobs::PruneOutput {
    jobs::prune(
        PruneInput {
            from: b.url(prefix),
            policy,
            delete,
            incomplete_older_than: None,
        },
        ctx(),
    )
    .await
    .unwrap()
}

/// The times of the snapshots left whole under `prefix`: every one has both its archive and
/// its manifest (nothing half deleted).
async fn left(b: &Bucket, prefix: &str) -> Vec<String> {
    let keys = b.keys(prefix).await;
    let mut times = Vec::new();
    for key in &keys {
        if let Some(dir) = key.strip_suffix("manifest.json") {
            assert!(
                keys.contains(&format!("{dir}archive.dump")),
                "{dir}: manifest without archive"
            );
            times.push(
                dir.trim_start_matches(prefix)
                    .trim_end_matches('/')
                    .to_string(),
            );
        } else if let Some(dir) = key.strip_suffix("archive.dump") {
            assert!(
                keys.contains(&format!("{dir}manifest.json")),
                "{dir}: archive without manifest"
            );
        }
    }
    times.sort();
    times.reverse();
    times
}

#[tokio::test]
async fn each_retention_rule_as_a_dry_run_and_for_real() {
    let b = Bucket::new().await;
    // Two a day (12:00 and 03:00) for 30 days before BASE, newest first.
    let times: Vec<u64> = (1..=30u64)
        .flat_map(|d| [BASE - d * DAY + 12 * 3600, BASE - d * DAY + 3 * 3600])
        .collect();
    let all: Vec<String> = times.iter().map(|t| rfc3339(*t)).collect();
    let now = SystemTime::now();
    let days_ago = |t: u64| {
        now.duration_since(SystemTime::UNIX_EPOCH + Duration::from_secs(t))
            .unwrap()
            .as_secs()
            / DAY
    };
    let cases: Vec<(&str, RetentionPolicy, Vec<String>)> = vec![
        (
            "last",
            RetentionPolicy {
                keep_last: Some(5),
                ..Default::default()
            },
            all[..5].to_vec(),
        ),
        (
            "daily",
            RetentionPolicy {
                keep_daily: Some(4),
                ..Default::default()
            },
            // The 12:00 one of each of the four newest days.
            vec![
                all[0].clone(),
                all[2].clone(),
                all[4].clone(),
                all[6].clone(),
            ],
        ),
        (
            "weekly",
            RetentionPolicy {
                keep_weekly: Some(3),
                ..Default::default()
            },
            {
                // The newest of each of the three newest ISO weeks.
                let mut seen = Vec::new();
                let mut kept = Vec::new();
                for (t, name) in times.iter().zip(&all) {
                    let week = (t / DAY + 3) / 7;
                    if !seen.contains(&week) && seen.len() < 3 {
                        seen.push(week);
                        kept.push(name.clone());
                    }
                }
                kept
            },
        ),
        (
            "within",
            RetentionPolicy {
                keep_within: Some(format!("{}d", days_ago(BASE - 3 * DAY))),
                ..Default::default()
            },
            {
                let limit = now - Duration::from_secs(days_ago(BASE - 3 * DAY) * DAY);
                times
                    .iter()
                    .zip(&all)
                    .filter(|(t, _)| SystemTime::UNIX_EPOCH + Duration::from_secs(**t) >= limit)
                    .map(|(_, n)| n.clone())
                    .collect()
            },
        ),
    ];
    for (name, policy, expect) in cases {
        assert!(!expect.is_empty() && expect.len() < all.len(), "{name}");
        let prefix = series(&b, name, &times).await;
        let dry = prune(&b, &prefix, policy.clone(), false).await;
        assert!(dry.dry_run);
        let mut kept: Vec<String> = dry.kept.iter().map(|k| k.created_at.clone()).collect();
        kept.sort();
        kept.reverse();
        assert_eq!(kept, expect, "{name}: kept");
        assert_eq!(dry.deleted.len(), all.len() - expect.len(), "{name}");
        assert_eq!(
            left(&b, &prefix).await,
            all,
            "{name}: a dry run deleted something"
        );
        let real = prune(&b, &prefix, policy.clone(), true).await;
        assert!(!real.dry_run);
        assert_eq!(real.deleted.len(), all.len() - expect.len(), "{name}");
        assert_eq!(left(&b, &prefix).await, expect, "{name}: what is left");
        // Again: nothing more to do.
        let again = prune(&b, &prefix, policy, true).await;
        assert!(again.deleted.is_empty(), "{name}");
    }
    // No rule at all is refused, not read as "keep nothing".
    let prefix = series(&b, "none", &times[..2]).await;
    let err = jobs::prune(
        PruneInput {
            from: b.url(&prefix),
            delete: true,
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("at least one"), "{err}");
    assert_eq!(left(&b, &prefix).await.len(), 2);

    // An incomplete snapshot is left while young, deleted when older than the limit.
    let prefix = series(&b, "partial", &times[..3]).await;
    b.put_all(vec![(
        format!("{prefix}half/archive.dump"),
        b"PGDMP".to_vec(),
    )])
    .await;
    let keep_all = RetentionPolicy {
        keep_last: Some(10),
        ..Default::default()
    };
    let out = prune(&b, &prefix, keep_all.clone(), true).await;
    assert_eq!(out.incomplete_left.len(), 1);
    assert!(b.keys(&format!("{prefix}half/")).await.len() == 1);
    let out = jobs::prune(
        PruneInput {
            from: b.url(&prefix),
            policy: keep_all,
            delete: true,
            incomplete_older_than: Some("0s".into()),
        },
        ctx(),
    )
    .await
    .unwrap();
    assert_eq!(out.incomplete_deleted.len(), 1);
    assert!(b.keys(&format!("{prefix}half/")).await.is_empty());
    assert_eq!(left(&b, &prefix).await.len(), 3);
}

#[tokio::test]
async fn restore_latest_and_as_of_restore_the_chosen_snapshot() {
    let b = Bucket::new().await;
    let pg = shared_pg();
    let db = pg.create_database("snaps_src");
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)",
    );
    let first = jobs::snapshot(
        jobs::SnapshotInput {
            source: pg.url(&db),
            to: b.url("series/one/"),
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    // Manifests record seconds: the second snapshot is taken a second later.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    pg.psql(&db, "INSERT INTO t SELECT generate_series(11, 25)");
    jobs::snapshot(
        jobs::SnapshotInput {
            source: pg.url(&db),
            to: b.url("series/two/"),
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    // And an incomplete one after both.
    b.put_all(vec![(
        "series/three/archive.dump".into(),
        b"PGDMP".to_vec(),
    )])
    .await;

    let latest_target = pg.create_database("snaps_latest");
    let out = jobs::restore(
        RestoreInput {
            from: b.url("series/"),
            latest: true,
            target: Some(pg.url(&latest_target)),
            ..RestoreInput::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    assert_eq!(out.snapshot, Some(b.url("series/two/manifest.json")));
    assert_eq!(
        pg.psql(&latest_target, "SELECT count(*) FROM t").trim(),
        "25"
    );

    let first_manifest: Manifest = serde_json::from_slice(
        &b.store
            .get_bytes(&Key::new("series/one/manifest.json").unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    let as_of_target = pg.create_database("snaps_asof");
    let out = jobs::restore(
        RestoreInput {
            from: b.url("series/"),
            as_of: Some(first_manifest.created_at.clone()),
            target: Some(pg.url(&as_of_target)),
            ..RestoreInput::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    assert_eq!(out.snapshot, Some(first.manifest));
    assert_eq!(
        pg.psql(&as_of_target, "SELECT count(*) FROM t").trim(),
        "10"
    );
}

/// Several databases in one request, under a key template whose values need escaping: each
/// gets its own archive and manifest, and the one that fails does not stop the others.
#[tokio::test]
async fn several_databases_under_a_key_template_one_failing() {
    let b = Bucket::new().await;
    let pg = shared_pg();
    let plain = pg.create_database("snaps_multi");
    let odd = format!("{plain} odd/db%");
    pg.psql("postgres", &format!("CREATE DATABASE \"{odd}\""));
    pg.psql(
        &plain,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    );
    pg.psql(
        &odd,
        "CREATE TABLE u (id int); INSERT INTO u VALUES (1), (2), (3)",
    );
    let out = jobs::snapshot_databases(
        jobs::SnapshotInput {
            source: pg.url(&plain),
            to: b.url("many/"),
            key_template: Some("{project}/{database}/{date}/{timestamp}/".into()),
            databases: vec![plain.clone(), odd.clone(), "no_such_database".into()],
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    assert_eq!((out.succeeded, out.failed), (2, 1), "{out:?}");
    let failed = &out.databases[2];
    assert_eq!(failed.database, "no_such_database");
    assert!(failed.snapshot.is_none());
    assert!(
        failed
            .error
            .as_deref()
            .unwrap()
            .contains("no_such_database"),
        "{failed:?}"
    );
    let odd_manifest = out.databases[1].snapshot.as_ref().unwrap().manifest.clone();
    let encoded = format!("{plain}%20odd%2Fdb%25");
    assert!(
        odd_manifest.starts_with(&b.url(&format!("many/-/{encoded}/"))),
        "{odd_manifest}"
    );
    // One segment per value: the `/` in the name did not add a level.
    let keys = b.keys("many/-/").await;
    assert!(keys.iter().all(|k| k.split('/').count() == 6), "{keys:?}");
    assert!(b.keys(&format!("many/-/{encoded}/")).await.len() == 2);
    assert!(b.keys("many/-/no_such_database/").await.is_empty());
    // The catalog finds both, each its own series, with the database the manifest records.
    let listed = jobs::list_snapshots(
        ListInput {
            from: b.url("many/"),
        },
        ctx(),
    )
    .await
    .unwrap();
    let mut databases: Vec<&str> = listed
        .snapshots
        .iter()
        .map(|s| s.database.as_str())
        .collect();
    databases.sort();
    assert_eq!(databases, [plain.as_str(), odd.as_str()]);
    assert_eq!(listed.snapshots.iter().map(|s| s.rows).sum::<u64>(), 5);

    // A template without {database} would make them overwrite each other: refused.
    let err = jobs::snapshot_databases(
        jobs::SnapshotInput {
            source: pg.url(&plain),
            to: b.url("many/"),
            key_template: Some("{timestamp}/".into()),
            databases: vec![plain.clone(), odd.clone()],
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("{database}"), "{err}");
}

/// Encryption, storage class and tags reach the requests (read back from the server: moto's S3
/// keeps and reports them) on uploads and copies; the manifest records them; restoring from the
/// encrypted archive needs nothing more. (Single-part uploads only: moto answers
/// CompleteMultipartUpload with an XML root the AWS SDK rejects, so multipart uploads cannot
/// be checked against it; they send the same settings with CreateMultipartUpload.)
#[tokio::test]
async fn encryption_storage_class_and_tags_reach_the_server() {
    let moto = ferry_tests::aws::shared_secrets();
    let bucket = ferry_tests::unique_name("sse");
    moto.create_s3_bucket(&bucket);
    let config = moto.store_config();
    let pg = shared_pg();
    let db = pg.create_database("snaps_sse");
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); \
         INSERT INTO t SELECT i, md5(i::text) FROM generate_series(1, 1500) i",
    );
    let storage = ferry::store::WriteSettings {
        encryption: Some("aws:kms".into()),
        kms_key_id: Some("alias/ferry-test".into()),
        storage_class: Some("STANDARD_IA".into()),
        tags: [
            ("team".to_string(), "data".to_string()),
            ("owner name".to_string(), "a+b=c/d @x".to_string()),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let out = jobs::snapshot(
        jobs::SnapshotInput {
            source: pg.url(&db),
            to: format!("s3://{bucket}/enc/"),
            storage: storage.clone(),
            ..Default::default()
        },
        context(config.clone()),
    )
    .await
    .unwrap();
    let url = ObjectUrl::parse(&format!("s3://{bucket}/")).unwrap();
    let store = Store::for_url(&url, &config).await.unwrap();
    let archive = Key::new("enc/archive.dump").unwrap();
    for key in ["enc/archive.dump", "enc/manifest.json"] {
        let stored = store.stored_as(&Key::new(key).unwrap()).await.unwrap();
        assert_eq!(stored, storage, "{key}");
    }
    let manifest: Manifest = serde_json::from_slice(
        &store
            .get_bytes(&Key::new("enc/manifest.json").unwrap())
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.storage, Some(storage.clone()));

    // A copy made with these settings is stored the same way (a copy would otherwise take the
    // bucket's defaults).
    let mut copying = config.clone();
    copying.write = storage.clone();
    let copier = Store::for_url(&url, &copying).await.unwrap();
    let to = Key::new("enc/copy.dump").unwrap();
    copier.copy(&archive, &to).await.unwrap();
    let copied = store.stored_as(&to).await.unwrap();
    assert_eq!(copied.encryption.as_deref(), Some("aws:kms"));
    assert_eq!(copied.storage_class.as_deref(), Some("STANDARD_IA"));

    // Reading is transparent: the encrypted archive restores.
    let target = pg.create_database("snaps_sse_restored");
    jobs::restore(
        RestoreInput {
            from: out.archive,
            target: Some(pg.url(&target)),
            ..RestoreInput::default()
        },
        context(config.clone()),
    )
    .await
    .unwrap();
    assert_eq!(pg.psql(&target, "SELECT count(*) FROM t").trim(), "1500");

    // Settings that cannot be right are refused before anything is written.
    for (bad, expect) in [
        (
            ferry::store::WriteSettings {
                encryption: Some("rot13".into()),
                ..Default::default()
            },
            "AES256",
        ),
        (
            ferry::store::WriteSettings {
                kms_key_id: Some("k".into()),
                ..Default::default()
            },
            "aws:kms",
        ),
        (
            ferry::store::WriteSettings {
                storage_class: Some("COLD".into()),
                ..Default::default()
            },
            "STANDARD_IA",
        ),
        (
            ferry::store::WriteSettings {
                tags: [("k".to_string(), "a&b".to_string())].into_iter().collect(),
                ..Default::default()
            },
            "not allowed in S3 tags",
        ),
    ] {
        let err = jobs::snapshot(
            jobs::SnapshotInput {
                source: pg.url(&db),
                to: format!("s3://{bucket}/bad/"),
                storage: bad,
                ..Default::default()
            },
            context(config.clone()),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expect), "{err}");
    }
    assert!(
        store
            .list(&Key::prefix("bad/").unwrap())
            .await
            .unwrap()
            .is_empty()
    );
}

/// `databases: ["*"]`: every database of the server but `postgres` and the templates, each on
/// its own (a private server, so that "every" is known).
#[tokio::test]
async fn all_databases_of_a_server() {
    let b = Bucket::new().await;
    let pg = ferry_tests::PgServer::start_new(ferry_tests::PgServerOptions::default());
    pg.psql("postgres", "CREATE DATABASE app");
    pg.psql("postgres", "CREATE DATABASE \"Crm Data\"");
    pg.psql(
        "app",
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    );
    pg.psql(
        "Crm Data",
        "CREATE TABLE c (id int); INSERT INTO c VALUES (1)",
    );
    pg.psql("postgres", "CREATE TABLE not_backed_up (id int)");
    let out = jobs::snapshot_databases(
        jobs::SnapshotInput {
            source: pg.url("postgres"),
            to: b.url("all/"),
            databases: vec!["*".into()],
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap();
    let mut names: Vec<&str> = out.databases.iter().map(|d| d.database.as_str()).collect();
    names.sort();
    assert_eq!(names, ["Crm Data", "app"], "{out:?}");
    assert_eq!((out.succeeded, out.failed), (2, 0));
    assert!(!b.keys("all/Crm%20Data/").await.is_empty());
    assert!(!b.keys("all/app/").await.is_empty());
    // `*` with names beside it is ambiguous: refused.
    let err = jobs::snapshot_databases(
        jobs::SnapshotInput {
            source: pg.url("postgres"),
            to: b.url("all/"),
            databases: vec!["*".into(), "app".into()],
            ..Default::default()
        },
        ctx(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("alone"), "{err}");
}

/// Snapshots written under S3 Object Lock (moto's S3 enforces it): each object carries its
/// retention; `prune` keeps a locked snapshot whole and says until when, instead of deleting
/// part of it (or hiding it behind delete markers), and deletes the unlocked ones as before.
#[tokio::test]
async fn prune_keeps_locked_snapshots_whole() {
    let moto = ferry_tests::aws::shared_secrets();
    let bucket = ferry_tests::unique_name("locked");
    moto.create_locked_s3_bucket(&bucket);
    let config = moto.store_config();
    let pg = shared_pg();
    let db = pg.create_database("snaps_lock");
    pg.psql(
        &db,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)",
    );
    let snapshot = |at: &'static str, storage: ferry::store::WriteSettings| {
        let (config, source, bucket) = (config.clone(), pg.url(&db), bucket.clone());
        async move {
            jobs::snapshot(
                jobs::SnapshotInput {
                    source,
                    to: format!("s3://{bucket}/app/{at}/"),
                    storage,
                    ..Default::default()
                },
                context(config),
            )
            .await
            .unwrap()
        }
    };
    let locked = ferry::store::WriteSettings {
        lock_mode: Some("GOVERNANCE".into()),
        lock_days: Some(1),
        ..Default::default()
    };
    snapshot("2026-01-01T00-00-00Z", locked).await;
    snapshot("2026-01-02T00-00-00Z", Default::default()).await;
    snapshot("2026-01-03T00-00-00Z", Default::default()).await;
    let url = ObjectUrl::parse(&format!("s3://{bucket}/")).unwrap();
    let store = Store::for_url(&url, &config).await.unwrap();
    let first = Key::new("app/2026-01-01T00-00-00Z/archive.dump").unwrap();
    assert!(
        store.head(&first).await.unwrap().locked_until.is_some(),
        "the locked snapshot's archive carries its retention"
    );
    let out = jobs::prune(
        jobs::PruneInput {
            from: format!("s3://{bucket}/app/"),
            policy: jobs::RetentionPolicy {
                keep_last: Some(1),
                ..Default::default()
            },
            delete: true,
            incomplete_older_than: None,
        },
        context(config.clone()),
    )
    .await
    .unwrap();
    assert_eq!(out.locked.len(), 1, "{out:?}");
    assert!(out.locked[0].location.contains("2026-01-01"), "{out:?}");
    assert!(out.locked[0].locked_until.starts_with("20"), "{out:?}");
    assert_eq!(out.deleted.len(), 1, "{out:?}");
    assert!(out.deleted[0].location.contains("2026-01-02"), "{out:?}");
    // The locked snapshot is whole and still listed complete; the unlocked one is gone.
    for key in ["archive.dump", "manifest.json"] {
        let key = Key::new(format!("app/2026-01-01T00-00-00Z/{key}")).unwrap();
        assert!(store.head(&key).await.is_ok(), "{key} was deleted");
    }
    assert!(
        store
            .head(&Key::new("app/2026-01-02T00-00-00Z/manifest.json").unwrap())
            .await
            .is_err()
    );
}
