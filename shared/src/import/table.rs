//! The target table: its description from the catalog, and the mapping of a file's header
//! (or the options' column list) onto its columns.

use tokio::sync::mpsc;

use crate::{pg::Session, sql::ident};

use super::reader::{Compression, Piece};
use super::{CsvError, ImportError, Options};

/// A table named `schema.table` (either part may be double-quoted; without a schema, `public`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl TableName {
    pub fn parse(text: &str) -> Result<TableName, ImportError> {
        let bad = |why: &str| {
            ImportError::BadInput(format!(
                "{text:?} is not a table name (schema.table): {why}"
            ))
        };
        let mut parts = Vec::new();
        let mut rest = text.trim();
        loop {
            let (part, after) = if let Some(quoted) = rest.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = quoted.char_indices().peekable();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    if c == '"' {
                        if chars.peek().is_some_and(|(_, n)| *n == '"') {
                            chars.next();
                            out.push('"');
                        } else {
                            end = Some(i + 1);
                            break;
                        }
                    } else {
                        out.push(c);
                    }
                }
                let end = end.ok_or_else(|| bad("a quote is not closed"))?;
                (out, &quoted[end..])
            } else {
                let end = rest.find('.').unwrap_or(rest.len());
                (rest[..end].to_string(), &rest[end..])
            };
            if part.is_empty() {
                return Err(bad("an empty name"));
            }
            parts.push(part);
            match after.strip_prefix('.') {
                Some(next) => rest = next,
                None if after.is_empty() => break,
                None => return Err(bad("text after a quoted name")),
            }
        }
        match <[String; 2]>::try_from(parts) {
            Ok([schema, table]) => Ok(TableName { schema, table }),
            Err(parts) if parts.len() == 1 => Ok(TableName {
                schema: "public".into(),
                table: parts.into_iter().next().unwrap_or_default(),
            }),
            Err(_) => Err(bad("more than two parts")),
        }
    }

    /// `"schema"."table"`, for SQL and for the ledger.
    pub fn quoted(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.quoted())
    }
}

/// A column of the target table.
#[derive(Debug, Clone)]
pub(super) struct Column {
    pub(super) name: String,
    pub(super) not_null: bool,
    pub(super) has_default: bool,
    pub(super) generated: bool,
    pub(super) identity: bool,
    pub(super) in_primary_key: bool,
}

/// The target table as the catalog describes it.
pub(super) struct Table {
    pub(super) name: TableName,
    pub(super) columns: Vec<Column>,
}

pub(super) async fn describe_table(
    session: &Session,
    name: &TableName,
) -> Result<Table, ImportError> {
    let found = session
        .query_opt(
            "SELECT c.oid, c.relkind::text, has_table_privilege(c.oid, 'INSERT') \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2",
            &[&name.schema, &name.table],
        )
        .await?;
    let Some(row) = found else {
        return Err(ImportError::BadInput(format!(
            "the table {name} does not exist in the target database"
        )));
    };
    let (oid, kind, can_insert): (u32, String, bool) = (row.get(0), row.get(1), row.get(2));
    if kind != "r" && kind != "p" {
        return Err(ImportError::BadInput(format!(
            "{name} is not a table (relkind {kind}); CSV imports go into tables"
        )));
    }
    if !can_insert {
        return Err(ImportError::BadInput(format!(
            "the target role may not insert into {name}"
        )));
    }
    let rows = session
        .query(
            "SELECT a.attname::text, a.attnotnull, a.atthasdef, a.attgenerated <> '', \
                    a.attidentity <> '', \
                    coalesce(a.attnum = ANY (i.indkey::int2[]), false) \
             FROM pg_catalog.pg_attribute a \
             LEFT JOIN pg_catalog.pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await?;
    let columns = rows
        .iter()
        .map(|r| Column {
            name: r.get(0),
            not_null: r.get(1),
            has_default: r.get(2),
            generated: r.get(3),
            identity: r.get(4),
            in_primary_key: r.get(5),
        })
        .collect();
    Ok(Table {
        name: name.clone(),
        columns,
    })
}

/// The table columns the file's fields load, in the file's order.
pub(super) fn map_columns(
    table: &Table,
    names: &[String],
    explicit: bool,
    header_line: u64,
) -> Result<Vec<String>, ImportError> {
    let what = if explicit {
        "the column list".to_string()
    } else {
        format!("the header (line {header_line})")
    };
    let mut mapped: Vec<String> = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    for name in names {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err(ImportError::BadInput(format!(
                "{what} has an empty column name (field {})",
                mapped.len() + unknown.len() + 1
            )));
        }
        let exact = table
            .columns
            .iter()
            .find(|c| c.name == *name || c.name == trimmed);
        let folded: Vec<&Column> = table
            .columns
            .iter()
            .filter(|c| c.name.to_lowercase() == trimmed.to_lowercase())
            .collect();
        let column = match (exact, folded.as_slice()) {
            (Some(c), _) => c,
            (None, [c]) => *c,
            _ => {
                unknown.push((mapped.len() + unknown.len() + 1, name.clone()));
                continue;
            }
        };
        if column.generated {
            return Err(ImportError::BadInput(format!(
                "{what} names {}, a generated column of {}; leave it out of the file",
                ident(&column.name),
                table.name
            )));
        }
        if mapped.contains(&column.name) {
            return Err(ImportError::BadInput(format!(
                "{what} names the column {} twice",
                ident(&column.name)
            )));
        }
        mapped.push(column.name.clone());
    }
    if !unknown.is_empty() {
        let available: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        // A file without a header line has a row of data where the names should be: the
        // names are quoted only where values may be (`FERRY_ERROR_VALUES=true`).
        let named = if explicit || crate::pg::values_shown() {
            format!(
                "{:?}",
                unknown.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>()
            )
        } else {
            let fields: Vec<String> = unknown.iter().map(|(at, _)| at.to_string()).collect();
            format!(
                "field {} (names {}, since a file without a header line would show its first row)",
                fields.join(", "),
                crate::pg::WITHHELD
            )
        };
        return Err(ImportError::BadInput(format!(
            "{what} names columns {} does not have: {named} (its columns: {})",
            table.name,
            available.join(", ")
        )));
    }
    let missing: Vec<String> = table
        .columns
        .iter()
        .filter(|c| {
            c.not_null && !c.has_default && !c.identity && !c.generated && !mapped.contains(&c.name)
        })
        .map(|c| ident(&c.name))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::BadInput(format!(
            "{what} leaves out {}, NOT NULL without a default in {}",
            missing.join(", "),
            table.name
        )));
    }
    Ok(mapped)
}

/// The first things the reader hands over: how the object is compressed and its header,
/// turned into the table columns the file loads.
pub(super) async fn header_columns(
    rx: &mut mpsc::Receiver<Result<Piece, CsvError>>,
    target: &Table,
    options: &Options,
    url: &str,
    size: u64,
) -> Result<(Compression, Vec<String>), ImportError> {
    let mut compression = Compression::None;
    let (names, header_line) = loop {
        match rx.recv().await {
            Some(Ok(Piece::Compression(c))) => compression = c,
            Some(Ok(Piece::Header(Some(header)))) => break header,
            Some(Ok(Piece::Header(None))) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error: CsvError {
                        line: 1,
                        reason: if size == 0 {
                            "the object is empty (0 bytes): there is no header line".into()
                        } else {
                            "the file holds no header line (only blank lines)".into()
                        },
                    },
                });
            }
            Some(Err(error)) => {
                return Err(ImportError::BadFile {
                    url: url.to_string(),
                    error,
                });
            }
            _ => {
                return Err(ImportError::BadInput(format!(
                    "{url}: reading the object stopped unexpectedly"
                )));
            }
        }
    };
    let columns = match &options.columns {
        Some(list) => map_columns(target, list, true, header_line),
        None => map_columns(target, &names, false, header_line),
    }
    .map_err(|e| ImportError::BadInput(format!("{url}: {e}")))?;
    Ok((compression, columns))
}
