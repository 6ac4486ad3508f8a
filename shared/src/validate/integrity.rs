//! Integrity checks on one database: what a restore or a migration can leave broken.

use super::Problem;
use crate::pg::{PgError, Session};

pub(super) async fn check(session: &Session) -> Result<Vec<Problem>, PgError> {
    let mut problems = Vec::new();
    problems.extend(orphans(session).await?);
    problems.extend(sequences_behind(session).await?);
    for row in session
        .query_catalog(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?
    {
        problems.push(Problem {
            check: "invalid-index".into(),
            object: row.get(0),
            detail: "the index is marked invalid (a failed CREATE INDEX CONCURRENTLY or restore)"
                .into(),
        });
    }
    for row in session
        .query_catalog(
            "SELECT format('%I.%I.%I', n.nspname, c.relname, k.conname), pg_get_constraintdef(k.oid) FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT k.convalidated AND n.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?
    {
        problems.push(Problem {
            check: "unvalidated-constraint".into(),
            object: row.get(0),
            detail: format!("never validated: {}", row.get::<_, String>(1)),
        });
    }
    problems.sort();
    Ok(problems)
}

/// Rows whose foreign key points nowhere, for every foreign key (validated or NOT VALID).
/// Rows with a NULL in the key are not orphans (MATCH SIMPLE).
async fn orphans(session: &Session) -> Result<Vec<Problem>, PgError> {
    let keys = session
        .query_catalog(
            "SELECT format('%I.%I.%I', cn.nspname, cl.relname, k.conname), \
                    format('%I.%I', cn.nspname, cl.relname), cl.relkind = 'p', \
                    format('%I.%I', pn.nspname, pl.relname), \
                    (SELECT array_agg(format('%I', a.attname) ORDER BY x.n) FROM unnest(k.conkey) WITH ORDINALITY x(attnum, n) \
                       JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = x.attnum), \
                    (SELECT array_agg(format('%I', a.attname) ORDER BY x.n) FROM unnest(k.confkey) WITH ORDINALITY x(attnum, n) \
                       JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = x.attnum) \
             FROM pg_constraint k \
             JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = cl.relnamespace \
             JOIN pg_class pl ON pl.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pl.relnamespace \
             WHERE k.contype = 'f' AND k.conparentid = 0",
            &[],
        )
        .await?;
    let mut problems = Vec::new();
    for key in keys {
        let name: String = key.get(0);
        let child: String = key.get(1);
        let child_partitioned: bool = key.get(2);
        let parent: String = key.get(3);
        let columns: Vec<String> = key.get(4);
        let referenced: Vec<String> = key.get(5);
        // Every name here was quoted by the server's format('%I').
        let not_null: Vec<String> = columns
            .iter()
            .map(|c| format!("c.{c} IS NOT NULL"))
            .collect();
        let matches: Vec<String> = columns
            .iter()
            .zip(&referenced)
            .map(|(c, p)| format!("p.{p} = c.{c}"))
            .collect();
        let only = if child_partitioned { "" } else { "ONLY " };
        let sql = format!(
            "SELECT count(*)::int8 FROM {only}{child} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {})",
            not_null.join(" AND "),
            matches.join(" AND ")
        );
        let orphans: i64 = session.query_catalog_one(&sql, &[]).await?.get(0);
        if orphans > 0 {
            problems.push(Problem {
                check: "orphaned-rows".into(),
                object: name,
                detail: format!("{orphans} row(s) of {child} reference no row of {parent}"),
            });
        }
    }
    Ok(problems)
}

/// Sequences that would hand out a value their column already holds.
async fn sequences_behind(session: &Session) -> Result<Vec<Problem>, PgError> {
    let owned = session
        .query_catalog(
            "SELECT format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname), \
                    format('%I', a.attname), q.seqincrement \
             FROM pg_depend d \
             JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' \
             JOIN pg_namespace sn ON sn.oid = s.relnamespace \
             JOIN pg_sequence q ON q.seqrelid = s.oid \
             JOIN pg_class t ON t.oid = d.refobjid \
             JOIN pg_namespace tn ON tn.oid = t.relnamespace \
             JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
             WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
               AND d.deptype IN ('a', 'i') AND t.relkind IN ('r', 'p') \
               AND tn.nspname NOT IN ('pg_catalog', 'information_schema')",
            &[],
        )
        .await?;
    let mut problems = Vec::new();
    for row in owned {
        let sequence: String = row.get(0);
        let table: String = row.get(1);
        let column: String = row.get(2);
        let increment: i64 = row.get(3);
        let state = session
            .query_catalog_one(
                &format!("SELECT last_value::int8, is_called FROM {sequence}"),
                &[],
            )
            .await?;
        let last: i64 = state.get(0);
        let called: bool = state.get(1);
        let next = if called {
            last.saturating_add(increment)
        } else {
            last
        };
        let extreme = if increment > 0 { "max" } else { "min" };
        let value: Option<i64> = session
            .query_catalog_one(
                &format!("SELECT {extreme}({column})::int8 FROM {table}"),
                &[],
            )
            .await?
            .get(0);
        let behind = match value {
            Some(v) if increment > 0 => next <= v,
            Some(v) => next >= v,
            None => false,
        };
        if let (true, Some(v)) = (behind, value) {
            problems.push(Problem {
                check: "sequence-behind".into(),
                object: sequence,
                detail: format!("next value {next} but {table}.{column} already holds {v}"),
            });
        }
    }
    Ok(problems)
}
