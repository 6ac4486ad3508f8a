//! `local-stack -- COMMAND...`: runs COMMAND against the embedded default and stops it after.
//!
//! Starts a private PostgreSQL server (TLS on, verify-full against the run's CA) with a `demo`
//! database holding sample data, and a local directory to serve as the bucket. COMMAND gets:
//! - `FERRY_SOURCE`: the demo database URL (no password; the password is in `PGPASSWORD`);
//! - `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`;
//! - `FERRY_BUCKET`: a `file://` URL of the bucket directory;
//! - `FERRY_S3_BUCKET`: an `s3://` URL of a bucket on a local S3-compatible server (`s3s-fs`),
//!   reachable with the `AWS_*` and `FERRY_S3_PATH_STYLE` variables it also sets, and
//!   `FERRY_S3_BUCKET_DIR`, the directory that server keeps that bucket's objects in;
//! - `NEON_API_HOST`, `NEON_API_KEY`, `FERRY_NEON_PROJECT`: a Neon API emulator whose project's
//!   `main` branch holds a copy of the demo database;
//! - `FERRY_LAMBDA_HOST`: the Lambda Invoke API of the five function binaries (`lambda-host`,
//!   run with all of the above), which `infra/local/run-workflow` sends Task states to.
//!
//! Everything lives in a scratch directory that is removed when COMMAND ends.

use std::process::{Command, ExitCode};

use ferry_tests::{
    EmulatorOptions, LambdaHost, NeonEmulator, PgServer, PgServerOptions, S3Server, pg::SUPERUSER,
    pg::test_ca, process::scratch,
};

const SAMPLE: &str = "
CREATE TABLE customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers, total numeric(12,2), placed_at timestamptz DEFAULT now());
INSERT INTO customers (name, email) SELECT 'customer ' || i, 'c' || i || '@example.com' FROM generate_series(1, 1000) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 1000, (i % 997) * 1.25 FROM generate_series(1, 10000) i;
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: local-stack -- COMMAND [ARGS...]");
        return ExitCode::from(2);
    };
    eprintln!("local-stack: starting PostgreSQL (TLS on) ...");
    let pg = PgServer::start_new(PgServerOptions {
        tls: true,
        ..PgServerOptions::default()
    });
    pg.psql("postgres", "CREATE DATABASE demo");
    // As on Neon, the project's role owns the data, so branches of it can read it.
    pg.psql("postgres", "CREATE ROLE neondb_owner LOGIN");
    pg.psql(
        "demo",
        &format!("ALTER SCHEMA public OWNER TO neondb_owner; SET ROLE neondb_owner; {SAMPLE}"),
    );
    eprintln!("local-stack: starting the Neon API emulator ...");
    let neon = NeonEmulator::start(
        &pg,
        EmulatorOptions {
            seed_from: Some("demo".into()),
            ..EmulatorOptions::default()
        },
    );
    let bucket = scratch().join("bucket");
    std::fs::create_dir_all(&bucket).unwrap();
    eprintln!("local-stack: starting the S3-compatible server ...");
    let s3 = S3Server::start();
    let s3_bucket = s3.create_bucket("ferry-local");
    eprintln!(
        "local-stack: PostgreSQL on 127.0.0.1:{} (database demo), Neon API emulator at {} (project {}), bucket file://{}/",
        pg.port,
        neon.url,
        neon.project_id,
        bucket.display()
    );
    let mut env: Vec<(String, String)> = vec![
        (
            "FERRY_SOURCE".into(),
            format!(
                "postgres://{SUPERUSER}@localhost:{}/demo?sslmode=verify-full&sslrootcert={}",
                pg.port,
                test_ca().ca_cert.display()
            ),
        ),
        ("PGHOST".into(), "localhost".into()),
        ("PGPORT".into(), pg.port.to_string()),
        ("PGUSER".into(), SUPERUSER.into()),
        ("PGPASSWORD".into(), pg.password().to_string()),
        ("PGDATABASE".into(), "demo".into()),
        ("PGSSLMODE".into(), "verify-full".into()),
        (
            "PGSSLROOTCERT".into(),
            test_ca().ca_cert.display().to_string(),
        ),
        (
            "FERRY_BUCKET".into(),
            format!("file://{}/", bucket.display()),
        ),
        ("FERRY_S3_BUCKET".into(), format!("s3://{s3_bucket}/")),
        (
            "FERRY_S3_BUCKET_DIR".into(),
            s3.object_path(&s3_bucket, "").display().to_string(),
        ),
        ("FERRY_NEON_PROJECT".into(), neon.project_id.clone()),
    ];
    env.extend(s3.env().into_iter().map(|(k, v)| (k.to_string(), v)));
    env.extend(neon.env().into_iter().map(|(k, v)| (k.to_string(), v)));
    eprintln!(
        "local-stack: starting lambda-host (the Lambda Invoke API for the function binaries) ..."
    );
    let host = LambdaHost::start(&env);
    env.push(("FERRY_LAMBDA_HOST".into(), host.url.clone()));
    let status = Command::new(program).args(rest).envs(env).status();
    drop(host);
    drop(neon);
    drop(s3);
    drop(pg);
    match status {
        Ok(status) => ExitCode::from(status.code().unwrap_or(1) as u8),
        Err(e) => {
            eprintln!("local-stack: cannot run {program}: {e}");
            ExitCode::from(2)
        }
    }
}
