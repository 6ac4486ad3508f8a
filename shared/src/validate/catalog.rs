//! Catalog queries: which tables hold rows, and the schema as normalised facts.
//!
//! Only user objects count: system schemas and objects that belong to an extension (created by
//! `CREATE EXTENSION`, dumped as that one statement) are left out, as pg_dump leaves them out.

use super::checksum::TableRef;
use crate::pg::{PgError, Session};
use tokio_postgres::types::Type;

/// SQL condition: namespace `n` is a user schema.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// SQL condition: the object with oid `$oid` of catalog `$cat` is not an extension member.
fn not_extension_member(oid: &str, catalog: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

/// Tables and populated materialized views that hold rows (partitioned parents hold none:
/// their partitions are listed instead), with their size in blocks; and extensions'
/// configuration tables, whose rows a dump carries in part (what was added to them) and a
/// restore must complete (the extension's own).
pub(super) async fn tables(session: &Session) -> Result<Vec<TableRef>, PgError> {
    let sql = format!(
        "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname), \
                (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) AND {USER_SCHEMA} \
           AND ({} OR c.oid IN (SELECT unnest(e.extconfig) FROM pg_extension e)) \
         ORDER BY 1, 2",
        not_extension_member("c.oid", "pg_class")
    );
    Ok(session
        .query_catalog(&sql, &[])
        .await?
        .iter()
        .map(|r| TableRef {
            schema: r.get(0),
            name: r.get(1),
            sql_name: r.get(2),
            blocks: r.get::<_, i64>(3).max(0) as u64,
            hashable: false,
        })
        .collect())
}

/// Marks the tables whose every column type has an extended hash function, so that their
/// checksums can hash values directly (`hash_record_extended`, PostgreSQL 14+) instead of their
/// text form. Decided from the row type alone (a record of NULLs), so both sides decide alike.
///
/// Types whose hash is the hash of an oid (enums, whose labels are oids local to a database,
/// and the `reg*` types), anywhere inside a column's type (arrays, domains, composites,
/// ranges), would hash differently in two databases holding the same values: such tables are
/// hashed by their text form.
pub(super) async fn probe_hashable(
    session: &Session,
    tables: &mut [TableRef],
    in_transaction: bool,
) -> Result<(), PgError> {
    const OID_HASHED: &str = "WITH RECURSIVE reach(t) AS ( \
           SELECT a.atttypid FROM pg_attribute a \
            WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped \
           UNION \
           SELECT x FROM reach JOIN pg_type ty ON ty.oid = reach.t, \
             LATERAL (SELECT ty.typelem UNION ALL SELECT ty.typbasetype \
                      UNION ALL SELECT a.atttypid FROM pg_attribute a \
                       WHERE a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
                      UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = ty.oid \
                      UNION ALL SELECT r.rngtypid FROM pg_range r WHERE r.rngmultitypid = ty.oid) n(x) \
            WHERE x <> 0) \
         SELECT EXISTS (SELECT 1 FROM reach JOIN pg_type ty ON ty.oid = reach.t \
                         WHERE ty.typtype = 'e' OR (ty.typnamespace = 'pg_catalog'::regnamespace \
                               AND ty.typname LIKE 'reg%'))";
    for table in tables.iter_mut() {
        let probe = format!(
            "SELECT hash_record_extended(jsonb_populate_record(NULL::{}, '{{}}'), 42)",
            table.sql_name
        );
        let oid_hashed: bool = session
            .query_typed_one(OID_HASHED, &[(&table.sql_name, Type::TEXT)])
            .await?
            .get(0);
        // A failed probe must not abort an enclosing transaction (a dump's snapshot).
        if in_transaction {
            session.batch_execute("SAVEPOINT probe").await?;
        }
        table.hashable = !oid_hashed && session.query_catalog_one(&probe, &[]).await.is_ok();
        if in_transaction {
            session
                .batch_execute("ROLLBACK TO SAVEPOINT probe; RELEASE SAVEPOINT probe")
                .await?;
        }
    }
    Ok(())
}
