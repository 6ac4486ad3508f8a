//! The Neon client against the emulator over HTTP, the emulator's own behaviour, and the
//! `branch` job through the CLI and the Lambda.

use std::time::{Duration, SystemTime};

use ferry::{
    neon::{CreateBranch, NeonClient, NeonError, parse_expiry},
    pg::{PgConfig, connect},
};
use ferry_tests::{EmulatorOptions, NeonEmulator, shared_emulator, shared_pg};
use reqwest::Method;
use serde_json::json;

/// A project of the test's own in the shared emulator, with some data in `main`'s `neondb`.
async fn project_with_data(client: &NeonClient) -> (String, String) {
    let created = client
        .create_project(&ferry_tests::unique_name("p"))
        .await
        .unwrap();
    let project = created.project.id.clone();
    let main = created.branch.expect("a project has a default branch");
    let session = connect_to(client, &project, &main.id).await;
    session
        .batch_execute(
            "CREATE TABLE items (id int PRIMARY KEY, label text); \
             INSERT INTO items SELECT i, 'item ' || i FROM generate_series(1, 100) i;",
        )
        .await
        .unwrap();
    (project, main.id)
}

async fn connect_to(client: &NeonClient, project: &str, branch_id: &str) -> ferry::pg::Session {
    let uri = client
        .connection_uri(project, branch_id, "neondb", "neondb_owner", false)
        .await
        .unwrap();
    let mut config = PgConfig::parse(uri.expose()).unwrap();
    config.retry.max_elapsed = Duration::from_secs(10);
    connect(&config).await.unwrap()
}

async fn count(session: &ferry::pg::Session) -> i64 {
    session
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0)
}

fn preview(name: &str) -> CreateBranch {
    CreateBranch {
        name: name.to_string(),
        with_endpoint: true,
        ..CreateBranch::default()
    }
}

/// The emulator answers under `/api/v2`, as Neon does, so that a `NEON_API_HOST` written as
/// for Neon (`.../api/v2`) works against it.
#[tokio::test]
async fn the_emulator_serves_the_api_under_api_v2_as_neon_does() {
    let emulator = shared_emulator();
    let mut config = emulator.config();
    config.host = format!("{}/api/v2", emulator.env()[1].1);
    let client = NeonClient::new(config).unwrap();
    let projects = client.list_projects().await.unwrap();
    assert!(
        projects.iter().any(|p| p.id == emulator.project_id),
        "{projects:?}"
    );
    let branch = client
        .resolve_branch(&emulator.project_id, "main")
        .await
        .unwrap();
    assert!(!branch.id.is_empty());
}

#[tokio::test]
async fn create_wait_connect_and_the_parents_data_is_there() {
    let emulator = shared_emulator();
    let client = emulator.client();
    let (project, main) = project_with_data(&client).await;
    let info = client
        .get_or_create_branch(&project, &preview("preview-1"))
        .await
        .unwrap();
    assert!(info.created);
    assert_eq!(info.branch.name, "preview-1");
    assert_eq!(info.branch.parent_id.as_deref(), Some(main.as_str()));
    assert_eq!(
        info.branch.current_state.as_deref(),
        Some("ready"),
        "waited for the operations"
    );
    assert_eq!(info.endpoints.len(), 1);
    assert_eq!(info.endpoints[0].branch_id, info.branch.id);

    let branch = connect_to(&client, &project, &info.branch.id).await;
    assert_eq!(count(&branch).await, 100, "the parent's rows were copied");
    branch
        .batch_execute("DELETE FROM items WHERE id > 10")
        .await
        .unwrap();
    assert_eq!(count(&branch).await, 10);
    let parent = connect_to(&client, &project, &main).await;
    assert_eq!(count(&parent).await, 100, "the parent is untouched");

    // The same name again: the same branch, created = false, never the parent.
    let again = client
        .get_or_create_branch(&project, &preview("preview-1"))
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.branch.id, info.branch.id);
    let uri_branch = client
        .connection_uri(&project, &info.branch.id, "neondb", "neondb_owner", false)
        .await
        .unwrap();
    let uri_parent = client
        .connection_uri(&project, &main, "neondb", "neondb_owner", false)
        .await
        .unwrap();
    assert_ne!(uri_branch.expose(), uri_parent.expose());

    // Reset to the parent brings the rows back.
    drop(branch);
    client
        .reset_branch(&project, &info.branch.id)
        .await
        .unwrap();
    let branch = connect_to(&client, &project, &info.branch.id).await;
    assert_eq!(count(&branch).await, 100);
    drop(branch);

    // Deleting twice is fine.
    assert!(
        client
            .delete_branch(&project, &info.branch.id)
            .await
            .unwrap()
    );
    assert!(
        !client
            .delete_branch(&project, &info.branch.id)
            .await
            .unwrap()
    );
    assert!(
        client
            .find_branch_by_name(&project, "preview-1")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn a_branch_is_not_reachable_before_its_operations_finish() {
    let emulator = NeonEmulator::start(
        shared_pg(),
        EmulatorOptions {
            operation_delay_ms: 3000,
            ..Default::default()
        },
    );
    let client = emulator.client();
    let (status, created) = emulator
        .raw(
            Method::POST,
            &format!("/projects/{}/branches", emulator.project_id),
            Some(json!({"branch": {"name": "early"}, "endpoints": [{"type": "read_write"}]})),
            Some(&emulator.api_key),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(created["branch"]["current_state"], "init");
    assert_eq!(created["operations"][0]["status"], "scheduling");
    let branch_id = created["branch"]["id"].as_str().unwrap();
    let uri = client
        .connection_uri(
            &emulator.project_id,
            branch_id,
            "neondb",
            "neondb_owner",
            false,
        )
        .await
        .unwrap();
    let mut config = PgConfig::parse(uri.expose()).unwrap();
    config.retry.max_elapsed = Duration::from_millis(200);
    assert!(
        connect(&config).await.is_err(),
        "connecting before the operations finish fails"
    );
    // Another write in the project meanwhile: 423 from the emulator, retried by the client.
    let (status, _) = emulator
        .raw(
            Method::POST,
            &format!("/projects/{}/branches", emulator.project_id),
            Some(json!({"branch": {"name": "second"}})),
            Some(&emulator.api_key),
        )
        .await;
    assert_eq!(status, 423);
    let second = client
        .get_or_create_branch(&emulator.project_id, &preview("second"))
        .await
        .unwrap();
    assert!(second.created, "the client waited out the lock");
    config.retry.max_elapsed = Duration::from_secs(10);
    connect(&config)
        .await
        .expect("reachable once the operations finished");
}

#[tokio::test]
async fn lock_storms_and_throttling_end_in_success() {
    let emulator = NeonEmulator::start(shared_pg(), EmulatorOptions::default());
    let client = emulator.client();
    let project = emulator.project_id.clone();
    emulator
        .faults(json!({"http": {"status": 423, "times": 6}}))
        .await;
    let a = client
        .get_or_create_branch(&project, &preview("after-423"))
        .await
        .unwrap();
    assert!(a.created);
    emulator
        .faults(json!({"http": {"status": 429, "times": 3, "retry_after": 1}}))
        .await;
    let started = std::time::Instant::now();
    let b = client
        .get_or_create_branch(&project, &preview("after-429"))
        .await
        .unwrap();
    assert!(b.created);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    emulator
        .faults(json!({"http": {"status": 503, "times": 4}}))
        .await;
    assert_eq!(client.list_branches(&project).await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_lock_that_never_clears_is_a_neon_locked_error() {
    let emulator = NeonEmulator::start(shared_pg(), EmulatorOptions::default());
    let mut config = emulator.config();
    config.retry.max_elapsed = Duration::from_secs(2);
    let client = NeonClient::new(config).unwrap();
    emulator
        .faults(json!({"http": {"status": 423, "times": 1000}}))
        .await;
    let error = client
        .get_or_create_branch(&emulator.project_id, &preview("never"))
        .await
        .unwrap_err();
    assert!(matches!(error, NeonError::Locked { .. }), "{error:?}");
    assert!(error.is_retryable());
    let job_error = ferry::jobs::JobError::from(error);
    assert_eq!(job_error.error_type(), "Ferry.NeonLocked");
}

#[tokio::test]
async fn a_failed_operation_is_a_clear_error() {
    let emulator = NeonEmulator::start(shared_pg(), EmulatorOptions::default());
    let client = emulator.client();
    emulator.faults(json!({"fail_operations": 1})).await;
    let error = client
        .get_or_create_branch(&emulator.project_id, &preview("doomed"))
        .await
        .unwrap_err();
    match &error {
        NeonError::OperationFailed { action, status, .. } => {
            assert_eq!(status, "failed");
            assert_eq!(action, "create_branch");
        }
        other => panic!("expected OperationFailed, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("create_branch") && text.contains("failed"),
        "{text}"
    );
}

#[tokio::test]
async fn a_connection_dropped_after_the_write_reads_back_instead_of_replaying() {
    let emulator = NeonEmulator::start(shared_pg(), EmulatorOptions::default());
    let client = emulator.client();
    emulator.faults(json!({"drop_after_write": 1})).await;
    let info = client
        .get_or_create_branch(&emulator.project_id, &preview("dropped"))
        .await
        .unwrap();
    assert!(info.created, "the create happened; the client found it");
    let named: Vec<_> = client
        .list_branches(&emulator.project_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.name == "dropped")
        .collect();
    assert_eq!(named.len(), 1, "no second branch from a blind replay");
}

#[tokio::test]
async fn listing_reads_every_page() {
    let emulator = shared_emulator();
    let mut config = emulator.config();
    config.page_size = 2;
    let client = NeonClient::new(config).unwrap();
    let project = client.create_project("paging").await.unwrap().project.id;
    for i in 0..5 {
        client
            .create_branch(
                &project,
                &CreateBranch {
                    name: format!("b{i}"),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let mut names: Vec<String> = client
        .list_branches(&project)
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.name)
        .collect();
    names.sort();
    assert_eq!(names, ["b0", "b1", "b2", "b3", "b4", "main"]);
    // A duplicate name through plain create is AlreadyExists (409).
    let dup = client
        .create_branch(
            &project,
            &CreateBranch {
                name: "b1".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(
        matches!(dup, Err(NeonError::AlreadyExists { .. })),
        "{dup:?}"
    );
}

#[tokio::test]
async fn invalid_expiry_is_refused_before_any_request() {
    for bad in ["31d", "0s", "-2h", "tomorrow"] {
        assert!(
            matches!(parse_expiry(bad), Err(NeonError::BadInput(_))),
            "{bad}"
        );
    }
    // A client aimed at nothing: any request would be a network error, not BadInput.
    let config =
        ferry::neon::NeonConfig::new(ferry::secret::Secret::new("k"), "http://127.0.0.1:9");
    let client = NeonClient::new(config).unwrap();
    let past = CreateBranch {
        name: "x".into(),
        expires_at: Some(SystemTime::now() - Duration::from_secs(5)),
        ..Default::default()
    };
    let error = client
        .get_or_create_branch("some-project-12345678", &past)
        .await
        .unwrap_err();
    assert!(matches!(error, NeonError::BadInput(_)), "{error:?}");
    let far = CreateBranch {
        expires_at: Some(SystemTime::now() + Duration::from_secs(40 * 86400)),
        ..past
    };
    assert!(matches!(
        client.create_branch("p", &far).await,
        Err(NeonError::BadInput(_))
    ));
}

#[tokio::test]
async fn the_emulator_answers_like_the_service() {
    let emulator = shared_emulator();
    let key = Some(emulator.api_key.as_str());
    let project = emulator
        .client()
        .create_project("answers")
        .await
        .unwrap()
        .project
        .id;
    let branches = format!("/projects/{project}/branches");
    let (status, _) = emulator.raw(Method::GET, &branches, None, None).await;
    assert_eq!(status, 401, "no key");
    let (status, _) = emulator
        .raw(Method::GET, &branches, None, Some("wrong"))
        .await;
    assert_eq!(status, 401, "wrong key");
    let (status, body) = emulator
        .raw(
            Method::GET,
            "/projects/no-such-project-00000000/branches",
            None,
            key,
        )
        .await;
    assert_eq!(status, 404);
    assert!(body["message"].is_string() && body["code"].is_string());
    let (status, _) = emulator
        .raw(
            Method::GET,
            &format!("{branches}/br-none-none-00000000"),
            None,
            key,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = emulator
        .raw(
            Method::POST,
            &branches,
            Some(json!({"branch": {"name": 5}})),
            key,
        )
        .await;
    assert_eq!(status, 400);
    let past =
        humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(60)).to_string();
    let (status, body) = emulator
        .raw(
            Method::POST,
            &branches,
            Some(json!({"branch": {"name": "e", "expires_at": past}})),
            key,
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let far =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(31 * 86400))
            .to_string();
    let (status, _) = emulator
        .raw(
            Method::POST,
            &branches,
            Some(json!({"branch": {"name": "e", "expires_at": far}})),
            key,
        )
        .await;
    assert_eq!(status, 400);
    let (status, body) = emulator
        .raw(
            Method::POST,
            &branches,
            Some(json!({"branch": {"name": "pit", "parent_timestamp": "2020-01-01T00:00:00Z"}})),
            key,
        )
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("point in time"),
        "{body}"
    );
    // The default branch and a branch with children cannot be deleted.
    let client = emulator.client();
    let main = client
        .find_branch_by_name(&project, "main")
        .await
        .unwrap()
        .unwrap();
    let (status, _) = emulator
        .raw(
            Method::DELETE,
            &format!("{branches}/{}", main.id),
            None,
            key,
        )
        .await;
    assert_eq!(status, 400);
    let parent = client
        .create_branch(
            &project,
            &CreateBranch {
                name: "parent".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    client
        .create_branch(
            &project,
            &CreateBranch {
                name: "child".into(),
                parent: Some("parent".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (status, _) = emulator
        .raw(
            Method::DELETE,
            &format!("{branches}/{}", parent.branch.id),
            None,
            key,
        )
        .await;
    assert_eq!(status, 400);
    // Deleting a missing branch: 204.
    let (status, _) = emulator
        .raw(
            Method::DELETE,
            &format!("{branches}/br-gone-gone-00000000"),
            None,
            key,
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn an_expired_branch_is_deleted() {
    let emulator = shared_emulator();
    let client = emulator.client();
    let project = client.create_project("expiry").await.unwrap().project.id;
    let info = client
        .get_or_create_branch(&project, &preview("short-lived"))
        .await
        .unwrap();
    // The emulator accepts expiry only in the future; move it to the near future directly.
    let soon =
        humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(2)).to_string();
    let (status, _) = emulator
        .raw(
            Method::PATCH,
            &format!("/projects/{project}/branches/{}", info.branch.id),
            Some(json!({"branch": {"expires_at": soon}})),
            Some(&emulator.api_key),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while client
        .find_branch_by_name(&project, "short-lived")
        .await
        .unwrap()
        .is_some()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the expired branch was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn databases_and_roles() {
    let emulator = shared_emulator();
    let client = emulator.client();
    let created = client.create_project("dbs").await.unwrap();
    let project = created.project.id;
    let main = created.branch.unwrap().id;
    let db = client
        .create_database(&project, &main, "analytics", "neondb_owner")
        .await
        .unwrap();
    assert_eq!(db.name, "analytics");
    let again = client
        .create_database(&project, &main, "analytics", "neondb_owner")
        .await
        .unwrap();
    assert_eq!(again.id, db.id, "create is get-or-create");
    let names: Vec<String> = client
        .list_databases(&project, &main)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["neondb", "analytics"]);
    let roles = client.list_roles(&project, &main).await.unwrap();
    assert_eq!(roles[0].name, "neondb_owner");
    let password = client
        .reveal_password(&project, &main, "neondb_owner")
        .await
        .unwrap();
    let uri = client
        .connection_uri(&project, &main, "analytics", "neondb_owner", false)
        .await
        .unwrap();
    assert!(uri.expose().contains(password.expose()));
    let mut config = PgConfig::parse(uri.expose()).unwrap();
    config.retry.max_elapsed = Duration::from_secs(10);
    connect(&config)
        .await
        .expect("the new database accepts the role's password");
}

fn ferry_cli(emulator: &NeonEmulator, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(ferry_tests::lambda::workspace_binary("ferry"))
        .args(args)
        .envs(emulator.env())
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_branch_command_end_to_end_without_printing_secrets() {
    let emulator = shared_emulator();
    let client = emulator.client();
    let (project, main) = project_with_data(&client).await;
    let password = client
        .reveal_password(&project, &main, "neondb_owner")
        .await
        .unwrap();
    let secrets = [emulator.api_key.clone(), password.expose().to_string()];
    let mut outputs = Vec::new();
    let mut run = |args: &[&str]| {
        let (code, stdout, stderr) = ferry_cli(emulator, args);
        outputs.push(format!("{stdout}{stderr}"));
        (code, stdout, stderr)
    };

    let create = [
        "--json",
        "branch",
        "create",
        "--project",
        &project,
        "--name",
        "cli-preview",
        "--expires-in",
        "7d",
    ];
    let (code, stdout, stderr) = run(&create);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let first: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(first["created"], true);
    let branch = &first["branch"];
    assert_eq!(branch["name"], "cli-preview");
    assert_eq!(branch["database"], "neondb");
    assert_eq!(branch["role"], "neondb_owner");
    assert_eq!(branch["endpointHost"], "localhost");
    assert!(branch["expiresAt"].is_string());
    let connection = branch["connection"].as_str().unwrap().to_string();
    assert!(
        connection.starts_with(&format!("neon://{project}/")),
        "{connection}"
    );

    let (code, stdout, _) = run(&create);
    assert_eq!(code, 0);
    let second: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(second["created"], false);
    assert_eq!(second["branch"]["branchId"], branch["branchId"]);

    // Other jobs connect through the reference; the password comes from the API.
    let (code, stdout, stderr) = run(&["--json", "check", "--source", &connection]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let check: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(check["postgres"]["tls"], true);

    let (code, stdout, _) = run(&["branch", "list", "--project", &project]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("cli-preview") && stdout.contains("main"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&[
        "branch",
        "get",
        "--project",
        &project,
        "--branch",
        "cli-preview",
    ]);
    assert_eq!(code, 0);
    assert!(stdout.contains("neon://"), "{stdout}");
    let (code, stdout, stderr) = run(&[
        "branch",
        "reset",
        "--project",
        &project,
        "--branch",
        "cli-preview",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let delete = [
        "--json",
        "branch",
        "delete",
        "--project",
        &project,
        "--branch",
        "cli-preview",
    ];
    let (code, stdout, _) = run(&delete);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["deleted"],
        true
    );
    let (code, stdout, _) = run(&delete);
    assert_eq!(code, 0, "deleting twice is fine");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["deleted"],
        false
    );

    let (code, stdout, stderr) = run(&[
        "--json",
        "branch",
        "create",
        "--project",
        &project,
        "--name",
        "x",
        "--expires-in",
        "31d",
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("30 days"), "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["error"]["type"],
        "Ferry.BadInput"
    );

    for output in outputs {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "a secret reached the output:\n{output}"
            );
        }
    }
}

#[tokio::test]
async fn the_branch_lambda_creates_and_reports_typed_errors() {
    use ferry_tests::lambda::{invoke, workspace_binary};
    let emulator = shared_emulator();
    let client = emulator.client();
    let (project, main) = project_with_data(&client).await;
    let password = client
        .reveal_password(&project, &main, "neondb_owner")
        .await
        .unwrap();
    let mut env = emulator.env();
    env.push(("RUST_LOG", "debug".into()));
    let event = json!({"action": "create", "project": project, "branch": "lambda-preview", "expiresIn": "1d"});
    let run = invoke(&workspace_binary("branch"), event.clone(), &env).await;
    let output = run.result.clone().expect("the branch Lambda succeeds");
    assert_eq!(output["created"], true);
    assert_eq!(output["branch"]["name"], "lambda-preview");
    let again = invoke(&workspace_binary("branch"), event, &env).await;
    assert_eq!(again.result.unwrap()["created"], false);
    let missing = invoke(
        &workspace_binary("branch"),
        json!({"action": "create", "project": project}),
        &env,
    )
    .await;
    assert_eq!(missing.result.unwrap_err().0, "Ferry.BadInput");
    let gone = invoke(
        &workspace_binary("branch"),
        json!({"action": "get", "project": project, "branch": "no-such-branch"}),
        &env,
    )
    .await;
    assert_eq!(gone.result.unwrap_err().0, "Ferry.NotFound");
    for text in [run.logs, format!("{output}")] {
        assert!(!text.contains(&emulator.api_key), "API key leaked: {text}");
        assert!(!text.contains(password.expose()), "password leaked: {text}");
    }
}

/// `snapshot --at` makes a point-in-time branch through the API: the emulator refuses point
/// in time (it cannot fake history), so this checks what can be: the request is made with the
/// time, the refusal is reported by name, nothing is left behind; a bad time or a source that
/// is not a Neon branch is refused before any request.
#[tokio::test]
async fn snapshot_at_asks_for_a_point_in_time_branch_and_leaves_nothing_behind() {
    let emulator = shared_emulator();
    let client = emulator.client();
    let (project, main) = project_with_data(&client).await;
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("at"));
    let to = format!("file://{}/", dir.display());
    let source = format!("neon://{project}/{main}/neondb?role=neondb_owner");
    let before = client.list_branches(&project).await.unwrap().len();
    let (code, _, stderr) = ferry_cli(
        emulator,
        &[
            "snapshot",
            "--source",
            &source,
            "--to",
            &to,
            "--at",
            "2026-11-20T03:00:00Z",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("point in time"), "{stderr}");
    assert_eq!(client.list_branches(&project).await.unwrap().len(), before);
    assert!(!dir.join("manifest.json").exists());
    let record = std::fs::read_to_string(&emulator.record).unwrap();
    assert!(
        record.contains("\"parent_timestamp\":\"2026-11-20T03:00:00Z\""),
        "the create request carries the time"
    );

    for (args, expect) in [
        (vec!["--at", "last tuesday"], "RFC 3339"),
        (vec!["--at-lsn", "16/B374D848x"], "WAL position"),
    ] {
        let mut all = vec!["snapshot", "--source", &source, "--to", &to];
        all.extend(args);
        let (code, _, stderr) = ferry_cli(emulator, &all);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(expect), "{stderr}");
    }
    let (code, _, stderr) = ferry_cli(
        emulator,
        &[
            "snapshot",
            "--source",
            "postgres://u@127.0.0.1:1/d",
            "--to",
            &to,
            "--at",
            "2026-11-20T03:00:00Z",
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("neon://"), "{stderr}");
}
