//! The JSON Schemas under infra/schemas are the contract the state machines rely on: they must
//! be exactly what the code accepts and returns. `FERRY_UPDATE_SCHEMAS=1` rewrites them.

use std::path::PathBuf;

#[test]
fn committed_schemas_match_the_code() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/schemas");
    let update = std::env::var_os("FERRY_UPDATE_SCHEMAS").is_some();
    let mut stale = Vec::new();
    for (name, schema) in ferry::jobs::schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir.join(&name);
        if update {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(name);
        }
    }
    assert!(
        stale.is_empty(),
        "infra/schemas is out of date for {stale:?}: run FERRY_UPDATE_SCHEMAS=1 cargo test -p ferry-tests --test it schemas"
    );
}

#[test]
fn inputs_refuse_unknown_fields() {
    for (name, schema) in ferry::jobs::schemas() {
        if name == "import-csv.input.json" {
            // A request (closed) or an S3 event as AWS delivers it (open: AWS adds fields).
            assert_eq!(
                schema["$defs"]["ImportRequest"]["additionalProperties"], false,
                "{name}"
            );
            assert_eq!(schema["anyOf"].as_array().map(Vec::len), Some(2), "{name}");
        } else if name == "snapshot.input.json" {
            // A snapshot (or a plan), a prune, a worker's pieces, a finish: each closed.
            let alternatives = schema["anyOf"].as_array().unwrap();
            assert_eq!(alternatives.len(), 4, "{name}");
            for alternative in &alternatives[1..] {
                assert_eq!(alternative["additionalProperties"], false, "{name}");
            }
            for def in [
                "SnapshotInput",
                "PruneInput",
                "PieceInput",
                "FinishInput",
                "Distribute",
            ] {
                assert_eq!(
                    schema["$defs"][def]["additionalProperties"], false,
                    "{name}: {def}"
                );
            }
        } else if name.ends_with(".input.json") {
            assert_eq!(schema["additionalProperties"], false, "{name}");
        }
    }
}
