//! Plain SQL dumps (`pg_dump -Fp`, `supabase db dump`, hand-made seed files), split into
//! statements the way psql splits them, so they run without psql.
//!
//! A statement ends at a `;` outside string literals (`'...'`, `E'...'` with backslash escapes),
//! quoted identifiers, dollar-quoted bodies, comments (`--`, nested `/* */`) and the
//! `BEGIN ATOMIC ... END` body of a SQL-standard function. `COPY ... FROM stdin;` is followed by
//! rows up to a `\.` line. psql meta-commands: `\restrict` / `\unrestrict` (pg_dump 18's
//! per-run guards) are skipped; `\connect` (a dump of several databases) and every other
//! meta-command are refused by name, since running the script without them would not be the
//! script.

use std::io::BufRead;

/// One piece of a plain dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Piece {
    /// A statement, with its terminating `;`.
    Sql(String),
    /// `COPY ... FROM stdin` (without the `;`); its rows follow as [`Piece::Rows`].
    Copy(String),
    /// Rows of the current COPY (whole lines), possibly several pieces.
    Rows(Vec<u8>),
    /// The end of the current COPY's rows.
    EndCopy,
    /// `\connect DATABASE`: what follows runs in that database.
    Connect(String),
}

#[derive(Debug, thiserror::Error)]
pub(super) enum PlainError {
    #[error("reading the dump: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: the psql command {command} is not supported in a restored script")]
    MetaCommand { line: u64, command: String },
    #[error("line {line}: {reason}")]
    Malformed { line: u64, reason: String },
}

/// Splits a dump read from `input`, calling `emit` for each piece; stops when `emit` says so.
pub(super) fn split(
    mut input: impl BufRead,
    mut emit: impl FnMut(Piece) -> bool,
) -> Result<(), PlainError> {
    let mut line_no = 0u64;
    let mut statement = String::new();
    let mut state = Lexer::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        line_no += 1;
        let text =
            String::from_utf8(std::mem::take(&mut line)).map_err(|_| PlainError::Malformed {
                line: line_no,
                reason: "not UTF-8 text".into(),
            })?;
        if is_only_comments(&statement) && state.is_idle() && text.starts_with('\\') {
            let command = text.split_whitespace().next().unwrap_or("\\").to_string();
            match command.as_str() {
                "\\restrict" | "\\unrestrict" => {
                    statement.clear();
                    continue;
                }
                "\\connect" | "\\c" => {
                    let database = connect_target(&text).ok_or_else(|| PlainError::Malformed {
                        line: line_no,
                        reason: format!("cannot read the database of {:?}", text.trim()),
                    })?;
                    statement.clear();
                    if !emit(Piece::Connect(database)) {
                        return Ok(());
                    }
                    continue;
                }
                _ => {
                    return Err(PlainError::MetaCommand {
                        line: line_no,
                        command,
                    });
                }
            }
        }
        let mut rest = text.as_str();
        while !rest.is_empty() {
            match state.scan(rest) {
                Some(end) => {
                    statement.push_str(&rest[..end]);
                    rest = &rest[end..];
                    let sql = std::mem::take(&mut statement);
                    let trimmed = sql.trim();
                    if trimmed == ";" || trimmed.is_empty() {
                        continue;
                    }
                    if let Some(copy) = copy_from_stdin(trimmed) {
                        if !emit(Piece::Copy(copy)) {
                            return Ok(());
                        }
                        // The rest of this line is nothing; rows start on the next line.
                        rows(&mut input, &mut line_no, &mut emit)?;
                        rest = "";
                        continue;
                    }
                    if !emit(Piece::Sql(trimmed.to_string())) {
                        return Ok(());
                    }
                }
                None => {
                    statement.push_str(rest);
                    rest = "";
                }
            }
        }
    }
    if !statement.trim().is_empty() && !is_only_comments(&statement) {
        if !state.is_idle() {
            return Err(PlainError::Malformed {
                line: line_no,
                reason: "the dump ends inside a string, comment or function body".into(),
            });
        }
        emit(Piece::Sql(statement.trim().to_string()));
    }
    Ok(())
}

/// The database a `\connect` line names: `\connect NAME`, `\connect "Name"`, or pg_dump's
/// `\connect -reuse-previous=on "dbname='name'"`.
fn connect_target(line: &str) -> Option<String> {
    let rest = line.trim().split_once(char::is_whitespace)?.1.trim();
    let start = rest
        .split_whitespace()
        .find(|a| !a.starts_with('-'))
        .and_then(|a| rest.find(a))?;
    let tail = &rest[start..];
    let arg = if let Some(quoted) = tail.strip_prefix('"') {
        // A quoted argument, `""` for a quote inside.
        let mut out = String::new();
        let mut chars = quoted.chars().peekable();
        loop {
            match chars.next()? {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    out.push('"');
                }
                '"' => break,
                c => out.push(c),
            }
        }
        out
    } else {
        tail.split_whitespace().next()?.to_string()
    };
    if let Some(value) = arg.strip_prefix("dbname=") {
        let value = value.trim();
        return Some(
            match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                Some(inner) => inner.replace("\\'", "'").replace("\\\\", "\\"),
                None => value.to_string(),
            },
        );
    }
    Some(arg)
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with("--"))
}

/// `COPY x (cols) FROM stdin` (case-insensitive), without the `;`, or `None`.
fn copy_from_stdin(statement: &str) -> Option<String> {
    let body = strip_comments(statement);
    let body = body.trim().trim_end_matches(';').trim_end();
    let upper = body.to_ascii_uppercase();
    (upper.starts_with("COPY ") && upper.ends_with(" FROM STDIN")).then(|| body.to_string())
}

fn strip_comments(statement: &str) -> String {
    statement
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads COPY rows up to the `\.` line.
fn rows(
    input: &mut impl BufRead,
    line_no: &mut u64,
    emit: &mut impl FnMut(Piece) -> bool,
) -> Result<(), PlainError> {
    let mut batch = Vec::with_capacity(256 * 1024);
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Err(PlainError::Malformed {
                line: *line_no,
                reason: "the dump ends inside COPY data (no \\. line)".into(),
            });
        }
        *line_no += 1;
        if line == b"\\.\n" || line == b"\\.\r\n" || line == b"\\." {
            if !batch.is_empty() && !emit(Piece::Rows(std::mem::take(&mut batch))) {
                return Ok(());
            }
            emit(Piece::EndCopy);
            return Ok(());
        }
        batch.extend_from_slice(&line);
        if batch.len() >= 256 * 1024 && !emit(Piece::Rows(std::mem::take(&mut batch))) {
            return Ok(());
        }
    }
}

/// Where the lexer is between lines.
#[derive(Debug, Default)]
struct Lexer {
    /// Inside a `'...'` literal (`true` for `E'...'`, where backslashes escape).
    quote: Option<bool>,
    ident: bool,
    dollar: Option<String>,
    block_comment: usize,
    /// Depth of `BEGIN ATOMIC` / `CASE` ... `END` in a SQL-standard function body.
    atomic: usize,
    /// The words of the statement so far (upper case), to recognise `CREATE FUNCTION ...
    /// BEGIN ATOMIC`.
    words: Vec<String>,
    word: String,
}

impl Lexer {
    fn is_idle(&self) -> bool {
        self.quote.is_none()
            && !self.ident
            && self.dollar.is_none()
            && self.block_comment == 0
            && self.atomic == 0
    }

    fn end_word(&mut self) {
        if self.word.is_empty() {
            return;
        }
        let word = std::mem::take(&mut self.word).to_ascii_uppercase();
        let is_routine = self.words.len() >= 2
            && self.words[0] == "CREATE"
            && self.words[1..]
                .iter()
                .take(3)
                .any(|w| w == "FUNCTION" || w == "PROCEDURE");
        if is_routine {
            let opens_body =
                word == "ATOMIC" && self.words.last().map(String::as_str) == Some("BEGIN");
            if opens_body || (self.atomic > 0 && word == "CASE") {
                self.atomic += 1;
            } else if self.atomic > 0 && word == "END" {
                self.atomic -= 1;
            }
        }
        self.words.push(word);
    }

    /// Scans `text`; returns the byte position just after a statement-ending `;`, if any.
    fn scan(&mut self, text: &str) -> Option<usize> {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(escapes) = self.quote {
                if escapes && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                }
                i += 1;
                continue;
            }
            if self.ident {
                if c == b'"' {
                    self.ident = false;
                }
                i += 1;
                continue;
            }
            if let Some(tag) = &self.dollar {
                if text[i..].starts_with(tag.as_str()) {
                    i += tag.len();
                    self.dollar = None;
                } else {
                    i += 1;
                }
                continue;
            }
            if self.block_comment > 0 {
                if text[i..].starts_with("*/") {
                    self.block_comment -= 1;
                    i += 2;
                } else if text[i..].starts_with("/*") {
                    self.block_comment += 1;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            match c {
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    self.end_word();
                    return None; // the rest of the line is a comment
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    self.end_word();
                    self.block_comment = 1;
                    i += 2;
                }
                b'\'' => {
                    let escapes = self.word.eq_ignore_ascii_case("e");
                    self.word.clear();
                    self.quote = Some(escapes);
                    i += 1;
                }
                b'"' => {
                    self.end_word();
                    self.ident = true;
                    i += 1;
                }
                b'$' if self.word.is_empty() || !self.word.chars().all(char::is_alphanumeric) => {
                    // `$tag$` opens a dollar quote; `$1` is a parameter.
                    let rest = &text[i + 1..];
                    let tag_len = rest.find('$').filter(|&n| {
                        rest[..n]
                            .chars()
                            .all(|ch| ch.is_alphanumeric() || ch == '_')
                            && !rest[..n].starts_with(|ch: char| ch.is_ascii_digit())
                    });
                    match tag_len {
                        Some(n) => {
                            self.end_word();
                            let tag = format!("${}$", &rest[..n]);
                            i += tag.len();
                            self.dollar = Some(tag);
                        }
                        None => {
                            self.word.push('$');
                            i += 1;
                        }
                    }
                }
                b';' => {
                    self.end_word();
                    if self.atomic == 0 {
                        self.words.clear();
                        return Some(i + 1);
                    }
                    i += 1;
                }
                c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                    let ch = text[i..].chars().next().expect("in bounds");
                    self.word.push(ch);
                    i += ch.len_utf8();
                }
                _ => {
                    self.end_word();
                    i += 1;
                }
            }
        }
        self.end_word();
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<Piece> {
        let mut out = Vec::new();
        split(text.as_bytes(), |p| {
            out.push(p);
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn statements_split_where_psql_splits_them() {
        let dump = "\\restrict abc123\n\
            SET standard_conforming_strings = on;\n\
            -- a comment; with a semicolon\n\
            CREATE TABLE t (a text DEFAULT 'x;y', \"b;c\" int); /* block ; /* nested ; */ */\n\
            CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$ BEGIN RETURN 'a;b'; END $body$;\n\
            SELECT E'it\\'s; fine', $1;\n\
            CREATE FUNCTION g(x int) RETURNS int LANGUAGE sql BEGIN ATOMIC\n\
              SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n\
              SELECT x;\n\
            END;\n\
            COPY t (a, \"b;c\") FROM stdin;\n\
            x;y\t1\n\
            \\\\.\t2\n\
            \\.\n\
            \\unrestrict abc123\n";
        let got = pieces(dump);
        assert_eq!(got.len(), 8, "{got:#?}");
        assert_eq!(
            got[0],
            Piece::Sql("SET standard_conforming_strings = on;".into())
        );
        assert!(
            matches!(&got[1], Piece::Sql(s) if s.starts_with("-- a comment") && s.contains("\"b;c\" int);"))
        );
        assert!(matches!(&got[2], Piece::Sql(s) if s.ends_with("$body$;")));
        assert_eq!(got[3], Piece::Sql("SELECT E'it\\'s; fine', $1;".into()));
        assert!(
            matches!(&got[4], Piece::Sql(s) if s.starts_with("CREATE FUNCTION g") && s.ends_with("END;"))
        );
        assert_eq!(got[5], Piece::Copy("COPY t (a, \"b;c\") FROM stdin".into()));
        assert_eq!(got[6], Piece::Rows(b"x;y\t1\n\\\\.\t2\n".to_vec()));
        assert_eq!(got[7], Piece::EndCopy);
    }

    #[test]
    fn connect_lines_name_their_database() {
        assert_eq!(connect_target("\\connect shop\n").as_deref(), Some("shop"));
        assert_eq!(
            connect_target("\\c \"My \"\"Db\"\"\"\n").as_deref(),
            Some("My \"Db\"")
        );
        assert_eq!(
            connect_target("\\connect -reuse-previous=on \"dbname='it\\'s'\"\n").as_deref(),
            Some("it's")
        );
        assert_eq!(
            connect_target("\\connect -reuse-previous=on \"dbname='shop'\"\n").as_deref(),
            Some("shop")
        );
        let got = pieces("SELECT 1;\n\\connect shop\nSELECT 2;\n");
        assert_eq!(got[1], Piece::Connect("shop".into()));
    }

    #[test]
    fn other_meta_commands_are_refused_by_name() {
        let err = split("SELECT 1;\n\\set x 1\n".as_bytes(), |_| true).unwrap_err();
        assert!(
            err.to_string().contains("line 2") && err.to_string().contains("\\set"),
            "{err}"
        );
        let err = split("COPY t FROM stdin;\n1\n".as_bytes(), |_| true).unwrap_err();
        assert!(err.to_string().contains("no \\. line"), "{err}");
    }
}
