//! Snapshots in pieces: planned once, dumped by several workers (each stopping before its
//! deadline and run again), finished once, and then the same archive the real `pg_restore`
//! restores as if one process had written it.

use std::time::{Duration, SystemTime};

use ferry::{
    jobs::{
        self, Distribute, FinishInput, JobError, PieceInput, PieceOutput, PieceStatus, PlanOutput,
        SnapshotInput, SnapshotOutput, SnapshotRequest, SnapshotResponse,
    },
    manifest::Manifest,
    store::StoreConfig,
};
use ferry_tests::{PgServer, shared_pg, shared_s3};

use crate::snapshot::{
    assert_same_schema, context, load_corpus_without, local_dir, local_path, run, tool, validate,
};

async fn request(
    request: SnapshotRequest,
    store: &StoreConfig,
) -> Result<SnapshotResponse, JobError> {
    jobs::snapshot_request(request, context(store.clone())).await
}

async fn plan(
    pg: &PgServer,
    db: &str,
    to: &str,
    store: &StoreConfig,
    compress: &str,
    workers: u32,
    piece_bytes: u64,
) -> Result<PlanOutput, JobError> {
    let input = SnapshotInput {
        source: pg.url(db),
        to: to.into(),
        compress: Some(compress.into()),
        checksums: true,
        distribute: Some(Distribute {
            workers,
            piece_bytes: Some(piece_bytes),
            frozen_source: true,
        }),
        ..SnapshotInput::default()
    };
    match request(SnapshotRequest::Snapshot(Box::new(input)), store).await? {
        SnapshotResponse::Plan(plan) => Ok(plan),
        other => panic!("a plan was asked for, not {other:?}"),
    }
}

async fn piece(
    pg: &PgServer,
    db: &str,
    plan: &str,
    worker: u32,
    store: &StoreConfig,
    deadline: Option<SystemTime>,
) -> PieceOutput {
    let mut ctx = context(store.clone());
    ctx.deadline = deadline;
    let input = PieceInput {
        source: pg.url(db),
        plan: plan.into(),
        worker,
    };
    match jobs::snapshot_request(SnapshotRequest::Piece { piece: input }, ctx).await {
        Ok(SnapshotResponse::Piece(out)) => out,
        other => panic!("worker {worker}: {other:?}"),
    }
}

async fn finish(
    pg: &PgServer,
    db: &str,
    plan: &str,
    store: &StoreConfig,
) -> Result<SnapshotOutput, JobError> {
    let input = FinishInput {
        source: pg.url(db),
        plan: plan.into(),
    };
    match request(SnapshotRequest::Finish { finish: input }, store).await? {
        SnapshotResponse::Snapshot(out) => Ok(out),
        other => panic!("finish answered {other:?}"),
    }
}

/// A table of about `rows` × 130 bytes, with a name that needs quoting and a generated column.
fn add_big_table(pg: &PgServer, db: &str, rows: u32) {
    pg.psql(
        db,
        &format!(
            "CREATE TABLE public.\"big \"\"table\"\"\" (id int PRIMARY KEY, body text, \
               doubled int GENERATED ALWAYS AS (id * 2) STORED); \
             INSERT INTO public.\"big \"\"table\"\"\" (id, body) \
               SELECT i, md5(i::text) || E'\\t' || md5((i * 7)::text) || E'\\\\' || repeat(chr(65 + i % 26), 40) \
               FROM generate_series(1, {rows}) i"
        ),
    );
    pg.psql(db, "VACUUM ANALYZE public.\"big \"\"table\"\"\"");
}

/// The corpus and a table split into many pieces, three workers, on the local store: one
/// worker runs out of time after every piece and is run again, finishing early is refused,
/// and the archive restores with `pg_restore -j 2` to the source's schema and rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_pieces_is_one_archive_pg_restore_reads() {
    one_archive_pg_restore_reads(shared_pg()).await;
}

/// The same on PostgreSQL 14 (the first with TID range scans, which pieces read by), with
/// pg_restore 15 as the judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_pieces_of_postgresql_14_is_read_by_pg_restore_15() {
    one_archive_pg_restore_reads(ferry_tests::shared_pg14()).await;
}

/// The same on PostgreSQL 17, with pg_restore 18 as the judge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_in_pieces_of_postgresql_17_is_read_by_pg_restore_18() {
    one_archive_pg_restore_reads(ferry_tests::shared_pg17()).await;
}

async fn one_archive_pg_restore_reads(pg: &PgServer) {
    // The whole corpus, large objects included (one piece of their own).
    let source = load_corpus_without(pg, "pieces", &[]);
    add_big_table(pg, &source, 20_000);
    let store = StoreConfig::default();
    let to = local_dir("pieces");

    // Refused before any work: not frozen, not a directory archive, a big table with zstd.
    let mut input = SnapshotInput {
        source: pg.url(&source),
        to: to.clone(),
        distribute: Some(Distribute {
            workers: 2,
            piece_bytes: None,
            frozen_source: false,
        }),
        ..SnapshotInput::default()
    };
    let err = request(SnapshotRequest::Snapshot(Box::new(input.clone())), &store)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("frozenSource"), "{err}");
    input.distribute.as_mut().unwrap().frozen_source = true;
    input.format = Some("custom".into());
    let err = request(SnapshotRequest::Snapshot(Box::new(input)), &store)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Ferry.BadInput");
    assert!(err.to_string().contains("directory"), "{err}");
    let err = plan(pg, &source, &to, &store, "zstd", 2, 8192 * 16)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("larger than one piece"), "{err}");

    let planned = plan(pg, &source, &to, &store, "gzip", 3, 8192 * 16)
        .await
        .unwrap();
    assert_eq!(planned.workers.len(), 3);
    assert!(planned.split_tables >= 1, "{planned:?}");
    assert!(planned.pieces > planned.tables + 5, "{planned:?}");
    assert_eq!(planned.plan, format!("{to}pieces/plan.json"));

    let early = finish(pg, &source, &planned.plan, &store)
        .await
        .unwrap_err();
    assert_eq!(early.error_type(), "Ferry.BadInput");
    assert!(early.to_string().contains("not dumped yet"), "{early}");

    // Worker 0 past its deadline: one piece per invocation, then "run me again".
    let past = SystemTime::now() - Duration::from_secs(1);
    let mut calls = 0;
    let mut left = usize::MAX;
    loop {
        let out = piece(pg, &source, &planned.plan, 0, &store, Some(past)).await;
        calls += 1;
        assert!(out.pieces_left < left, "progress every call: {out:?}");
        left = out.pieces_left;
        if out.status == PieceStatus::Done {
            assert_eq!(out.pieces_left, 0);
            break;
        }
        assert_eq!(out.pieces_dumped, 1, "{out:?}");
        assert!(calls < 100, "worker 0 never finished");
    }
    assert!(calls > 1, "worker 0 had a single piece");
    let (one, two) = tokio::join!(
        piece(pg, &source, &planned.plan, 1, &store, None),
        piece(pg, &source, &planned.plan, 2, &store, None)
    );
    assert_eq!(
        (one.status, two.status),
        (PieceStatus::Done, PieceStatus::Done)
    );
    // Run again, a worker finds its pieces recorded and dumps nothing twice.
    let again = piece(pg, &source, &planned.plan, 1, &store, None).await;
    assert_eq!((again.status, again.pieces_dumped), (PieceStatus::Done, 0));

    let out = finish(pg, &source, &planned.plan, &store).await.unwrap();
    assert_eq!(out.archive, format!("{to}archive/"));
    assert_eq!(out.format, "directory");
    assert_eq!(out.compression, "gzip");
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(local_path(&out.manifest)).unwrap()).unwrap();
    let joined: Vec<_> = manifest
        .objects
        .iter()
        .filter(|o| !o.parts.is_empty())
        .collect();
    assert_eq!(joined.len(), planned.split_tables, "{planned:?}");
    for object in joined {
        assert_eq!(
            object.size,
            object.parts.iter().map(|p| p.size).sum::<u64>()
        );
    }
    let big = manifest
        .tables
        .iter()
        .find(|t| t.name == "big \"table\"")
        .unwrap();
    assert_eq!(big.rows, 20_000);
    let left = crate::store::files_under(&local_path(&to).join("pieces"));
    assert!(left.is_empty(), "pieces/ is removed: {left:?}");
    // A finish run again answers with the same snapshot.
    let again = finish(pg, &source, &planned.plan, &store).await.unwrap();
    assert_eq!((again.archive, again.rows), (out.archive.clone(), out.rows));

    let listing = run(tool(pg, "pg_restore")
        .arg("-l")
        .arg(local_path(&out.archive)));
    assert!(listing.contains("Format: DIRECTORY"), "{listing}");
    let target = pg.create_database("pieces_restored");
    run(tool(pg, "pg_restore")
        .args(["--exit-on-error", "-j", "2", "-d", &target])
        .arg(local_path(&out.archive)));
    assert_same_schema(pg, &source, &target, "pieces");
    validate(out.manifest.clone(), pg, &target, store.clone()).await;
    validate(pg.url(&source), pg, &target, store).await;
}

/// On the S3-compatible server with pieces over the 5 MiB part minimum (joined server-side by
/// UploadPartCopy): a source changed before the finish is refused, and once it is as it was
/// the snapshot finishes and ferry restores it from S3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pieces_on_s3_are_joined_and_a_changed_source_is_refused() {
    let pg = shared_pg();
    let source = pg.create_database("pieces_s3");
    add_big_table(pg, &source, 200_000);
    let s3 = shared_s3();
    let bucket = s3.create_bucket("pieces");
    let store = s3.store_config();
    let to = format!("s3://{bucket}/big/");
    let planned = plan(pg, &source, &to, &store, "none", 2, 8 << 20)
        .await
        .unwrap();
    assert!(planned.pieces >= 3, "{planned:?}");
    let (a, b) = tokio::join!(
        piece(pg, &source, &planned.plan, 0, &store, None),
        piece(pg, &source, &planned.plan, 1, &store, None)
    );
    assert_eq!(a.rows + b.rows, 200_000);

    pg.psql(
        &source,
        "INSERT INTO public.\"big \"\"table\"\"\" (id, body) VALUES (0, 'late')",
    );
    let err = finish(pg, &source, &planned.plan, &store)
        .await
        .unwrap_err();
    assert_eq!(err.error_type(), "Ferry.Inconsistent");
    assert!(
        err.to_string().contains("changed while its pieces"),
        "{err}"
    );
    assert!(
        !s3.object_path(&bucket, "big/manifest.json").exists(),
        "no manifest for a refused snapshot"
    );
    pg.psql(
        &source,
        "DELETE FROM public.\"big \"\"table\"\"\" WHERE id = 0",
    );

    let out = finish(pg, &source, &planned.plan, &store).await.unwrap();
    assert_eq!(out.rows, 200_000);
    assert_eq!(out.compression, "none");
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(s3.object_path(&bucket, "big/manifest.json")).unwrap(),
    )
    .unwrap();
    let joined = manifest
        .objects
        .iter()
        .find(|o| !o.parts.is_empty())
        .unwrap();
    assert!(
        joined.parts.len() >= 3 && joined.parts[0].size > 5 << 20,
        "{joined:?}"
    );

    let target = pg.create_database("pieces_s3_restored");
    let restored = jobs::restore(
        jobs::RestoreInput {
            from: out.archive.clone(),
            target: Some(pg.url(&target)),
            ..Default::default()
        },
        context(store.clone()),
    )
    .await
    .unwrap();
    assert_eq!(restored.rows, 200_000, "{restored:?}");
    validate(out.manifest.clone(), pg, &target, store).await;
}

/// A `snapshot` invocation that cannot end before its deadline stops in time with
/// `Ferry.DeadlineExceeded`, pointing at `distribute`, and leaves nothing that looks complete.
/// (Here every second of the invocation is kept back, so the dump has no time at all.)
#[tokio::test]
async fn a_snapshot_that_cannot_end_before_the_deadline_stops_and_leaves_nothing() {
    let pg = shared_pg();
    let source = pg.create_database("deadline");
    pg.psql(&source, crate::snapshot::SMALL);
    let to = local_dir("deadline");
    let mut env = vec![("FERRY_DEADLINE_MARGIN_SECONDS", "30".to_string())];
    env.push(("RUST_LOG", "info".to_string()));
    let started = std::time::Instant::now();
    let run = ferry_tests::lambda::invoke_with_timeout(
        &ferry_tests::lambda::workspace_binary("snapshot"),
        serde_json::json!({"source": pg.url(&source), "to": to, "format": "directory"}),
        &env,
        Duration::from_secs(30),
    )
    .await;
    let (error_type, message) = run.result.expect_err("the snapshot had no time");
    assert_eq!(
        error_type, "Ferry.DeadlineExceeded",
        "{message}\n{}",
        run.logs
    );
    assert!(message.contains("distribute"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "it waited for the deadline"
    );
    let dir = local_path(&to);
    let left: Vec<_> = crate::store::files_under(&dir);
    assert!(
        !left
            .iter()
            .any(|p| p.ends_with("manifest.json") || p.ends_with("toc.dat")),
        "{left:?}"
    );
    assert!(!run.logs.contains(pg.password()));
}

/// Large objects in pieces: one piece, their files and `blobs.toc` in the archive and the
/// manifest, restored by pg_restore as they were (a plan used to refuse them).
#[tokio::test]
async fn large_objects_are_one_piece_of_their_own() {
    let pg = ferry_tests::shared_pg();
    let source = pg.create_database("pieces_lo");
    pg.psql(
        &source,
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1); \
         SELECT lo_from_bytea(0, 'x'); SELECT lo_from_bytea(4242, decode(repeat('ab', 1500000), 'hex')); \
         COMMENT ON LARGE OBJECT 4242 IS 'big';",
    );
    let to = local_dir("pieces-lo");
    let store = StoreConfig::default();
    let planned = plan(pg, &source, &to, &store, "gzip", 2, 1 << 20)
        .await
        .unwrap();
    for worker in 0..2 {
        let out = piece(pg, &source, &planned.plan, worker, &store, None).await;
        assert_eq!(out.status, PieceStatus::Done);
    }
    let out = finish(pg, &source, &planned.plan, &store).await.unwrap();
    let manifest: Manifest =
        serde_json::from_slice(&std::fs::read(local_path(&out.manifest)).unwrap()).unwrap();
    let keys: Vec<&str> = manifest.objects.iter().map(|o| o.key.as_str()).collect();
    assert!(keys.contains(&"archive/blobs.toc"), "{keys:?}");
    assert!(keys.contains(&"archive/blob_4242.dat.gz"), "{keys:?}");
    let target = pg.create_database("pieces_lo_restored");
    run(tool(pg, "pg_restore")
        .args(["--exit-on-error", "-d", &target])
        .arg(local_path(&out.archive)));
    assert_same_schema(pg, &source, &target, "large objects in pieces");
    validate(out.manifest.clone(), pg, &target, store).await;
}
