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

/// The longest statement or line a dump may hold: PostgreSQL takes no query string longer than
/// 1 GB (`MaxAllocSize`), and a dump that never ends a line or a statement must not grow the
/// process's memory until it is killed.
const MAX_STATEMENT: usize = 1 << 30;

/// Splits a dump read from `input`, calling `emit` for each piece; stops when `emit` says so.
pub(super) fn split(
    input: impl BufRead,
    emit: impl FnMut(Piece) -> bool,
) -> Result<(), PlainError> {
    split_limited(input, MAX_STATEMENT, emit)
}

/// Reads one line (with its `\n`) into `line`, refusing one longer than `limit`; 0 at the end.
fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
    line_no: u64,
) -> Result<usize, PlainError> {
    let n = std::io::Read::take(&mut *input, limit as u64 + 1).read_until(b'\n', line)?;
    if n > limit {
        return Err(too_long(line_no + 1, limit));
    }
    Ok(n)
}

fn too_long(line: u64, limit: usize) -> PlainError {
    PlainError::Malformed {
        line,
        reason: format!("a line or statement longer than {limit} bytes"),
    }
}

/// [`split`] with the longest statement and line given.
fn split_limited(
    mut input: impl BufRead,
    limit: usize,
    mut emit: impl FnMut(Piece) -> bool,
) -> Result<(), PlainError> {
    let mut line_no = 0u64;
    let mut statement = String::new();
    let mut state = Lexer::default();
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(&mut input, &mut line, limit, line_no)? == 0 {
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
                    if statement.len() + end > limit {
                        return Err(too_long(line_no, limit));
                    }
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
                        rows(&mut input, &mut line_no, limit, &mut emit)?;
                        rest = "";
                        continue;
                    }
                    if !emit(Piece::Sql(trimmed.to_string())) {
                        return Ok(());
                    }
                }
                None => {
                    if statement.len() + rest.len() > limit {
                        return Err(too_long(line_no, limit));
                    }
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
    limit: usize,
    emit: &mut impl FnMut(Piece) -> bool,
) -> Result<(), PlainError> {
    let mut batch = Vec::with_capacity(256 * 1024);
    let mut line = Vec::new();
    loop {
        line.clear();
        if read_line(input, &mut line, limit, *line_no)? == 0 {
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
                if bytes[i..].starts_with(tag.as_bytes()) {
                    i += tag.len();
                    self.dollar = None;
                } else {
                    i += 1;
                }
                continue;
            }
            if self.block_comment > 0 {
                if bytes[i..].starts_with(b"*/") {
                    self.block_comment -= 1;
                    i += 2;
                } else if bytes[i..].starts_with(b"/*") {
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
    fn bodies_and_comments_may_hold_any_character() {
        let text = "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT 'café ☕'$$;\n\
                    /* naïve */ SELECT 'ü';\n";
        let mut pieces = Vec::new();
        split(text.as_bytes(), |p| {
            pieces.push(p);
            true
        })
        .unwrap();
        assert_eq!(
            pieces,
            [
                Piece::Sql(
                    "CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$SELECT 'café ☕'$$;".into()
                ),
                Piece::Sql("/* naïve */ SELECT 'ü';".into()),
            ]
        );
    }

    /// Arbitrary scripts built from the characters that matter to the lexer: pieces or an
    /// error, never a panic, and no piece longer than the limit.
    #[test]
    fn arbitrary_scripts_split_or_fail_without_panicking() {
        let alphabet: Vec<&str> = vec![
            "a",
            ";",
            "'",
            "\"",
            "$",
            "$x$",
            "--",
            "/*",
            "*/",
            "\n",
            "\\",
            "E'",
            "COPY t FROM stdin;\n",
            "\\.\n",
            "BEGIN ATOMIC",
            "END",
            " ",
            "\\restrict k\n",
            "é",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let parts = next() % 60;
            let text: String = (0..parts)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let outcome = std::panic::catch_unwind(|| {
                split_limited(text.as_bytes(), 128, |piece| {
                    let len = match &piece {
                        Piece::Sql(s) | Piece::Copy(s) | Piece::Connect(s) => s.len(),
                        Piece::Rows(r) => r.len().min(128),
                        Piece::EndCopy => 0,
                    };
                    assert!(len <= 128, "a piece of {len} bytes: {piece:?}");
                    true
                })
            });
            assert!(outcome.is_ok(), "round {round} panicked on {text:?}");
        }
    }

    #[test]
    fn statements_and_lines_past_the_limit_are_refused() {
        let ok = |text: &str| split_limited(text.as_bytes(), 64, |_| true);
        ok("SELECT 1;\nSELECT 2;\n").unwrap();
        // A statement over many lines, a line without an end, a COPY row.
        let long = format!("SELECT\n{}1;\n", "1 +\n".repeat(30));
        assert!(
            ok(&long)
                .unwrap_err()
                .to_string()
                .contains("longer than 64 bytes")
        );
        let endless = "x".repeat(200);
        assert!(
            ok(&endless)
                .unwrap_err()
                .to_string()
                .contains("longer than 64 bytes")
        );
        let copy = format!("COPY t FROM stdin;\n{}\n\\.\n", "y".repeat(100));
        assert!(
            ok(&copy)
                .unwrap_err()
                .to_string()
                .contains("longer than 64 bytes")
        );
        let fine = format!("COPY t FROM stdin;\n{}\n\\.\n", "y".repeat(40));
        ok(&fine).unwrap();
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
