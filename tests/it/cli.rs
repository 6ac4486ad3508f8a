//! The `ferry` command line, run as a user runs it.

use std::process::Command;

use ferry_tests::{lambda::workspace_binary, shared_pg, shared_s3};

fn ferry() -> Command {
    let mut command = Command::new(workspace_binary("ferry"));
    command.env_remove("RUST_LOG");
    command
}

#[test]
fn help_lists_the_five_jobs() {
    let out = ferry().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for job in ["snapshot", "restore", "import-csv", "validate", "branch"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(job)),
            "{job} missing from:\n{help}"
        );
    }
    for job in ["snapshot", "restore", "import-csv", "validate", "branch"] {
        let out = ferry().args([job, "--help"]).output().unwrap();
        assert!(out.status.success(), "ferry {job} --help");
    }
}

#[test]
fn check_reaches_postgres_and_both_stores_without_printing_secrets() {
    let pg = shared_pg();
    let s3 = shared_s3();
    let bucket = s3.create_bucket("cli");
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("cli"));
    for store in [
        format!("s3://{bucket}/probe/"),
        format!("file://{}/", dir.display()),
    ] {
        // A pooled Neon-style URL is not needed here; the password travels in PGPASSWORD.
        let out = ferry()
            .args(["--json", "check", "--store", &store])
            .args([
                "--source",
                &format!(
                    "postgres://{}@127.0.0.1:{}/postgres?sslmode=require",
                    ferry_tests::pg::SUPERUSER,
                    pg.port
                ),
            ])
            .env("PGPASSWORD", pg.password())
            .envs(s3.env())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let body: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(body["postgres"]["tls"], true);
        assert!(body["postgres"]["serverVersionNum"].as_u64().unwrap() >= 140000);
        assert!(
            body["store"]["probe"]
                .as_str()
                .unwrap()
                .starts_with(store.as_str())
        );
        for output in [&stdout, &stderr] {
            assert!(
                !output.contains(pg.password()),
                "password printed: {output}"
            );
            assert!(
                !output.contains(&s3.secret_key),
                "S3 secret printed: {output}"
            );
        }
    }
    // The probe cleaned up after itself.
    assert!(std::fs::read_dir(&dir).unwrap().next().is_none());
}

#[test]
fn check_with_a_wrong_password_explains_and_hides_it() {
    let pg = shared_pg();
    let url = format!(
        "postgres://{}:not-the-password-42@127.0.0.1:{}/postgres",
        ferry_tests::pg::SUPERUSER,
        pg.port
    );
    let out = ferry().args(["check", "--source", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("not-the-password-42"), "{stderr}");
}
