//! Stages and modes: how the loaded rows reach the target table (appended directly, or through
//! a staging table merged as an upsert or a replace).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{
    pg::Session,
    sql::{ident, literal},
};

use super::table::{Column, Table};
use super::{Dialect, ImportError};

/// How rows join the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Added to what is there.
    #[default]
    Append,
    /// Inserted, or updating the row with the same primary key.
    Upsert,
    /// The table's rows become the file's, in one transaction (readers see the old rows until
    /// it commits, never an empty table).
    Replace,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, ImportError> {
        match text {
            "append" => Ok(Mode::Append),
            "upsert" => Ok(Mode::Upsert),
            "replace" => Ok(Mode::Replace),
            other => Err(ImportError::BadInput(format!(
                "unknown mode {other:?}: expected append, upsert or replace"
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Upsert => "upsert",
            Mode::Replace => "replace",
        }
    }
}

/// A stage table's definition: the target's columns with their defaults, NOT NULL, CHECK and
/// unique constraints, so that a bad row is refused (and named) as it is staged. Foreign keys
/// and conflicts with rows already in the table are checked when the rows move into it.
pub(super) fn stage_like(target: &Table) -> String {
    format!(
        "LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING CONSTRAINTS \
         INCLUDING INDEXES",
        target.name.quoted()
    )
}

/// What a mode needs of the file's columns (upsert: the whole primary key).
pub(super) fn check_mode(
    target: &Table,
    columns: &[String],
    mode: Mode,
) -> Result<(), ImportError> {
    if mode != Mode::Upsert {
        return Ok(());
    }
    let key: Vec<&Column> = target.columns.iter().filter(|c| c.in_primary_key).collect();
    if key.is_empty() {
        return Err(ImportError::BadInput(format!(
            "upsert needs a primary key and {} has none",
            target.name
        )));
    }
    if let Some(c) = key.iter().find(|c| !columns.contains(&c.name)) {
        return Err(ImportError::BadInput(format!(
            "upsert matches rows on the primary key, and the file has no {} column",
            ident(&c.name)
        )));
    }
    Ok(())
}

/// `COPY into (columns) FROM STDIN` in the file's dialect.
pub(super) fn copy_statement(into: &str, columns: &[String], d: &Dialect) -> String {
    let char_literal = |b: u8| literal(&(b as char).to_string());
    format!(
        "COPY {into} ({}) FROM STDIN WITH (FORMAT csv, DELIMITER {}, QUOTE {}, ESCAPE {}, NULL {}, ENCODING {})",
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", "),
        char_literal(d.delimiter),
        char_literal(d.quote),
        char_literal(d.escape),
        literal(&d.null),
        literal(d.encoding.copy_name()),
    )
}

/// Moves the staged rows into the table: upsert on the primary key, or replace its rows.
pub(super) async fn apply_stage(
    session: &Session,
    target: &Table,
    columns: &[String],
    mode: Mode,
    stage: &str,
) -> Result<u64, ImportError> {
    let list: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let list = list.join(", ");
    let table = target.name.quoted();
    let insert = format!("INSERT INTO {table} ({list}) SELECT {list} FROM {stage}");
    let statement = match mode {
        Mode::Upsert => {
            let key: Vec<String> = target
                .columns
                .iter()
                .filter(|c| c.in_primary_key)
                .map(|c| ident(&c.name))
                .collect();
            let updates: Vec<String> = columns
                .iter()
                .filter(|c| {
                    !target
                        .columns
                        .iter()
                        .any(|t| t.in_primary_key && t.name == **c)
                })
                .map(|c| format!("{0} = EXCLUDED.{0}", ident(c)))
                .collect();
            if updates.is_empty() {
                format!("{insert} ON CONFLICT ({}) DO NOTHING", key.join(", "))
            } else {
                format!(
                    "{insert} ON CONFLICT ({}) DO UPDATE SET {}",
                    key.join(", "),
                    updates.join(", ")
                )
            }
        }
        Mode::Replace => {
            session
                .execute(&format!("DELETE FROM {table}"), &[])
                .await?;
            insert
        }
        Mode::Append => insert,
    };
    session.execute(&statement, &[]).await.map_err(|e| {
        let cardinality = e.code() == Some(&tokio_postgres::error::SqlState::CARDINALITY_VIOLATION);
        if cardinality {
            ImportError::BadInput(format!(
                "the file holds the same primary key of {} more than once, so an upsert cannot \
                 tell which row wins",
                target.name
            ))
        } else {
            ImportError::from(e)
        }
    })
}
