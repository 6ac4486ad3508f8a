//! Which table an uploaded object goes to: rules (key prefix or glob -> table and options), else
//! the convention `imports/<schema>.<table>/<file>`, then the allow list. The key only ever
//! selects among names; the table must then exist in the catalog (looked up with parameters).
//!
//! Fail closed: whoever may upload under `imports/` chooses the table by the key, so the
//! convention routes only into tables an allow list names; with no allow list it routes
//! nowhere. A rule names its table itself (the operator wrote it), so rules need no allow list,
//! but when one is given every table, ruled or not, must be on it. System schemas and ferry's
//! own are never written.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Dialect, Encoding, ImportError, Mode, Options, TableName};
use crate::{
    pattern::{wildcard, wildcard_table},
    store::ObjectUrl,
};

/// How to read a file and load it; every field optional (the CSV defaults of `COPY`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CsvOptions {
    /// `append` (default), `upsert` (on the primary key) or `replace` (the table's rows become
    /// the file's, atomically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// One character; `,` by default (`\t` for keys ending in `.tsv`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delimiter: Option<String>,
    /// One character; `"` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote: Option<String>,
    /// One character; the quote by default (a doubled quote inside a quoted field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escape: Option<String>,
    /// The unquoted text that means NULL; empty by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub null: Option<String>,
    /// Whether the first line names the columns (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// `utf8` (default; a byte order mark is skipped) or `latin1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// The file's fields in order, as column names (instead of matching the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Load the good rows and set aside up to this many bad ones (default 0: strict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rejected_rows: Option<u64>,
    /// Where rejected rows are written: an object, or a prefix ending in `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejects_to: Option<String>,
}

impl CsvOptions {
    /// `self`, with what it leaves unset taken from `base`.
    pub fn over(&self, base: &CsvOptions) -> CsvOptions {
        CsvOptions {
            mode: self.mode.clone().or_else(|| base.mode.clone()),
            delimiter: self.delimiter.clone().or_else(|| base.delimiter.clone()),
            quote: self.quote.clone().or_else(|| base.quote.clone()),
            escape: self.escape.clone().or_else(|| base.escape.clone()),
            null: self.null.clone().or_else(|| base.null.clone()),
            header: self.header.or(base.header),
            encoding: self.encoding.clone().or_else(|| base.encoding.clone()),
            columns: self.columns.clone().or_else(|| base.columns.clone()),
            max_rejected_rows: self.max_rejected_rows.or(base.max_rejected_rows),
            rejects_to: self.rejects_to.clone().or_else(|| base.rejects_to.clone()),
        }
    }

    /// The import options these say, for the object at `key`.
    pub fn to_options(&self, key: &str) -> Result<Options, ImportError> {
        let one_char =
            |name: &str, value: &Option<String>, default: u8| -> Result<u8, ImportError> {
                let Some(v) = value else { return Ok(default) };
                let v = if v == "\\t" { "\t" } else { v.as_str() };
                match v.as_bytes() {
                    [b] if b.is_ascii() && *b != b'\n' && *b != b'\r' => Ok(*b),
                    _ => Err(ImportError::BadInput(format!(
                        "{name} must be one ASCII character other than a line end, not {v:?}"
                    ))),
                }
            };
        let tsv = key
            .to_ascii_lowercase()
            .trim_end_matches(".gz")
            .trim_end_matches(".zst")
            .ends_with(".tsv");
        let delimiter = one_char("delimiter", &self.delimiter, if tsv { b'\t' } else { b',' })?;
        let quote = one_char("quote", &self.quote, b'"')?;
        let escape = one_char("escape", &self.escape, quote)?;
        if delimiter == quote {
            return Err(ImportError::BadInput(
                "the delimiter and the quote must differ".into(),
            ));
        }
        let null = self.null.clone().unwrap_or_default();
        if null.contains(['\n', '\r'])
            || null.contains(delimiter as char)
            || null.contains(quote as char)
        {
            return Err(ImportError::BadInput(format!(
                "the NULL string {null:?} may not hold a line end, the delimiter or the quote"
            )));
        }
        let encoding = match &self.encoding {
            None => Encoding::Utf8,
            Some(e) => Encoding::parse(e).ok_or_else(|| {
                ImportError::BadInput(format!("unknown encoding {e:?}: expected utf8 or latin1"))
            })?,
        };
        let mode = match &self.mode {
            None => Mode::Append,
            Some(m) => Mode::parse(m)?,
        };
        let rejects_to = self
            .rejects_to
            .as_deref()
            .map(ObjectUrl::parse)
            .transpose()
            .map_err(|e| ImportError::BadInput(e.to_string()))?;
        Ok(Options {
            mode,
            dialect: Dialect {
                delimiter,
                quote,
                escape,
                null,
                header: self.header.unwrap_or(true),
                encoding,
            },
            columns: self.columns.clone(),
            max_rejected_rows: self.max_rejected_rows.unwrap_or(0),
            rejects_to,
            ..Options::default()
        })
    }
}

/// One routing rule: objects whose key starts with `prefix` (or matches `glob`: `*` matches
/// anything including `/`, `?` any one character) go to `table`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub glob: Option<String>,
    /// `schema.table`.
    pub table: String,
    #[serde(flatten)]
    pub options: CsvOptions,
}

/// Where uploaded objects go, and what happens to them after.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Routes {
    /// Tried in order; the first that matches decides.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Route `imports/<schema>.<table>/<file>` to that table when no rule matches (default true),
    /// if `allow` names it.
    #[serde(default = "yes")]
    pub convention: bool,
    /// Tables that may be imported into: `schema.table` (or `table`, any schema) as the table's
    /// name is written, `*` and `?` wildcards. Empty: only the tables rules name (the
    /// convention routes nowhere). `FERRY_IMPORT_ALLOW` (comma-separated) adds to it.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Where an object that cannot be imported is moved, with a report beside it.
    #[serde(default = "rejected")]
    pub rejected_prefix: String,
    /// Where an imported object is moved (left in place when unset).
    #[serde(default)]
    pub processed_prefix: Option<String>,
    /// Where rejected rows go when a rule allows some and names no place (default: the rejected
    /// prefix of the same bucket).
    #[serde(default)]
    pub defaults: CsvOptions,
}

fn yes() -> bool {
    true
}

fn rejected() -> String {
    "rejected/".into()
}

impl Default for Routes {
    fn default() -> Self {
        Routes {
            rules: Vec::new(),
            convention: true,
            allow: Vec::new(),
            rejected_prefix: rejected(),
            processed_prefix: None,
            defaults: CsvOptions::default(),
        }
    }
}

/// The convention's folder.
pub const CONVENTION_PREFIX: &str = "imports/";

const SYSTEM_SCHEMAS: [&str; 5] = [
    "pg_catalog",
    "information_schema",
    "pg_toast",
    "ferry_import",
    "ferry_restore",
];

/// Whether imports may write into `table` at all, however it was named (a route, a request's
/// own `table`): never into a system schema or ferry's own bookkeeping (`ferry_import`'s ledger,
/// `ferry_restore`'s progress), which a forged row would corrupt.
pub fn writable(table: &TableName) -> Result<(), ImportError> {
    if SYSTEM_SCHEMAS.contains(&table.schema.as_str()) || table.schema.starts_with("pg_") {
        return Err(ImportError::BadInput(format!(
            "imports into {table} are not allowed: a system schema or ferry's own"
        )));
    }
    Ok(())
}

/// Where an object goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Into this table, with these options.
    Table(TableName, Box<CsvOptions>),
    /// Nowhere: the object is ferry's own output (under the rejected or processed prefix).
    Ignore(String),
}

impl Routes {
    /// Parses routes from JSON text.
    pub fn from_json(text: &str) -> Result<Routes, ImportError> {
        serde_json::from_str(text)
            .map_err(|e| ImportError::BadInput(format!("the import routes are not valid: {e}")))
    }

    /// Where the object at `key` goes, or why it goes nowhere. An error means it has no
    /// (allowed) destination.
    pub fn route(&self, key: &str) -> Result<Route, ImportError> {
        for own in [
            Some(self.rejected_prefix.as_str()),
            self.processed_prefix.as_deref(),
        ]
        .into_iter()
        .flatten()
        {
            if !own.is_empty() && key.starts_with(own) {
                return Ok(Route::Ignore(format!(
                    "{key:?} is under {own:?}, where ferry moves objects it has handled"
                )));
            }
        }
        let matched = self.rules.iter().find(|r| {
            r.prefix.as_deref().is_some_and(|p| key.starts_with(p))
                || r.glob.as_deref().is_some_and(|g| wildcard(g, key))
        });
        let (table, options, by_rule) = match matched {
            Some(rule) => (
                TableName::parse(&rule.table)?,
                rule.options.over(&self.defaults),
                true,
            ),
            None => {
                let folder = key
                    .strip_prefix(CONVENTION_PREFIX)
                    .filter(|_| self.convention)
                    .and_then(|rest| rest.split_once('/'))
                    .map(|(folder, _)| folder);
                let Some(folder) = folder else {
                    return Err(ImportError::BadInput(format!(
                        "no rule routes {key:?} to a table{}",
                        if self.convention {
                            " (and it is not under imports/<schema>.<table>/)"
                        } else {
                            ""
                        }
                    )));
                };
                let table = TableName::parse(folder)
                    .map_err(|e| ImportError::BadInput(format!("{key:?} names no table: {e}")))?;
                (table, self.defaults.clone(), false)
            }
        };
        self.authorise(&table, by_rule)?;
        Ok(Route::Table(table, Box::new(options)))
    }

    /// Whether imports may write into `table`, routed there by a rule (`by_rule`) or by the
    /// convention.
    fn authorise(&self, table: &TableName, by_rule: bool) -> Result<(), ImportError> {
        let refuse = |why: String| {
            Err(ImportError::BadInput(format!(
                "imports into {table} are not allowed: {why}"
            )))
        };
        writable(table)?;
        if !self.allow.is_empty() {
            if wildcard_table(&self.allow, &table.schema, &table.table) {
                return Ok(());
            }
            return refuse(format!("not in the allow list ({})", self.allow.join(", ")));
        }
        if by_rule {
            return Ok(());
        }
        refuse(
            "the imports/<schema>.<table>/ convention lets whoever uploads choose the table, so \
             it routes only into tables an allow list names (\"allow\" in the routes, or \
             FERRY_IMPORT_ALLOW), and none is set"
                .into(),
        )
    }

    /// Adds the tables of a comma-separated list (`FERRY_IMPORT_ALLOW`) to the allow list.
    pub fn allowing(mut self, list: &str) -> Routes {
        self.allow.extend(
            list.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str, t: &str) -> TableName {
        TableName {
            schema: s.into(),
            table: t.into(),
        }
    }

    #[test]
    fn convention_rules_and_allow_list() {
        let routes = Routes::from_json(
            r#"{"rules":[{"prefix":"drops/orders/","table":"sales.orders","mode":"upsert"},
                         {"glob":"*/customers-*.csv.gz","table":"public.customers"}],
                "allow":["public.*","sales.orders"]}"#,
        )
        .unwrap();
        let Route::Table(t, o) = routes.route("drops/orders/2026-11-25.csv").unwrap() else {
            panic!()
        };
        assert_eq!(
            (t, o.mode.as_deref()),
            (table("sales", "orders"), Some("upsert"))
        );
        let Route::Table(t, _) = routes.route("x/y/customers-1.csv.gz").unwrap() else {
            panic!()
        };
        assert_eq!(t, table("public", "customers"));
        let Route::Table(t, _) = routes.route("imports/public.items/a b.csv").unwrap() else {
            panic!()
        };
        assert_eq!(t, table("public", "items"));
        let Route::Table(t, _) = routes
            .route("imports/\"Odd \"\"Schema\"\"\".\"t.x\"/f.csv")
            .map_err(|e| e.to_string())
            .unwrap_or_else(|_| Route::Table(table("public", "denied"), Box::default()))
        else {
            panic!()
        };
        // Not in the allow list.
        assert_eq!(t, table("public", "denied"));
        assert!(
            routes
                .route("imports/sales.secrets/f.csv")
                .unwrap_err()
                .to_string()
                .contains("not allowed")
        );
        assert!(
            routes
                .route("elsewhere/f.csv")
                .unwrap_err()
                .to_string()
                .contains("no rule")
        );
        assert!(matches!(
            routes.route("rejected/imports/public.items/a.csv"),
            Ok(Route::Ignore(_))
        ));
        // No allow list: the convention routes nowhere (whoever uploads would choose the
        // table); a rule's own table is allowed; system schemas never.
        let closed = Routes::default();
        assert!(
            closed
                .route("imports/public.orders/f.csv")
                .unwrap_err()
                .to_string()
                .contains("allow list")
        );
        let ruled = Routes::from_json(
            r#"{"rules":[{"prefix":"drops/","table":"sales.orders"},
                         {"prefix":"sys/","table":"pg_catalog.pg_class"}]}"#,
        )
        .unwrap();
        assert!(matches!(ruled.route("drops/a.csv"), Ok(Route::Table(..))));
        assert!(ruled.route("imports/sales.orders/a.csv").is_err());
        assert!(
            ruled
                .route("sys/a.csv")
                .unwrap_err()
                .to_string()
                .contains("system")
        );
        let open = Routes::default().allowing(" *.*, ");
        assert!(
            open.route("imports/pg_catalog.pg_class/f.csv")
                .unwrap_err()
                .to_string()
                .contains("system")
        );
        let Route::Table(t, _) = open
            .route("imports/\"Odd \"\"S\"\"\".\"t.x\"/f.csv")
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(t, table("Odd \"S\"", "t.x"));
    }

    #[test]
    fn options_are_checked() {
        let o = CsvOptions::default().to_options("a/b.tsv").unwrap();
        assert_eq!(o.dialect.delimiter, b'\t');
        let bad = CsvOptions {
            delimiter: Some("ab".into()),
            ..CsvOptions::default()
        };
        assert!(
            bad.to_options("x.csv")
                .unwrap_err()
                .to_string()
                .contains("delimiter")
        );
        let bad = CsvOptions {
            mode: Some("merge".into()),
            ..CsvOptions::default()
        };
        assert!(
            bad.to_options("x.csv")
                .unwrap_err()
                .to_string()
                .contains("merge")
        );
    }
}
