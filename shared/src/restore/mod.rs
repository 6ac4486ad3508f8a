//! Restore: a pg_dump archive (ferry's or pg_dump's, custom or directory format) into a
//! database, without a `pg_restore` binary.
//!
//! Three passes, as pg_restore makes them: the definitions before data, one by one in the
//! archive's order; then table data and everything after data (indexes, constraints, triggers,
//! ...) over `--jobs` connections, each item as soon as what it depends on is done (an index
//! waits for its table's rows); foreign keys one at a time after the rest, so that two never
//! deadlock on the tables they share; then grants and materialized view refreshes, and ANALYZE.
//!
//! Every item runs in its own transaction together with a row in `ferry_restore.progress` in
//! the target, so a restore that stops anywhere (connection killed, server restarted, Lambda
//! deadline) and runs again with the same archive skips what was committed and redoes the rest:
//! a table's COPY and its progress row commit together, so a half-loaded table is rolled back,
//! never left half full. The progress schema is dropped when the restore completes.

mod constraints;
mod contents;
mod item;
mod options;
mod plain;
mod progress;
mod schedule;
mod script;
mod shared_load;
mod source;

pub use contents::{ArchivedTable, Contents, contents};
pub use options::{Options, listing, parse_use_list};

use std::collections::{HashMap, HashSet};

use crate::{
    archive::{ArchiveError, Section, TocEntry, plain::owner_statement},
    pg::{PgConfig, PgError, Session},
    progress::SharedProgress,
    store::{ObjectUrl, Store, StoreError},
};
use constraints::{SplitConstraint, split_unique_constraints};
use item::{apply, load, load_blobs, target_tablespaces};
use options::{SESSION_ENTRIES, restored};
use progress::{BASE_SETUP, State, item_failed, label, prepare, session};
use schedule::{analyze_items, run_parallel};
use script::run_plain;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Postgres(#[from] PgError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The target holds objects already and this is not a resumed restore of the same archive.
    #[error(
        "the target database is not empty ({0}); restore into an empty database (ferry does not drop what is there)"
    )]
    NotEmpty(String),
    /// An item of the archive failed; nothing after it was applied.
    #[error(
        "restoring {item} failed: {reason} ({applied} of {total} items applied; run the same restore again to continue)"
    )]
    ItemFailed {
        item: String,
        reason: String,
        applied: usize,
        total: usize,
    },
    /// A use-list (an edited `--list`) that is not one.
    #[error("{0}")]
    BadUseList(String),
    /// A COPY sharing a table's load stopped because another one failed.
    #[error("another connection loading this table failed")]
    AnotherFailed,
    #[error("{0}")]
    Failed(String),
}

impl From<tokio_postgres::Error> for RestoreError {
    fn from(e: tokio_postgres::Error) -> RestoreError {
        RestoreError::Postgres(e.into())
    }
}

/// A drop statement made safe when the object is missing (pg_restore's `--if-exists`).
fn if_exists(drop: &str) -> String {
    let drop = drop.trim_end();
    if let Some(rest) = drop.strip_prefix("ALTER TABLE ") {
        let rest = rest.replacen(" DROP CONSTRAINT ", " DROP CONSTRAINT IF EXISTS ", 1);
        return format!("ALTER TABLE IF EXISTS {rest}");
    }
    let Some(rest) = drop.strip_prefix("DROP ") else {
        return drop.to_string();
    };
    // The kind is the run of upper-case keywords; names are lower case or quoted.
    let mut kind_end = 0;
    for word in rest.split(' ') {
        if !word.is_empty() && word.chars().all(|c| c.is_ascii_uppercase()) {
            kind_end += word.len() + 1;
        } else {
            break;
        }
    }
    format!("DROP {}IF EXISTS {}", &rest[..kind_end], &rest[kind_end..])
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub items: usize,
    pub applied: usize,
    /// Items found already done by an earlier, interrupted run.
    pub already_done: usize,
    pub tables: usize,
    pub rows: u64,
}

/// Restores the archive at `url` into `target`.
pub async fn run(
    store: &Store,
    url: &ObjectUrl,
    target: &PgConfig,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    if source::is_plain(store, url).await? {
        return run_plain(store, url, target, options, progress).await;
    }
    let archive = source::Archive::open(store, url).await?;
    let archive_id = url.to_string();
    let mut setup = String::from(BASE_SETUP);
    if options.jobs > 1 && !options.single_transaction {
        // The connections are the restore's parallelism: index builds that start parallel
        // workers of their own beside the other connections' work oversubscribe the server
        // (measured on 2 cores: slower at both benchmark sizes; see the README).
        setup.push_str("SET max_parallel_maintenance_workers = 0; ");
    }
    for e in &archive.entries {
        if SESSION_ENTRIES.contains(&e.desc.as_str())
            && let Some(defn) = &e.defn
        {
            setup.push_str(defn);
            setup.push(' ');
        }
    }
    let main = session(target, &setup).await?;
    if options.clean {
        clean(&main, &archive.entries, options).await;
    }
    let done = prepare(
        &main,
        &archive_id,
        options.clean,
        options.single_transaction,
    )
    .await?;
    if options.single_transaction {
        main.batch_execute("BEGIN").await?;
    }
    let result = restore_items(
        &main,
        target,
        &setup,
        &archive,
        &archive_id,
        &done,
        options,
        progress,
    )
    .await;
    if options.single_transaction {
        return match result {
            Ok(outcome) => {
                main.batch_execute("COMMIT").await?;
                Ok(outcome)
            }
            Err(e) => {
                let _ = main.batch_execute("ROLLBACK").await;
                Err(RestoreError::Failed(format!(
                    "{e}; the single transaction was rolled back: nothing was restored"
                )))
            }
        };
    }
    result
}

/// The three passes over the archive's items.
#[allow(clippy::too_many_arguments)]
async fn restore_items(
    main: &Session,
    target: &PgConfig,
    setup: &str,
    archive: &source::Archive,
    archive_id: &str,
    done: &HashSet<i32>,
    options: &Options,
    progress: &SharedProgress,
) -> Result<Outcome, RestoreError> {
    let items: Vec<&TocEntry> = archive
        .entries
        .iter()
        .filter(|e| restored(e, options))
        .collect();
    let total = items.len();
    let mut outcome = Outcome {
        items: total,
        already_done: items.iter().filter(|e| done.contains(&e.dump_id)).count(),
        ..Outcome::default()
    };
    let state = State {
        archive_id: archive_id.to_string(),
        options: options.clone(),
        progress: progress.clone(),
        total,
        blob_groups: archive
            .entries
            .iter()
            .filter(|e| e.desc == "BLOB METADATA")
            .map(|e| {
                let oids = crate::archive::plain::blob_group_oids(e)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                (e.dump_id, oids)
            })
            .collect(),
        // The tables this restore creates, or an earlier run of it created: a rerun with other
        // options (`--section data` after a cut run) still empties what that run left.
        created_tables: archive
            .entries
            .iter()
            .filter(|e| e.desc == "TABLE" && (restored(e, options) || done.contains(&e.dump_id)))
            .map(|e| (e.namespace.clone().unwrap_or_default(), e.tag.clone()))
            .collect(),
        tablespaces: target_tablespaces(main, &items)
            .await
            .map_err(RestoreError::from)?,
        reconnect: Some((target.clone(), setup.to_string())),
    };

    // Pass 1: definitions before data, in order.
    let mut applied = outcome.already_done;
    let pre_data = items
        .iter()
        .filter(|e| e.section == Section::PreData && !done.contains(&e.dump_id));
    applied = apply_in_order(main, pre_data, &state, applied).await?;

    // Pass 2: data and post-data, in parallel as dependencies allow; foreign keys last.
    let phase: Vec<&TocEntry> = items
        .iter()
        .copied()
        .filter(|e| {
            matches!(e.section, Section::Data | Section::PostData)
                && e.desc != "MATERIALIZED VIEW DATA"
                && e.desc != "FK CONSTRAINT"
                && !after_everything(e)
                && !done.contains(&e.dump_id)
        })
        .collect();
    // Loaded tables are analyzed: in one transaction, after their rows and indexes; otherwise
    // on a connection of their own while the foreign keys and the last pass run on the main
    // one, off the critical path (pg_restore leaves ANALYZE to the user).
    let analyze = analyze_items(&phase, &archive.entries);
    // In parallel, each primary key and unique constraint is built as a unique index first:
    // that needs only the lock other index builds on the table take, so they run side by side.
    let split = if options.single_transaction || options.jobs < 2 {
        Vec::new()
    } else {
        split_unique_constraints(&phase, &archive.entries, -(analyze.len() as i32) - 1)
    };
    let split_at: HashMap<i32, &SplitConstraint> =
        split.iter().map(|s| (s.attach.dump_id, s)).collect();
    let mut phase: Vec<&TocEntry> = phase
        .into_iter()
        .flat_map(|e| match split_at.get(&e.dump_id) {
            Some(s) => vec![&s.build, &s.attach],
            None => vec![e],
        })
        .collect();
    if options.single_transaction {
        phase.extend(analyze.iter());
    }
    // Each finished item of the parallel pass is announced, so that a table is analyzed as soon
    // as its rows and indexes are in, while other tables still load or index.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    let main_work = async {
        let (rows, tables, count) = if options.single_transaction {
            drop(finished_tx);
            let (mut rows, mut tables, mut count) = (0, 0, 0);
            for e in &phase {
                let result = if e.desc == "BLOBS" {
                    load_blobs(main, e, archive, &state).await.map(|_| None)
                } else if e.had_dumper {
                    load(main, e, archive, &state, None).await.map(Some)
                } else {
                    apply(main, e, &state).await.map(|()| None)
                };
                let loaded =
                    result.map_err(|reason| item_failed(e, reason, applied + count, total))?;
                if let Some(n) = loaded {
                    rows += n;
                    tables += 1;
                }
                if e.dump_id > 0 {
                    count += 1;
                }
            }
            (rows, tables, count)
        } else {
            run_parallel(
                target,
                setup,
                archive,
                &phase,
                &archive.entries,
                &state,
                applied,
                finished_tx,
            )
            .await?
        };
        let applied = applied + count;
        let foreign_keys = items
            .iter()
            .filter(|e| e.desc == "FK CONSTRAINT" && !done.contains(&e.dump_id));
        let applied = apply_in_order(main, foreign_keys, &state, applied).await?;
        // Pass 3: grants, then materialized views (over the data now in place).
        let last = items.iter().filter(|e| {
            (e.section == Section::None || e.desc == "MATERIALIZED VIEW DATA")
                && !after_everything(e)
                && !done.contains(&e.dump_id)
        });
        let applied = apply_in_order(main, last, &state, applied).await?;
        // Pass 4: event triggers, which would otherwise fire on the restore's own statements:
        // the last ones, the progress schema's removal, come first, in the same transaction
        // (an interrupted run resumes from the progress rows, as after any other item).
        let triggers: Vec<&TocEntry> = items
            .iter()
            .copied()
            .filter(|e| after_everything(e) && !done.contains(&e.dump_id))
            .collect();
        let applied = if options.single_transaction {
            apply_in_order(main, triggers.iter(), &state, applied).await?
        } else {
            applied // after the analyzer is done too (below)
        };
        Ok::<_, RestoreError>((rows, tables, applied, triggers))
    };
    let analyzing = async {
        if options.single_transaction || analyze.is_empty() {
            return Ok(());
        }
        let in_phase: HashSet<i32> = phase.iter().map(|e| e.dump_id).collect();
        let mut waiting: Vec<(&TocEntry, HashSet<i32>)> = analyze
            .iter()
            .map(|a| {
                let deps = a
                    .dependencies
                    .iter()
                    .copied()
                    .filter(|d| in_phase.contains(d))
                    .collect();
                (a, deps)
            })
            .collect();
        let analyzer = session(target, setup).await?;
        let mut finished = HashSet::new();
        let mut all_announced = false;
        while !waiting.is_empty() {
            if let Some(at) = waiting
                .iter()
                .position(|(_, deps)| all_announced || deps.is_subset(&finished))
            {
                // Statistics are a courtesy (pg_restore takes none): a table whose ANALYZE
                // fails (a parent sampling a foreign child whose server is out of reach) is
                // left for autovacuum, and the restore goes on.
                let (e, _) = waiting.remove(at);
                if let Err(reason) = apply(&analyzer, e, &state).await {
                    tracing::warn!(item = %label(e), %reason, "ANALYZE failed; left to autovacuum");
                }
                continue;
            }
            match finished_rx.recv().await {
                Some(id) => {
                    finished.insert(id);
                }
                // The parallel pass ended: it succeeded (everything is in) or it failed (and
                // that failure is reported; nothing is left worth analyzing).
                None if in_phase.is_subset(&finished) => all_announced = true,
                None => return Ok(()),
            }
        }
        Ok::<(), RestoreError>(())
    };
    let (main_work, analyzed) = tokio::join!(main_work, analyzing);
    let (rows, tables, mut applied, triggers) = main_work?;
    analyzed?;
    if !options.single_transaction {
        applied = finish(main, &triggers, &state, applied).await?;
    }
    outcome.rows += rows;
    outcome.tables += tables;
    outcome.applied = applied - outcome.already_done;
    Ok(outcome)
}

/// Ends a restore: drops the progress schema, then creates the event triggers (`triggers`),
/// in one transaction, so that no restored event trigger fires on ferry's own statements.
async fn finish(
    main: &Session,
    triggers: &[&TocEntry],
    state: &State,
    applied: usize,
) -> Result<usize, RestoreError> {
    let mut sql = String::from("BEGIN;\nDROP SCHEMA ferry_restore CASCADE;\n");
    for e in triggers {
        sql.push_str(e.defn.as_deref().unwrap_or(""));
        sql.push('\n');
        if !state.options.no_owner
            && let Some(owner) = owner_statement(e)
        {
            sql.push_str(&owner);
        }
    }
    sql.push_str("COMMIT;");
    if let Err(err) = main.batch_execute(&sql).await {
        let _ = main.batch_execute("ROLLBACK").await;
        return Err(RestoreError::Failed(format!(
            "creating the event triggers (after everything else) failed: {}",
            PgError::from(err)
        )));
    }
    Ok(applied + triggers.len())
}

/// Event triggers and their comments: restored after everything else (pg_restore's last
/// pass), so that none fires on the restore's own statements.
fn after_everything(e: &TocEntry) -> bool {
    e.desc == "EVENT TRIGGER" || (e.desc == "COMMENT" && e.tag.starts_with("EVENT TRIGGER "))
}

/// Applies `entries` one after the other on `session`; returns the count of items applied so
/// far, or the first failure naming its item.
async fn apply_in_order<'a>(
    session: &Session,
    entries: impl Iterator<Item = &'a &'a TocEntry>,
    state: &State,
    mut applied: usize,
) -> Result<usize, RestoreError> {
    for e in entries {
        apply(session, e, state)
            .await
            .map_err(|reason| item_failed(e, reason, applied, state.total))?;
        applied += 1;
        state.report(applied);
    }
    Ok(applied)
}

/// `--clean`: drops what the archive creates, dependents first, each `IF EXISTS`. As with
/// pg_restore, a drop that fails (something else depends on the object) is reported and the
/// restore goes on; creating the object then fails if it is still there. The database's own
/// entries are not the target's: their `DROP DATABASE` would drop the source's namesake.
async fn clean(main: &Session, entries: &[TocEntry], options: &Options) {
    for e in entries.iter().rev().filter(|e| restored(e, options)) {
        let Some(drop) = e.drop_stmt.as_deref().filter(|d| !d.trim().is_empty()) else {
            continue;
        };
        if let Err(err) = main.batch_execute(&if_exists(drop)).await {
            tracing::warn!(item = %label(e), error = %PgError::from(err), "--clean could not drop");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_gain_if_exists_where_pg_restore_puts_it() {
        assert_eq!(
            if_exists("DROP TABLE public.t;\n"),
            "DROP TABLE IF EXISTS public.t;"
        );
        assert_eq!(
            if_exists("DROP MATERIALIZED VIEW app.\"Odd\";"),
            "DROP MATERIALIZED VIEW IF EXISTS app.\"Odd\";"
        );
        assert_eq!(
            if_exists("ALTER TABLE ONLY public.t DROP CONSTRAINT t_pkey;"),
            "ALTER TABLE IF EXISTS ONLY public.t DROP CONSTRAINT IF EXISTS t_pkey;"
        );
        assert_eq!(
            if_exists("DROP FUNCTION public.f(integer);"),
            "DROP FUNCTION IF EXISTS public.f(integer);"
        );
    }
}
