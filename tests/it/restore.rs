//! Restore against the real tools: archives written by ferry and by pg_dump 15 and 18 (custom
//! and directory) are restored by ferry into empty databases, and then `pg_dump --schema-only`
//! prints the same schema as the source and ferry's checksums find the same rows. A restore
//! killed mid-COPY, or cut by a server restart, runs again and ends identical. Neon branches of
//! the emulator are restored into end to end.

use std::{process::Command, time::Duration};

use ferry::{
    jobs::{self, RestoreInput, RestoreOutput, SnapshotInput},
    store::StoreConfig,
};
use ferry_tests::{
    PgServer, PgServerOptions, pg::SUPERUSER, shared_emulator, shared_pg, shared_pg17, shared_s3,
};

use crate::snapshot::{
    SMALL, assert_same_schema, context, corpus, local_dir, local_path, run, tool, validate,
};

pub(crate) async fn restore(
    pg: &PgServer,
    from: &str,
    store: StoreConfig,
    jobs: u32,
) -> (String, RestoreOutput) {
    let target = pg.create_database("ferry_restored");
    let out = jobs::restore(
        RestoreInput {
            from: from.into(),
            target: Some(pg.url(&target)),
            jobs: Some(jobs),
            ..RestoreInput::default()
        },
        context(store),
    )
    .await
    .unwrap_or_else(|e| panic!("restore {from}: {e}"));
    (target, out)
}

/// Checks that restoring `from` into a new database reproduces `source`.
async fn round_trip(pg: &PgServer, source: &str, from: &str, store: StoreConfig, what: &str) {
    let (target, out) = restore(pg, from, store.clone(), 2).await;
    assert!(out.tables >= 10, "{what}: {out:?}");
    assert_eq!(out.already_done, 0);
    assert_same_schema(pg, source, &target, what);
    validate(pg.url(source), pg, &target, store).await;
    let leftovers = pg.psql(
        &target,
        "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_restore'",
    );
    assert_eq!(leftovers.trim(), "0", "{what}: the progress schema is gone");
    // Every loaded table with rows was analyzed (statistics exist only after ANALYZE).
    let analyzed = pg.psql(
        &target,
        "CREATE FUNCTION pg_temp.row_count(regclass) RETURNS bigint LANGUAGE plpgsql AS \
           $$ DECLARE n bigint; BEGIN EXECUTE format('SELECT count(*) FROM %s', $1) INTO n; \
           RETURN n; END $$; \
         SELECT count(*) FILTER (WHERE s), count(*) FILTER (WHERE NOT s), \
                coalesce(string_agg(name, ', ') FILTER (WHERE NOT s), '') \
         FROM (SELECT c.oid::regclass::text AS name, \
                      EXISTS (SELECT 1 FROM pg_statistic st WHERE st.starelid = c.oid) AS s \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
               WHERE c.relkind = 'r' AND c.relnatts > 0 \
                 AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                 AND pg_temp.row_count(c.oid::regclass) > 0) t",
    );
    let fields: Vec<&str> = analyzed.trim().split('|').collect();
    assert!(fields[0].parse::<u32>().unwrap() >= 5, "{what}: {analyzed}");
    assert_eq!(fields[1], "0", "{what}: not analyzed: {}", fields[2]);
}

async fn fidelity(pg: &PgServer) {
    let source = crate::snapshot::load_corpus(pg, "corpus_r");
    let s3 = shared_s3();
    let bucket = s3.create_bucket("restore");
    // ferry's own archives: custom through S3 (blocks found through the manifest), directory.
    for (format, to, store) in [
        (
            "custom",
            format!("s3://{bucket}/ferry-custom/"),
            s3.store_config(),
        ),
        ("directory", local_dir("ferry-dir"), StoreConfig::default()),
        (
            "directory",
            format!("s3://{bucket}/ferry-dir/"),
            s3.store_config(),
        ),
    ] {
        let out = jobs::snapshot(
            SnapshotInput {
                source: pg.url(&source),
                to,
                format: Some(format.into()),
                ..SnapshotInput::default()
            },
            context(store.clone()),
        )
        .await
        .unwrap();
        // A directory archive named as pg_restore takes it: without its trailing slash.
        let archive = out.archive.trim_end_matches('/');
        round_trip(pg, &source, archive, store, &format!("ferry {format}")).await;
    }
    // pg_dump's archives: custom (offsets in its table of contents) and directory.
    let dir = local_path(&local_dir("pg-dump"));
    run(tool(pg, "pg_dump")
        .args(["-Fc", "-d", &source, "-f"])
        .arg(dir.join("db.dump")));
    run(tool(pg, "pg_dump")
        .args(["-Fd", "-d", &source, "-f"])
        .arg(dir.join("db.dir")));
    let version = run(Command::new(pg.bin("pg_dump")).arg("--version"));
    let version = version.trim();
    round_trip(
        pg,
        &source,
        &format!("file://{}", dir.join("db.dump").display()),
        StoreConfig::default(),
        &format!("{version} -Fc"),
    )
    .await;
    round_trip(
        pg,
        &source,
        &format!("file://{}", dir.join("db.dir").display()),
        StoreConfig::default(),
        &format!("{version} -Fd"),
    )
    .await;
    // Plain dumps: ferry's, and pg_dump's (pg_dump 18's carry \restrict lines), run without psql.
    run(tool(pg, "pg_dump")
        .args(["-Fp", "-d", &source, "-f"])
        .arg(dir.join("db.sql")));
    round_trip(
        pg,
        &source,
        &format!("file://{}", dir.join("db.sql").display()),
        StoreConfig::default(),
        &format!("{version} -Fp"),
    )
    .await;
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir("ferry-plain"),
            format: Some("plain".into()),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    round_trip(
        pg,
        &source,
        &out.archive,
        StoreConfig::default(),
        "ferry plain",
    )
    .await;
    // A custom archive written to a pipe has no offsets: found by scanning once.
    let piped = tool(pg, "pg_dump")
        .args(["-Fc", "-d", &source])
        .output()
        .unwrap();
    assert!(piped.status.success());
    std::fs::write(dir.join("piped.dump"), &piped.stdout).unwrap();
    round_trip(
        pg,
        &source,
        &format!("file://{}", dir.join("piped.dump").display()),
        StoreConfig::default(),
        "pg_dump -Fc to a pipe",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_and_pg_dump_archives_restore_identically_on_postgresql_15() {
    fidelity(shared_pg()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_and_pg_dump_15_archives_restore_identically_on_postgresql_14() {
    fidelity(ferry_tests::shared_pg14()).await;
}

/// pg_dump 18's plain dumps set `transaction_timeout`, which PostgreSQL 16 and older do not
/// know: restored into PostgreSQL 14, that setting is skipped (as psql does) and the rest loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pg_dump_18_plain_dump_restores_into_postgresql_14() {
    let from = shared_pg17();
    let db = from.create_database("plain18");
    from.psql(&db, SMALL);
    let file = ferry_tests::process::scratch().join(ferry_tests::unique_name("plain18.sql"));
    run(tool(from, "pg_dump")
        .args(["-Fp", "-d", &db, "-f"])
        .arg(&file));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("SET transaction_timeout"), "{text}");
    let pg = ferry_tests::shared_pg14();
    let (target, out) = restore(
        pg,
        &format!("file://{}", file.display()),
        StoreConfig::default(),
        1,
    )
    .await;
    assert_eq!(out.rows, 153, "{out:?}");
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM public.accounts")
            .trim(),
        "100"
    );
}

/// A plain script's setting the server does not know is skipped (as psql does), told by
/// SQLSTATE and by asking the server which settings it has, not by the message: a server
/// answering in German (lc_messages) skips it too. A `SET ROLE` of a missing role still fails
/// the restore.
#[tokio::test]
async fn an_unknown_setting_is_skipped_whatever_language_the_server_speaks() {
    let pg = shared_pg();
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("plain_de"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = |name: &str, set: &str| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            format!(
                "SET statement_timeout = 0;\n{set}\nCREATE TABLE public.t (id int);\n\
                 COPY public.t (id) FROM stdin;\n1\n2\n\\.\n\n"
            ),
        )
        .unwrap();
        format!("file://{}", path.display())
    };
    let german = |target: &str| {
        pg.psql(
            "postgres",
            &format!("ALTER DATABASE \"{target}\" SET lc_messages = 'de_DE.UTF-8'"),
        );
    };
    let target = pg.create_database("plain_de");
    german(&target);
    let out = jobs::restore(
        RestoreInput {
            from: script("unknown.sql", "SET no_such_setting_for_ferry = 0;"),
            target: Some(pg.url(&target)),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.rows, 2, "{out:?}");
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM public.t").trim(),
        "2"
    );
    let target = pg.create_database("plain_de_role");
    german(&target);
    let err = jobs::restore(
        RestoreInput {
            from: script("role.sql", "SET ROLE no_such_role_for_ferry;"),
            target: Some(pg.url(&target)),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .expect_err("a missing role is not a setting to skip");
    assert!(err.to_string().contains("SET ROLE"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_and_pg_dump_18_archives_restore_identically_on_postgresql_17() {
    fidelity(shared_pg17()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferry_and_pg_dump_18_archives_restore_identically_on_postgresql_18() {
    fidelity(ferry_tests::shared_pg18()).await;
}

#[tokio::test]
async fn a_target_that_is_not_empty_is_refused_and_left_alone() {
    let pg = shared_pg();
    let source = pg.create_database("small_src");
    pg.psql(&source, SMALL);
    let to = local_dir("refuse");
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to,
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    let target = pg.create_database("busy_target");
    pg.psql(
        &target,
        "CREATE TABLE mine (x int); INSERT INTO mine VALUES (1);",
    );
    let err = jobs::restore(
        RestoreInput {
            from: out.archive.clone(),
            target: Some(pg.url(&target)),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "Ferry.TargetNotEmpty", "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(
        pg.psql(
            &target,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        )
        .trim(),
        "1"
    );

    // A plain dump with a psql command ferry does not run is refused by line and command
    // before anything runs.
    let plain = local_path(&local_dir("plain")).join("dump.sql");
    std::fs::write(
        &plain,
        "CREATE TABLE t (x int);\n\\set x 1\nCREATE TABLE u (y int);\n",
    )
    .unwrap();
    let empty = pg.create_database("plain_target");
    let err = jobs::restore(
        RestoreInput {
            from: format!("file://{}", plain.display()),
            target: Some(pg.url(&empty)),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("line 2") && message.contains("\\set"),
        "{message}"
    );
}

/// A source with one table large enough that its COPY can be interrupted.
fn big_source(pg: &PgServer) -> String {
    let source = pg.create_database("big_src");
    pg.psql(
        &source,
        "CREATE TABLE small (id int PRIMARY KEY, v text); \
         INSERT INTO small SELECT i, 'v' || i FROM generate_series(1, 1000) i; \
         CREATE TABLE big (id bigint PRIMARY KEY, small_id int REFERENCES small (id), pad text); \
         INSERT INTO big SELECT i, 1 + i % 1000, repeat(md5(i::text), 8) FROM generate_series(1, 400000) i; \
         CREATE INDEX big_small_idx ON big (small_id);",
    );
    source
}

/// [`big_source`] snapshotted uncompressed under a local directory `dir`, an empty database
/// `target` (a unique name from it), and the restore of one into the other on 2 connections.
async fn big_restore(pg: &PgServer, dir: &str, target: &str) -> (String, String, RestoreInput) {
    let source = big_source(pg);
    let archive = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir(dir),
            compress: Some("none".into()),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap()
    .archive;
    let target = pg.create_database(target);
    let input = RestoreInput {
        from: archive,
        target: Some(pg.url(&target)),
        jobs: Some(2),
        ..RestoreInput::default()
    };
    (source, target, input)
}

/// Waits until a session of `pg` is running a `COPY ... FROM STDIN` into `db`.
async fn wait_for_copy(pg: &PgServer, db: &str) {
    for _ in 0..400 {
        let n = pg.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND query LIKE 'COPY %big%'"
            ),
        );
        if n.trim() != "0" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no COPY into {db} was seen");
}

async fn resume_after(pg: &PgServer, interrupt: impl AsyncFnOnce(&str)) {
    let (source, target, input) = big_restore(pg, "resume", "resumed").await;
    let first = tokio::spawn(jobs::restore(
        input.clone(),
        context(StoreConfig::default()),
    ));
    interrupt(&target).await;
    let err = first
        .await
        .unwrap()
        .expect_err("the interrupted restore fails");
    assert!(
        err.to_string().contains("run the same restore again") || err.is_retryable(),
        "{err}"
    );
    // The cut load is not recorded as done (whatever it committed, when other connections
    // had joined it, is emptied by the next run).
    let recorded = pg.psql(
        &target,
        "SELECT count(*) FROM ferry_restore.progress WHERE rows = 400000",
    );
    assert_eq!(recorded.trim(), "0", "the cut load is recorded as done");
    let second = jobs::restore(input, context(StoreConfig::default()))
        .await
        .unwrap();
    assert!(second.already_done > 0, "{second:?}");
    assert_same_schema(pg, &source, &target, "resumed");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_join_a_big_load_and_a_bad_row_leaves_it_empty() {
    let pg = shared_pg();
    let source = big_source(pg);
    let dir = local_path(&local_dir("joined"));
    let archive = dir.join("db.dir");
    run(tool(pg, "pg_dump")
        .args(["-Fd", "-Z0", "-d", &source, "-f"])
        .arg(&archive));
    let from = format!("file://{}/", archive.display());
    // `small` loads at once and the other connection joins the load of `big`: more than one
    // transaction wrote its rows, and they are exactly the source's.
    let (target, out) = restore(pg, &from, StoreConfig::default(), 2).await;
    assert_eq!(out.rows, 401000, "{out:?}");
    let writers = pg.psql(&target, "SELECT count(DISTINCT xmin::text) FROM big");
    assert!(
        writers.trim().parse::<u32>().unwrap() >= 2,
        "big was loaded by one connection: {writers}"
    );
    assert_same_schema(pg, &source, &target, "joined load");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;

    // A bad row near the end of `big` (where both connections load it): the restore fails
    // naming the table and the value, and `big` is left empty, not recorded as done.
    let data = std::fs::read_dir(&archive)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dat"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(&data).unwrap();
    let at = bytes.len() * 9 / 10;
    let line = at + bytes[at..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let id_end = line + bytes[line..].iter().position(|&b| b == b'\t').unwrap();
    bytes.splice(line..id_end, b"bad".iter().copied());
    std::fs::write(&data, bytes).unwrap();
    let target = pg.create_database("bad_row");
    let err = jobs::restore(
        RestoreInput {
            from,
            target: Some(pg.url(&target)),
            jobs: Some(2),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .expect_err("a bad row fails the restore");
    // The table and the SQLSTATE, not the value (errors quote no row values by default).
    let message = err.to_string();
    assert!(
        message.contains("big") && message.contains("22P02") && !message.contains("\"bad\""),
        "{message}"
    );
    assert_eq!(pg.psql(&target, "SELECT count(*) FROM big").trim(), "0");
    let recorded = pg.psql(
        &target,
        "SELECT count(*) FROM ferry_restore.progress WHERE rows = 400000",
    );
    assert_eq!(recorded.trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_killed_mid_copy_resumes_and_ends_identical() {
    let pg = shared_pg();
    resume_after(pg, async |db: &str| {
        // Found and killed by the server in one statement: a psql started after seeing the
        // COPY could come too late (the COPY done, the restore finished), on a loaded machine.
        pg.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN \
                   FOR i IN 1..4000 LOOP \
                     IF (SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = '{db}' AND query LIKE 'COPY %big%' \
                           AND pid <> pg_backend_pid()) > 0 THEN RETURN; END IF; \
                     PERFORM pg_sleep(0.002); PERFORM pg_stat_clear_snapshot(); \
                   END LOOP; \
                   RAISE EXCEPTION 'no COPY into {db} was seen'; \
                 END $$"
            ),
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_cut_by_a_server_restart_resumes_and_ends_identical() {
    let pg = PgServer::start_new(PgServerOptions::default());
    resume_after(&pg, async |db: &str| {
        wait_for_copy(&pg, db).await;
        pg.stop();
        pg.start();
    })
    .await;
}

#[test]
fn restore_into_a_new_branch_of_the_emulator_end_to_end() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let emulator = shared_emulator();
    let pg = shared_pg();
    let source = pg.create_database("seed_src");
    pg.psql(&source, SMALL);
    let to = local_dir("seed");
    let archive = rt
        .block_on(jobs::snapshot(
            SnapshotInput {
                source: pg.url(&source),
                to,
                ..SnapshotInput::default()
            },
            context(StoreConfig::default()),
        ))
        .unwrap()
        .archive;
    let project = rt
        .block_on(emulator.client().create_project("restore-e2e"))
        .unwrap()
        .project
        .id;
    let ferry = |args: &[&str]| {
        let out = Command::new(ferry_tests::lambda::workspace_binary("ferry"))
            .args(args)
            .envs(emulator.env())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = ferry(&[
        "--json",
        "restore",
        "--from",
        &archive,
        "--neon-project",
        &project,
        "--branch",
        "preview-seeded",
        "--database",
        "seeded",
        "--expires-in",
        "1d",
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(out["branchCreated"], true);
    assert_eq!(out["rows"], 153);
    let reference = out["target"].as_str().unwrap().to_string();
    assert!(reference.starts_with("neon://"), "{reference}");
    assert!(!stdout.contains("password") && !stderr.contains(pg.password()));
    let (code, stdout, stderr) = ferry(&[
        "validate",
        "--checksums",
        "--source",
        &pg.url(&source),
        "--target",
        &reference,
    ]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("MATCH"), "{stdout}");
    // The same restore again finds the branch and the restored database: refused, not doubled.
    let (code, _, stderr) = ferry(&[
        "restore",
        "--from",
        &archive,
        "--neon-project",
        &project,
        "--branch",
        "preview-seeded",
        "--database",
        "seeded",
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("not empty"), "{stderr}");
}

/// zstd and lz4 (archive 1.15). No pg_restore on this machine kind reads them (Debian's is 15,
/// and the PostgreSQL 16 and 18 builds from PyPI are built without lz4 and zstd), so: pg_restore
/// 18 lists the archives (header and table of contents), the `zstd` and `lz4` tools decode a
/// directory archive's data files to exactly the rows, and ferry restores every combination to
/// an identical database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_and_lz4_archives_are_listed_decoded_and_restored() {
    let pg = shared_pg17();
    let source = pg.create_database("corpus_z");
    pg.psql_file(&source, &corpus());
    for (compress, format) in [
        ("zstd", "custom"),
        ("lz4", "custom"),
        ("zstd", "directory"),
        ("lz4", "directory"),
    ] {
        let out = jobs::snapshot(
            SnapshotInput {
                source: pg.url(&source),
                to: local_dir("ferry-z"),
                format: Some(format.into()),
                compress: Some(compress.into()),
                ..SnapshotInput::default()
            },
            context(StoreConfig::default()),
        )
        .await
        .unwrap();
        assert_eq!(out.archive_version, "1.15");
        let listing = run(Command::new(pg.bin("pg_restore"))
            .arg("-l")
            .arg(local_path(&out.archive)));
        assert!(
            listing.contains(&format!("Compression: {compress}")),
            "{listing}"
        );
        assert!(listing.contains("TABLE DATA app customers"), "{listing}");
        if format == "directory" {
            let dir = local_path(&out.archive);
            let suffix = if compress == "zstd" { "zst" } else { "lz4" };
            let mut decoded_rows = 0;
            for file in std::fs::read_dir(&dir).unwrap() {
                let path = file.unwrap().path();
                let large_object = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("blob_"));
                if path.extension().and_then(|e| e.to_str()) != Some(suffix) || large_object {
                    continue;
                }
                let text = run(Command::new(compress).args(["-d", "-c", "-q"]).arg(&path));
                assert!(text.ends_with("\\.\n\n\n"), "{}: {text:?}", path.display());
                decoded_rows += text.lines().count() - 3; // the \. line and two blank lines
            }
            let not_dumped: u64 = pg
                .psql(
                    &source,
                    "SELECT (SELECT sum((xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %s', \
                                   c.oid::regclass), false, true, '')))[1]::text::bigint) \
                             FROM pg_class c WHERE c.relkind = 'm' AND c.relispopulated) \
                          + (SELECT count(*) FROM ferry_fixture.settings WHERE builtin)",
                )
                .trim()
                .parse()
                .unwrap();
            assert_eq!(
                decoded_rows as u64,
                out.rows - not_dumped,
                "every table's rows (materialized views' are refreshed, not dumped, and those an \
                 extension puts in its configuration table come with the extension)"
            );
        }
        round_trip(
            pg,
            &source,
            &out.archive,
            StoreConfig::default(),
            &format!("ferry {format} {compress}"),
        )
        .await;
    }
}

/// `--list`, `--use-list`, `--table`, `--schema` and `--clean`, as pg_restore users know them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_use_list_filters_and_clean() {
    let pg = shared_pg();
    let source = pg.create_database("filters_src");
    pg.psql(&source, SMALL);
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir("filters"),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    let cli = Command::new(ferry_tests::lambda::workspace_binary("ferry"))
        .args(["restore", "--list", "--from", &out.archive])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let listing = String::from_utf8(cli.stdout).unwrap();
    assert!(listing.contains("TABLE DATA public accounts"), "{listing}");
    assert!(listing.contains("Format: CUSTOM"), "{listing}");

    let archive = &out.archive;
    let restore_with = |input: RestoreInput| async move {
        let target = pg.create_database("filtered");
        jobs::restore(
            RestoreInput {
                from: archive.clone(),
                target: Some(pg.url(&target)),
                ..input
            },
            context(StoreConfig::default()),
        )
        .await
        .unwrap();
        let tables = pg.psql(
            &target,
            "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        );
        (target, tables.trim().to_string())
    };

    // An edited list: only the lines about accounts.
    let list = local_path(&local_dir("uselist")).join("accounts.list");
    let edited: String = listing
        .lines()
        .filter(|l| l.starts_with(';') || l.contains("accounts"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&list, edited).unwrap();
    let (target, tables) = restore_with(RestoreInput {
        use_list: Some(format!("file://{}", list.display())),
        ..RestoreInput::default()
    })
    .await;
    assert_eq!(tables, "public.accounts");
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM accounts").trim(),
        "100"
    );

    let (_, tables) = restore_with(RestoreInput {
        tables: vec!["schema_migrations".into()],
        ..RestoreInput::default()
    })
    .await;
    assert_eq!(tables, "public.schema_migrations");
    let (_, tables) = restore_with(RestoreInput {
        schemas: vec!["reporting".into()],
        ..RestoreInput::default()
    })
    .await;
    assert_eq!(tables, "reporting.daily");

    let (_, tables) = restore_with(RestoreInput {
        exclude_schemas: vec!["reporting".into()],
        exclude_tables: vec!["audit*".into()],
        ..RestoreInput::default()
    })
    .await;
    assert_eq!(tables, "public.accounts,public.schema_migrations");

    // --clean over a full restore: dropped and made again, rows not doubled.
    let (target, _) = restore_with(RestoreInput::default()).await;
    pg.psql(&target, "INSERT INTO accounts (name) VALUES ('extra')");
    jobs::restore(
        RestoreInput {
            from: out.archive.clone(),
            target: Some(pg.url(&target)),
            clean: true,
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    assert_same_schema(pg, &source, &target, "after --clean");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}

/// `--single-transaction`: all of it, or nothing when an item fails.
#[tokio::test]
async fn a_single_transaction_restore_is_all_or_nothing() {
    let pg = shared_pg();
    let source = pg.create_database("single_src");
    pg.psql(&source, SMALL);
    let role = format!("owner_{}", ferry_tests::unique_name("r").replace('-', "_"));
    pg.psql(
        &source,
        &format!("CREATE ROLE {role}; ALTER TABLE reporting.daily OWNER TO {role};"),
    );
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir("single"),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    // Restores whole with its owners while the role exists ...
    let target = pg.create_database("single_ok");
    jobs::restore(
        RestoreInput {
            from: out.archive.clone(),
            target: Some(pg.url(&target)),
            single_transaction: true,
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    assert_same_schema(pg, &source, &target, "single transaction");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
    // ... and leaves nothing at all once giving ownership fails.
    pg.psql(
        &source,
        &format!("ALTER TABLE reporting.daily OWNER TO {SUPERUSER}"),
    );
    pg.psql(&target, &format!("DROP OWNED BY {role}"));
    pg.psql("postgres", &format!("DROP ROLE {role}"));
    let target = pg.create_database("single_fail");
    let err = jobs::restore(
        RestoreInput {
            from: out.archive.clone(),
            target: Some(pg.url(&target)),
            single_transaction: true,
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nothing was restored"), "{err}");
    let left = pg.psql(
        &target,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')",
    );
    assert_eq!(left.trim(), "0", "nothing restored, nothing left");
}

/// Large objects in pg_dump's archives (pg_dump 15: one BLOB entry each and `blobs.toc`;
/// pg_dump 18: BLOB METADATA groups and `blobs_<id>.toc`), custom and directory.
async fn large_objects(pg: &PgServer) {
    let source = pg.create_database("lo_src");
    pg.psql(
        &source,
        "CREATE TABLE docs (id int PRIMARY KEY, body oid); \
         INSERT INTO docs SELECT i, lo_from_bytea(0, convert_to(repeat('page ' || i, 20000 * i), 'UTF8')) \
         FROM generate_series(1, 5) i; \
         INSERT INTO docs VALUES (6, lo_from_bytea(0, ''::bytea)); \
         DO $$ BEGIN CREATE ROLE lo_reader; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$; \
         DO $$ DECLARE o oid; BEGIN FOR o IN SELECT oid FROM pg_largeobject_metadata LOOP \
           EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO lo_reader', o); END LOOP; END $$; \
",
    );
    let objects = |db: &str| {
        pg.psql(
            db,
            "SELECT string_agg(m.oid || ':' || pg_get_userbyid(m.lomowner) || ':' || coalesce(m.lomacl::text, '-') || ':' || md5(lo_get(m.oid)), ' | ' ORDER BY m.oid) \
             FROM pg_largeobject_metadata m",
        )
    };
    let want = objects(&source);
    assert_eq!(want.split(" | ").count(), 6, "{want}");
    let dir = local_path(&local_dir("lo"));
    for (flag, name) in [("-Fc", "lo.dump"), ("-Fd", "lo.dir"), ("-Fp", "lo.sql")] {
        run(tool(pg, "pg_dump")
            .args([flag, "-d", &source, "-f"])
            .arg(dir.join(name)));
        let url = if flag == "-Fd" {
            format!("file://{}/", dir.join(name).display())
        } else {
            format!("file://{}", dir.join(name).display())
        };
        let (target, _) = restore(pg, &url, StoreConfig::default(), 2).await;
        assert_eq!(objects(&target), want, "{flag}");
        assert_same_schema(pg, &source, &target, &format!("large objects {flag}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_objects_restore_from_pg_dump_15_and_18_archives() {
    large_objects(shared_pg()).await;
    large_objects(shared_pg17()).await;
}

/// `pg_dump --create` plain dumps create their database and `\connect` to it.
#[tokio::test]
async fn a_plain_dump_with_create_makes_and_fills_its_database() {
    let pg = shared_pg();
    let source = pg.create_database("create_src");
    pg.psql(&source, SMALL);
    let dir = local_path(&local_dir("create"));
    run(tool(pg, "pg_dump")
        .args(["-C", "-Fp", "-d", &source, "-f"])
        .arg(dir.join("create.sql")));
    let original = format!("{source}_orig");
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE {source} RENAME TO {original}"),
    );
    let landing = pg.create_database("landing");
    let out = jobs::restore(
        RestoreInput {
            from: format!("file://{}", dir.join("create.sql").display()),
            target: Some(pg.url(&landing)),
            ..RestoreInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    assert_eq!(out.rows, 153, "{out:?}");
    assert_same_schema(pg, &original, &source, "pg_dump --create");
    validate(pg.url(&original), pg, &source, StoreConfig::default()).await;
    for db in [&landing, &source] {
        let left = pg.psql(
            db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'ferry_restore'",
        );
        assert_eq!(left.trim(), "0", "{db}: progress schema dropped");
    }
}

/// The `restore` Lambda, as the workflows run it: typed JSON in, counts out, no password.
#[tokio::test]
async fn the_restore_lambda_loads_a_snapshot() {
    let pg = shared_pg();
    let source = pg.create_database("lambda_src");
    pg.psql(&source, SMALL);
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir("lambda"),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    let target = pg.create_database("lambda_dst");
    let run = ferry_tests::lambda::invoke(
        &ferry_tests::lambda::workspace_binary("restore"),
        serde_json::json!({"from": out.archive, "target": pg.url(&target), "jobs": 2}),
        &[],
    )
    .await;
    let result = run.result.unwrap_or_else(|e| panic!("{e:?}\n{}", run.logs));
    assert_eq!(result["rows"], 153);
    assert_eq!(result["tables"], 4);
    assert!(!result.to_string().contains(pg.password()));
    assert!(!run.logs.contains(pg.password()));
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}

/// `restore --list` prints one line per entry whatever the names hold: a table named with a
/// line break and what looks like another entry printed that entry's line, which a use-list
/// made from the listing then selected (pg_restore -l replaces line breaks by spaces).
#[tokio::test]
async fn a_listing_has_one_line_per_entry_whatever_the_names() {
    let pg = shared_pg();
    let source = pg.create_database("list_names");
    pg.psql(
        &source,
        "CREATE TABLE \"evil\n1; 0 0 SCHEMA - public x\" (x int); \
         COMMENT ON TABLE \"evil\n1; 0 0 SCHEMA - public x\" IS 'a\nb';",
    );
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to: local_dir("list-names"),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    let cli = Command::new(ferry_tests::lambda::workspace_binary("ferry"))
        .args(["restore", "--list", "--from", &out.archive])
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let text = String::from_utf8(cli.stdout).unwrap();
    let count: usize = text
        .lines()
        .find_map(|l| l.strip_prefix(";     TOC Entries: "))
        .unwrap()
        .parse()
        .unwrap();
    let ours: Vec<&str> = text.lines().filter(|l| !l.starts_with(';')).collect();
    let ids: Vec<usize> = ours
        .iter()
        .map(|l| l.split(';').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids, (1..=count).collect::<Vec<_>>(), "{ours:#?}");
    assert!(
        ours.iter()
            .any(|l| l.contains("TABLE public evil 1; 0 0 SCHEMA")),
        "{ours:#?}"
    );
}

/// A rerun empties what an earlier attempt left in a table before loading it again; when the
/// server refuses that TRUNCATE (here a trigger refuses it) the restore stops naming the table
/// instead of appending to the leftovers, and a rerun the server lets empty it ends exact.
#[tokio::test]
async fn a_refused_truncate_before_a_reload_fails_instead_of_appending() {
    let pg = shared_pg();
    let source = pg.create_database("trunc_src");
    pg.psql(
        &source,
        "CREATE TABLE a (id int); INSERT INTO a VALUES (1), (2); \
         CREATE TABLE z (v int); INSERT INTO z VALUES (10), (20);",
    );
    let dir = local_path(&local_dir("truncate"));
    let archive = dir.join("db.dir");
    run(tool(pg, "pg_dump")
        .args(["-Fd", "-Z0", "-d", &source, "-f"])
        .arg(&archive));
    let from = format!("file://{}/", archive.display());
    let z_data = std::fs::read_dir(&archive)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| std::fs::read(p).is_ok_and(|b| b.starts_with(b"10\n20\n")))
        .expect("z's data file");
    let good = std::fs::read(&z_data).unwrap();
    std::fs::write(&z_data, b"10\nbad\n\\.\n\n\n").unwrap();

    // The first attempt creates the tables and stops on z's bad row.
    let target = pg.create_database("trunc_dst");
    let input = RestoreInput {
        from,
        target: Some(pg.url(&target)),
        jobs: Some(1),
        ..RestoreInput::default()
    };
    jobs::restore(input.clone(), context(StoreConfig::default()))
        .await
        .expect_err("a bad row fails the restore");
    assert_eq!(pg.psql(&target, "SELECT count(*) FROM z").trim(), "0");

    // What a process killed between the commits of a shared load leaves: rows, no progress;
    // and a server that refuses to empty the table.
    std::fs::write(&z_data, good).unwrap();
    pg.psql(
        &target,
        "INSERT INTO z VALUES (10); \
         CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'z is not to be emptied'; END $$; \
         CREATE TRIGGER keep BEFORE TRUNCATE ON z EXECUTE FUNCTION public.keep();",
    );
    let refused = jobs::restore(input.clone(), context(StoreConfig::default())).await;
    let rows = pg.psql(&target, "SELECT count(*) FROM z");
    let err = refused.expect_err(&format!(
        "a refused TRUNCATE let the reload append: z holds {} rows",
        rows.trim()
    ));
    let message = err.to_string();
    assert!(
        message.contains(" z ") && message.contains("could not be emptied"),
        "{message}"
    );
    assert_eq!(rows.trim(), "1", "the leftover row is all z holds");

    // Once the server lets it, the rerun empties z and loads it exactly, even a rerun of the
    // data section alone (the run that created z was another one).
    pg.psql(
        &target,
        "DROP TRIGGER keep ON z; DROP FUNCTION public.keep()",
    );
    jobs::restore(
        RestoreInput {
            sections: vec!["data".into()],
            ..input
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    assert_eq!(
        pg.psql(&target, "SELECT string_agg(v::text, ',' ORDER BY v) FROM z")
            .trim(),
        "10,20"
    );
}

/// Two restores into one database at once: the second stops at once, saying why, instead of
/// taking the first one's progress for its own and loading the same tables again; the first
/// ends identical to the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_restore_into_the_same_database_waits_its_turn() {
    let pg = shared_pg();
    let (source, target, input) = big_restore(pg, "concurrent", "concurrent").await;
    let first = tokio::spawn(jobs::restore(
        input.clone(),
        context(StoreConfig::default()),
    ));
    wait_for_copy(pg, &target).await;
    let err = jobs::restore(input, context(StoreConfig::default()))
        .await
        .expect_err("a second restore at the same time");
    assert!(
        err.to_string().contains("another ferry restore is running"),
        "{err}"
    );
    first.await.unwrap().unwrap();
    assert_same_schema(pg, &source, &target, "the first restore");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}

/// A table loaded by two connections at once whose connections are both cut: the part the
/// first one committed when the second joined is emptied through a new connection, so the
/// table is empty, not partly loaded, when the restore stops (and the rerun loads it whole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_load_cut_on_every_connection_leaves_its_table_empty() {
    let pg = shared_pg();
    let (source, target, input) = big_restore(pg, "shared-cut", "shared_cut").await;
    let restore = tokio::spawn(jobs::restore(
        input.clone(),
        context(StoreConfig::default()),
    ));
    // Both connections copying into big (the second joined the first): cut them both at once.
    pg.psql(
        "postgres",
        &format!(
            "DO $$ BEGIN \
               FOR i IN 1..5000 LOOP \
                 IF (SELECT count(*) FROM pg_stat_activity WHERE datname = '{target}' \
                       AND query LIKE 'COPY %big%' AND state = 'active') >= 2 THEN \
                   PERFORM pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = '{target}' AND query LIKE 'COPY %big%'; \
                   RAISE NOTICE 'cut'; RETURN; \
                 END IF; \
                 PERFORM pg_sleep(0.002); PERFORM pg_stat_clear_snapshot(); \
               END LOOP; \
               RAISE EXCEPTION 'no shared load into big was seen'; \
             END $$"
        ),
    );
    restore
        .await
        .unwrap()
        .expect_err("a restore whose connections were cut fails");
    assert_eq!(
        pg.psql(&target, "SELECT count(*) FROM big").trim(),
        "0",
        "the cut shared load left part of big behind"
    );
    jobs::restore(input, context(StoreConfig::default()))
        .await
        .unwrap();
    assert_same_schema(pg, &source, &target, "after the cut");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}
