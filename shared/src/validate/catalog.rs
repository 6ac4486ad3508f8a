//! Catalog queries: which tables hold rows, and the schema as normalised facts.
//!
//! Only user objects count: system schemas and objects that belong to an extension (created by
//! `CREATE EXTENSION`, dumped as that one statement) are left out, as pg_dump leaves them out.

use std::collections::BTreeMap;

use super::checksum::TableRef;
use crate::pg::{PgError, Session};

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
/// their partitions are listed instead), with their size in blocks.
pub(super) async fn tables(session: &Session) -> Result<Vec<TableRef>, PgError> {
    let sql = format!(
        "SELECT n.nspname, c.relname, format('%I.%I', n.nspname, c.relname), \
                (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) AND {USER_SCHEMA} \
           AND {} \
         ORDER BY 1, 2",
        not_extension_member("c.oid", "pg_class")
    );
    Ok(session
        .query(&sql, &[])
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
            .query_one(OID_HASHED, &[&table.sql_name])
            .await?
            .get(0);
        // A failed probe must not abort an enclosing transaction (a dump's snapshot).
        if in_transaction {
            session.batch_execute("SAVEPOINT probe").await?;
        }
        table.hashable = !oid_hashed && session.query_one(&probe, &[]).await.is_ok();
        if in_transaction {
            session
                .batch_execute("ROLLBACK TO SAVEPOINT probe; RELEASE SAVEPOINT probe")
                .await?;
        }
    }
    Ok(())
}

/// The schema as `object -> definition` facts: tables, columns, constraints, indexes,
/// sequences, views, functions, triggers, policies. Definitions come from the server's own
/// `pg_get_*def` functions, so two servers that agree on an object print it alike.
pub(super) async fn facts(session: &Session) -> Result<BTreeMap<String, String>, PgError> {
    let mut facts = BTreeMap::new();
    let class_ok = not_extension_member("c.oid", "pg_class");
    let queries = [
        // Tables: kind, persistence, partition bound, row security.
        format!(
            "SELECT 'table ' || format('%I.%I', n.nspname, c.relname), \
                    concat_ws(' ', 'kind=' || c.relkind::text, 'persistence=' || c.relpersistence::text, \
                              CASE WHEN c.relispartition THEN 'partition ' || pg_get_expr(c.relpartbound, c.oid) END, \
                              CASE WHEN c.relkind = 'p' THEN 'partitioned by ' || pg_get_partkeydef(c.oid) END, \
                              CASE WHEN c.relrowsecurity THEN 'row-security' END, \
                              CASE WHEN c.relforcerowsecurity THEN 'force-row-security' END, \
                              (SELECT 'inherits ' || string_agg(format('%I.%I', pn.nspname, p.relname), ', ' ORDER BY i.inhseqno) \
                                 FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent \
                                 JOIN pg_namespace pn ON pn.oid = p.relnamespace \
                                 WHERE i.inhrelid = c.oid AND NOT c.relispartition)) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {class_ok}"
        ),
        // Columns: type, nullability, default, generation, identity, collation.
        format!(
            "SELECT 'column ' || format('%I.%I.%I', n.nspname, c.relname, a.attname), \
                    concat_ws(' ', format_type(a.atttypid, a.atttypmod), \
                              CASE WHEN a.attnotnull THEN 'NOT NULL' END, \
                              CASE WHEN a.attgenerated = 's' THEN 'GENERATED ALWAYS AS (' || pg_get_expr(ad.adbin, ad.adrelid) || ') STORED' \
                                   WHEN ad.adbin IS NOT NULL THEN 'DEFAULT ' || pg_get_expr(ad.adbin, ad.adrelid) END, \
                              CASE a.attidentity WHEN 'a' THEN 'GENERATED ALWAYS AS IDENTITY' \
                                                 WHEN 'd' THEN 'GENERATED BY DEFAULT AS IDENTITY' END, \
                              CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation \
                                   THEN 'COLLATE ' || (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                                        JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f', 'v', 'm') \
               AND {USER_SCHEMA} AND {class_ok}"
        ),
        // Constraints (inherited copies on partitions are facts of their own, as pg_dump shows them).
        format!(
            "SELECT 'constraint ' || format('%I.%I.%I', n.nspname, c.relname, k.conname), pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {class_ok}"
        ),
        // Domain constraints.
        format!(
            "SELECT 'constraint ' || format('%I.%I.%I', n.nspname, t.typname, k.conname), pg_get_constraintdef(k.oid) \
             FROM pg_constraint k JOIN pg_type t ON t.oid = k.contypid JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("t.oid", "pg_type")
        ),
        // Indexes.
        format!(
            "SELECT 'index ' || format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid) \
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {class_ok}"
        ),
        // Sequences: shape, not position (positions are checked by integrity).
        format!(
            "SELECT 'sequence ' || format('%I.%I', n.nspname, c.relname), \
                    concat_ws(' ', format_type(s.seqtypid, NULL), 'increment ' || s.seqincrement, 'min ' || s.seqmin, \
                              'max ' || s.seqmax, 'start ' || s.seqstart, 'cache ' || s.seqcache, \
                              CASE WHEN s.seqcycle THEN 'cycle' END) \
             FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {class_ok}"
        ),
        // Views and materialized views.
        format!(
            "SELECT CASE c.relkind WHEN 'v' THEN 'view ' ELSE 'materialized view ' END || format('%I.%I', n.nspname, c.relname), \
                    pg_get_viewdef(c.oid, true) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {class_ok}"
        ),
        // Functions, procedures, aggregates: identity and a digest of the full definition.
        format!(
            "SELECT CASE p.prokind WHEN 'p' THEN 'procedure ' WHEN 'a' THEN 'aggregate ' ELSE 'function ' END \
                    || format('%I.%I', n.nspname, p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')', \
                    CASE WHEN p.prokind = 'a' THEN 'returns ' || pg_get_function_result(p.oid) \
                         ELSE 'definition md5 ' || md5(pg_get_functiondef(p.oid)) END \
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE {USER_SCHEMA} AND {}",
            not_extension_member("p.oid", "pg_proc")
        ),
        // Triggers (not the internal ones behind foreign keys).
        format!(
            "SELECT 'trigger ' || format('%I.%I.%I', n.nspname, c.relname, g.tgname), pg_get_triggerdef(g.oid) \
             FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE NOT g.tgisinternal AND {USER_SCHEMA} AND {class_ok}"
        ),
        // Row-level security policies.
        format!(
            "SELECT 'policy ' || format('%I.%I.%I', n.nspname, c.relname, p.polname), \
                    concat_ws(' ', CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END, \
                              'for ' || p.polcmd::text, \
                              'to ' || (SELECT string_agg(CASE WHEN r = 0 THEN 'public' ELSE r::regrole::text END, ',' ORDER BY 1) \
                                        FROM unnest(p.polroles) r), \
                              'using (' || pg_get_expr(p.polqual, p.polrelid) || ')', \
                              'with check (' || pg_get_expr(p.polwithcheck, p.polrelid) || ')') \
             FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE {USER_SCHEMA} AND {class_ok}"
        ),
    ];
    for sql in queries {
        for row in session.query(&sql, &[]).await? {
            let key: String = row.get(0);
            let value: Option<String> = row.get(1);
            facts.insert(key, value.unwrap_or_default());
        }
    }
    Ok(facts)
}
