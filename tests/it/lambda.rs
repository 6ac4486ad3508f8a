//! Each Lambda binary, run under a local Runtime API: typed errors with stable error types,
//! and JSON log lines.

use ferry_tests::lambda::{invoke, workspace_binary};
use serde_json::json;

#[tokio::test]
async fn a_malformed_event_is_bad_input() {
    let run = invoke(&workspace_binary("snapshot"), json!({"sauce": "x"}), &[]).await;
    let (error_type, message) = run.result.unwrap_err();
    assert_eq!(error_type, "Ferry.BadInput", "{message}");
    assert!(
        message.contains("sauce"),
        "names the unknown field: {message}"
    );
    let bad_url = invoke(
        &workspace_binary("snapshot"),
        json!({"source": "postgres://u@h/db", "to": "ftp://nowhere"}),
        &[],
    )
    .await;
    assert_eq!(bad_url.result.unwrap_err().0, "Ferry.BadInput");
}

#[tokio::test]
async fn logs_are_json_lines() {
    let run = invoke(
        &workspace_binary("validate"),
        json!({"source": "a", "target": "b"}),
        &[],
    )
    .await;
    assert!(run.result.is_err());
    let lines: Vec<&str> = run.logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the failure is logged");
    for line in lines {
        let parsed: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(parsed.get("level").is_some(), "{line}");
    }
}

/// A Lambda function takes only `s3://` URLs: a `file://` URL in an event would write into the
/// function's file system or read its own files (`/proc/self/environ` holds its AWS
/// credentials). The local stack allows them with `FERRY_ALLOW_FILE_URLS=true`; without it,
/// each job refuses before it reads or writes anything.
#[tokio::test]
async fn lambda_functions_refuse_file_urls() {
    let pg = ferry_tests::shared_pg();
    let source = pg.create_database("fileurl");
    pg.psql(
        &source,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1);",
    );
    let dir = tempfile::tempdir().unwrap();
    let refuse = [("FERRY_ALLOW_FILE_URLS", "false".to_string())];
    let secret = "ferry-test-secret-in-the-environment";
    let reading = [
        ("FERRY_ALLOW_FILE_URLS", "false".to_string()),
        ("AWS_SECRET_ACCESS_KEY", secret.to_string()),
    ];
    let to = format!("file://{}/snap/", dir.path().display());
    let cases = [
        (
            "snapshot",
            json!({"source": pg.url(&source), "to": to}),
            &refuse[..],
        ),
        (
            "import-csv",
            json!({"from": "file:///proc/self/environ", "target": pg.url(&source), "table": "public.t"}),
            &reading[..],
        ),
        (
            "validate",
            json!({"source": "file:///proc/self/environ", "target": pg.url(&source)}),
            &reading[..],
        ),
        (
            "restore",
            json!({"from": "file:///proc/self/environ", "target": pg.url(&source)}),
            &reading[..],
        ),
    ];
    // Nor a certificate file: sslrootcert names a path on the function's file system.
    let rooted = pg.url(&source).replace(
        "sslmode=disable",
        "sslmode=verify-ca&sslrootcert=/proc/self/environ",
    );
    let run = invoke(
        &workspace_binary("validate"),
        json!({"source": rooted, "target": pg.url(&source)}),
        &reading,
    )
    .await;
    let (error_type, message) = run.result.expect_err("validate read a certificate file");
    assert_eq!(error_type, "Ferry.BadInput", "{message}");
    assert!(message.contains("only the bundled roots"), "{message}");
    for (function, event, env) in cases {
        let run = invoke(&workspace_binary(function), event, env).await;
        let (error_type, message) = run
            .result
            .expect_err(&format!("{function} took a file:// URL"));
        assert_eq!(error_type, "Ferry.BadInput", "{function}: {message}");
        assert!(message.contains("s3://"), "{function}: {message}");
        assert!(!message.contains(secret), "{function}: {message}");
        assert!(!run.logs.contains(secret), "{function}: {}", run.logs);
    }
    assert!(
        !dir.path().join("snap").exists(),
        "the snapshot wrote nothing"
    );
    assert_eq!(
        pg.psql(&source, "SELECT count(*) FROM t").trim(),
        "1",
        "the import loaded nothing"
    );
}
