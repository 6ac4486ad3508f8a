//! What a restore selects: its options (pg_restore's filters, a use-list), and the archive's
//! table of contents listed as `pg_restore -l` lists it.

use std::collections::HashSet;

use crate::{
    archive::{Section, TocEntry},
    pattern::{wildcard, wildcard_table},
    store::{ObjectUrl, Store},
};

use super::{RestoreError, source};

/// How to restore.
#[derive(Debug, Clone)]
pub struct Options {
    pub jobs: usize,
    /// Leave objects owned by the restoring role (no `ALTER ... OWNER TO`).
    pub no_owner: bool,
    /// Skip grants (`ACL` entries).
    pub no_privileges: bool,
    /// Only these sections (all when empty).
    pub sections: Vec<Section>,
    /// Only objects in schemas matching these names (exact, as pg_restore's `-n`, plus `*` and
    /// `?` wildcards; all when empty).
    pub schemas: Vec<String>,
    /// Only these tables (and views, sequences, materialized views) and their data:
    /// `table` or `schema.table`, exact as pg_restore's `-t`, plus `*` and `?` wildcards.
    pub tables: Vec<String>,
    /// Only these entries, by dump id (from an edited `--list`).
    pub use_list: Option<HashSet<i32>>,
    /// Drop the archive's objects (`IF EXISTS`) before creating them; the target need not be
    /// empty then.
    pub clean: bool,
    /// Leave out objects in schemas matching these patterns.
    pub exclude_schemas: Vec<String>,
    /// Leave out these tables (views, sequences) and their data.
    pub exclude_tables: Vec<String>,
    /// Everything in one transaction on one connection: all or nothing (not resumable).
    pub single_transaction: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            jobs: 2,
            no_owner: false,
            no_privileges: false,
            sections: Vec::new(),
            schemas: Vec::new(),
            tables: Vec::new(),
            use_list: None,
            clean: false,
            exclude_schemas: Vec::new(),
            exclude_tables: Vec::new(),
            single_transaction: false,
        }
    }
}

/// Kinds of entry a `--table` filter selects (pg_restore's `-t`).
pub(super) const TABLE_KINDS: &[&str] = &[
    "TABLE",
    "TABLE DATA",
    "SEQUENCE",
    "SEQUENCE SET",
    "VIEW",
    "MATERIALIZED VIEW",
    "MATERIALIZED VIEW DATA",
];

impl Options {
    /// Whether the filters select entry `e` (session entries aside).
    fn selects(&self, e: &TocEntry) -> bool {
        if let Some(list) = &self.use_list
            && !list.contains(&e.dump_id)
        {
            return false;
        }
        if !self.sections.is_empty() && !self.sections.contains(&e.section) {
            return false;
        }
        let ns = e.namespace.as_deref().unwrap_or("");
        let schema = if e.desc == "SCHEMA" {
            e.tag.as_str()
        } else {
            ns
        };
        if !self.schemas.is_empty() && !self.schemas.iter().any(|p| wildcard(p, schema)) {
            return false;
        }
        if self.exclude_schemas.iter().any(|p| wildcard(p, schema)) {
            return false;
        }
        let named = |patterns: &[String]| wildcard_table(patterns, ns, &e.tag);
        if TABLE_KINDS.contains(&e.desc.as_str()) && named(&self.exclude_tables) {
            return false;
        }
        if !self.tables.is_empty()
            && (!TABLE_KINDS.contains(&e.desc.as_str()) || !named(&self.tables))
        {
            return false;
        }
        true
    }
}

/// An archive's table of contents as `pg_restore -l` prints it: one `id; catalog oid kind
/// schema name owner` line per entry, after a header. Edit it and give it back as a use-list.
pub async fn listing(store: &Store, url: &ObjectUrl) -> Result<String, RestoreError> {
    use crate::archive::plain::one_line;
    if source::is_plain(store, url).await? {
        return Err(RestoreError::Failed(
            "a plain SQL dump is a script, not an archive: it has no table of contents to list"
                .into(),
        ));
    }
    let archive = source::Archive::open(store, url).await?;
    let h = &archive.header;
    let t = h.created;
    let mut out = format!(
        ";\n; Archive created at {:04}-{:02}-{:02} {:02}:{:02}:{:02}\n;     dbname: {}\n;     TOC Entries: {}\n\
         ;     Compression: {}\n;     Dump Version: {}\n;     Format: {}\n\
         ;     Dumped from database version: {}\n;     Dumped by: {}\n;\n;\n; Selected TOC Entries:\n;\n",
        t.year + 1900,
        t.mon + 1,
        t.mday,
        t.hour,
        t.min,
        t.sec,
        one_line(&h.database),
        archive.entries.len(),
        h.compression.name(),
        h.version,
        match archive.layout {
            crate::archive::Layout::Custom => "CUSTOM",
            crate::archive::Layout::Directory => "DIRECTORY",
        },
        one_line(&h.server_version),
        one_line(&h.dumper_version)
    );
    // One line per entry whatever the archive's names hold (a name with a line break would
    // otherwise print a line that a use-list reads as another entry), as pg_restore -l.
    for e in &archive.entries {
        out.push_str(&format!(
            "{}; {} {} {} {} {} {}\n",
            e.dump_id,
            one_line(&e.table_oid),
            one_line(&e.oid),
            one_line(&e.desc),
            one_line(
                e.namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("-")
            ),
            one_line(&e.tag),
            one_line(e.owner.as_deref().unwrap_or(""))
        ));
    }
    Ok(out)
}

/// The dump ids of a use-list (`pg_restore -l` output, edited): lines starting with `;` are
/// comments, every other line starts with `ID;`.
pub fn parse_use_list(text: &str) -> Result<HashSet<i32>, RestoreError> {
    let mut ids = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let id = line
            .split(';')
            .next()
            .and_then(|id| id.trim().parse::<i32>().ok())
            .ok_or_else(|| {
                RestoreError::BadUseList(format!(
                    "line {}: {line:?} does not start with an entry id",
                    n + 1
                ))
            })?;
        ids.insert(id);
    }
    Ok(ids)
}

/// Entries that set up the session rather than create anything.
pub(super) const SESSION_ENTRIES: &[&str] = &["ENCODING", "STDSTRINGS", "SEARCHPATH"];

/// Whether the restore runs entry `e`: what the options select, but never the session
/// settings (set on every connection) nor the database's own entries, which name the database
/// the dump was taken from (pg_restore runs them only with `--create`).
pub(super) fn restored(e: &TocEntry, options: &Options) -> bool {
    let skipped = SESSION_ENTRIES.contains(&e.desc.as_str())
        || crate::archive::is_database_level(&e.desc, &e.tag)
        || (options.no_privileges && matches!(e.desc.as_str(), "ACL" | "DEFAULT ACL"));
    !skipped && options.selects(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_lists_are_read_like_pg_restore_reads_them() {
        let ids =
            parse_use_list(";\n; comment\n4; 1259 16386 TABLE public t me\n\n7; 0 0 ACL - x\n")
                .unwrap();
        assert_eq!(ids, HashSet::from([4, 7]));
        assert!(
            parse_use_list("TABLE t\n")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }

    #[test]
    fn filters_select_schemas_tables_and_lists() {
        let mut e = TocEntry::new(9, "TABLE DATA", "orders", Section::Data);
        e.namespace = Some("app".into());
        let mut index = TocEntry::new(10, "INDEX", "orders_idx", Section::PostData);
        index.namespace = Some("app".into());
        let tables = Options {
            tables: vec!["app.ord*".into()],
            ..Options::default()
        };
        assert!(tables.selects(&e) && !tables.selects(&index));
        let schemas = Options {
            schemas: vec!["public".into()],
            ..Options::default()
        };
        assert!(!schemas.selects(&e));
        let list = Options {
            use_list: Some(HashSet::from([10])),
            ..Options::default()
        };
        assert!(!list.selects(&e) && list.selects(&index));
    }
}
