//! The plain format (`pg_dump -Fp`): the archive's entries as one psql script.
//!
//! Entries print in table-of-contents order, each under pg_dump's `-- Name: ...; Type: ...`
//! banner, followed by the `ALTER ... OWNER TO` that pg_restore would have issued; a table's
//! data is its `COPY ... FROM stdin;` line, the rows, and the `\.` terminator.

use super::{Header, TocEntry};
use crate::sql::ident;

/// The settings a plain script starts with (the archive's ENCODING, STDSTRINGS and
/// SEARCHPATH entries, and what pg_restore sets before running any entry).
///
/// The script is wrapped in `\restrict KEY` ... `\unrestrict KEY`, as pg_dump 18 (and the
/// releases of August 2025) wrap theirs: psql then runs no meta-command (`\!`, ...) until the
/// end, whatever text of the database a script carries. The key is random, so that no text
/// in the dump can end the restriction early.
pub fn preamble(header: &Header, key: &str) -> String {
    format!(
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict {key}\n\n\
         -- Dumped from database version {}\n-- Dumped by {}\n\n\
         SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET idle_in_transaction_session_timeout = 0;\n\
         SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\
         SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n\
         SET xmloption = content;\nSET client_min_messages = warning;\nSET row_security = off;\n\n",
        one_line(&header.server_version),
        one_line(&header.dumper_version)
    )
}

/// A key for `\restrict`: 64 letters and digits, from a random source.
pub fn restrict_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub fn epilogue(key: &str) -> String {
    format!("--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict {key}\n\n")
}

/// The statement pg_restore issues after an entry to give its object the recorded owner, for
/// the kinds of objects that have one.
pub fn owner_statement(entry: &TocEntry) -> Option<String> {
    let owner = entry.owner.as_deref().filter(|o| !o.is_empty())?;
    let named = |kind: &str| match entry.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(ns) => format!("{kind} {}.{}", ident(ns), ident(&entry.tag)),
        None => format!("{kind} {}", ident(&entry.tag)),
    };
    let target = match entry.desc.as_str() {
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" | "OPERATOR" | "OPERATOR CLASS"
        | "OPERATOR FAMILY" => entry
            .drop_stmt
            .as_deref()?
            .strip_prefix("DROP ")?
            .trim_end()
            .trim_end_matches(';')
            .to_string(),
        "SCHEMA" => format!("SCHEMA {}", ident(&entry.tag)),
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" => named("TABLE"),
        "TYPE"
        | "DOMAIN"
        | "STATISTICS"
        | "COLLATION"
        | "CONVERSION"
        | "FOREIGN TABLE"
        | "TEXT SEARCH DICTIONARY"
        | "TEXT SEARCH CONFIGURATION" => named(&entry.desc),
        "PUBLICATION" | "SUBSCRIPTION" | "EVENT TRIGGER" | "FOREIGN DATA WRAPPER" => {
            format!("{} {}", entry.desc, ident(&entry.tag))
        }
        "SERVER" => format!("SERVER {}", ident(&entry.tag)),
        "PROCEDURAL LANGUAGE" => format!("LANGUAGE {}", ident(&entry.tag)),
        "BLOB" => format!("LARGE OBJECT {}", entry.tag),
        "BLOB METADATA" => {
            // One entry for a group of large objects: one statement per object.
            let statements: String = blob_group_oids(entry)
                .iter()
                .map(|oid| format!("ALTER LARGE OBJECT {oid} OWNER TO {};\n", ident(owner)))
                .collect();
            return (!statements.is_empty()).then_some(statements);
        }
        _ => return None,
    };
    Some(format!("ALTER {target} OWNER TO {};\n", ident(owner)))
}

/// The oids of a `BLOB METADATA` entry (archive 1.16: a group of large objects whose
/// definition lists their oids, one per line; pg_restore makes one `lo_create` of each).
pub fn blob_group_oids(entry: &TocEntry) -> Vec<&str> {
    entry
        .defn
        .as_deref()
        .unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// Text for a `--` comment line: names are the database's and may hold line breaks, which
/// would end the comment and make the rest of the name a statement or a psql command
/// (`\\! ...`) when the script runs. Replaced by spaces, as pg_dump's `sanitize_line` does.
/// Listings use it too: one line per entry, whatever the names hold.
pub fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// `SET default_tablespace` before an entry made in another tablespace than the one set last
/// (`current`; `''` is the database's default), as pg_restore writes it.
pub fn tablespace(entry: &TocEntry, current: &mut Option<String>) -> Option<String> {
    let space = entry.tablespace.as_deref()?;
    if current.as_deref() == Some(space) {
        return None;
    }
    *current = Some(space.to_string());
    Some(if space.is_empty() {
        "SET default_tablespace = '';\n\n".to_string()
    } else {
        format!("SET default_tablespace = {};\n\n", ident(space))
    })
}

/// `SET default_table_access_method` before an entry that makes a table with an access
/// method other than the one set last (`current`), as pg_restore writes it.
pub fn access_method(entry: &TocEntry, current: &mut Option<String>) -> Option<String> {
    let method = entry.tableam.as_deref().filter(|m| !m.is_empty())?;
    if current.as_deref() == Some(method) {
        return None;
    }
    *current = Some(method.to_string());
    Some(format!(
        "SET default_table_access_method = {};\n\n",
        ident(method)
    ))
}

/// An entry's banner and statements (its data, if any, follows separately: [`copy_header`]).
pub fn entry_text(entry: &TocEntry, with_owner: bool) -> String {
    if matches!(
        entry.desc.as_str(),
        "ENCODING" | "STDSTRINGS" | "SEARCHPATH"
    ) {
        return String::new();
    }
    let mut out = format!(
        "--\n-- Name: {}; Type: {}; Schema: {}; Owner: {}\n--\n\n",
        one_line(&entry.tag),
        one_line(&entry.desc),
        one_line(entry.namespace.as_deref().unwrap_or("-")),
        one_line(entry.owner.as_deref().unwrap_or("-"))
    );
    if let Some(defn) = entry.defn.as_deref().filter(|d| !d.is_empty()) {
        out.push_str(defn);
        out.push('\n');
    }
    if with_owner && let Some(owner) = owner_statement(entry) {
        out.push_str(&owner);
        out.push('\n');
    }
    out
}

/// The banner of the large objects' data (a `BLOBS` entry).
pub fn blobs_header(entry: &TocEntry) -> String {
    format!(
        "--\n-- Data for Name: {}; Type: BLOBS; Schema: -; Owner: -\n--\n\n",
        one_line(&entry.tag)
    )
}

/// The `COPY ... FROM stdin;` line that precedes a table's rows.
pub fn copy_header(entry: &TocEntry) -> String {
    format!(
        "--\n-- Data for Name: {}; Type: TABLE DATA; Schema: {}; Owner: {}\n--\n\n{}",
        one_line(&entry.tag),
        one_line(entry.namespace.as_deref().unwrap_or("-")),
        one_line(entry.owner.as_deref().unwrap_or("-")),
        entry.copy_stmt.as_deref().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::Section;

    #[test]
    fn owners_follow_pg_restore() {
        let mut table = TocEntry::new(4, "TABLE", "my table", Section::PreData);
        table.namespace = Some("public".into());
        table.owner = Some("app".into());
        assert_eq!(
            owner_statement(&table).unwrap(),
            "ALTER TABLE \"public\".\"my table\" OWNER TO \"app\";\n"
        );
        let mut function = TocEntry::new(5, "FUNCTION", "f(integer)", Section::PreData);
        function.owner = Some("app".into());
        function.drop_stmt = Some("DROP FUNCTION public.f(integer);\n".into());
        assert_eq!(
            owner_statement(&function).unwrap(),
            "ALTER FUNCTION public.f(integer) OWNER TO \"app\";\n"
        );
        let index = TocEntry::new(6, "INDEX", "i", Section::PostData);
        assert_eq!(owner_statement(&index), None);
    }

    #[test]
    fn names_with_line_breaks_stay_inside_their_comment_lines() {
        let mut table = TocEntry::new(
            4,
            "TABLE",
            "t\n\\! touch pwned\r\nDROP TABLE x;",
            Section::PreData,
        );
        table.namespace = Some("s\nx".into());
        table.owner = Some("o\rw".into());
        table.copy_stmt = Some("COPY s.t FROM stdin;\n".into());
        for text in [
            entry_text(&table, false),
            copy_header(&table),
            blobs_header(&table),
        ] {
            for line in text.lines().filter(|l| !l.is_empty()) {
                assert!(
                    line.starts_with("--") || line.starts_with("COPY "),
                    "a line outside a comment: {line:?} in {text:?}"
                );
            }
        }
    }
}
