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
