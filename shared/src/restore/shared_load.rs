//! Shared loads: one table's rows split among the COPYs of several connections, when the
//! parallel pass has connections with nothing else to do.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use futures::{SinkExt, pin_mut};

use crate::{archive::TocEntry, pg::Session};

use super::item::Terminator;
use super::progress::{State, label, progress_row};
use super::{RestoreError, source};

/// Connections the parallel pass hands to a running load while they have nothing else to do;
/// the load hands them back when it ends (see [`load_shared`]).
pub(super) struct Joiners {
    pub(super) offered: tokio::sync::mpsc::UnboundedReceiver<Session>,
    /// Whether the load still takes connections (not all its rows are read).
    pub(super) open: Arc<AtomicBool>,
    pub(super) done_with: Vec<Session>,
}

impl Joiners {
    /// Every connection offered: those that joined, and those that came too late.
    pub(super) fn give_back(mut self) -> Vec<Session> {
        self.open.store(false, Ordering::Relaxed);
        self.offered.close();
        while let Ok(s) = self.offered.try_recv() {
            self.done_with.push(s);
        }
        self.done_with
    }
}

/// The COPY text of `e` in chunks of whole rows (a raw newline ends a row in COPY text), the
/// archive's terminator cut, so that any chunk can go to any connection.
pub(super) fn whole_rows(
    e: &TocEntry,
    archive: &source::Archive,
) -> tokio::sync::mpsc::Receiver<Result<bytes::Bytes, RestoreError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut data = archive.data(e);
    tokio::spawn(async move {
        let mut terminator = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        // The start of a row whose end is in a later chunk.
        let mut partial: Vec<u8> = Vec::new();
        while let Some(chunk) = data.recv().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let Some(out) = terminator.push(&chunk) else {
                continue;
            };
            let (Some(first), Some(last)) =
                (memchr::memchr(b'\n', &out), memchr::memrchr(b'\n', &out))
            else {
                partial.extend_from_slice(&out);
                continue;
            };
            partial.extend_from_slice(&out[..=first]);
            let head = bytes::Bytes::from(std::mem::take(&mut partial));
            if tx.send(Ok(head)).await.is_err() {
                return;
            }
            if last > first && tx.send(Ok(out.slice(first + 1..=last))).await.is_err() {
                return;
            }
            partial.extend_from_slice(&out[last + 1..]);
        }
        partial.extend_from_slice(&terminator.finish());
        if !partial.is_empty() {
            let _ = tx.send(Ok(partial.into())).await;
        }
    });
    rx
}

/// A load that other connections may join. It starts alone, frozen, in the transaction that
/// emptied the table; when a connection joins, what is in commits (frozen) and the rest of the
/// rows is shared, chunk by chunk, among COPYs on every connection taking part, each in its own
/// transaction. The progress row is written when all of them have committed: a run interrupted
/// before that leaves the table unrecorded, and the next run empties and reloads it. A failed
/// load empties the table again where it still can.
pub(super) async fn load_shared(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
    statement: &str,
    truncate: &str,
    joiners: &mut Joiners,
) -> Result<u64, RestoreError> {
    let mut rows = whole_rows(e, archive);
    let alone = async {
        let frozen = format!("{statement} WITH (FREEZE)");
        let sink = session.copy_in::<_, bytes::Bytes>(frozen.as_str()).await?;
        pin_mut!(sink);
        let joined = loop {
            tokio::select! {
                biased;
                Some(s) = joiners.offered.recv() => break Some(s),
                chunk = rows.recv() => match chunk {
                    Some(Ok(b)) => sink.send(b).await?,
                    Some(Err(e)) => return Err(e),
                    None => break None,
                },
            }
        };
        let count = sink.finish().await?;
        let Some(joined) = joined else {
            joiners.open.store(false, Ordering::Relaxed);
            session
                .batch_execute(&format!("{}; COMMIT", progress_row(state, e, count)))
                .await?;
            return Ok((count, None));
        };
        session.batch_execute("COMMIT").await?;
        Ok((count, Some(joined)))
    }
    .await;
    let (mut total, joined) = match alone {
        Ok(r) => r,
        Err(reason) => {
            if !session.is_closed() {
                let _ = session.batch_execute("ROLLBACK").await;
            }
            return Err(reason);
        }
    };
    let Some(joined) = joined else {
        return Ok(total);
    };
    tracing::debug!(table = %label(e), "another connection joins the load");
    let rows = tokio::sync::Mutex::new(rows);
    let stop = AtomicBool::new(false);
    let open = joiners.open.clone();
    let mut parts = futures::stream::FuturesUnordered::new();
    parts.push(joined_part(joined, statement, &rows, &stop, &open));
    let own = copy_part(session, statement, &rows, &stop, &open);
    pin_mut!(own);
    let mut own_done = false;
    let mut failure: Option<RestoreError> = None;
    loop {
        tokio::select! {
            r = &mut own, if !own_done => {
                own_done = true;
                match r {
                    Ok(n) => total += n,
                    Err(reason) => keep_first(&mut failure, reason),
                }
            }
            Some((s, r)) = futures::StreamExt::next(&mut parts), if !parts.is_empty() => {
                joiners.done_with.push(s);
                match r {
                    Ok(n) => total += n,
                    Err(reason) => keep_first(&mut failure, reason),
                }
            }
            Some(s) = joiners.offered.recv(), if open.load(Ordering::Relaxed) && failure.is_none() => {
                parts.push(joined_part(s, statement, &rows, &stop, &open));
            }
            else => break,
        }
    }
    if let Some(reason) = failure {
        // The parts that committed are emptied, through a new session when this one is gone
        // (its connection was what failed); if that fails too, the table keeps them but is not
        // recorded as loaded, and the next run empties it before loading (or stops).
        let mut emptied = !session.is_closed() && session.batch_execute(truncate).await.is_ok();
        if !emptied && let Some((config, setup)) = &state.reconnect {
            emptied = match super::progress::session(config, setup).await {
                Ok(fresh) => fresh.batch_execute(truncate).await.is_ok(),
                Err(_) => false,
            };
        }
        if !emptied {
            tracing::warn!(
                table = %label(e),
                "the failed load left part of the table's rows; the same restore run again empties it"
            );
        }
        return Err(reason);
    }
    session
        .batch_execute(&progress_row(state, e, total))
        .await?;
    Ok(total)
}

/// Keeps the failure that stopped a shared load rather than the stops it caused.
pub(super) fn keep_first(failure: &mut Option<RestoreError>, reason: RestoreError) {
    if failure
        .as_ref()
        .is_none_or(|f| matches!(f, RestoreError::AnotherFailed))
    {
        *failure = Some(reason);
    }
}

/// One COPY of a shared load (see [`load_shared`]): takes chunks of rows until there are no
/// more, then commits; rolls back on failure, and tells the others to stop.
pub(super) async fn copy_part(
    session: &Session,
    statement: &str,
    rows: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Result<bytes::Bytes, RestoreError>>>,
    stop: &AtomicBool,
    open: &AtomicBool,
) -> Result<u64, RestoreError> {
    let result = async {
        session.batch_execute("BEGIN").await?;
        let sink = session.copy_in::<_, bytes::Bytes>(statement).await?;
        pin_mut!(sink);
        loop {
            if stop.load(Ordering::Relaxed) {
                return Err(RestoreError::AnotherFailed);
            }
            let next = rows.lock().await.recv().await;
            match next {
                Some(Ok(b)) => sink.send(b).await?,
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        open.store(false, Ordering::Relaxed);
        let count = sink.finish().await?;
        session.batch_execute("COMMIT").await?;
        Ok(count)
    }
    .await;
    if result.is_err() {
        stop.store(true, Ordering::Relaxed);
        if !session.is_closed() {
            let _ = session.batch_execute("ROLLBACK").await;
        }
    }
    result
}

/// [`copy_part`] on a connection that joined, which it hands back.
pub(super) async fn joined_part(
    session: Session,
    statement: &str,
    rows: &tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Result<bytes::Bytes, RestoreError>>>,
    stop: &AtomicBool,
    open: &AtomicBool,
) -> (Session, Result<u64, RestoreError>) {
    let result = copy_part(&session, statement, rows, stop, open).await;
    (session, result)
}
