//! Name patterns, as pg_dump takes them (`-t`, `-n`, `-T`, `--exclude-table-data`), and the
//! plain wildcards of keys and of pg_restore-style filters.
//!
//! ferry keeps its own matcher rather than a regex or glob crate because neither has these
//! rules: pg_dump folds an unquoted name to lower case and keeps a double-quoted one as written
//! (`""` inside quotes is one quote), a `.` outside quotes separates the schema from the name,
//! `*` matches any run of characters and `?` any one. (pg_dump also passes other regular
//! expression characters through to the server; ferry matches them literally, and says so in
//! the README.) Matching is a two-pointer walk that backtracks only to the last `*`: time is
//! proportional to the pattern's length times the name's, never exponential, whatever
//! patterns a user or an event supplies.

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// `*`: any run of characters, empty included.
    Any,
    /// `?`: exactly one character.
    One,
    Char(char),
}

/// Whether `tokens` match the whole of `text`.
fn matches(tokens: &[Token], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more character, and try again after it.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|t| *t == Token::Any)
}

/// `*` and `?` wildcards over `text` as written, case and all (S3 keys, pg_restore-style
/// names).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let tokens: Vec<Token> = pattern
        .chars()
        .map(|c| match c {
            '*' => Token::Any,
            '?' => Token::One,
            c => Token::Char(c),
        })
        .collect();
    matches(&tokens, text)
}

/// Whether `schema.name` matches one of `patterns` written with [`wildcard`]s: `table` (any
/// schema) or `schema.table`, as written (pg_restore's `-t` and `-n` take names exactly).
pub fn wildcard_table(patterns: &[String], schema: &str, name: &str) -> bool {
    patterns.iter().any(|p| match p.split_once('.') {
        Some((s, t)) => wildcard(s, schema) && wildcard(t, name),
        None => wildcard(p, name),
    })
}

/// A pg_dump name pattern: `name` or `schema.name` (more parts are a database and are
/// refused by pg_dump; here the last two count), each folded to lower case unless quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamePattern {
    schema: Option<Vec<Token>>,
    name: Vec<Token>,
}

impl NamePattern {
    /// Reads `pattern` as pg_dump reads it.
    pub fn parse(pattern: &str) -> NamePattern {
        let mut parts: Vec<Vec<Token>> = vec![Vec::new()];
        let mut quoted = false;
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let part = parts.last_mut().expect("one part at least");
            match c {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    chars.next();
                    part.push(Token::Char('"'));
                }
                '"' => quoted = !quoted,
                c if quoted => part.push(Token::Char(c)),
                '.' => parts.push(Vec::new()),
                '*' => part.push(Token::Any),
                '?' => part.push(Token::One),
                // As pg_dump and the server fold: ASCII letters only.
                c => part.push(Token::Char(c.to_ascii_lowercase())),
            }
        }
        let name = parts.pop().expect("one part at least");
        NamePattern {
            schema: parts.pop(),
            name,
        }
    }

    /// Whether the object `schema.name` matches (any schema when the pattern names none).
    pub fn matches(&self, schema: &str, name: &str) -> bool {
        self.schema.as_ref().is_none_or(|s| matches(s, schema)) && matches(&self.name, name)
    }

    /// Whether the schema `schema` matches, for a pattern of schemas (`-n`): its last part.
    pub fn matches_schema(&self, schema: &str) -> bool {
        matches(&self.name, schema)
    }
}

/// Whether the object `schema.name` matches one of pg_dump's `patterns`.
pub fn any_object(patterns: &[String], schema: &str, name: &str) -> bool {
    patterns
        .iter()
        .any(|p| NamePattern::parse(p).matches(schema, name))
}

/// Whether the schema `schema` matches one of pg_dump's schema `patterns`.
pub fn any_schema(patterns: &[String], schema: &str) -> bool {
    patterns
        .iter()
        .any(|p| NamePattern::parse(p).matches_schema(schema))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_written() {
        assert!(wildcard("*_log", "migration_log"));
        assert!(!wildcard("*_log", "migration_logs"));
        assert!(wildcard("imports/*/*.csv", "imports/a/b.csv"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("Orders", "orders"));
        assert!(wildcard("zoë*", "zoë's"));
        assert!(wildcard_table(
            &["public.audit*".into()],
            "public",
            "audit_2026"
        ));
        assert!(!wildcard_table(
            &["public.audit*".into()],
            "other",
            "audit_2026"
        ));
    }

    #[test]
    fn name_patterns_fold_case_unless_quoted() {
        let p = NamePattern::parse("Public.Orders*");
        assert!(p.matches("public", "orders_2026"));
        assert!(!p.matches("Public", "Orders"));
        let q = NamePattern::parse("\"Public\".\"Orders\"");
        assert!(q.matches("Public", "Orders"));
        assert!(!q.matches("public", "orders"));
        // A quoted dot, star and quote are characters of the name.
        let r = NamePattern::parse("\"a.b*\"\"c\"");
        assert!(r.matches("any", "a.b*\"c"));
        assert!(!r.matches("any", "a.bx\"c"));
        assert!(any_object(&["orders".into()], "sales", "orders"));
        assert!(any_schema(&["Sales*".into()], "sales_eu"));
        assert!(!any_schema(&["\"Sales\"".into()], "sales"));
        // Only ASCII letters fold, as pg_dump and the server fold them.
        assert!(any_object(&["Äpfel".into()], "s", "Äpfel"));
        assert!(!any_object(&["Äpfel".into()], "s", "äpfel"));
    }

    #[test]
    fn matching_is_not_exponential() {
        // Backtracking into every star would take about 60^8 steps here (the test would not
        // end); this walk takes a few thousand.
        let pattern = "*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(60);
        assert!(!wildcard(pattern, &text));
        assert!(!NamePattern::parse(pattern).matches("s", &text));
    }
}
