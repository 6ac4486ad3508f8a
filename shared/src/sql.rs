//! The one SQL quoting layer: every identifier and literal that ferry writes into SQL, a dump
//! script or a listing is made here.
//!
//! Names and texts come from places ferry does not control: an S3 event, a file name, a CSV
//! header, an archive's table of contents, the catalog of the database being dumped. Each is
//! quoted on the way into a statement; nothing is spliced in as it came. Values that are not
//! part of a statement's text (a query's parameters) are bound, not quoted: this module is for
//! the statements ferry must write out whole (DDL, `COPY`, dump scripts).
//!
//! A literal's meaning depends on `standard_conforming_strings` (with it off, a backslash
//! escapes the next character, so `'\'` opens a string instead of holding a backslash). The
//! statements ferry runs itself use [`literal`], which means the same under either setting;
//! the entries of a dump use [`dump_literal`], pg_dump's form, after the script's own `SET
//! standard_conforming_strings = on`.
//!
//! To audit the SQL ferry builds, look for the callers of these functions and for `format!`
//! calls whose text starts with an SQL keyword: every name in such text comes through here.

use std::collections::HashSet;

/// An identifier, always quoted: valid for every name, keywords included.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `schema.name`, each part always quoted.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A string literal that means the same whatever `standard_conforming_strings` is: with a
/// backslash in the text, the escape form `E'...'` (backslashes doubled), as the server's
/// `quote_literal` writes it; otherwise quotes doubled. For the statements ferry runs itself,
/// on sessions whose settings a server, a database or a role may have changed.
pub fn literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

/// A string literal as pg_dump writes it in a script or an archive entry: quotes doubled,
/// nothing else escaped. Only for text that runs after the script's own `SET
/// standard_conforming_strings = on` (a snapshot's entries, as pg_dump's).
pub fn dump_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Whether `name` reads the same unquoted: a lower-case letter or `_`, then lower-case
/// letters, digits and `_` (what PostgreSQL folds to and accepts bare, keywords aside).
pub fn is_plain(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A name as people read it in reports and messages: bare when plain, quoted otherwise. Not
/// for SQL (a keyword stays bare): use [`ident`] or [`Keywords::ident`] there.
pub fn display_name(name: &str) -> String {
    if is_plain(name) {
        name.to_string()
    } else {
        ident(name)
    }
}

/// The server's reserved and non-reserved keywords, for quoting names only where needed, as
/// pg_dump writes them (its scripts and archives read the same as pg_dump's then).
#[derive(Debug, Clone, Default)]
pub struct Keywords {
    words: HashSet<String>,
}

impl Keywords {
    /// The words that must be quoted as names: every keyword but the unreserved ones
    /// (`SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'`).
    pub fn new(words: impl IntoIterator<Item = String>) -> Keywords {
        Keywords {
            words: words.into_iter().collect(),
        }
    }

    /// An identifier quoted only when it must be: not plain, or a keyword.
    pub fn ident(&self, name: &str) -> String {
        if is_plain(name) && !self.words.contains(name) {
            name.to_string()
        } else {
            ident(name)
        }
    }

    /// `schema.name`, each part quoted only when it must be.
    pub fn qualified(&self, schema: &str, name: &str) -> String {
        format!("{}.{}", self.ident(schema), self.ident(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_texts_are_quoted_whatever_they_hold() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("x\n\\! touch pwned"), "\"x\n\\! touch pwned\"");
        assert_eq!(qualified("public", "T"), "\"public\".\"T\"");
        assert_eq!(literal("it's ok"), "'it''s ok'");
        assert_eq!(literal("\\"), "E'\\\\'");
        assert_eq!(literal("a'\\"), "E'a''\\\\'");
        assert_eq!(dump_literal("it's \\ ok"), "'it''s \\ ok'");
        let k = Keywords::new(["select".to_string(), "user".to_string()]);
        assert_eq!(k.ident("orders"), "orders");
        assert_eq!(k.ident("select"), "\"select\"");
        assert_eq!(k.ident("Orders"), "\"Orders\"");
        assert_eq!(k.ident("1st"), "\"1st\"");
        assert_eq!(k.ident(""), "\"\"");
        assert_eq!(k.qualified("user", "t"), "\"user\".t");
        assert_eq!(display_name("select"), "select");
        assert_eq!(display_name("my table"), "\"my table\"");
    }
}
