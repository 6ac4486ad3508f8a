//! The Neon API contract, checked from both sides against Neon's own documents:
//! every request ferry's client sends and every response the emulator returns validate against
//! Neon's OpenAPI document as its npm package publishes it (`@neondatabase/api-client`, pinned;
//! by openapi-core, an independent validator), and the client parses every real response
//! recorded from the live service (tests/fixtures/neon-recorded).

use std::{path::PathBuf, process::Command};

use ferry::neon::{CreateBranch, NeonError, models::*};
use ferry_tests::{EmulatorOptions, NeonEmulator, shared_pg};
use serde_json::json;

/// The npm package Neon publishes its OpenAPI document in, pinned (`dev/setup` installs it).
const API_CLIENT: &str = "@neondatabase/api-client@2.7.3";

/// Neon's OpenAPI document for the console API v2, from [`API_CLIENT`], or the file
/// `FERRY_NEON_OPENAPI` names.
fn openapi() -> PathBuf {
    let path = std::env::var_os("FERRY_NEON_OPENAPI")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            ferry_tests::pg::tools_dir()
                .join("npm-neon/node_modules/@neondatabase/api-client/public-v2-for-users.gen.yaml")
        });
    assert!(
        path.exists(),
        "Neon's OpenAPI document ({API_CLIENT}) not found at {}: run ./dev/setup",
        path.display()
    );
    path
}

/// Real responses of the live API, recorded (tests/fixtures/neon-recorded/README.md).
fn recorded() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/neon-recorded")
}

#[tokio::test]
async fn every_exchange_validates_against_the_openapi_document() {
    let emulator = NeonEmulator::start(
        shared_pg(),
        EmulatorOptions {
            operation_delay_ms: 100,
            ..Default::default()
        },
    );
    let client = emulator.client();
    // Every call the client makes, including the error and retry paths.
    let created = client.create_project("contract").await.unwrap();
    let project = created.project.id.clone();
    let main = created.branch.clone().unwrap().id;
    client.list_projects().await.unwrap();
    client.get_project(&project).await.unwrap();
    let info = client
        .get_or_create_branch(
            &project,
            &CreateBranch {
                name: "contract-preview".into(),
                expires_at: Some(
                    std::time::SystemTime::now() + std::time::Duration::from_secs(86400),
                ),
                with_endpoint: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let id = info.branch.id.clone();
    client
        .get_or_create_branch(
            &project,
            &CreateBranch {
                name: "contract-preview".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client
        .create_branch(
            &project,
            &CreateBranch {
                name: "schema-only".into(),
                init_source: ferry::neon::InitSource::SchemaOnly,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        client
            .create_branch(
                &project,
                &CreateBranch {
                    name: "contract-preview".into(),
                    ..Default::default()
                }
            )
            .await,
        Err(NeonError::AlreadyExists { .. })
    ));
    client.list_branches(&project).await.unwrap();
    client.branch_endpoints(&project, &id).await.unwrap();
    client
        .update_branch(
            &project,
            &id,
            &ferry::neon::UpdateBranch {
                name: Some("contract-renamed".into()),
                expires_at: Some(None),
            },
        )
        .await
        .unwrap();
    client
        .create_database(&project, &id, "extra", "neondb_owner")
        .await
        .unwrap();
    client.list_databases(&project, &id).await.unwrap();
    client.list_roles(&project, &id).await.unwrap();
    client
        .reveal_password(&project, &id, "neondb_owner")
        .await
        .unwrap();
    client
        .connection_uri(&project, &id, "neondb", "neondb_owner", false)
        .await
        .unwrap();
    client
        .connection_uri(&project, &main, "neondb", "neondb_owner", true)
        .await
        .unwrap();
    client.list_operations(&project).await.unwrap();
    client.reset_branch(&project, &id).await.unwrap();
    emulator
        .faults(json!({"http": {"status": 423, "times": 2}}))
        .await;
    emulator
        .faults(json!({"http": {"status": 429, "times": 1, "retry_after": 1}}))
        .await;
    client.delete_branch(&project, &id).await.unwrap();
    client.delete_branch(&project, &id).await.unwrap();
    assert!(
        client
            .get_branch(&project, &id)
            .await
            .unwrap_err()
            .is_not_found()
    );

    let output = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/contract/check_exchanges.py"
        ))
        .arg(openapi())
        .arg(&emulator.record)
        .output()
        .expect("run python3 (./dev/setup installs openapi-core)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "contract violations:\n{report}");
    let checked: usize = report
        .lines()
        .find_map(|l| {
            l.strip_prefix("checked ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    assert!(checked >= 30, "too few exchanges recorded: {report}");
}

#[test]
fn the_client_parses_every_recorded_response() {
    let dir = recorded();
    let mut parsed = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for interaction in doc["interactions"].as_sequence().unwrap() {
            let method = interaction["request"]["method"].as_str().unwrap();
            let uri = interaction["request"]["uri"].as_str().unwrap();
            let path = uri
                .trim_start_matches("https://console.neon.tech/api/v2")
                .split('?')
                .next()
                .unwrap();
            let status = interaction["response"]["status"]["code"].as_u64().unwrap();
            let body = interaction["response"]["body"]["string"].as_str().unwrap();
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let what = format!("{}: {method} {path} -> {status}", file.display());
            let result: Result<String, serde_json::Error> = if status >= 400 {
                serde_json::from_str::<ErrorBody>(body).map(|b| format!("{b:?}"))
            } else {
                match (method, segments.as_slice()) {
                    ("GET", ["projects"]) | ("GET", ["projects", "shared"]) => {
                        serde_json::from_str::<ProjectsResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("POST", ["projects"]) => {
                        serde_json::from_str::<CreatedProject>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET" | "PATCH" | "DELETE", ["projects", _]) => {
                        serde_json::from_str::<ProjectResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "branches"]) => {
                        serde_json::from_str::<BranchesResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "branches", _]) => {
                        serde_json::from_str::<BranchResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "branches", _, "databases"]) => {
                        serde_json::from_str::<DatabasesResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "branches", _, "roles"]) => {
                        serde_json::from_str::<RolesResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "branches", _, "roles", _]) => {
                        serde_json::from_str::<RoleResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "connection_uri"]) => {
                        serde_json::from_str::<ConnectionUri>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "endpoints"]) => {
                        serde_json::from_str::<EndpointsResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "endpoints", _]) => {
                        serde_json::from_str::<EndpointResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "operations"]) => {
                        serde_json::from_str::<OperationsResponse>(body).map(|r| format!("{r:?}"))
                    }
                    ("GET", ["projects", _, "operations", _]) => {
                        serde_json::from_str::<OperationResponse>(body).map(|r| format!("{r:?}"))
                    }
                    _ => panic!("{what}: no model for this route; add one"),
                }
            };
            let printed = result.unwrap_or_else(|e| panic!("{what}: {e}\n{body}"));
            // Passwords in recorded responses parse into secrets that never print.
            let raw: serde_json::Value = serde_json::from_str(body).unwrap();
            for password in find_passwords(&raw) {
                assert!(
                    !printed.contains(&password),
                    "{what}: a password printed in Debug"
                );
            }
            parsed += 1;
        }
    }
    assert!(parsed >= 30, "only {parsed} recorded responses parsed");
}

/// Every `password` value and every password inside a `connection_uri` in a JSON document.
fn find_passwords(value: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("password", serde_json::Value::String(s)) if !s.is_empty() => {
                        found.push(s.clone())
                    }
                    _ => found.extend(find_passwords(v)),
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| found.extend(find_passwords(v)))
        }
        _ => {}
    }
    found
}
