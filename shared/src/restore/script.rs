//! The plain-script executor: a plain SQL dump (split by [`super::plain`]) run statement by
//! statement on one connection, each statement committed with its progress row.

use std::collections::{HashMap, HashSet};

use futures::{SinkExt, pin_mut};

use crate::{
    pg::{PgConfig, PgError, Session},
    progress::SharedProgress,
    store::{ObjectUrl, Store},
};

use super::options::Options;
use super::progress::{BASE_SETUP, State, prepare, progress_record, session};
use super::{Outcome, RestoreError, plain, source};

/// What a plain dump's statement is, for running it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PlainKind {
    /// `SET ...` or `SELECT pg_catalog.set_config(...)`: session state, run every time.
    Session,
    /// The dump's own `BEGIN`/`COMMIT`: ferry runs each statement in its own transaction.
    Transaction,
    /// Cannot run inside a transaction block.
    Outside,
    Owner,
    Grant,
    Plain,
}

/// The configuration parameter a session statement sets: `SET [SESSION | LOCAL] name {= | TO}
/// ...` or `SELECT pg_catalog.set_config('name', ...)` (not `SET ROLE`, `SET SESSION
/// AUTHORIZATION` and the other forms without a parameter name).
pub(super) fn session_setting(sql: &str) -> Option<String> {
    let body = uncommented(sql);
    let body = body.trim();
    let upper = body.to_ascii_uppercase();
    if let Some(at) = upper.find("SET_CONFIG(") {
        let rest = body[at + "SET_CONFIG(".len()..].trim_start();
        let rest = rest.strip_prefix('\'')?;
        return Some(rest[..rest.find('\'')?].to_ascii_lowercase());
    }
    let mut words = body.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("SET") {
        return None;
    }
    let mut name = words.next()?;
    if name.eq_ignore_ascii_case("SESSION") || name.eq_ignore_ascii_case("LOCAL") {
        name = words.next()?;
    }
    let (name, rest) = match name.split_once('=') {
        Some((name, _)) => (name, "="),
        None => (name, words.next().unwrap_or("")),
    };
    if !(rest.starts_with('=') || rest.eq_ignore_ascii_case("TO")) || name.is_empty() {
        return None;
    }
    Some(
        match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
            Some(quoted) => quoted.to_string(),
            None => name.to_ascii_lowercase(),
        },
    )
}

/// Whether the server has configuration parameter `name` (asked of `pg_settings`).
async fn setting_exists(session: &Session, name: &str) -> Result<bool, RestoreError> {
    Ok(session
        .query_typed_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = $1)",
            &[(&name, tokio_postgres::types::Type::TEXT)],
        )
        .await
        .map_err(PgError::from)?
        .get(0))
}

/// A statement without its leading `--` comment lines.
pub(super) fn uncommented(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ")
}

pub(super) fn plain_kind(sql: &str) -> PlainKind {
    let body = uncommented(sql);
    let upper = body.trim().to_ascii_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        ["SET", ..] | ["RESET", ..] => PlainKind::Session,
        ["SELECT", f, ..]
            if f.starts_with("PG_CATALOG.SET_CONFIG") || f.starts_with("SET_CONFIG") =>
        {
            PlainKind::Session
        }
        ["BEGIN"] | ["START", "TRANSACTION", ..] | ["COMMIT"] | ["END"] | ["ROLLBACK"] => {
            PlainKind::Transaction
        }
        ["CREATE", "DATABASE", ..] | ["VACUUM", ..] | ["ALTER", "SYSTEM", ..] => PlainKind::Outside,
        ["CREATE", "INDEX", "CONCURRENTLY", ..]
        | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
        | ["REINDEX", ..] => PlainKind::Outside,
        ["ALTER", ..] if upper.contains(" OWNER TO ") => PlainKind::Owner,
        ["GRANT", ..] | ["REVOKE", ..] | ["ALTER", "DEFAULT", "PRIVILEGES", ..] => PlainKind::Grant,
        _ => PlainKind::Plain,
    }
}

/// Restores a plain SQL dump, statement by statement on one connection (a script has no
/// dependency information to parallelise on). Each statement commits with its progress row,
/// as archive items do, so an interrupted run resumes; session settings run every time.
pub(super) async fn run_plain(
    store: &Store,
    url: &ObjectUrl,
    target: &PgConfig,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    let archive_id = url.to_string();
    let mut main = session(target, BASE_SETUP).await?;
    if options.single_transaction {
        return Err(RestoreError::Failed(
            "--single-transaction applies to archives; a plain dump runs statement by statement"
                .into(),
        ));
    }
    let mut done = prepare(&main, &archive_id, options.clean, false).await?;
    // Every database the script worked in (it may `\connect` to others), to finish at the end.
    // Each database's session with the event-trigger statements held back for its end.
    let mut finished: Vec<(Session, Vec<String>)> = Vec::new();
    let mut deferred: Vec<String> = Vec::new();
    // The dump's `SET SESSION AUTHORIZATION` in force, if any.
    let mut authorized: Option<String> = None;
    let state = State {
        archive_id: archive_id.clone(),
        options: options.clone(),
        progress: progress.clone(),
        total: 0,
        blob_groups: HashMap::new(),
        created_tables: HashSet::new(),
        tablespaces: HashSet::new(),
        reconnect: None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<plain::Piece, RestoreError>>(8);
    let reader = source::plain_reader(store, url).await?;
    let errors = tx.clone();
    let splitter = tokio::task::spawn_blocking(move || {
        let result = plain::split(std::io::BufReader::with_capacity(256 * 1024, reader), |p| {
            tx.blocking_send(Ok(p)).is_ok()
        });
        if let Err(e) = result {
            let _ = errors.blocking_send(Err(RestoreError::Failed(e.to_string())));
        }
    });
    let mut outcome = Outcome {
        already_done: done.len(),
        ..Outcome::default()
    };
    let mut ordinal = 0i32;
    let mut block: Option<String> = None;
    let fail = |item: String, reason: String, outcome: &Outcome| RestoreError::ItemFailed {
        item,
        reason,
        applied: outcome.applied + outcome.already_done,
        total: outcome.items,
    };
    while let Some(piece) = rx.recv().await {
        match piece? {
            plain::Piece::Sql(sql) => {
                let kind = plain_kind(&sql);
                // The dump's own transaction blocks (pg_dump writes large objects inside one:
                // `lo_open` returns a descriptor that lives only until COMMIT) run as one item.
                if kind == PlainKind::Transaction {
                    let upper = uncommented(&sql)
                        .trim()
                        .trim_end_matches(';')
                        .trim()
                        .to_ascii_uppercase();
                    if upper == "BEGIN" || upper.starts_with("START TRANSACTION") {
                        block = Some(String::new());
                        continue;
                    }
                    if let Some(body) = block.take() {
                        if upper == "ROLLBACK" {
                            continue;
                        }
                        ordinal += 1;
                        outcome.items += 1;
                        if done.contains(&ordinal) {
                            continue;
                        }
                        let record =
                            restorers_record(&archive_id, ordinal, None, authorized.as_deref());
                        if let Err(e) = main
                            .batch_execute(&format!("BEGIN;\n{body}\n;{record}; COMMIT;"))
                            .await
                        {
                            let _ = main.batch_execute("ROLLBACK").await;
                            return Err(fail(
                                statement_label(&body),
                                PgError::from(e).to_string(),
                                &outcome,
                            ));
                        }
                        outcome.applied += 1;
                        state.report(outcome.applied + outcome.already_done);
                    }
                    continue;
                }
                if let Some(body) = block.as_mut() {
                    body.push_str(&sql);
                    body.push('\n');
                    continue;
                }
                if kind == PlainKind::Session {
                    // A dump may run statements as another role (a grant made by someone
                    // other than the owner). Without owners or privileges that is not wanted
                    // (and needs a superuser); otherwise progress rows are written as the
                    // restoring role, between the two.
                    let upper = uncommented(&sql).trim().to_ascii_uppercase();
                    if upper.starts_with("SET SESSION AUTHORIZATION")
                        || upper.starts_with("RESET SESSION AUTHORIZATION")
                    {
                        if options.no_owner || options.no_privileges {
                            continue;
                        }
                        authorized = upper.starts_with("SET").then(|| sql.clone());
                    }
                    if let Err(e) = main.batch_execute(&sql).await {
                        // A setting newer than the server (pg_dump 18 writes `SET
                        // transaction_timeout`, which PostgreSQL 16 and older do not know) only
                        // shapes the dump's own session: psql reports it and goes on, as here.
                        // Told by SQLSTATE and by asking the server which settings it has,
                        // never by the message (translated under lc_messages).
                        if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT)
                            && let Some(name) = session_setting(&sql)
                            && !setting_exists(&main, &name).await?
                        {
                            tracing::warn!(statement = %statement_label(&sql), setting = %name, "the server does not know this setting; skipped");
                            continue;
                        }
                        return Err(fail(
                            statement_label(&sql),
                            PgError::from(e).to_string(),
                            &outcome,
                        ));
                    }
                    continue;
                }
                if kind == PlainKind::Transaction
                    || (kind == PlainKind::Owner && options.no_owner)
                    || (kind == PlainKind::Grant && options.no_privileges)
                {
                    continue;
                }
                // Event triggers come last, after ferry's own statements (see `finish`).
                let upper = uncommented(&sql).trim().to_ascii_uppercase();
                if [
                    "CREATE EVENT TRIGGER",
                    "ALTER EVENT TRIGGER",
                    "COMMENT ON EVENT TRIGGER",
                ]
                .iter()
                .any(|p| upper.starts_with(p))
                {
                    deferred.push(sql);
                    continue;
                }
                ordinal += 1;
                outcome.items += 1;
                if done.contains(&ordinal) {
                    continue;
                }
                let record = restorers_record(&archive_id, ordinal, None, authorized.as_deref());
                let result = if kind == PlainKind::Outside {
                    match main.batch_execute(&sql).await {
                        Ok(()) => main.batch_execute(&record).await,
                        Err(e) => Err(e),
                    }
                } else {
                    main.batch_execute(&format!("BEGIN;\n{sql}\n;{record}; COMMIT;"))
                        .await
                };
                if let Err(e) = result {
                    let _ = main.batch_execute("ROLLBACK").await;
                    return Err(fail(
                        statement_label(&sql),
                        PgError::from(e).to_string(),
                        &outcome,
                    ));
                }
                outcome.applied += 1;
                state.report(outcome.applied + outcome.already_done);
            }
            plain::Piece::Copy(statement) => {
                if block.is_some() {
                    return Err(RestoreError::Failed(format!(
                        "{}: a COPY inside the dump's own BEGIN ... COMMIT block is not supported",
                        statement_label(&statement)
                    )));
                }
                ordinal += 1;
                outcome.items += 1;
                let skip = done.contains(&ordinal);
                let rows = copy_plain(
                    &main,
                    &statement,
                    &mut rx,
                    skip,
                    &archive_id,
                    ordinal,
                    authorized.as_deref(),
                )
                .await
                .map_err(|reason| {
                    fail(statement_label(&statement), reason.to_string(), &outcome)
                })?;
                if !skip {
                    outcome.applied += 1;
                    outcome.tables += 1;
                    outcome.rows += rows;
                }
            }
            plain::Piece::Connect(database) => {
                // `\connect` (pg_dump --create writes one after CREATE DATABASE): go on in that
                // database of the same server, with its own progress.
                if block.is_some() {
                    return Err(RestoreError::Failed(
                        "\\connect inside the dump's own BEGIN ... COMMIT block".into(),
                    ));
                }
                let next = session(&target.with_dbname(&database), BASE_SETUP).await?;
                done = prepare(&next, &archive_id, options.clean, false).await?;
                authorized = None;
                finished.push((
                    std::mem::replace(&mut main, next),
                    std::mem::take(&mut deferred),
                ));
            }
            plain::Piece::Rows(_) | plain::Piece::EndCopy => {
                return Err(RestoreError::Failed("COPY rows outside a COPY".into()));
            }
        }
    }
    splitter
        .await
        .map_err(|e| RestoreError::Failed(format!("reading the dump: {e}")))?;
    finished.push((main, deferred));
    for (session, triggers) in &finished {
        // As the restoring role again, whatever role the dump ended as.
        session.batch_execute("RESET SESSION AUTHORIZATION").await?;
        // Statistics are a courtesy (see `restore_items`).
        if let Err(e) = session.batch_execute("ANALYZE").await {
            tracing::warn!(error = %PgError::from(e), "ANALYZE failed; left to autovacuum");
        }
        let sql = format!(
            "BEGIN;\nDROP SCHEMA IF EXISTS ferry_restore CASCADE;\n{}\nCOMMIT;",
            triggers.join("\n;\n")
        );
        if let Err(e) = session.batch_execute(&sql).await {
            let _ = session.batch_execute("ROLLBACK").await;
            let what = if triggers.is_empty() {
                "removing the progress schema"
            } else {
                "the event triggers (created last, with the progress schema's removal)"
            };
            return Err(fail(what.into(), PgError::from(e).to_string(), &outcome));
        }
    }
    Ok(outcome)
}

/// The progress row of statement `ordinal`, written as the restoring role whatever role the
/// dump runs as (`SET SESSION AUTHORIZATION` in force), which it then runs as again.
fn restorers_record(
    archive_id: &str,
    ordinal: i32,
    rows: Option<u64>,
    authorized: Option<&str>,
) -> String {
    let record = progress_record(archive_id, ordinal, rows);
    match authorized {
        Some(authorization) => format!("RESET SESSION AUTHORIZATION; {record}; {authorization}"),
        None => record,
    }
}

/// The first line of a statement, for error messages. A statement that carries rows (a dump
/// made with `--inserts`, a seed script's `INSERT ... VALUES`) is named by its first three
/// words (`INSERT INTO public.users`), unless values may be shown (`FERRY_ERROR_VALUES`).
pub(super) fn statement_label(sql: &str) -> String {
    statement_label_with(sql, crate::pg::values_shown())
}

fn statement_label_with(sql: &str, values: bool) -> String {
    let line = sql
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--"))
        .unwrap_or("")
        .trim();
    let verb = line
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    if !values
        && matches!(
            verb.as_str(),
            "INSERT" | "UPDATE" | "DELETE" | "MERGE" | "VALUES" | "SELECT" | "WITH"
        )
    {
        let words: Vec<&str> = line.split_whitespace().take(3).collect();
        let head: String = words.join(" ").chars().take(80).collect();
        return format!("statement {head:?} (the rest {})", crate::pg::WITHHELD);
    }
    let short: String = line.chars().take(80).collect();
    format!("statement {short:?}")
}

/// One COPY of a plain dump: its rows go to the server (or are skipped when an earlier run
/// committed them), and the load commits with its progress row.
pub(super) async fn copy_plain(
    session: &Session,
    statement: &str,
    rx: &mut tokio::sync::mpsc::Receiver<Result<plain::Piece, RestoreError>>,
    skip: bool,
    archive_id: &str,
    ordinal: i32,
    authorized: Option<&str>,
) -> Result<u64, RestoreError> {
    if skip {
        while let Some(piece) = rx.recv().await {
            match piece? {
                plain::Piece::EndCopy => return Ok(0),
                plain::Piece::Rows(_) => {}
                other => {
                    return Err(RestoreError::Failed(format!(
                        "unexpected {other:?} inside COPY data"
                    )));
                }
            }
        }
        return Err(RestoreError::Failed(
            "the dump ended inside COPY data".into(),
        ));
    }
    session.batch_execute("BEGIN").await?;
    let result = async {
        let sink = session.copy_in::<_, bytes::Bytes>(statement).await?;
        pin_mut!(sink);
        loop {
            match rx.recv().await {
                Some(Ok(plain::Piece::Rows(rows))) => sink.send(bytes::Bytes::from(rows)).await?,
                Some(Ok(plain::Piece::EndCopy)) => break,
                Some(Ok(other)) => {
                    return Err(RestoreError::Failed(format!(
                        "unexpected {other:?} inside COPY data"
                    )));
                }
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(RestoreError::Failed(
                        "the dump ended inside COPY data".into(),
                    ));
                }
            }
        }
        let rows = sink.finish().await?;
        let record = restorers_record(archive_id, ordinal, Some(rows), authorized);
        session.batch_execute(&format!("{record}; COMMIT;")).await?;
        Ok(rows)
    }
    .await;
    if result.is_err() && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::statement_label_with;

    #[test]
    fn session_statements_name_their_setting() {
        use super::session_setting;
        for (sql, want) in [
            ("SET transaction_timeout = 0;", Some("transaction_timeout")),
            (
                "-- c\nSET Statement_Timeout TO 0;",
                Some("statement_timeout"),
            ),
            ("SET SESSION lock_timeout='1s';", Some("lock_timeout")),
            (
                "SELECT pg_catalog.set_config('search_path', '', false);",
                Some("search_path"),
            ),
            ("SET ROLE nobody;", None),
            ("SET SESSION AUTHORIZATION nobody;", None),
            ("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;", None),
        ] {
            assert_eq!(session_setting(sql).as_deref(), want, "{sql}");
        }
    }

    /// A failing `INSERT` of a `--inserts` dump is named without its values.
    #[test]
    fn statements_carrying_rows_are_named_without_their_values() {
        let insert = "INSERT INTO public.users VALUES (1, 'ada@example.com', 'hunter2');";
        let label = statement_label_with(insert, false);
        assert!(
            label.starts_with("statement \"INSERT INTO public.users\""),
            "{label}"
        );
        assert!(!label.contains("hunter2"), "{label}");
        assert!(statement_label_with(insert, true).contains("hunter2"));
        let create = "CREATE TABLE public.users (id int);";
        assert_eq!(
            statement_label_with(create, false),
            format!("statement {create:?}")
        );
    }
}
