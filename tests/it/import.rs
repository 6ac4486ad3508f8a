//! CSV import against the real S3-compatible server and PostgreSQL: every trigger shape through
//! the real Lambda bootstrap, exactly-once under repeated events and a killed connection,
//! malformed files refused with nothing loaded, bad rows set aside within a budget, the three
//! modes, and the dialects users bring.

use std::time::Duration;

use bytes::Bytes;
use ferry::{
    import::route::CsvOptions,
    jobs::{self, ImportCsvInput, ImportRequest, ImportStatus, JobError},
    store::{ObjectUrl, Store, StoreConfig},
};
use ferry_tests::{
    PgServer,
    lambda::{invoke, workspace_binary},
    shared_pg, shared_pg17, shared_pg18, shared_s3,
};
use serde_json::{Value, json};

use crate::snapshot::context;

const ORDERS: &str = "CREATE TABLE public.orders (
    id bigint PRIMARY KEY,
    customer text NOT NULL,
    amount numeric(10,2),
    placed date DEFAULT '2026-01-01',
    note text
);";

struct Fixture {
    pg: &'static PgServer,
    db: String,
    bucket: String,
}

impl Fixture {
    fn new(pg: &'static PgServer, name: &str) -> Fixture {
        let db = pg.create_database(name);
        pg.psql(&db, ORDERS);
        Fixture {
            pg,
            db,
            bucket: shared_s3().create_bucket(&name.replace('_', "-")),
        }
    }

    fn store(&self) -> StoreConfig {
        shared_s3().store_config()
    }

    async fn put(&self, key: &str, body: impl Into<Bytes>) -> String {
        let url = ObjectUrl::parse(&format!("s3://{}/{key}", self.bucket)).unwrap();
        let store = Store::for_url(&url, &self.store()).await.unwrap();
        store.put(&url.key, body.into()).await.unwrap();
        url.to_string()
    }

    async fn etag(&self, key: &str) -> String {
        let url = ObjectUrl::parse(&format!("s3://{}/{key}", self.bucket)).unwrap();
        let store = Store::for_url(&url, &self.store()).await.unwrap();
        store.head(&url.key).await.unwrap().etag.unwrap()
    }

    async fn exists(&self, key: &str) -> bool {
        let url = ObjectUrl::parse(&format!("s3://{}/{key}", self.bucket)).unwrap();
        let store = Store::for_url(&url, &self.store()).await.unwrap();
        store.head(&url.key).await.is_ok()
    }

    async fn get(&self, key: &str) -> String {
        let url = ObjectUrl::parse(&format!("s3://{}/{key}", self.bucket)).unwrap();
        let store = Store::for_url(&url, &self.store()).await.unwrap();
        String::from_utf8(store.get_bytes(&url.key).await.unwrap().to_vec()).unwrap()
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.psql(&self.db, sql).trim().to_string()
    }

    async fn import(
        &self,
        from: &str,
        options: CsvOptions,
    ) -> Result<jobs::ImportCsvOutput, JobError> {
        self.import_into("public.orders", from, options).await
    }

    async fn import_into(
        &self,
        table: &str,
        from: &str,
        options: CsvOptions,
    ) -> Result<jobs::ImportCsvOutput, JobError> {
        jobs::import_csv(
            ImportCsvInput::Request(Box::new(ImportRequest {
                from: from.to_string(),
                target: Some(self.pg.url(&self.db)),
                table: Some(table.into()),
                options,
                ..ImportRequest::default()
            })),
            context(self.store()),
        )
        .await
    }

    /// The environment of the import-csv function for events.
    fn lambda_env(&self, routes: Value) -> Vec<(&'static str, String)> {
        let mut env = shared_s3().env();
        env.push(("FERRY_IMPORT_TARGET", self.pg.url(&self.db)));
        env.push(("FERRY_IMPORT_ROUTES", routes.to_string()));
        env
    }
}

fn s3_record(bucket: &str, key: &str, etag: &str) -> Value {
    // Keys arrive URL-encoded, spaces as '+'.
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'.' | b'-' | b'_' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    json!({"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1",
           "eventTime":"2026-11-25T10:00:00.000Z","eventName":"ObjectCreated:Put",
           "userIdentity":{"principalId":"AWS:EXAMPLE"},
           "requestParameters":{"sourceIPAddress":"127.0.0.1"},
           "responseElements":{"x-amz-request-id":"EXAMPLE","x-amz-id-2":"EXAMPLE"},
           "s3":{"s3SchemaVersion":"1.0","configurationId":"csv-uploads",
                 "bucket":{"name":bucket,"ownerIdentity":{"principalId":"EXAMPLE"},"arn":format!("arn:aws:s3:::{bucket}")},
                 "object":{"key":encoded,"size":1,"eTag":etag,"sequencer":"0055AED6DCD90281E5"}}})
}

/// The EventBridge `Object Created` event S3 sends for an upload (key as written).
pub(crate) fn eventbridge(bucket: &str, key: &str, etag: &str) -> Value {
    json!({"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":"Object Created",
           "source":"aws.s3","account":"123456789012","time":"2026-11-25T10:00:00Z","region":"us-east-1",
           "resources":[format!("arn:aws:s3:::{bucket}")],
           "detail":{"version":"0","bucket":{"name":bucket},
                     "object":{"key":key,"size":1,"etag":etag,"sequencer":"00617F08299329D189"},
                     "request-id":"N4N7GDK58NMKJ12R","requester":"123456789012",
                     "source-ip-address":"127.0.0.1","reason":"PutObject"}})
}

const GOOD: &str = "id,customer,amount\n1,ann,10.50\n2,bob,20.00\n";

#[tokio::test]
async fn header_columns_in_any_order_and_repeats_are_no_ops() {
    let f = Fixture::new(shared_pg(), "imp_basic");
    let url = f
        .put(
            "in/orders.csv",
            "note,amount,ID,customer\n\"a, \"\"quoted\"\" note\",1.5,1,ann\n,,2,bob\n",
        )
        .await;
    let out = f.import(&url, CsvOptions::default()).await.unwrap();
    let o = &out.imports[0];
    assert_eq!(o.status, ImportStatus::Imported);
    let report = o.report.as_ref().unwrap();
    assert_eq!(
        (report.rows_read, report.rows_loaded, report.rows_rejected),
        (2, 2, 0)
    );
    assert_eq!(report.columns, ["note", "amount", "id", "customer"]);
    assert_eq!(report.sha256.as_ref().map(String::len), Some(64));
    assert_eq!(
        f.sql("SELECT string_agg(id || '|' || customer || '|' || coalesce(amount::text, 'null') || '|' || coalesce(note, 'null') || '|' || placed, ';' ORDER BY id) FROM orders"),
        "1|ann|1.50|a, \"quoted\" note|2026-01-01;2|bob|null|null|2026-01-01"
    );
    // The same version again: nothing happens, the ledger says when it was done.
    let again = f.import(&url, CsvOptions::default()).await.unwrap();
    assert_eq!(again.imports[0].status, ImportStatus::AlreadyImported);
    assert_eq!(again.imports[0].report.as_ref().unwrap().rows_loaded, 2);
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "2");
    assert_eq!(
        f.sql("SELECT bucket = current_database() OR true, key, rows_loaded, length(sha256) FROM ferry_import.ledger"),
        "t|in/orders.csv|2|64"
    );
    // A new version of the same key is a new import.
    f.put("in/orders.csv", "id,customer\n3,cy\n").await;
    let third = f.import(&url, CsvOptions::default()).await.unwrap();
    assert_eq!(third.imports[0].status, ImportStatus::Imported);
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "3");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "2");
    // ANALYZE ran.
    assert_eq!(
        f.sql("SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'orders'"),
        "t"
    );
}

#[tokio::test]
async fn dialects_encodings_and_compression() {
    let f = Fixture::new(shared_pg(), "imp_dialects");
    // UTF-8 with a byte order mark and CRLF line ends.
    let bom = f
        .put(
            "d/bom.csv",
            "\u{feff}id,customer\r\n1,Zoë\r\n2,\"two\r\nlines\"\r\n",
        )
        .await;
    f.import(&bom, CsvOptions::default()).await.unwrap();
    // LATIN1 bytes.
    let latin1 = f
        .put(
            "d/latin1.csv",
            Bytes::from_static(b"id,customer\n3,Jos\xe9\n"),
        )
        .await;
    f.import(
        &latin1,
        CsvOptions {
            encoding: Some("latin1".into()),
            ..CsvOptions::default()
        },
    )
    .await
    .unwrap();
    // Semicolons, single quotes, a backslash escape, NULL spelled out, no header.
    let odd_dialect = || CsvOptions {
        delimiter: Some(";".into()),
        quote: Some("'".into()),
        escape: Some("\\".into()),
        null: Some("N".into()),
        header: Some(false),
        columns: Some(vec!["id".into(), "customer".into(), "note".into()]),
        ..CsvOptions::default()
    };
    let odd = f.put("d/odd.txt", "4;'it\\'s';N\n5;N;'N'\n").await;
    f.import(&odd, odd_dialect()).await.unwrap_err();
    // customer is NOT NULL: the N of row 5 is refused by the server, strictly.
    assert_eq!(f.sql("SELECT count(*) FROM orders WHERE id >= 4"), "0");
    let odd = f.put("d/odd2.txt", "4;'it\\'s';N\n5;x;'N'\n").await;
    f.import(&odd, odd_dialect()).await.unwrap();
    // gzip by extension, zstd by Content-Encoding-less sniffing of its bytes, a tab-separated file.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"id,customer\n6,gz\n").unwrap();
    let gz = f.put("d/six.csv.gz", gz.finish().unwrap()).await;
    f.import(&gz, CsvOptions::default()).await.unwrap();
    let zst = zstd::encode_all(&b"id,customer\n7,zst\n"[..], 3).unwrap();
    let zst = f.put("d/seven.csv.zst", zst).await;
    f.import(&zst, CsvOptions::default()).await.unwrap();
    let tsv = f.put("d/eight.tsv", "id\tcustomer\n8\ttab\n").await;
    f.import(&tsv, CsvOptions::default()).await.unwrap();
    // A file named .gz that is not gzip is refused.
    let fake = f.put("d/nine.csv.gz", "id,customer\n9,x\n").await;
    let err = f.import(&fake, CsvOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("Gzip"), "{err}");
    // A line holding only \. is a value, not the end of the data (before PostgreSQL 18).
    f.sql("CREATE TABLE public.words (w text)");
    let marker = f.put("d/marker.csv", "w\nbefore\n\\.\nafter\n").await;
    f.import_into("public.words", &marker, CsvOptions::default())
        .await
        .unwrap();
    assert_eq!(
        f.sql("SELECT string_agg(w, ' ') FROM words"),
        "before \\. after"
    );
    assert_eq!(
        f.sql("SELECT string_agg(id || ':' || customer || ':' || coalesce(note, '-'), ' ' ORDER BY id) FROM orders"),
        "1:Zoë:- 2:two\r\nlines:- 3:José:- 4:it's:- 5:x:N 6:gz:- 7:zst:- 8:tab:-"
    );
}

/// A database (or role) may turn `standard_conforming_strings` off: a backslash then escapes
/// the next character in a plain literal, and the `ESCAPE '\\'` of the import's COPY would
/// open a string instead of naming the backslash. The literals ferry writes mean the same
/// under either setting.
#[tokio::test]
async fn a_backslash_escape_imports_with_standard_conforming_strings_off() {
    let f = Fixture::new(shared_pg(), "imp_nonstd_strings");
    f.sql(&format!(
        "ALTER DATABASE {} SET standard_conforming_strings = off",
        f.db
    ));
    let file = f
        .put(
            "s/backslash.csv",
            "id,customer,note\n1,\"say \\\"hi\\\"\",a\\b\n",
        )
        .await;
    f.import(
        &file,
        CsvOptions {
            escape: Some("\\".into()),
            null: Some("\\N".into()),
            ..CsvOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        f.sql("SELECT customer || '|' || note FROM orders"),
        "say \"hi\"|a\\b"
    );
}

#[tokio::test]
async fn malformed_files_load_nothing_and_say_where() {
    let f = Fixture::new(shared_pg(), "imp_malformed");
    let cases: [(&str, &[u8], &str); 10] = [
        (
            "after-blank-lines.csv",
            b"id,customer,amount\n\n1,a,1\n\n\n2,\"b\nb\",1\n3,c,x\n",
            "line 8, column amount: a value was refused",
        ),
        (
            "unterminated.csv",
            b"id,customer\n1,ann\n2,\"bob\n3,cy\n",
            "line 3: unterminated quoted field",
        ),
        (
            "extra-column.csv",
            b"id,customer\n1,ann\n2,bob,extra\n",
            "line 3",
        ),
        (
            "missing-column.csv",
            b"id,customer,amount\n1,ann,1\n2,bob\n",
            "line 3",
        ),
        ("bad-utf8.csv", b"id,customer\n1,ann\n2,b\xffb\n", "line 3"),
        (
            "bad-type.csv",
            b"id,customer,amount\n1,ann,1\n2,bob,lots\n",
            "line 3, column amount: a value was refused",
        ),
        ("blank.csv", b"\n\n", "no header line"),
        ("empty.csv", b"", "empty (0 bytes)"),
        (
            "unknown-column.csv",
            b"id,customer,colour\n1,ann,red\n",
            // Not the name: a file without a header line would show its first row there.
            "field 3 (names withheld",
        ),
        (
            "duplicate-key.csv",
            b"id,customer\n1,ann\n1,again\n",
            "line 3",
        ),
    ];
    for (name, body, expect) in cases {
        let url = f
            .put(&format!("bad/{name}"), Bytes::from_static(body))
            .await;
        let err = f.import(&url, CsvOptions::default()).await.unwrap_err();
        assert_eq!(err.error_type(), "Ferry.ImportRejected", "{name}: {err}");
        assert!(err.to_string().contains(expect), "{name}: {err}");
        assert!(
            err.to_string().contains(name),
            "{name} names the object: {err}"
        );
    }
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "0");
    // A header alone is a valid empty file.
    let url = f.put("ok/header-only.csv", "id,customer\n").await;
    let out = f.import(&url, CsvOptions::default()).await.unwrap();
    assert_eq!(out.imports[0].report.as_ref().unwrap().rows_read, 0);
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "1");
}

async fn rejects_within_a_budget(pg: &'static PgServer) {
    let f = Fixture::new(pg, "imp_rejects");
    let mut body = String::from("id,customer,amount\n");
    for i in 1..=2000 {
        match i {
            7 => body.push_str("7,seven,not-a-number\n"),
            500 => body.push_str("500,,5\n"),
            1500 => body.push_str("1500,dup,1\n1500,dup,2\n"),
            _ => body.push_str(&format!("{i},c{i},{i}.25\n")),
        }
    }
    let url = f.put("r/orders.csv", body.clone()).await;
    let rejects_to = format!("s3://{}/rejects/", f.bucket);
    let out = f
        .import(
            &url,
            CsvOptions {
                max_rejected_rows: Some(3),
                rejects_to: Some(rejects_to.clone()),
                ..CsvOptions::default()
            },
        )
        .await
        .unwrap();
    let report = out.imports[0].report.clone().unwrap();
    assert_eq!(
        (report.rows_read, report.rows_loaded, report.rows_rejected),
        (2001, 1998, 3)
    );
    assert_eq!(
        report.rejects.as_deref(),
        Some(format!("{rejects_to}orders.csv.rejects.csv").as_str())
    );
    let rejects = f.get("rejects/orders.csv.rejects.csv").await;
    let lines: Vec<&str> = rejects.lines().collect();
    assert_eq!(lines[0], "line,column,value,reason,record");
    assert!(
        lines[1].starts_with("8,\"amount\",\"not-a-number\",\"invalid input syntax"),
        "{rejects}"
    );
    assert!(
        lines[2].starts_with("501,") && lines[2].contains("null value in column"),
        "{rejects}"
    );
    assert!(lines[2].ends_with(",\"500,,5\""), "{rejects}");
    assert!(lines[3].starts_with("1502,"), "{rejects}");
    assert!(lines[3].contains("duplicate key"), "{rejects}");
    assert_eq!(lines.len(), 4);
    assert_eq!(
        f.sql("SELECT count(*), sum(id) FROM orders"),
        format!("1998|{}", 2000 * 2001 / 2 - 7 - 500)
    );
    // Past the budget nothing is committed.
    let url = f
        .put("r/again.csv", body.replace("1500,dup", "2500,dup"))
        .await;
    let err = f
        .import(
            &url,
            CsvOptions {
                max_rejected_rows: Some(1),
                rejects_to: Some(rejects_to),
                ..CsvOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("more than 1 rows were bad"),
        "{err}"
    );
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "1998");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "1");
}

/// The server translates its messages (`lc_messages`): a bad row is told by its SQLSTATE and
/// found by bisection under savepoints, never by reading the message, so a server speaking
/// German sets aside the same rows (dev/setup generates the de_DE.UTF-8 locale).
#[tokio::test]
async fn bad_rows_are_found_whatever_language_the_server_speaks() {
    let f = Fixture::new(shared_pg(), "imp_german");
    f.sql(&format!(
        "ALTER DATABASE \"{}\" SET lc_messages = 'de_DE.UTF-8'",
        f.db
    ));
    let said = f.sql(
        "CREATE FUNCTION pg_temp.said() RETURNS text LANGUAGE plpgsql AS $$ \
         BEGIN PERFORM 'x'::int; RETURN ''; EXCEPTION WHEN others THEN RETURN SQLERRM; END $$; \
         SELECT pg_temp.said()",
    );
    assert!(
        said.contains("Eingabesyntax"),
        "the server speaks German: {said}"
    );
    let mut body = String::from("id,customer,amount\n");
    for i in 1..=300 {
        match i {
            7 => body.push_str("7,seven,sieben\n"),
            100 => body.push_str("100,,5\n"),
            250 => body.push_str("250,dup,1\n250,dup,2\n"),
            _ => body.push_str(&format!("{i},c{i},{i}.25\n")),
        }
    }
    let url = f.put("de/orders.csv", body).await;
    let rejects_to = format!("s3://{}/rejects-de/", f.bucket);
    let out = f
        .import(
            &url,
            CsvOptions {
                max_rejected_rows: Some(3),
                rejects_to: Some(rejects_to),
                ..CsvOptions::default()
            },
        )
        .await
        .unwrap();
    let report = out.imports[0].report.clone().unwrap();
    assert_eq!(
        (report.rows_read, report.rows_loaded, report.rows_rejected),
        (301, 298, 3)
    );
    let rejects = f.get("rejects-de/orders.csv.rejects.csv").await;
    let lines: Vec<u64> = rejects
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(lines, [8, 101, 252], "{rejects}");
    assert_eq!(
        f.sql("SELECT count(*), sum(id) FROM orders"),
        format!("298|{}", 300 * 301 / 2 - 7 - 100)
    );
}

/// Imports never write into ferry's own bookkeeping or a system schema, whoever names the table
/// (a request's own `table` as much as a route).
#[tokio::test]
async fn a_request_cannot_name_ferrys_own_tables() {
    let f = Fixture::new(shared_pg(), "imp_own");
    let url = f.put("good.csv", GOOD).await;
    f.import(&url, CsvOptions::default()).await.unwrap();
    let forged = f
        .put("forged.csv", "bucket,key,version,target_table\nb,k,v,t\n")
        .await;
    for table in ["ferry_import.ledger", "pg_catalog.pg_class"] {
        let err = f
            .import_into(table, &forged, CsvOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), "Ferry.BadInput", "{table}: {err}");
        assert!(err.to_string().contains("not allowed"), "{table}: {err}");
    }
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "1");
}

#[tokio::test]
async fn bad_rows_are_set_aside_within_a_budget() {
    rejects_within_a_budget(shared_pg()).await;
}

#[tokio::test]
async fn bad_rows_are_set_aside_on_postgres_14_17_and_18() {
    rejects_within_a_budget(ferry_tests::shared_pg14()).await;
    rejects_within_a_budget(shared_pg17()).await;
    rejects_within_a_budget(shared_pg18()).await;
}

#[tokio::test]
async fn upsert_and_replace() {
    let f = Fixture::new(shared_pg(), "imp_modes");
    f.sql("INSERT INTO orders (id, customer, amount, note) VALUES (1, 'old', 1, 'keep'), (2, 'old', 2, 'keep')");
    let url = f
        .put("m/up.csv", "id,customer,amount\n2,new,20\n3,new,30\n")
        .await;
    let mode = |m: &str| CsvOptions {
        mode: Some(m.into()),
        ..CsvOptions::default()
    };
    let out = f.import(&url, mode("upsert")).await.unwrap();
    assert_eq!(out.imports[0].report.as_ref().unwrap().rows_loaded, 2);
    assert_eq!(
        f.sql("SELECT string_agg(id || customer || amount || coalesce(note, '-'), ' ' ORDER BY id) FROM orders"),
        "1old1.00keep 2new20.00keep 3new30.00-"
    );
    let dup = f.put("m/dup.csv", "id,customer\n4,a\n4,b\n").await;
    let err = f.import(&dup, mode("upsert")).await.unwrap_err();
    assert!(
        err.to_string().contains("line 3") && err.to_string().contains("duplicate key"),
        "{err}"
    );
    f.sql("CREATE TABLE public.nokey (a text)");
    let nokey = f.put("m/nokey.csv", "a\nx\n").await;
    let err = f
        .import_into("public.nokey", &nokey, mode("upsert"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a primary key"), "{err}");

    // Replace: a reader in another session sees the old rows until the commit, never none.
    let big: String = std::iter::once("id,customer\n".to_string())
        .chain((1..=200_000).map(|i| format!("{i},r{i}\n")))
        .collect();
    let url = f.put("m/replace.csv", big).await;
    let watcher = {
        let (pg, db) = (f.pg, f.db.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..40 {
                seen.push(
                    pg.psql(&db, "SELECT count(*) FROM orders")
                        .trim()
                        .to_string(),
                );
                std::thread::sleep(Duration::from_millis(25));
            }
            seen
        })
    };
    f.import(&url, mode("replace")).await.unwrap();
    let seen = watcher.join().unwrap();
    assert!(seen.iter().all(|c| c == "3" || c == "200000"), "{seen:?}");
    assert_eq!(
        f.sql("SELECT count(*), max(customer) FILTER (WHERE id = 1) FROM orders"),
        "200000|r1"
    );
}

#[tokio::test]
async fn a_killed_connection_leaves_nothing_and_the_rerun_imports_once() {
    let f = Fixture::new(shared_pg(), "imp_kill");
    let body: String = std::iter::once("id,customer,amount,note\n".to_string())
        .chain(
            (1..=1_500_000)
                .map(|i| format!("{i},customer number {i},{i}.99,some note text for row {i}\n")),
        )
        .collect();
    let url = f.put("k/big.csv", body).await;
    let killer = {
        let (pg, db) = (f.pg, f.db.clone());
        std::thread::spawn(move || {
            for _ in 0..400 {
                let killed = pg.psql(
                    &db,
                    "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = current_database() AND state = 'active' \
                       AND query LIKE 'COPY \"public\".\"orders\"%' AND pid <> pg_backend_pid()) k",
                );
                if killed.trim() != "0" {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            false
        })
    };
    let err = f.import(&url, CsvOptions::default()).await.unwrap_err();
    assert!(killer.join().unwrap(), "the COPY was seen and terminated");
    assert!(
        err.is_retryable() || err.error_type() == "Ferry.PostgresError",
        "{err}"
    );
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.ledger"), "0");
    let out = f.import(&url, CsvOptions::default()).await.unwrap();
    assert_eq!(
        out.imports[0].report.as_ref().unwrap().rows_loaded,
        1_500_000
    );
    let again = f.import(&url, CsvOptions::default()).await.unwrap();
    assert_eq!(again.imports[0].status, ImportStatus::AlreadyImported);
    assert_eq!(
        f.sql("SELECT count(*), count(DISTINCT id) FROM orders"),
        "1500000|1500000"
    );
}

#[tokio::test]
async fn every_trigger_shape_through_the_lambda() {
    let f = Fixture::new(shared_pg(), "imp_events");
    f.pg.psql(&f.db, "CREATE SCHEMA \"Odd \"\"S\"\"\"; CREATE TABLE \"Odd \"\"S\"\"\".\"t.x\" (\"Name\" text, n int)");
    // The convention routes only into tables the allow list names (rules' too, once it is set).
    let routes = json!({"rules":[{"prefix":"drops/","table":"public.orders","mode":"upsert"}],
                        "processedPrefix":"processed/",
                        "allow":["public.orders", "Odd \"S\".t.x"]});
    let env = f.lambda_env(routes);
    let function = workspace_binary("import-csv");

    // A direct S3 notification, with a key holding a space, a plus and an accent.
    let key = "drops/day 1+é.csv";
    f.put(key, GOOD).await;
    let etag = f.etag(key).await;
    let event = json!({"Records":[s3_record(&f.bucket, key, &etag)]});
    let run = invoke(&function, event.clone(), &env).await;
    let out = run.result.unwrap_or_else(|e| panic!("{e:?}\n{}", run.logs));
    assert_eq!(out["imports"][0]["status"], "imported", "{out}");
    assert_eq!(out["rowsLoaded"], 2);
    assert_eq!(
        out["imports"][0]["movedTo"],
        format!("s3://{}/processed/{key}", f.bucket)
    );
    assert!(!f.exists(key).await && f.exists(&format!("processed/{key}")).await);
    // The same event again (S3 delivers at least once): already imported, from the ledger.
    let run = invoke(&function, event, &env).await;
    let out = run.result.unwrap();
    assert_eq!(out["imports"][0]["status"], "already_imported", "{out}");
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "2");

    // EventBridge, into a table whose names need quoting (by the convention).
    let key = "imports/\"Odd \"\"S\"\"\".\"t.x\"/a file.csv";
    f.put(key, "Name,n\nx,1\ny,2\n").await;
    let run = invoke(
        &function,
        eventbridge(&f.bucket, key, &f.etag(key).await),
        &env,
    )
    .await;
    let out = run.result.unwrap_or_else(|e| panic!("{e:?}\n{}", run.logs));
    assert_eq!(out["imports"][0]["status"], "imported", "{out}");
    assert_eq!(
        f.sql("SELECT string_agg(\"Name\" || n, ',' ORDER BY n) FROM \"Odd \"\"S\"\"\".\"t.x\""),
        "x1,y2"
    );

    // An SQS batch: a good file, a malformed one, an injection attempt in a key, an unreadable
    // message, and a duplicate of the first. Only the unreadable message is handed back.
    f.put("drops/b.csv", "id,customer\n10,ten\n").await;
    f.put("drops/c.csv", "id,customer\n11,\"open\n").await;
    let injection = "imports/public.orders\"; DROP TABLE orders; --/x.csv";
    f.put(injection, GOOD).await;
    let b_etag = f.etag("drops/b.csv").await;
    let body =
        |key: &str, etag: &str| json!({"Records":[s3_record(&f.bucket, key, etag)]}).to_string();
    let sqs = |id: &str, body: String| {
        json!({"messageId":id,"receiptHandle":"AQEB","body":body,
        "attributes":{"ApproximateReceiveCount":"1"},"messageAttributes":{},"md5OfBody":"x",
        "eventSource":"aws:sqs","eventSourceARN":"arn:aws:sqs:us-east-1:123456789012:uploads","awsRegion":"us-east-1"})
    };
    let batch = json!({"Records":[
        sqs("m1", body("drops/b.csv", &b_etag)),
        sqs("m2", body("drops/c.csv", "x")),
        sqs("m3", body(injection, "x")),
        sqs("m4", "{\"truncated".into()),
        sqs("m5", eventbridge(&f.bucket, "drops/b.csv", &b_etag).to_string()),
    ]});
    let run = invoke(&function, batch, &env).await;
    let out = run.result.unwrap_or_else(|e| panic!("{e:?}\n{}", run.logs));
    assert_eq!(
        out["batchItemFailures"],
        json!([{"itemIdentifier":"m4"}]),
        "{out}"
    );
    let statuses: Vec<&str> = out["imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "imported",
            "rejected",
            "rejected",
            "failed",
            "already_imported"
        ],
        "{out}"
    );
    // The malformed file and the injection attempt moved aside with reports.
    let report: Value =
        serde_json::from_str(&f.get("rejected/drops/c.csv.error.json").await).unwrap();
    assert_eq!(report["errorType"], "Ferry.ImportRejected");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("line 2: unterminated"),
        "{report}"
    );
    assert!(f.exists("rejected/drops/c.csv").await && !f.exists("drops/c.csv").await);
    let report: Value =
        serde_json::from_str(&f.get(&format!("rejected/{injection}.error.json")).await).unwrap();
    // Not on the allow list: refused before the catalog is even asked.
    assert!(
        report["error"].as_str().unwrap().contains("not allowed"),
        "{report}"
    );
    assert_eq!(
        f.sql("SELECT count(*) FROM orders"),
        "3",
        "the table is there, with its rows"
    );
    assert!(!run.logs.contains(f.pg.password()) && !out.to_string().contains(f.pg.password()));
}

#[tokio::test]
async fn the_command_line_imports_and_refuses_with_exit_code_2() {
    let f = Fixture::new(shared_pg(), "imp_cli");
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("imp_cli"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("orders.csv"), GOOD).unwrap();
    std::fs::write(
        dir.join("bad.csv"),
        "id,customer,amount\n1,a,1\n2,b,secret-two\n",
    )
    .unwrap();
    std::fs::write(dir.join("dup.csv"), "id,customer,amount\n3,bob,1\n").unwrap();
    let ferry_with = |file: &str, values: &str| {
        std::process::Command::new(workspace_binary("ferry"))
            .args(["--json", "import-csv", "--table", "public.orders", "--from"])
            .arg(format!("file://{}", dir.join(file).display()))
            .args(["--target", &f.pg.url(&f.db)])
            .env_remove("RUST_LOG")
            .env("FERRY_ERROR_VALUES", values)
            .output()
            .unwrap()
    };
    let ferry = |file: &str| ferry_with(file, "");
    let out = ferry("orders.csv");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["rowsLoaded"], 2);
    let out = ferry("bad.csv");
    assert_eq!(out.status.code(), Some(2));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["error"]["type"], "Ferry.ImportRejected");
    // Errors travel to logs and notifications: they name the line and column, never the value
    // (the server's message for a bad number quotes it), unless FERRY_ERROR_VALUES=true.
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3, column amount"), "{message}");
    assert!(message.contains("22P02"), "{message}");
    let everything = format!("{message}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!everything.contains("secret-two"), "{everything}");
    let out = ferry_with("bad.csv", "true");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("line 3, column amount, value \"secret-two\""),
        "{message}"
    );
    // A unique violation's DETAIL quotes the key: withheld too.
    f.sql("CREATE UNIQUE INDEX ON orders (customer)");
    let out = ferry("dup.csv");
    assert_eq!(out.status.code(), Some(2));
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("23505"), "{message}");
    let everything = format!("{message}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!everything.contains("=(bob)"), "{everything}");
    let out = ferry_with("dup.csv", "true");
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("=(bob)"), "{message}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(f.pg.password()));
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "2");
}

/// Imports in pieces as a Lambda would run them: each call stops after one batch (its deadline
/// is here), commits where it stopped, and the next call goes on; returns the report of each.
async fn import_in_pieces(
    f: &Fixture,
    key: &str,
    max_rejected_rows: u64,
) -> Vec<Result<ferry::import::Report, ferry::import::ImportError>> {
    use ferry::import::{Options, Source, Status, TableName};
    let url = ObjectUrl::parse(&format!("s3://{}/{key}", f.bucket)).unwrap();
    let store = Store::for_url(&url, &f.store()).await.unwrap();
    let mut reports = Vec::new();
    for _ in 0..200 {
        let source = Source::open(store.clone(), url.clone()).await.unwrap();
        let options = Options {
            batch_bytes: 64 * 1024,
            deadline: Some(std::time::SystemTime::now() + Duration::from_secs(60)),
            deadline_margin: Duration::from_secs(60),
            max_rejected_rows,
            rejects_to: Some(ObjectUrl::parse(&format!("s3://{}/rejects/", f.bucket)).unwrap()),
            ..Options::default()
        };
        let report = ferry::import::run(
            &f.pg.config(&f.db, ferry::pg::SslMode::Require),
            &source,
            &TableName::parse("public.orders").unwrap(),
            &options,
            &f.store(),
        )
        .await;
        let more = matches!(&report, Ok(r) if r.status == Status::InProgress);
        reports.push(report);
        if !more {
            return reports;
        }
        // Between pieces the table has none of the file's rows.
        assert_eq!(f.sql("SELECT count(*) FROM orders"), "0");
    }
    panic!("the import never finished");
}

#[tokio::test]
async fn a_file_too_large_for_one_invocation_goes_in_pieces() {
    let f = Fixture::new(shared_pg(), "imp_pieces");
    let rows = 40_000;
    let body: String = std::iter::once("id,customer,note\n".to_string())
        .chain((1..=rows).map(|i| match i {
            // A quoted line end right where pieces may be cut, and a bad row to set aside.
            _ if i % 997 == 0 => format!("{i},\"multi\nline {i}\",x\n"),
            30_001 => "30001,bad,\"unterminated on purpose but closed\"\n30001,dup,y\n".to_string(),
            _ => format!("{i},customer {i},note for row {i}\n"),
        }))
        .collect();
    f.put("p/big.csv", body.clone()).await;
    let reports = import_in_pieces(&f, "p/big.csv", 5).await;
    let last = reports.last().unwrap().as_ref().unwrap();
    assert!(reports.len() > 5, "{} pieces", reports.len());
    assert_eq!(last.status, ferry::import::Status::Imported);
    assert_eq!(last.pieces, Some(reports.len() as u32));
    assert_eq!(
        (last.rows_read, last.rows_loaded, last.rows_rejected),
        (rows + 1, rows, 1)
    );
    assert_eq!(
        f.sql("SELECT count(*), count(DISTINCT id), sum(id) FROM orders"),
        format!("{rows}|{rows}|{}", rows * (rows + 1) / 2)
    );
    assert_eq!(
        f.sql("SELECT customer FROM orders WHERE id = 997"),
        "multi\nline 997"
    );
    let rejects = f.get("rejects/big.csv.rejects.csv").await;
    assert!(
        rejects
            .lines()
            .nth(1)
            .unwrap()
            .starts_with(&format!("{},", 30_001 + 30_000 / 997 + 2)),
        "{rejects}"
    );
    // Nothing left behind, and a repeat is a no-op.
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.pieces"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'ferry_import' AND tablename LIKE 'stage%'"), "0");
    let again = import_in_pieces(&f, "p/big.csv", 5).await;
    assert_eq!(
        again[0].as_ref().unwrap().status,
        ferry::import::Status::AlreadyImported
    );

    // gzip: each piece decompresses up to where the last stopped; a bad row late in the file
    // fails the whole import strictly, and nothing stays.
    f.sql("TRUNCATE orders");
    let strict = body
        .replace(
            "30001,bad,\"unterminated on purpose but closed\"\n30001,dup,y\n",
            "30001,bad,z\n",
        )
        .replace("39000,customer 39000", "39000,customer 39000,too,many");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, strict.as_bytes()).unwrap();
    f.put("p/strict.csv.gz", gz.finish().unwrap()).await;
    let reports = import_in_pieces(&f, "p/strict.csv.gz", 0).await;
    let err = reports.last().unwrap().as_ref().unwrap_err();
    assert!(
        reports.len() > 5
            && err
                .to_string()
                .contains(&format!("line {}", 39_000 + 39_000 / 997 + 1)),
        "{} pieces: {err}",
        reports.len()
    );
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.pieces"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM pg_tables WHERE schemaname = 'ferry_import' AND tablename LIKE 'stage%'"), "0");
    assert_eq!(
        f.sql("SELECT count(*) FROM ferry_import.ledger WHERE key = 'p/strict.csv.gz'"),
        "0"
    );
}

#[tokio::test]
async fn two_deliveries_at_once_import_once() {
    let f = Fixture::new(shared_pg(), "imp_race");
    let body: String = std::iter::once("id,customer\n".to_string())
        .chain((1..=300_000).map(|i| format!("{i},c{i}\n")))
        .collect();
    let url = f.put("race/orders.csv", body).await;
    let (a, b) = tokio::join!(
        f.import(&url, CsvOptions::default()),
        f.import(&url, CsvOptions::default())
    );
    let mut statuses = [a.unwrap().imports[0].status, b.unwrap().imports[0].status];
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        statuses,
        [ImportStatus::AlreadyImported, ImportStatus::Imported]
    );
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "300000");
}

#[tokio::test]
async fn validate_checks_an_import_report_against_its_table() {
    let f = Fixture::new(shared_pg(), "imp_validate");
    // Rows that were there before do not count for or against the import.
    f.sql("INSERT INTO orders (id, customer) VALUES (100, 'before')");
    let url = f.put("v/orders.csv", GOOD).await;
    let out = f.import(&url, CsvOptions::default()).await.unwrap();
    let report = serde_json::to_string(&out).unwrap();
    let check = |source: String| {
        jobs::validate(
            jobs::ValidateInput {
                source,
                import_report: None,
                target: f.pg.url(&f.db),
                checksums: false,
                jobs: None,
                owners: false,
                privileges: false,
                database: false,
                save_source_manifest: None,
            },
            context(f.store()),
        )
    };
    let v = check(report.clone()).await.unwrap();
    assert!(v.matches, "{}", v.summary());
    assert_eq!((v.tables_compared, v.rows_compared), (1, 2));
    // The report saved as an object (as `ferry --json import-csv ... > report.json` writes it).
    let saved = f.put("v/report.json", report.clone()).await;
    assert!(check(saved).await.unwrap().matches);

    // A row of the import changed since: it is no longer the import's row.
    f.sql("UPDATE orders SET amount = 99 WHERE id = 1");
    let v = check(report.clone()).await.unwrap();
    assert!(!v.matches);
    assert_eq!(v.differences[0].check, "rows", "{}", v.summary());
    assert_eq!(
        (
            v.differences[0].expected.as_deref(),
            v.differences[0].actual.as_deref()
        ),
        (Some("2"), Some("1"))
    );

    // A report that claims what the ledger does not hold.
    let mut forged: Value = serde_json::from_str(&report).unwrap();
    forged["imports"][0]["report"]["rowsLoaded"] = json!(3);
    let v = check(forged.to_string()).await.unwrap();
    assert!(
        !v.matches && v.differences[0].check == "import",
        "{}",
        v.summary()
    );
    // Names from a report are never pasted into SQL.
    forged["imports"][0]["report"]["table"] = json!("public.\"orders\"; DROP TABLE orders; --");
    let err = check(forged.to_string()).await.unwrap_err();
    assert_eq!(err.error_type(), "Ferry.BadInput", "{err}");
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "3");

    // Replace with a budget for bad rows (through a stage): every row is the import's; a row
    // added afterwards is found.
    let url = f.put("v/all.csv", "id,customer\n7,x\n8,y\n8,dup\n").await;
    let out = f
        .import(
            &url,
            CsvOptions {
                mode: Some("replace".into()),
                max_rejected_rows: Some(1),
                rejects_to: Some(format!("s3://{}/rejects/", f.bucket)),
                ..CsvOptions::default()
            },
        )
        .await
        .unwrap();
    let report = serde_json::to_string(&out).unwrap();
    let v = check(report.clone()).await.unwrap();
    assert!(v.matches, "{}", v.summary());
    f.sql("INSERT INTO orders (id, customer) VALUES (9, 'later')");
    let v = check(report).await.unwrap();
    assert!(!v.matches);
    assert!(
        v.summary().contains("replaced by the import"),
        "{}",
        v.summary()
    );
}

/// A newer upload under the key of a file being imported is not what gets moved to
/// `processed/`: the move copies and deletes exactly the imported version, so the newer file
/// stays where it was uploaded, for its own import, instead of vanishing unimported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_upload_during_an_import_is_not_moved_away() {
    let f = Fixture::new(shared_pg(), "imp_newer");
    let body: String = std::iter::once("id,customer,amount,note\n".to_string())
        .chain((1..=300_000).map(|i| format!("{i},customer {i},{i}.99,note {i}\n")))
        .collect();
    let url = f.put("k/day.csv", body).await;
    let newer = "id,customer\n900001,newer file\n";
    let uploader = {
        let (pg, db, bucket) = (f.pg, f.db.clone(), f.bucket.clone());
        std::thread::spawn(move || {
            for _ in 0..1000 {
                let copying = pg.psql(
                    &db,
                    "SELECT count(*) FROM pg_stat_activity \
                     WHERE datname = current_database() AND state = 'active' \
                       AND query LIKE 'COPY \"public\".\"orders\"%' AND pid <> pg_backend_pid()",
                );
                if copying.trim() != "0" {
                    let rt = tokio::runtime::Runtime::new().unwrap();
                    rt.block_on(async {
                        let url = ObjectUrl::parse(&format!("s3://{bucket}/k/day.csv")).unwrap();
                        let store = Store::for_url(&url, &shared_s3().store_config())
                            .await
                            .unwrap();
                        store
                            .put(&url.key, Bytes::from_static(newer.as_bytes()))
                            .await
                            .unwrap();
                    });
                    return true;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            false
        })
    };
    let out = jobs::import_csv(
        ImportCsvInput::Request(Box::new(ImportRequest {
            from: url.clone(),
            target: Some(f.pg.url(&f.db)),
            table: Some("public.orders".into()),
            processed_prefix: Some("processed/".into()),
            ..ImportRequest::default()
        })),
        context(f.store()),
    )
    .await
    .unwrap();
    assert!(
        uploader.join().unwrap(),
        "the newer upload was written mid-import"
    );
    assert_eq!(out.imports[0].report.as_ref().unwrap().rows_loaded, 300_000);
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "300000");
    // The newer file is where it was uploaded, and nothing of it went to processed/.
    assert_eq!(f.get("k/day.csv").await, newer);
    assert!(
        !f.exists("processed/k/day.csv").await,
        "the newer upload was moved away unimported"
    );
    assert_eq!(out.imports[0].moved_to, None);
}

/// The stage of an import in pieces outlives the invocations: it is a logged table (Neon
/// empties unlogged ones when a compute restarts or scales to zero between invocations), and
/// if its rows are lost anyway the last piece finds fewer rows than were read and fails,
/// importing nothing; run again, the import starts over and loads every row.
#[tokio::test]
async fn an_import_in_pieces_whose_stage_lost_rows_fails_and_starts_over() {
    use ferry::import::{ImportError, Options, Source, Status, TableName};
    let f = Fixture::new(shared_pg(), "imp_lost_stage");
    let rows = 20_000;
    let body: String = std::iter::once("id,customer\n".to_string())
        .chain((1..=rows).map(|i| format!("{i},customer {i}\n")))
        .collect();
    let url = ObjectUrl::parse(&f.put("p/lost.csv", body).await).unwrap();
    let store = Store::for_url(&url, &f.store()).await.unwrap();
    let piece = async || {
        let options = Options {
            batch_bytes: 64 * 1024,
            deadline: Some(std::time::SystemTime::now() + Duration::from_secs(60)),
            deadline_margin: Duration::from_secs(60),
            ..Options::default()
        };
        ferry::import::run(
            &f.pg.config(&f.db, ferry::pg::SslMode::Require),
            &Source::open(store.clone(), url.clone()).await.unwrap(),
            &TableName::parse("public.orders").unwrap(),
            &options,
            &f.store(),
        )
        .await
    };
    let first = piece().await.unwrap();
    assert_eq!(first.status, Status::InProgress);
    assert_eq!(
        f.sql(
            "SELECT string_agg(DISTINCT relpersistence::text, ',') FROM pg_class \
             WHERE relnamespace = 'ferry_import'::regnamespace AND relname LIKE 'stage_%' \
               AND relkind = 'r'"
        ),
        "p",
        "the stage is a logged table"
    );
    // What a compute restart does to an unlogged table.
    f.sql(
        "DO $$ DECLARE t text; BEGIN \
           FOR t IN SELECT relname FROM pg_class \
             WHERE relnamespace = 'ferry_import'::regnamespace AND relname LIKE 'stage_%' \
               AND relkind = 'r' \
           LOOP EXECUTE format('TRUNCATE ferry_import.%I', t); END LOOP; END $$",
    );
    let failed = loop {
        match piece().await {
            Ok(r) if r.status == Status::InProgress => continue,
            other => break other,
        }
    };
    let err = match failed {
        Err(e @ ImportError::Miscounted { .. }) => e,
        other => panic!("an import that lost staged rows ended {other:?}"),
    };
    assert!(err.to_string().contains("starts over"), "{err}");
    assert_eq!(f.sql("SELECT count(*) FROM orders"), "0");
    assert_eq!(f.sql("SELECT count(*) FROM ferry_import.pieces"), "0");

    let done = loop {
        let r = piece().await.unwrap();
        if r.status != Status::InProgress {
            break r;
        }
    };
    assert_eq!(done.status, Status::Imported);
    assert_eq!((done.rows_read, done.rows_loaded), (rows, rows));
    assert_eq!(f.sql("SELECT count(*) FROM orders"), rows.to_string());
}

/// The csv-import workflow moves a file after validating its import, in a later call that
/// names the imported version: when a newer upload has replaced it by then, that call imports
/// nothing and moves nothing (the newer file waits for its own import), for `processedPrefix`
/// and for `setAside` alike.
#[tokio::test]
async fn a_later_move_of_an_imported_version_leaves_a_newer_upload_alone() {
    let f = Fixture::new(shared_pg(), "imp_pinned");
    let url = f.put("k/pinned.csv", GOOD).await;
    let request = |extra: ImportRequest| {
        jobs::import_csv(
            ImportCsvInput::Request(Box::new(ImportRequest {
                from: url.clone(),
                target: Some(f.pg.url(&f.db)),
                table: Some("public.orders".into()),
                ..extra
            })),
            context(f.store()),
        )
    };
    let first = request(ImportRequest::default()).await.unwrap();
    let version = first.imports[0].report.as_ref().unwrap().version.clone();
    let newer = "id,customer\n77,newer\n";
    f.put("k/pinned.csv", newer).await;

    let marked = request(ImportRequest {
        processed_prefix: Some("processed/".into()),
        version: Some(version.clone()),
        ..ImportRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(
        marked.imports[0].status,
        ImportStatus::AlreadyImported,
        "{marked:?}"
    );
    assert_eq!(marked.imports[0].moved_to, None);
    assert_eq!(f.sql("SELECT count(*) FROM orders WHERE id = 77"), "0");
    assert_eq!(f.get("k/pinned.csv").await, newer);
    assert!(!f.exists("processed/k/pinned.csv").await);

    let aside = request(ImportRequest {
        rejected_prefix: Some("rejected/".into()),
        set_aside: Some("did not validate".into()),
        version: Some(version),
        ..ImportRequest::default()
    })
    .await
    .unwrap();
    assert_eq!(aside.imports[0].status, ImportStatus::Ignored, "{aside:?}");
    assert_eq!(f.get("k/pinned.csv").await, newer);
    assert!(!f.exists("rejected/k/pinned.csv").await);
    assert!(!f.exists("rejected/k/pinned.csv.error.json").await);
}

/// A compressed file of many gzip members or zstd frames (bgzip, pigz --independent, files
/// concatenated from parts), imported in pieces: each piece records the start of the member or
/// frame that holds where it stopped, and the next piece reads the object from there (a ranged
/// read) instead of decompressing it all again; the rows end up exactly the file's.
#[tokio::test]
async fn an_import_in_pieces_resumes_a_compressed_file_at_a_member() {
    use ferry::import::{Options, Source, Status, TableName};
    use std::io::Write;
    let f = Fixture::new(shared_pg(), "imp_members");
    let rows = 30_000u64;
    let chunks: Vec<String> = std::iter::once("id,customer\n".to_string())
        .chain((1..=rows).collect::<Vec<_>>().chunks(500).map(|ids| {
            ids.iter()
                .map(|i| format!("{i},customer number {i}\n"))
                .collect::<String>()
        }))
        .collect();
    let gzip: Vec<u8> = chunks
        .iter()
        .flat_map(|chunk| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(chunk.as_bytes()).unwrap();
            e.finish().unwrap()
        })
        .collect();
    let zstd: Vec<u8> = chunks
        .iter()
        .flat_map(|chunk| zstd::stream::encode_all(chunk.as_bytes(), 1).unwrap())
        .collect();
    for (key, body) in [("m/members.csv.gz", gzip), ("m/frames.csv.zst", zstd)] {
        f.sql("TRUNCATE orders");
        let url = ObjectUrl::parse(&f.put(key, body).await).unwrap();
        let store = Store::for_url(&url, &f.store()).await.unwrap();
        let mut entries = Vec::new();
        let done = loop {
            let options = Options {
                batch_bytes: 64 * 1024,
                deadline: Some(std::time::SystemTime::now() + Duration::from_secs(60)),
                deadline_margin: Duration::from_secs(60),
                ..Options::default()
            };
            let report = ferry::import::run(
                &f.pg.config(&f.db, ferry::pg::SslMode::Require),
                &Source::open(store.clone(), url.clone()).await.unwrap(),
                &TableName::parse("public.orders").unwrap(),
                &options,
                &f.store(),
            )
            .await
            .unwrap();
            if report.status != Status::InProgress {
                break report;
            }
            let entry = f.sql(
                "SELECT entry_offset || ' ' || entry_decompressed || ' ' || next_offset \
                 FROM ferry_import.pieces",
            );
            let numbers: Vec<u64> = entry.split(' ').map(|n| n.parse().unwrap()).collect();
            entries.push((numbers[0], numbers[1], numbers[2]));
        };
        assert_eq!(done.status, Status::Imported, "{key}");
        assert_eq!((done.rows_read, done.rows_loaded), (rows, rows), "{key}");
        assert!(entries.len() >= 3, "{key}: {entries:?}");
        // Each piece enters at a start at or before where the last one stopped, past the
        // first piece never the object's beginning, and moving on with the file.
        for window in entries.windows(2) {
            assert!(window[1].0 >= window[0].0, "{key}: {entries:?}");
        }
        for (compressed, decompressed, next) in &entries {
            assert!(
                *compressed > 0 && decompressed <= next,
                "{key}: {entries:?}"
            );
        }
        assert_eq!(
            f.sql("SELECT count(*), count(DISTINCT id), sum(id) FROM orders"),
            format!("{rows}|{rows}|{}", rows * (rows + 1) / 2),
            "{key}"
        );
    }
}
