//! Credentials from AWS Secrets Manager references (served by moto): database connections as
//! JSON or URL secrets, and the Neon API key. Values never reach the output.

use std::process::Command;

use ferry_tests::{
    aws::shared_secrets, lambda::workspace_binary, pg::SUPERUSER, shared_emulator, shared_pg,
    unique_name,
};

fn ferry(args: &[&str], env: &[(&'static str, String)]) -> (i32, String, String) {
    let out = Command::new(workspace_binary("ferry"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "debug")
        .env_remove("PGPASSWORD")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn database_credentials_from_a_secret_reference() {
    let secrets = shared_secrets();
    let pg = shared_pg();
    let json_secret = serde_json::json!({
        "engine": "postgres", "host": "127.0.0.1", "port": pg.port, "username": SUPERUSER,
        "password": pg.password(), "dbname": "postgres", "sslmode": "require",
    });
    let arn = secrets.create_secret(&unique_name("db-json"), &json_secret.to_string());
    let (code, stdout, stderr) = ferry(&["--json", "check", "--source", &arn], &secrets.env());
    assert_eq!(code, 0, "{stdout}{stderr}");
    let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["postgres"]["tls"], true);
    assert!(!stdout.contains(pg.password()) && !stderr.contains(pg.password()));

    // A secret holding a URL, named by secretsmanager:NAME.
    let name = unique_name("db-url");
    secrets.create_secret(&name, &pg.url("postgres"));
    let (code, stdout, stderr) = ferry(
        &[
            "--json",
            "check",
            "--source",
            &format!("secretsmanager:{name}"),
        ],
        &secrets.env(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains(pg.password()) && !stderr.contains(pg.password()));

    // A missing secret: a clear error that names the reference.
    let (code, stdout, stderr) = ferry(
        &[
            "--json",
            "check",
            "--source",
            "secretsmanager:no-such-secret",
        ],
        &secrets.env(),
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("no-such-secret") && stderr.contains("does not exist"),
        "{stderr}"
    );
    let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(body["error"]["type"], "Ferry.BadInput");
}

#[test]
fn the_neon_api_key_from_a_secret_reference() {
    let secrets = shared_secrets();
    let emulator = shared_emulator();
    let name = unique_name("neon-key");
    secrets.create_secret(&name, &emulator.api_key);
    let mut env = secrets.env();
    env.push(("NEON_API_HOST", emulator.url.clone()));
    env.push(("NEON_API_KEY", format!("secretsmanager:{name}")));
    let (code, stdout, stderr) = ferry(
        &[
            "--json",
            "branch",
            "list",
            "--project",
            &emulator.project_id,
        ],
        &env,
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        body["branches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == "main")
    );
    assert!(!stdout.contains(&emulator.api_key) && !stderr.contains(&emulator.api_key));
}
