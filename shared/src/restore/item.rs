//! Item apply and table load: one archive entry run (statements) or loaded (COPY, large
//! objects) in its own transaction with its progress row.

use std::{collections::HashSet, sync::atomic::Ordering};

use futures::{SinkExt, pin_mut};

use crate::{
    archive::{TocEntry, plain::owner_statement},
    pg::{PgError, Session},
};

use super::progress::{State, label, progress_record, progress_row};
use super::shared_load::{Joiners, load_shared};
use super::{RestoreError, source};

/// The `COPY ... FROM STDIN` statement of a data entry.
pub(super) fn copy_statement(entry: &TocEntry) -> Option<String> {
    let stmt = entry.copy_stmt.as_deref()?.trim_end().trim_end_matches(';');
    let at = stmt.rfind(" FROM stdin")?;
    Some(format!("{} FROM STDIN", &stmt[..at]))
}

/// Holds back the end of a COPY stream so that the archive's `\.` terminator (and the blank
/// lines after it) can be cut before the data reaches the server.
pub(super) struct Terminator {
    pub(super) held: Vec<u8>,
    pub(super) sent_any: bool,
}

pub(super) const HOLD: usize = 16;

impl Terminator {
    pub(super) fn push(&mut self, chunk: &[u8]) -> Option<bytes::Bytes> {
        self.held.extend_from_slice(chunk);
        if self.held.len() <= HOLD {
            return None;
        }
        let keep = self.held.split_off(self.held.len() - HOLD);
        let out = std::mem::replace(&mut self.held, keep);
        self.sent_any = true;
        Some(out.into())
    }

    pub(super) fn finish(self) -> bytes::Bytes {
        let mut held = self.held;
        while held.last() == Some(&b'\n') {
            held.pop();
        }
        if held.ends_with(b"\\.") {
            let before = held.len() - 2;
            let at_line_start = if before == 0 {
                !self.sent_any
            } else {
                held[before - 1] == b'\n'
            };
            if at_line_start {
                held.truncate(before);
                return held.into();
            }
        }
        // No terminator: send everything that was held, newlines included.
        let mut all = held;
        all.push(b'\n');
        all.into()
    }
}

/// Whether a qualified name (`schema.table`, identifiers possibly quoted) names the table `tag`.
pub(super) fn names_table(qualified: &str, tag: &str) -> bool {
    let quoted = crate::sql::ident(tag);
    qualified.ends_with(&format!(".{quoted}")) || qualified.ends_with(&format!(".{tag}"))
}

/// The qualified table name a `COPY` statement loads (quoted identifiers kept whole).
pub(super) fn copy_table_name(statement: &str) -> Option<&str> {
    let rest = statement.strip_prefix("COPY ")?;
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ' ' | '(' if !quoted => return Some(&rest[..i]),
            _ => {}
        }
    }
    None
}

/// The oids of the large-object group an `ACL` or `COMMENT` entry applies to (archive 1.16).
pub(super) fn blob_group_of<'a>(e: &TocEntry, state: &'a State) -> Option<&'a Vec<String>> {
    if !e.tag.starts_with("LARGE OBJECTS ") {
        return None;
    }
    e.dependencies
        .iter()
        .find_map(|d| state.blob_groups.get(d))
        .filter(|g| !g.is_empty())
}

/// The tablespaces the archive's entries are in that the target has; a warning names the
/// others (Neon has none: everything goes to the default tablespace there).
pub(super) async fn target_tablespaces(
    session: &Session,
    items: &[&TocEntry],
) -> Result<HashSet<String>, PgError> {
    let wanted: HashSet<&str> = items
        .iter()
        .filter_map(|e| e.tablespace.as_deref())
        .filter(|t| !t.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(HashSet::new());
    }
    let existing: HashSet<String> = session
        .query("SELECT spcname::text FROM pg_tablespace", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|t| !existing.contains(*t))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        tracing::warn!(
            tablespaces = ?missing,
            "the target has no such tablespaces: what the archive puts there goes to its default tablespace"
        );
    }
    Ok(wanted
        .into_iter()
        .filter(|t| existing.contains(*t))
        .map(str::to_string)
        .collect())
}

/// Runs one statement item and records it, in one transaction.
pub(super) async fn apply(
    session: &Session,
    e: &TocEntry,
    state: &State,
) -> Result<(), RestoreError> {
    let single = state.options.single_transaction;
    let mut sql = String::from(if single { "" } else { "BEGIN;\n" });
    if let Some(am) = e.tableam.as_deref().filter(|a| !a.is_empty()) {
        sql.push_str(&format!(
            "SET LOCAL default_table_access_method = {};\n",
            crate::sql::ident(am)
        ));
    }
    if let Some(space) = e
        .tablespace
        .as_deref()
        .filter(|t| state.tablespaces.contains(*t))
    {
        sql.push_str(&format!(
            "SET LOCAL default_tablespace = {};\n",
            crate::sql::ident(space)
        ));
    }
    if e.desc == "BLOB METADATA" {
        // A group of large objects: the entry lists their oids, one per line (archive 1.16).
        for oid in crate::archive::plain::blob_group_oids(e) {
            sql.push_str(&format!("SELECT pg_catalog.lo_create('{oid}');\n"));
        }
    } else if let Some(group) = blob_group_of(e, state) {
        // Grants (or comments) on a group of large objects: the entry states them for the
        // group's first object; pg_restore repeats them for every object of the group.
        let defn = e.defn.as_deref().unwrap_or("");
        let first = &group[0];
        for oid in group {
            sql.push_str(&defn.replace(
                &format!("LARGE OBJECT {first} "),
                &format!("LARGE OBJECT {oid} "),
            ));
            sql.push('\n');
        }
    } else if let Some(defn) = e.defn.as_deref() {
        sql.push_str(defn);
        sql.push('\n');
        // A partitioned table has no storage to make with the default access method: its
        // own (17+, archive 1.16) is set afterwards, as pg_restore sets it.
        if let (b'p', Some(am), Some(ns)) = (
            e.relkind,
            e.tableam.as_deref().filter(|a| !a.is_empty()),
            e.namespace.as_deref(),
        ) && e.desc == "TABLE"
        {
            sql.push_str(&format!(
                "ALTER TABLE {}.{} SET ACCESS METHOD {};\n",
                crate::sql::ident(ns),
                crate::sql::ident(&e.tag),
                crate::sql::ident(am)
            ));
        }
    }
    if !state.options.no_owner
        && let Some(owner) = owner_statement(e)
    {
        sql.push_str(&owner);
    }
    if single {
        return session
            .batch_execute(&sql)
            .await
            .map_err(RestoreError::from);
    }
    if e.dump_id > 0 {
        sql.push_str(&progress_record(&state.archive_id, e.dump_id, None));
        sql.push_str(
            ";
",
        );
    }
    sql.push_str("COMMIT;");
    if let Err(err) = session.batch_execute(&sql).await {
        let _ = session.batch_execute("ROLLBACK").await;
        return Err(err.into());
    }
    Ok(())
}

/// Loads the large objects of a BLOBS entry (created empty by the BLOB entries before data),
/// in one transaction with its progress row, as pg_restore writes them: `lo_open` for
/// writing, `lowrite` per chunk, `lo_close`.
pub(super) async fn load_blobs(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
) -> Result<u64, RestoreError> {
    let single = state.options.single_transaction;
    let result = async {
        if !single {
            session.batch_execute("BEGIN").await?;
        }
        let mut pieces = archive.blobs(e);
        let mut fd: Option<i32> = None;
        let mut count = 0u64;
        while let Some(piece) = pieces.recv().await {
            match piece? {
                source::BlobPiece::Start(oid) => {
                    let row = session
                        .query_one("SELECT pg_catalog.lo_open($1, 131072)", &[&oid])
                        .await?;
                    fd = Some(row.get(0));
                }
                source::BlobPiece::Data(bytes) => {
                    let fd = fd.ok_or_else(|| {
                        RestoreError::Failed("large object data before its start".into())
                    })?;
                    session
                        .query_one("SELECT pg_catalog.lowrite($1, $2)", &[&fd, &bytes.as_ref()])
                        .await?;
                }
                source::BlobPiece::End => {
                    let open = fd
                        .take()
                        .ok_or_else(|| RestoreError::Failed("a large object ended twice".into()))?;
                    session
                        .query_one("SELECT pg_catalog.lo_close($1)", &[&open])
                        .await?;
                    count += 1;
                }
            }
        }
        if !single {
            session
                .batch_execute(&format!("{}; COMMIT;", progress_row(state, e, count)))
                .await?;
        }
        Ok::<u64, RestoreError>(count)
    }
    .await;
    if result.is_err() && !single && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

/// `TRUNCATE ONLY` of the table entry `e` loads, when its load may empty it first: not in one
/// transaction, not for a load through a partition root (which would empty every
/// partition), and only for a table this restore creates (not an extension's configuration
/// table, whose extension put rows of its own in it, nor a table a data-only archive fills).
pub(super) fn truncate_statement(e: &TocEntry, state: &State) -> Option<String> {
    let key = (e.namespace.clone().unwrap_or_default(), e.tag.clone());
    if state.options.single_transaction || !state.created_tables.contains(&key) {
        return None;
    }
    let statement = copy_statement(e)?;
    copy_table_name(&statement)
        .filter(|name| names_table(name, &e.tag))
        .map(|name| format!("TRUNCATE ONLY {name}"))
}

/// Loads one table: its COPY and its progress row commit together. With `joiners`, other
/// connections may take a share of the rows (see [`load_shared`]).
pub(super) async fn load(
    session: &Session,
    e: &TocEntry,
    archive: &source::Archive,
    state: &State,
    joiners: Option<&mut Joiners>,
) -> Result<u64, RestoreError> {
    let mut statement =
        copy_statement(e).ok_or_else(|| RestoreError::Failed("no COPY statement".into()))?;
    // Emptying the table in the load's own transaction removes what an earlier attempt left
    // (the committed parts of a shared load cut short) and lets COPY write its rows frozen, so
    // that the index builds and ANALYZE that read them next do not rewrite every page to set
    // hint bits. When the server refuses the TRUNCATE, the load goes on unfrozen only into a
    // table that is empty; rows there would be loaded twice, so that stops the restore.
    let single = state.options.single_transaction;
    let truncate = truncate_statement(e, state);
    let mut frozen = false;
    if let Some(truncate) = &truncate {
        match session.batch_execute(&format!("BEGIN; {truncate}")).await {
            Ok(()) => frozen = true,
            Err(refused) => {
                if !session.is_closed() {
                    let _ = session.batch_execute("ROLLBACK").await;
                }
                let refused = RestoreError::from(refused);
                let name = truncate.trim_start_matches("TRUNCATE ONLY ");
                let holds_rows = session
                    .query_opt(&format!("SELECT 1 FROM ONLY {name} LIMIT 1"), &[])
                    .await
                    .map(|row| row.is_some())
                    .map_err(|e| {
                        RestoreError::Failed(format!(
                            "the table could not be emptied before loading it ({refused}), nor \
                             looked at: {}",
                            RestoreError::from(e)
                        ))
                    })?;
                if holds_rows {
                    return Err(RestoreError::Failed(format!(
                        "the table holds rows from an earlier attempt and could not be emptied \
                         before loading it again: {refused}"
                    )));
                }
                tracing::debug!(table = %label(e), "loading unfrozen: {refused}");
            }
        }
    }
    if let Some(joiners) = joiners {
        if let (true, Some(truncate)) = (frozen, &truncate) {
            return load_shared(session, e, archive, state, &statement, truncate, joiners).await;
        }
        joiners.open.store(false, Ordering::Relaxed);
    }
    if frozen {
        statement.push_str(" WITH (FREEZE)");
    }
    let result = async {
        if !frozen && !single {
            session.batch_execute("BEGIN").await?;
        }
        let sink = session
            .copy_in::<_, bytes::Bytes>(statement.as_str())
            .await?;
        pin_mut!(sink);
        let mut data = archive.data(e);
        let mut terminator = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        while let Some(chunk) = data.recv().await {
            let chunk = chunk?;
            if let Some(out) = terminator.push(&chunk) {
                sink.send(out).await?;
            }
        }
        let rest = terminator.finish();
        if !rest.is_empty() {
            sink.send(rest).await?;
        }
        let rows = sink.finish().await?;
        if single {
            return Ok(rows);
        }
        session
            .batch_execute(&format!("{}; COMMIT", progress_row(state, e, rows)))
            .await?;
        Ok::<u64, RestoreError>(rows)
    }
    .await;
    if result.is_err() && !single && !session.is_closed() {
        let _ = session.batch_execute("ROLLBACK").await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Section;

    fn strip(parts: &[&[u8]]) -> Vec<u8> {
        let mut t = Terminator {
            held: Vec::new(),
            sent_any: false,
        };
        let mut out = Vec::new();
        for p in parts {
            if let Some(b) = t.push(p) {
                out.extend_from_slice(&b);
            }
        }
        out.extend_from_slice(&t.finish());
        out
    }

    #[test]
    fn the_archive_terminator_is_cut_and_nothing_else() {
        assert_eq!(strip(&[b"1\ta\n2\tb\n", b"\\.\n\n\n"]), b"1\ta\n2\tb\n");
        assert_eq!(strip(&[b"\\.\n\n\n"]), b"");
        assert_eq!(
            strip(&[b"a row long enough to be sent\n\\", b".\n"]),
            b"a row long enough to be sent\n"
        );
        // A value ending in a backslash-dot is data, not the terminator.
        assert_eq!(strip(&[b"x\\.\n"]), b"x\\.\n");
        assert_eq!(strip(&[b"1\n2\n"]), b"1\n2\n");
    }

    #[test]
    fn copy_targets_are_read_whole() {
        assert_eq!(
            copy_table_name("COPY public.\"a (b\" (id) FROM STDIN"),
            Some("public.\"a (b\"")
        );
        assert_eq!(copy_table_name("COPY s.t FROM STDIN"), Some("s.t"));
    }

    #[test]
    fn copy_statements_turn_to_stdin() {
        let mut e = TocEntry::new(5, "TABLE DATA", "t", Section::Data);
        e.copy_stmt = Some("COPY public.\"a FROM stdin\" (id) FROM stdin;\n".into());
        assert_eq!(
            copy_statement(&e).unwrap(),
            "COPY public.\"a FROM stdin\" (id) FROM STDIN"
        );
    }
}
