//! The dependency scheduler: the data and post-data items over `--jobs` connections, each
//! started when what it depends on is done; and the `ANALYZE` items that follow each table.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::sync::mpsc::UnboundedSender;

use crate::{
    archive::{Section, TocEntry},
    pg::{PgConfig, Session},
};

use super::item::{apply, copy_table_name, load, load_blobs, truncate_statement};
use super::progress::{State, item_failed, label, session};
use super::shared_load::Joiners;
use super::{RestoreError, source};

/// `ANALYZE` items (negative ids, not recorded as progress): one per table whose data is
/// loaded in this pass, after its data and the indexes and constraints on it.
pub(super) fn analyze_items(phase: &[&TocEntry], all: &[TocEntry]) -> Vec<TocEntry> {
    let mut out = Vec::new();
    for e in phase.iter().filter(|e| e.had_dumper) {
        let Some(statement) = e.copy_stmt.as_deref() else {
            continue;
        };
        let Some(table) = copy_table_name(statement) else {
            continue;
        };
        let table_entries: Vec<i32> = e.dependencies.clone();
        let mut item = TocEntry::new(
            -(out.len() as i32) - 1,
            "ANALYZE",
            &e.tag,
            Section::PostData,
        );
        item.namespace = e.namespace.clone();
        item.defn = Some(format!("ANALYZE {table};\n"));
        item.dependencies.push(e.dump_id);
        for other in all.iter().filter(|o| {
            matches!(o.desc.as_str(), "INDEX" | "CONSTRAINT")
                && o.dependencies.iter().any(|d| table_entries.contains(d))
        }) {
            item.dependencies.push(other.dump_id);
        }
        out.push(item);
    }
    out
}

/// Data and post-data items over `jobs` connections: each starts when the items it depends on
/// (and, for anything that depends on a table, that table's data) are done.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run_parallel(
    target: &PgConfig,
    setup: &str,
    archive: &source::Archive,
    items: &[&TocEntry],
    all: &[TocEntry],
    state: &State,
    applied_before: usize,
    finished_tx: tokio::sync::mpsc::UnboundedSender<i32>,
) -> Result<(u64, usize, usize), RestoreError> {
    let in_phase: HashMap<i32, usize> = items
        .iter()
        .enumerate()
        .map(|(i, e)| (e.dump_id, i))
        .collect();
    // A table's data entry, by the table entry's dump id.
    let data_of: HashMap<i32, i32> = all
        .iter()
        .filter(|e| e.had_dumper)
        .filter_map(|e| {
            let table = all.iter().find(|t| {
                t.desc == "TABLE"
                    && t.tag == e.tag
                    && t.namespace == e.namespace
                    && e.dependencies.contains(&t.dump_id)
            })?;
            Some((table.dump_id, e.dump_id))
        })
        .collect();
    let mut waits: Vec<BTreeSet<usize>> = items
        .iter()
        .map(|e| {
            let mut w = BTreeSet::new();
            for d in &e.dependencies {
                if let Some(&i) = in_phase.get(d) {
                    w.insert(i);
                }
                if !e.had_dumper
                    && let Some(data) = data_of.get(d)
                    && let Some(&i) = in_phase.get(data)
                {
                    w.insert(i);
                }
            }
            w
        })
        .collect();
    for (i, w) in waits.iter_mut().enumerate() {
        w.remove(&i);
    }
    let n = items.len();
    let workers = state.options.jobs.max(1).min(n.max(1));
    let mut sessions = Vec::with_capacity(workers);
    for _ in 0..workers {
        sessions.push(session(target, setup).await?);
    }
    let mut idle: Vec<Session> = sessions;
    let mut started = vec![false; n];
    let mut finished = vec![false; n];
    let mut running = futures::stream::FuturesUnordered::new();
    // Running loads that connections with nothing else to do may join: where to hand them,
    // whether the load still takes them, and how many it was given.
    let mut joinable: HashMap<usize, (UnboundedSender<Session>, Arc<AtomicBool>, usize)> =
        HashMap::new();
    let (mut rows, mut tables, mut count) = (0u64, 0usize, 0usize);
    let mut failure: Option<RestoreError> = None;
    loop {
        if failure.is_none() {
            // Start what is ready, in archive order, while connections are free.
            for i in 0..n {
                if idle.is_empty() {
                    break;
                }
                if started[i] || !waits[i].iter().all(|&w| finished[w]) {
                    continue;
                }
                started[i] = true;
                let s = idle.pop().expect("checked");
                let e = items[i];
                let mut joiners =
                    (e.had_dumper && e.desc != "BLOBS" && truncate_statement(e, state).is_some())
                        .then(|| {
                            let (tx, offered) = tokio::sync::mpsc::unbounded_channel();
                            let open = Arc::new(AtomicBool::new(true));
                            joinable.insert(i, (tx, open.clone(), 0));
                            Joiners {
                                offered,
                                open,
                                done_with: Vec::new(),
                            }
                        });
                running.push(async move {
                    let result = if e.desc == "BLOBS" {
                        load_blobs(&s, e, archive, state).await.map(|_| None)
                    } else if e.had_dumper {
                        load(&s, e, archive, state, joiners.as_mut())
                            .await
                            .map(Some)
                    } else {
                        apply(&s, e, state).await.map(|()| None)
                    };
                    let mut back = joiners.map(Joiners::give_back).unwrap_or_default();
                    back.push(s);
                    (i, back, result)
                });
            }
            // Nothing else is ready: free connections join the running loads, fewest helped
            // first.
            while let Some(s) = idle.pop() {
                let Some((tx, open, given)) = joinable
                    .values_mut()
                    .filter(|(_, open, _)| open.load(Ordering::Relaxed))
                    .min_by_key(|(_, _, given)| *given)
                else {
                    idle.push(s);
                    break;
                };
                match tx.send(s) {
                    Ok(()) => *given += 1,
                    Err(refused) => {
                        open.store(false, Ordering::Relaxed);
                        idle.push(refused.0);
                    }
                }
            }
        }
        let Some((i, back, result)) = futures::StreamExt::next(&mut running).await else {
            break;
        };
        finished[i] = true;
        joinable.remove(&i);
        match result {
            Ok(loaded) => {
                let _ = finished_tx.send(items[i].dump_id);
                if let Some(n) = loaded {
                    rows += n;
                    tables += 1;
                }
                if items[i].dump_id > 0 {
                    count += 1;
                    state.report(applied_before + count);
                }
                for s in back {
                    if !s.is_closed() {
                        idle.push(s);
                    } else {
                        match session(target, setup).await {
                            Ok(fresh) => idle.push(fresh),
                            Err(e) => failure = failure.or(Some(e.into())),
                        }
                    }
                }
            }
            Err(reason) => {
                failure = failure.or(Some(item_failed(
                    items[i],
                    reason,
                    applied_before + count,
                    state.total,
                )));
            }
        }
        if failure.is_none() && finished.iter().all(|f| *f) {
            break;
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if let Some(i) = (0..n).find(|&i| !finished[i]) {
        return Err(RestoreError::Failed(format!(
            "{} waits on an item that never ran (a dependency cycle in the archive)",
            label(items[i])
        )));
    }
    Ok((rows, tables, count))
}
