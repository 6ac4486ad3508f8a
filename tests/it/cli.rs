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

/// Snapshots in a local-directory bucket: listed newest first, pruned (dry run, then for real),
/// the latest restored.
#[test]
fn snapshots_list_prune_and_restore_latest() {
    let pg = shared_pg();
    let db = pg.create_database("cli_snaps");
    pg.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)");
    let dir = ferry_tests::process::scratch().join(ferry_tests::unique_name("cli-snaps"));
    let bucket = format!("file://{}/", dir.display());
    for name in ["a", "b", "c"] {
        let out = ferry()
            .args(["snapshot", "--source", &pg.url(&db)])
            .args(["--to", &format!("{bucket}app/{name}/")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.psql(&db, "INSERT INTO t VALUES (2)");
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let out = ferry()
        .args(["--json", "snapshots", "list", "--from", &bucket])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let locations: Vec<&str> = listed["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["location"].as_str().unwrap())
        .collect();
    assert_eq!(
        locations,
        [
            format!("{bucket}app/c/"),
            format!("{bucket}app/b/"),
            format!("{bucket}app/a/")
        ]
    );
    let out = ferry()
        .args(["prune", "--from", &bucket, "--keep-last", "2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("would delete") && text.contains("app/a/"),
        "{text}"
    );
    assert!(
        dir.join("app/a/manifest.json").exists(),
        "a dry run deleted"
    );
    let out = ferry()
        .args(["prune", "--from", &bucket, "--keep-last", "2", "--delete"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(!dir.join("app/a/manifest.json").exists() && !dir.join("app/a/archive.dump").exists());
    assert!(dir.join("app/b/archive.dump").exists());
    // Without a rule: refused, exit 2, nothing deleted.
    let out = ferry()
        .args(["prune", "--from", &bucket, "--delete"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(dir.join("app/b/archive.dump").exists());

    let target = pg.create_database("cli_snaps_latest");
    let out = ferry()
        .args(["restore", "--latest", "--from", &format!("{bucket}app/")])
        .args(["--target", &pg.url(&target)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("app/c/manifest.json"), "{text}");
    assert_eq!(pg.psql(&target, "SELECT count(*) FROM t").trim(), "3");
}
