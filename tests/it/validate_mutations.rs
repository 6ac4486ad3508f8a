//! Validate sees every difference a restore can make: a corpus of every object kind
//! (tests/corpus/rich.sql), faithful copies that must MATCH (a template copy,
//! pg_restore's, across server versions in both directions), and copies that each differ in
//! one thing, which must be DIFFERENT naming the object.

use std::path::PathBuf;

use ferry::jobs::{ValidateInput, ValidateOutput, validate};
use ferry_tests::{PgServer, shared_pg};

use crate::snapshot::{context, local_dir, local_path, run, tool_for};

fn corpus_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name)
}

/// Loads the corpus files into a new database of `pg`, leaving out the lines `skip` names
/// (extensions and collation providers a server build lacks).
fn load(pg: &PgServer, prefix: &str, files: &[&str], skip: &[&str]) -> String {
    let db = pg.create_database(prefix);
    let text: String = files
        .iter()
        .map(|f| std::fs::read_to_string(corpus_file(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n")
        .lines()
        .filter(|l| !skip.iter().any(|s| l.contains(s)))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = ferry_tests::process::scratch().join(format!("{db}.sql"));
    std::fs::write(&path, text).unwrap();
    pg.psql_file(&db, &path);
    db
}

async fn compare(source: String, target: String) -> ValidateOutput {
    validate(
        ValidateInput {
            source,
            import_report: None,
            target,
            checksums: true,
            jobs: Some(2),
            owners: true,
            privileges: true,
            database: true,
            save_source_manifest: None,
        },
        context(Default::default()),
    )
    .await
    .unwrap()
}

/// One way a copy can differ from its source, and what the report must name.
struct Mutation {
    what: &'static str,
    sql: &'static str,
    /// A part of the differing object's name in the report.
    names: &'static str,
    /// The oldest server version the statement runs on.
    since: i32,
}

const fn m(what: &'static str, sql: &'static str, names: &'static str) -> Mutation {
    Mutation {
        what,
        sql,
        names,
        since: 140000,
    }
}

const MUTATIONS: &[Mutation] = &[
    // The blind spots of issue #19, each on its own.
    m(
        "sequence moved",
        "SELECT setval('app.counter', 500)",
        "sequence state app.counter",
    ),
    m(
        "sequence is_called flipped",
        "SELECT setval('app.unused_seq', 42, true)",
        "sequence state app.unused_seq",
    ),
    m(
        "table grant added",
        "GRANT INSERT ON app.customers TO corpus_reader",
        "acl table app.customers",
    ),
    m(
        "column grant revoked",
        "REVOKE UPDATE (note) ON app.orders FROM corpus_reader",
        "acl table column app.orders.note",
    ),
    m(
        "comment changed",
        "COMMENT ON TABLE app.customers IS 'changed'",
        "comment table app.customers",
    ),
    m(
        "default privileges changed",
        "ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM corpus_reader",
        "default acl",
    ),
    m(
        "public schema grants changed",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        "acl schema public",
    ),
    m(
        "rule disabled",
        "ALTER TABLE app.scratch DISABLE RULE scratch_no_delete",
        "rule app.scratch.scratch_no_delete",
    ),
    Mutation {
        what: "publication row filter changed",
        sql: "ALTER PUBLICATION corpus_filtered SET TABLE app.orders (id, customer_id, note) WHERE (note IS NULL)",
        names: "publication table corpus_filtered app.orders",
        since: 150000,
    },
    m(
        "text search mapping dropped",
        "ALTER TEXT SEARCH CONFIGURATION extra.words DROP MAPPING FOR word",
        "text search configuration extra.words",
    ),
    m(
        "large object content changed",
        "SELECT lo_put(424242, 0, '\\x00')",
        "large objects",
    ),
    m(
        "foreign server option changed",
        "ALTER SERVER extra_server OPTIONS (SET host 'other.example')",
        "foreign server extra_server",
    ),
    // Definitions.
    m(
        "column default changed",
        "ALTER TABLE app.customers ALTER COLUMN name SET DEFAULT 'x'",
        "column app.customers.name",
    ),
    m(
        "function body changed",
        "CREATE OR REPLACE FUNCTION app.add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT i + 2 $$",
        "function app.add_one",
    ),
    m(
        "index dropped",
        "DROP INDEX app.orders_tags_gin",
        "index app.orders_tags_gin",
    ),
    m(
        "constraint dropped",
        "ALTER TABLE app.customers DROP CONSTRAINT name_not_blank",
        "constraint app.customers.name_not_blank",
    ),
    m(
        "policy changed",
        "ALTER POLICY customers_all ON app.customers USING (false)",
        "policy app.customers.customers_all",
    ),
    m(
        "enum label added",
        "ALTER TYPE app.mood ADD VALUE 'ecstatic'",
        "type app.mood",
    ),
    m(
        "domain default changed",
        "ALTER DOMAIN app.positive SET DEFAULT 2",
        "type app.positive",
    ),
    m(
        "domain constraint dropped",
        "ALTER DOMAIN app.email DROP CONSTRAINT email_check",
        "constraint app.email.email_check",
    ),
    m(
        "collation dropped",
        "DROP COLLATION app.c_sort",
        "collation app.c_sort",
    ),
    m(
        "sequence parameter changed",
        "ALTER SEQUENCE app.counter INCREMENT BY 7",
        "sequence app.counter",
    ),
    m(
        "aggregate initial condition changed",
        "DROP AGGREGATE app.concat_all(text); CREATE AGGREGATE app.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = 'x', MSFUNC = textcat, MINVFUNC = textcat, MSTYPE = text, MINITCOND = '')",
        "aggregate definition app.concat_all",
    ),
    m(
        "operator dropped",
        "DROP OPERATOR extra.=== (integer, integer)",
        "operator extra.===",
    ),
    m(
        "operator family dropped",
        "DROP OPERATOR FAMILY extra.fam USING btree",
        "operator family extra.fam",
    ),
    m(
        "cast dropped",
        "DROP CAST (integer AS extra.wrapped)",
        "cast (integer AS extra.wrapped)",
    ),
    m(
        "conversion dropped",
        "DROP CONVERSION extra.latin_to_utf8",
        "conversion extra.latin_to_utf8",
    ),
    m(
        "foreign data wrapper option changed",
        "ALTER FOREIGN DATA WRAPPER extra_wrapper OPTIONS (SET debug 'true')",
        "foreign data wrapper extra_wrapper",
    ),
    m(
        "foreign table option changed",
        "ALTER FOREIGN TABLE extra.remote OPTIONS (SET table_name 'elsewhere')",
        "foreign table extra.remote",
    ),
    m(
        "event trigger disabled",
        "ALTER EVENT TRIGGER corpus_ddl DISABLE",
        "event trigger corpus_ddl",
    ),
    m(
        "publication options changed",
        "ALTER PUBLICATION corpus_all SET (publish = 'insert')",
        "publication corpus_all",
    ),
    m(
        "table left a publication",
        "ALTER PUBLICATION \"corpus \"\"some\"\" tables\" DROP TABLE app.events",
        "publication table",
    ),
    m(
        "extended statistics dropped",
        "DROP STATISTICS app.orders_stats",
        "statistics app.orders_stats",
    ),
    // States: enable flags, storage settings.
    m(
        "trigger disabled",
        "ALTER TABLE app.customers DISABLE TRIGGER customers_touch",
        "trigger state app.customers.customers_touch",
    ),
    m(
        "partition's trigger enabled",
        "ALTER TABLE app.events_2024 ENABLE TRIGGER events_noop",
        "trigger state app.events_2024.events_noop",
    ),
    m(
        "row security off",
        "ALTER TABLE app.customers DISABLE ROW LEVEL SECURITY",
        "table app.customers",
    ),
    m(
        "replica identity changed",
        "ALTER TABLE app.orders REPLICA IDENTITY FULL",
        "table options app.orders",
    ),
    m(
        "storage parameter changed",
        "ALTER TABLE app.customers SET (fillfactor = 50)",
        "table options app.customers",
    ),
    m(
        "column statistics target changed",
        "ALTER TABLE app.customers ALTER COLUMN name SET STATISTICS 100",
        "column settings app.customers.name",
    ),
    m(
        "column storage changed",
        "ALTER TABLE app.customers ALTER COLUMN payload SET STORAGE MAIN",
        "column settings app.customers.payload",
    ),
    m(
        "index statistics target changed",
        "ALTER INDEX app.orders_note_lower_idx ALTER COLUMN 1 SET STATISTICS 10",
        "index settings app.orders_note_lower_idx",
    ),
    m(
        "clustering dropped",
        "ALTER TABLE app.orders SET WITHOUT CLUSTER",
        "index settings app.orders_note_lower_idx",
    ),
    m(
        "materialized view populated",
        "REFRESH MATERIALIZED VIEW app.empty_stats",
        "app.empty_stats",
    ),
    m(
        "inherited column's own default changed",
        "ALTER TABLE app.dogs ALTER COLUMN name SET DEFAULT 'fido'",
        "column app.dogs.name",
    ),
    // Comments on the parts of things.
    m(
        "column comment dropped",
        "COMMENT ON COLUMN app.customers.\"select\" IS NULL",
        "comment table column app.customers.\"select\"",
    ),
    m(
        "index comment changed",
        "COMMENT ON INDEX app.orders_placed_idx IS 'x'",
        "comment index app.orders_placed_idx",
    ),
    m(
        "constraint comment changed",
        "COMMENT ON CONSTRAINT keyed_e_uq ON app.keyed IS 'x'",
        "comment table constraint keyed_e_uq",
    ),
    m(
        "large object comment dropped",
        "COMMENT ON LARGE OBJECT 424242 IS NULL",
        "comment large object 424242",
    ),
    // Owners and grants of every kind.
    m(
        "owner changed",
        "ALTER TABLE app.stress OWNER TO corpus_reader",
        "owner table app.stress",
    ),
    m(
        "function grant revoked",
        "REVOKE EXECUTE ON FUNCTION app.add_one(integer) FROM corpus_reader",
        "acl function app.add_one",
    ),
    m(
        "type grant revoked",
        "REVOKE USAGE ON TYPE app.mood FROM PUBLIC",
        "acl type app.mood",
    ),
    m(
        "sequence grant revoked",
        "REVOKE USAGE ON SEQUENCE app.counter FROM corpus_reader",
        "acl sequence app.counter",
    ),
    m(
        "large object grant revoked",
        "REVOKE SELECT ON LARGE OBJECT 424242 FROM corpus_reader",
        "acl large object 424242",
    ),
    m(
        "a grant by another role revoked",
        "SET ROLE corpus_granter; REVOKE SELECT ON app.keyed FROM corpus_reader; RESET ROLE",
        "acl table app.keyed",
    ),
    m(
        // No label provider can be loaded here: the label is the catalog row a provider writes.
        "a security label added",
        "INSERT INTO pg_seclabel VALUES ('app.customers'::regclass, 'pg_class'::regclass, 0, 'corpus', 'secret')",
        "security label",
    ),
    m(
        "a subscription's publications changed",
        "ALTER SUBSCRIPTION corpus_sub SET PUBLICATION corpus_pub WITH (refresh = false)",
        "subscription corpus_sub",
    ),
    m(
        "a base type's default changed",
        "UPDATE pg_type SET typdefault = '8' WHERE oid = 'app.int4ish'::regtype",
        "type app.int4ish",
    ),
    m(
        "a language's handler changed",
        "ALTER FUNCTION app.in_pl() RENAME TO in_pl2",
        "function app.in_pl",
    ),
    m(
        "an index's extension dependency dropped",
        "ALTER INDEX app.orders_note_lower_idx NO DEPENDS ON EXTENSION plpgsql",
        "extension dependency index app.orders_note_lower_idx",
    ),
    m(
        "a function made to depend on an extension",
        "ALTER FUNCTION app.touch() DEPENDS ON EXTENSION plpgsql",
        "extension dependency function app.touch()",
    ),
    m(
        "a system function's grant changed",
        "GRANT EXECUTE ON FUNCTION pg_catalog.pg_backend_pid() TO PUBLIC",
        "changed acl function pg_catalog.pg_backend_pid()",
    ),
    m(
        "an extension member's grant changed",
        "REVOKE EXECUTE ON FUNCTION public.digest(text, text) FROM corpus_reader",
        "changed acl function public.digest(",
    ),
    m(
        "a system table's column grant revoked",
        "REVOKE SELECT (proname) ON pg_catalog.pg_proc FROM corpus_reader",
        "changed acl table column pg_catalog.pg_proc.proname",
    ),
    m(
        "a language's grant revoked",
        "REVOKE USAGE ON LANGUAGE plpgsql FROM corpus_reader",
        "changed acl language plpgsql",
    ),
    // The database's own.
    m(
        "database setting added",
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET work_mem = ''8MB''', current_database()); END $$",
        "database setting work_mem",
    ),
    m(
        "database comment added",
        "DO $$ BEGIN EXECUTE format('COMMENT ON DATABASE %I IS ''x''', current_database()); END $$",
        "database options",
    ),
    // Rows.
    m(
        "row changed",
        "UPDATE app.stress SET t = 'changed' WHERE id = 1",
        "app.stress",
    ),
];

/// The source and one copy per mutation (CREATE DATABASE ... TEMPLATE needs the source idle,
/// so every copy is made before anything connects to compare).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_difference_is_found_and_named_and_faithful_copies_match() {
    let pg = shared_pg();
    let version: i32 = pg
        .psql("postgres", "SHOW server_version_num")
        .trim()
        .parse()
        .unwrap();
    let source = load(pg, "mutations", &["rich.sql"], &[]);
    // A template copy lacks the source's subscriptions (they live in a shared catalog): the
    // corpus' own statements make them again.
    let subscriptions: String = std::fs::read_to_string(corpus_file("rich.sql"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("SUBSCRIPTION corpus_sub"))
        .map(|l| format!("{l}\n"))
        .collect();
    let copy_of = |name: &str| {
        let copy = format!("{source}_{name}");
        pg.psql(
            "postgres",
            &format!("CREATE DATABASE \"{copy}\" TEMPLATE \"{source}\" STRATEGY FILE_COPY"),
        );
        pg.psql(&copy, &subscriptions);
        copy
    };
    let identical = copy_of("same");
    let mutated: Vec<(&Mutation, String)> = MUTATIONS
        .iter()
        .filter(|m| m.since <= version)
        .enumerate()
        .map(|(i, m)| {
            let copy = copy_of(&format!("m{i}"));
            pg.psql(&copy, m.sql);
            (m, copy)
        })
        .collect();
    assert!(mutated.len() >= 40, "{} mutations", mutated.len());

    // pg_restore's copy of a pg_dump archive.
    let dir = local_path(&local_dir("mutations-dump"));
    run(crate::snapshot::tool(pg, "pg_dump")
        .args(["-Fc", "-d", &source, "-f"])
        .arg(dir.join("db.dump")));
    let restored = pg.create_database("mutations_restored");
    run(crate::snapshot::tool(pg, "pg_restore")
        .args(["--exit-on-error", "-d", &restored])
        .arg(dir.join("db.dump")));

    for faithful in [&identical, &restored] {
        let out = compare(pg.url(&source), pg.url(faithful)).await;
        assert!(out.matches, "{faithful}:\n{}", out.summary());
        assert!(out.not_compared.is_empty(), "{:?}", out.not_compared);
    }
    let mut missed = Vec::new();
    for (mutation, copy) in &mutated {
        let out = compare(pg.url(&source), pg.url(copy)).await;
        let named = out
            .differences
            .iter()
            .any(|d| d.object.contains(mutation.names) && !d.kind.is_empty());
        if out.matches || !named {
            missed.push(format!(
                "{} ({}): matches {}, differences: {:?}",
                mutation.what,
                mutation.sql,
                out.matches,
                out.differences
                    .iter()
                    .map(|d| format!("{} {}", d.kind, d.object))
                    .collect::<Vec<_>>()
            ));
        }
        // A user mapping's password never reaches the report.
        let json = serde_json::to_string(&out).unwrap();
        assert!(!json.contains("never-printed"), "{json}");
    }
    assert!(
        missed.is_empty(),
        "not found or not named:\n{}",
        missed.join("\n")
    );

    // Without --owners and --privileges, a copy that differs only in those matches, and the
    // report says what it did not compare.
    let (_, regranted) = mutated
        .iter()
        .find(|(m, _)| m.what == "table grant added")
        .unwrap();
    let out = validate(
        ValidateInput {
            source: pg.url(&source),
            import_report: None,
            target: pg.url(regranted),
            checksums: false,
            jobs: Some(2),
            owners: false,
            privileges: false,
            database: false,
            save_source_manifest: None,
        },
        context(Default::default()),
    )
    .await
    .unwrap();
    assert!(out.matches, "{}", out.summary());
    assert_eq!(out.not_compared.len(), 3, "{:?}", out.not_compared);
    assert!(out.summary().contains("not compared"), "{}", out.summary());
}

/// What the corpus creates outside its database, made on a server it was not loaded into.
const ROLES: &str = "DO $$ BEGIN CREATE ROLE corpus_reader NOLOGIN; CREATE ROLE corpus_granter NOLOGIN; \
     EXCEPTION WHEN duplicate_object THEN NULL; END $$";

/// A faithful copy onto a newer server matches (PostgreSQL 14 -> 18 by pg_dump and
/// pg_restore 18), and onto an older one (18 -> 14, by ferry's snapshot and restore: pg_restore
/// 18 sets what 14 does not know).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_across_server_versions_match() {
    let (old, new) = (ferry_tests::shared_pg14(), ferry_tests::shared_pg18());
    // Neither pgcrypto nor ICU is in every build.
    let skip = ["pgcrypto", "provider = icu"];
    for pg in [old, new] {
        pg.psql("postgres", ROLES);
    }
    let source = load(old, "upward", &["rich.sql"], &skip);
    let dir = local_path(&local_dir("upward"));
    run(tool_for(old, new, "pg_dump")
        .args(["-Fc", "-d", &source, "-f"])
        .arg(dir.join("db.dump")));
    let target = new.create_database("upward_restored");
    run(tool_for(new, new, "pg_restore")
        .args(["--exit-on-error", "-d", &target])
        .arg(dir.join("db.dump")));
    let out = compare(old.url(&source), new.url(&target)).await;
    assert!(out.matches, "14 -> 18:\n{}", out.summary());

    // Publications of schemas and of row filters are PostgreSQL 15's: 14 cannot hold them.
    // Virtual generated columns are 18's. A subscription of 16+ does not run as its owner
    // (14's all do) and 18's stream in parallel: 14 cannot hold that either.
    let older = [
        &skip[..],
        &[
            "corpus_filtered",
            "corpus_schemas",
            "VIRTUAL",
            "ON LARGE OBJECTS",
            "SUBSCRIPTION corpus_sub",
            "logged_ident",
            "part_am",
        ],
    ]
    .concat();
    let source = load(new, "downward", &["rich.sql"], &older);
    let to = local_dir("downward");
    ferry::jobs::snapshot(
        ferry::jobs::SnapshotInput {
            source: new.url(&source),
            to: to.clone(),
            ..Default::default()
        },
        context(Default::default()),
    )
    .await
    .unwrap();
    let target = old.create_database("downward_restored");
    ferry::jobs::restore(
        ferry::jobs::RestoreInput {
            from: format!("{to}archive.dump"),
            target: Some(old.url(&target)),
            ..Default::default()
        },
        context(Default::default()),
    )
    .await
    .unwrap();
    let out = compare(new.url(&source), old.url(&target)).await;
    assert!(out.matches, "18 -> 14:\n{}", out.summary());
}
