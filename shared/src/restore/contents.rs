//! What an archive holds, read from the archive alone: every table's data rows, counted as
//! they stream by (COPY text: one row per line). `validate` compares a database restored from
//! a dump that ferry did not write (no manifest) against this.

use super::{RestoreError, plain, source};
use crate::store::{ObjectUrl, Store};

/// One table's data in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedTable {
    pub schema: String,
    pub name: String,
    pub rows: u64,
}

/// The tables with data in an archive, and its materialized views (their rows are computed by
/// a refresh, not stored).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    pub tables: Vec<ArchivedTable>,
    pub materialized_views: Vec<(String, String)>,
}

/// Counts the rows of every table's data in the archive at `url` (custom, directory or plain),
/// reading it once, with bounded memory.
pub async fn contents(store: &Store, url: &ObjectUrl) -> Result<Contents, RestoreError> {
    if source::is_plain(store, url).await? {
        let reader = source::plain_reader(store, url).await?;
        return tokio::task::spawn_blocking(move || plain_contents(reader))
            .await
            .map_err(|e| RestoreError::Failed(format!("reading the dump: {e}")))?;
    }
    let archive = source::Archive::open(store, url).await?;
    let mut out = Contents::default();
    for entry in &archive.entries {
        let schema = entry.namespace.clone().unwrap_or_default();
        match entry.desc.as_str() {
            "MATERIALIZED VIEW" => out.materialized_views.push((schema, entry.tag.clone())),
            "TABLE DATA" => {
                let mut rows = RowCounter::default();
                let mut data = archive.data(entry);
                while let Some(chunk) = data.recv().await {
                    rows.push(&chunk?);
                }
                out.tables.push(ArchivedTable {
                    schema,
                    name: entry.tag.clone(),
                    rows: rows.finish(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

fn plain_contents(reader: impl std::io::Read) -> Result<Contents, RestoreError> {
    let mut out = Contents::default();
    let mut current: Option<ArchivedTable> = None;
    let mut bad: Option<String> = None;
    plain::split(
        std::io::BufReader::with_capacity(256 * 1024, reader),
        |piece| {
            match piece {
                plain::Piece::Copy(statement) => match copy_target(&statement) {
                    Some((schema, name)) => {
                        current = Some(ArchivedTable {
                            schema,
                            name,
                            rows: 0,
                        })
                    }
                    None => {
                        bad = Some(format!("cannot read the table of {statement:?}"));
                        return false;
                    }
                },
                plain::Piece::Rows(rows) => {
                    if let Some(t) = current.as_mut() {
                        t.rows += rows.iter().filter(|&&b| b == b'\n').count() as u64;
                    }
                }
                plain::Piece::EndCopy => out.tables.extend(current.take()),
                plain::Piece::Sql(sql) => {
                    let body = without_comments(&sql);
                    if let Some(rest) = strip_words(body, &["CREATE", "MATERIALIZED", "VIEW"])
                        && let Some((schema, name, _)) = qualified_name(rest)
                    {
                        out.materialized_views.push((schema, name));
                    }
                }
                plain::Piece::Connect(_) => {}
            }
            true
        },
    )
    .map_err(|e| RestoreError::Failed(e.to_string()))?;
    match bad {
        Some(reason) => Err(RestoreError::Failed(reason)),
        None => Ok(out),
    }
}

/// Counts COPY text rows, leaving out the `\.` terminator line (and blank lines after it) that
/// pg_dump ends a table's data with.
#[derive(Default)]
struct RowCounter {
    newlines: u64,
    /// The last bytes seen (enough to recognise `\n\.\n\n` at the end).
    tail: Vec<u8>,
    any: bool,
}

impl RowCounter {
    fn push(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        self.any = true;
        self.newlines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > 64 {
            self.tail.drain(..self.tail.len() - 64);
        }
    }

    fn finish(self) -> u64 {
        let mut tail = self.tail;
        let mut newlines = self.newlines;
        let mut trailing = 0;
        while tail.last() == Some(&b'\n') {
            tail.pop();
            trailing += 1;
        }
        if tail.ends_with(b"\\.") {
            let before = tail.len() - 2;
            let whole_data = before == 0 && newlines == trailing;
            if whole_data || (before > 0 && tail[before - 1] == b'\n') {
                // The terminator line and the blank lines after it are not rows.
                return newlines - trailing;
            }
        }
        if !self.any {
            return 0;
        }
        // No terminator: every line is a row, the last one possibly without its newline.
        if trailing == 0 {
            newlines += 1;
        }
        newlines
    }
}

/// A statement without the `--` comment lines pg_dump puts before it.
fn without_comments(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    while rest.starts_with("--") {
        rest = rest
            .split_once('\n')
            .map_or("", |(_, after)| after)
            .trim_start();
    }
    rest
}

/// `WORD WORD ... rest` (case-insensitive words separated by whitespace) -> `rest`.
fn strip_words<'a>(mut text: &'a str, words: &[&str]) -> Option<&'a str> {
    for word in words {
        let head = text.get(..word.len())?;
        if !head.eq_ignore_ascii_case(word) {
            return None;
        }
        text = &text[word.len()..];
        let trimmed = text.trim_start();
        if trimmed.len() == text.len() {
            return None;
        }
        text = trimmed;
    }
    Some(text)
}

/// The table a `COPY schema.table (columns) FROM stdin` statement loads.
fn copy_target(statement: &str) -> Option<(String, String)> {
    let rest = strip_words(statement.trim_start(), &["COPY"])?;
    let (schema, name, _) = qualified_name(rest)?;
    Some((schema, name))
}

/// A possibly quoted, possibly schema-qualified name at the start of `text`: (schema, name,
/// what follows). An unqualified name is in `public`.
fn qualified_name(text: &str) -> Option<(String, String, &str)> {
    let (first, rest) = identifier(text)?;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let (second, rest) = identifier(after_dot)?;
        Some((first, second, rest))
    } else {
        Some(("public".to_string(), first, rest))
    }
}

/// One identifier: `"quoted ""name"""` as written, or a bare name (folded to lower case).
fn identifier(text: &str) -> Option<(String, &str)> {
    if let Some(quoted) = text.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &quoted[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = text
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(text.len());
        (end > 0).then(|| (text[..end].to_lowercase(), &text[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(chunks: &[&[u8]]) -> u64 {
        let mut c = RowCounter::default();
        for chunk in chunks {
            c.push(chunk);
        }
        c.finish()
    }

    #[test]
    fn counts_rows_without_the_terminator() {
        assert_eq!(count(&[b"1\ta\n2\tb\n", b"\\.\n\n\n"]), 2);
        assert_eq!(count(&[b"1\ta\n2\t", b"b\n"]), 2);
        assert_eq!(count(&[b"\\.\n\n"]), 0);
        assert_eq!(count(&[]), 0);
        assert_eq!(count(&[b"1\ta"]), 1);
        // A value ending in a backslash-dot is data, not the terminator.
        assert_eq!(count(&[b"x\\.\n"]), 1);
        // Escaped newlines inside values do not split rows.
        assert_eq!(count(&[b"a\\nb\n\\.\n"]), 1);
    }

    #[test]
    fn reads_the_table_of_a_copy_statement() {
        assert_eq!(
            copy_target("COPY public.orders (id, total) FROM stdin"),
            Some(("public".into(), "orders".into()))
        );
        assert_eq!(
            copy_target(r#"COPY "My ""Schema"""."Tab le" (a) FROM stdin"#),
            Some((r#"My "Schema""#.into(), "Tab le".into()))
        );
        assert_eq!(
            copy_target("COPY Plain FROM stdin"),
            Some(("public".into(), "plain".into()))
        );
        assert_eq!(copy_target("COPY \"open FROM stdin"), None);
    }

    #[test]
    fn reads_a_plain_dump() {
        let dump = "SET x = 1;\nCREATE TABLE public.t (a int);\n\
                    --\n-- Name: mv; Type: MATERIALIZED VIEW\n--\n\n\
                    CREATE MATERIALIZED VIEW public.mv AS SELECT 1;\n\
                    COPY public.t (a) FROM stdin;\n1\n2\n3\n\\.\n\nCOPY public.e (a) FROM stdin;\n\\.\n";
        let got = plain_contents(dump.as_bytes()).unwrap();
        assert_eq!(
            got.tables,
            vec![
                ArchivedTable {
                    schema: "public".into(),
                    name: "t".into(),
                    rows: 3
                },
                ArchivedTable {
                    schema: "public".into(),
                    name: "e".into(),
                    rows: 0
                }
            ]
        );
        assert_eq!(got.materialized_views, vec![("public".into(), "mv".into())]);
    }
}
