//! The Postgres connection layer against real servers: every sslmode with TLS on and off,
//! certificate checks, wrong passwords, servers that come up late or never, restarts.

use std::time::{Duration, Instant};

use ferry::{
    pg::{PgConfig, PgError, SslMode, connect},
    retry::Backoff,
    secret::Secret,
};
use ferry_tests::{PgServer, PgServerOptions, pg::test_ca, shared_pg, shared_pg_without_tls};

/// Connects and reports whether the session is encrypted, as the server sees it.
async fn tls_in_use(config: &PgConfig) -> Result<bool, PgError> {
    let session = connect(config).await?;
    let row = session
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

fn with(mut config: PgConfig, host: &str, rootcert: Option<&std::path::Path>) -> PgConfig {
    config.host = host.to_string();
    config.sslrootcert = rootcert.map(|p| p.display().to_string());
    // The cases that must fail must fail at once, not after a retry budget.
    config.retry = Backoff {
        max_elapsed: Duration::from_secs(5),
        ..Backoff::default()
    };
    config
}

fn assert_tls_error(result: Result<bool, PgError>, case: &str, needle: &str) {
    match result {
        Err(e @ PgError::Tls { .. }) => {
            let text = e.to_string();
            assert!(text.contains(needle), "{case}: {text}");
        }
        other => panic!("{case}: expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn every_sslmode_against_a_server_with_tls() {
    let server = shared_pg();
    let ca = test_ca();
    let good = Some(ca.ca_cert.as_path());
    let wrong = Some(ca.wrong_ca_cert.as_path());
    let cfg = |mode| server.config("postgres", mode);

    for (mode, expect_tls) in [
        (SslMode::Disable, false),
        (SslMode::Allow, true),
        (SslMode::Prefer, true),
        (SslMode::Require, true),
    ] {
        let got = tls_in_use(&with(cfg(mode), "127.0.0.1", None))
            .await
            .unwrap();
        assert_eq!(got, expect_tls, "sslmode={mode}");
    }
    // verify-ca checks the chain but not the name: 127.0.0.1 is not in the certificate.
    assert!(
        tls_in_use(&with(cfg(SslMode::VerifyCa), "127.0.0.1", good))
            .await
            .unwrap()
    );
    assert_tls_error(
        tls_in_use(&with(cfg(SslMode::VerifyCa), "127.0.0.1", wrong)).await,
        "verify-ca, wrong CA",
        "certificate",
    );
    // require with a root certificate verifies like verify-ca, as libpq does.
    assert!(
        tls_in_use(&with(cfg(SslMode::Require), "127.0.0.1", good))
            .await
            .unwrap()
    );
    assert_tls_error(
        tls_in_use(&with(cfg(SslMode::Require), "127.0.0.1", wrong)).await,
        "require, wrong CA",
        "certificate",
    );
    // verify-full checks the chain and the name.
    assert!(
        tls_in_use(&with(cfg(SslMode::VerifyFull), "localhost", good))
            .await
            .unwrap()
    );
    assert_tls_error(
        tls_in_use(&with(cfg(SslMode::VerifyFull), "localhost", wrong)).await,
        "verify-full, wrong CA",
        "certificate",
    );
    assert_tls_error(
        tls_in_use(&with(cfg(SslMode::VerifyFull), "127.0.0.1", good)).await,
        "verify-full, name not in certificate",
        "certificate",
    );
    // Without sslrootcert the public roots apply, and the test CA is not one of them.
    assert_tls_error(
        tls_in_use(&with(cfg(SslMode::VerifyFull), "localhost", None)).await,
        "verify-full, system roots",
        "certificate",
    );
}

#[tokio::test]
async fn every_sslmode_against_a_server_without_tls() {
    let server = shared_pg_without_tls();
    let ca = test_ca();
    let cfg = |mode| server.config("postgres", mode);
    for mode in [SslMode::Disable, SslMode::Allow, SslMode::Prefer] {
        let got = tls_in_use(&with(cfg(mode), "127.0.0.1", None))
            .await
            .unwrap();
        assert!(!got, "sslmode={mode} falls back to plain TCP");
    }
    for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
        assert_tls_error(
            tls_in_use(&with(cfg(mode), "localhost", Some(&ca.ca_cert))).await,
            &format!("sslmode={mode}"),
            "does not accept TLS",
        );
    }
}

#[tokio::test]
async fn a_wrong_password_fails_at_once_without_the_secret() {
    let server = shared_pg();
    let mut config = server.config("postgres", SslMode::Require);
    let wrong = "wrong-Pa55word-do-not-print";
    config.password = Some(Secret::new(wrong));
    let started = Instant::now();
    let error = connect(&config)
        .await
        .err()
        .expect("a wrong password must fail");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {:?}",
        started.elapsed()
    );
    assert!(matches!(error, PgError::Auth { .. }), "{error:?}");
    assert!(!error.is_retryable());
    for printed in [error.to_string(), format!("{error:?}")] {
        assert!(
            printed.contains("password authentication failed"),
            "{printed}"
        );
        assert!(!printed.contains(wrong), "the password leaked: {printed}");
        assert!(
            !printed.contains(server.password()),
            "a password leaked: {printed}"
        );
    }
}

#[tokio::test]
async fn a_server_that_comes_up_late_is_waited_for() {
    let server = std::sync::Arc::new(PgServer::init(PgServerOptions {
        tls: true,
        ..PgServerOptions::default()
    }));
    let mut config = server.config("postgres", SslMode::Require);
    config.retry = Backoff {
        initial: Duration::from_millis(100),
        max_delay: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(60),
    };
    let starter = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_secs(2));
            server.start();
        })
    };
    let started = Instant::now();
    let session = connect(&config)
        .await
        .expect("connects once the server is up");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "connected before the server started?"
    );
    let one: i32 = session.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    starter.await.unwrap();
}

#[tokio::test]
async fn a_server_that_never_comes_up_fails_within_the_budget() {
    let port = ferry_tests::process::free_port();
    let mut config = PgConfig::parse(&format!(
        "postgres://nobody@127.0.0.1:{port}/db?sslmode=prefer"
    ))
    .unwrap();
    config.retry = Backoff {
        initial: Duration::from_millis(100),
        max_delay: Duration::from_millis(400),
        max_elapsed: Duration::from_secs(3),
    };
    let started = Instant::now();
    let error = connect(&config).await.err().expect("nothing listens there");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    match &error {
        PgError::Unreachable { attempts, .. } => assert!(*attempts > 2, "{error}"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains("could not connect") && text.contains(&port.to_string()),
        "{text}"
    );
    assert!(error.is_retryable(), "a later run may find the server up");
}

#[tokio::test]
async fn a_restart_ends_sessions_and_the_next_connect_succeeds() {
    let server = std::sync::Arc::new(PgServer::start_new(PgServerOptions {
        tls: true,
        ..PgServerOptions::default()
    }));
    let config = server.config("postgres", SslMode::Require);
    let session = connect(&config).await.unwrap();
    let restart = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || {
            server.stop();
            server.start();
        })
    };
    restart.await.unwrap();
    let error = session
        .query_one("SELECT 1", &[])
        .await
        .expect_err("the old session is gone");
    assert!(
        PgError::from(error).is_retryable(),
        "a dropped session is a transient failure"
    );
    let session = connect(&config).await.unwrap();
    let one: i32 = session.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn connection_strings_from_the_environment_style_parameters() {
    // A keyword string with the URL's parts, as libpq accepts them, reaches the same server.
    let server = shared_pg();
    let config = PgConfig::parse(&format!(
        "host=localhost port={} user={} password='{}' dbname=postgres sslmode=verify-full sslrootcert='{}'",
        server.port,
        ferry_tests::pg::SUPERUSER,
        server.password(),
        test_ca().ca_cert.display()
    ))
    .unwrap();
    assert!(tls_in_use(&config).await.unwrap());
}

/// A host that accepts the TCP connection and then says nothing (what a missing route or a
/// blackholing security group looks like from inside a VPC): each attempt ends at the connect
/// timeout, and the error says which timeout and what to check.
#[tokio::test]
async fn a_silent_host_fails_naming_the_connect_timeout_and_the_network_path() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
        }
    });
    let mut config = PgConfig::parse(&format!(
        "postgres://nobody@127.0.0.1:{port}/db?sslmode=disable&connect_timeout=1"
    ))
    .unwrap();
    config.retry = Backoff {
        initial: Duration::from_millis(100),
        max_delay: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(2),
    };
    let error = connect(&config).await.err().expect("nothing answers");
    held.abort();
    let text = error.to_string();
    assert!(matches!(error, PgError::Unreachable { .. }), "{text}");
    assert!(
        text.contains("connect timeout (1s") && text.contains("VPC") && text.contains("NAT"),
        "{text}"
    );
    // A refused connection is a different failure: no such hint.
    let closed = ferry_tests::process::free_port();
    let mut refused = PgConfig::parse(&format!(
        "postgres://nobody@127.0.0.1:{closed}/db?sslmode=disable"
    ))
    .unwrap();
    refused.retry = config.retry;
    let text = connect(&refused).await.err().unwrap().to_string();
    assert!(!text.contains("VPC"), "{text}");
}

/// FERRY_PG_STATEMENT_TIMEOUT reaches the server, and a statement it stops says so.
#[tokio::test]
async fn the_statement_timeout_applies_and_is_named_when_it_fires() {
    let pg = shared_pg();
    let mut config = PgConfig::parse(&pg.url("postgres")).unwrap();
    config.statement_timeout = Some(Duration::from_secs(1));
    let session = connect(&config).await.unwrap();
    let shown: String = session
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(shown, "1s");
    let error = session
        .query_one("SELECT pg_sleep(3)", &[])
        .await
        .map_err(PgError::from)
        .expect_err("the timeout fires");
    let text = error.to_string();
    assert!(
        text.contains("statement timeout") && text.contains("FERRY_PG_STATEMENT_TIMEOUT"),
        "{text}"
    );
}
