//! Dependencies between catalog objects, from `pg_depend`.

use super::*;

/// Dependencies between the objects created before data, from `pg_depend`, each side mapped
/// to the object whose statement creates it: a view's rewrite rule to the view, a column
/// default or CHECK constraint to its table, a domain constraint to its domain, a table's row
/// type to the table, an array type to its element, an extension's member to the extension.
/// A base type's support functions depend on its shell instead (see `types::shell_dependencies`).
pub(super) async fn edges(session: &Session) -> Result<Vec<(ObjKey, ObjKey)>, PgError> {
    // Each side as `catalog:oid` text, mapped to the object whose statement creates it.
    let canon = |class: &str, oid: &str| {
        format!(
            "CASE \
               WHEN EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {class} AND e.objid = {oid} AND e.deptype = 'e') \
                 THEN '3079:' || (SELECT e.refobjid FROM pg_depend e WHERE e.classid = {class} \
                       AND e.objid = {oid} AND e.deptype = 'e' LIMIT 1) \
               WHEN {class} = 'pg_rewrite'::regclass THEN '1259:' || (SELECT ev_class FROM pg_rewrite WHERE oid = {oid}) \
               WHEN {class} = 'pg_attrdef'::regclass THEN '1259:' || (SELECT adrelid FROM pg_attrdef WHERE oid = {oid}) \
               WHEN {class} = 'pg_constraint'::regclass THEN (SELECT CASE WHEN conrelid <> 0 THEN '1259:' || conrelid \
                       ELSE '1247:' || contypid END FROM pg_constraint WHERE oid = {oid}) \
               WHEN {class} = 'pg_type'::regclass THEN (SELECT CASE \
                       WHEN t.typelem <> 0 AND EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid) \
                         THEN (SELECT CASE WHEN el.typrelid <> 0 AND (SELECT relkind FROM pg_class WHERE oid = el.typrelid) <> 'c' \
                                THEN '1259:' || el.typrelid ELSE '1247:' || el.oid END \
                               FROM pg_type el WHERE el.oid = t.typelem) \
                       WHEN t.typrelid <> 0 AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) <> 'c' \
                         THEN '1259:' || t.typrelid \
                       ELSE '1247:' || t.oid END FROM pg_type t WHERE t.oid = {oid}) \
               WHEN {class} = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = {oid}) = 'c' \
                 THEN '1247:' || (SELECT reltype FROM pg_class WHERE oid = {oid}) \
               ELSE {class}::oid || ':' || {oid} END"
        )
    };
    let sql = format!(
        "SELECT DISTINCT x.a, x.b FROM ( \
           SELECT ({}) AS a, ({}) AS b FROM pg_depend d \
           WHERE d.deptype = 'n' AND d.objid >= 16384 AND d.refobjid >= 16384 \
             AND d.classid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, \
                               'pg_rewrite'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass) \
             AND d.refclassid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, \
                                  'pg_namespace'::regclass, 'pg_extension'::regclass) \
             AND NOT (d.classid = 'pg_constraint'::regclass AND (SELECT contype FROM pg_constraint WHERE oid = d.objid) NOT IN ('c')) \
             AND NOT (d.classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('i', 'I', 'S')) \
             AND NOT (d.refclassid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.refobjid) IN ('i', 'I')) \
             AND NOT (d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_type'::regclass AND EXISTS ( \
                   SELECT 1 FROM pg_type t WHERE t.oid = d.refobjid AND d.objid IN (t.typinput, t.typoutput, \
                     t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze, t.typsubscript) \
                   UNION ALL SELECT 1 FROM pg_range r WHERE r.rngtypid = d.refobjid AND d.objid = r.rngcanonical)) \
         ) x",
        canon("d.classid", "d.objid"),
        canon("d.refclassid", "d.refobjid"),
    );
    let rows = session.query_catalog(&sql, &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let key = |i: usize| -> Option<ObjKey> {
                let text: String = r.get::<_, Option<String>>(i)?;
                let (class, oid) = text.split_once(':')?;
                Some((class.parse().ok()?, oid.parse().ok()?))
            };
            let (from, to) = (key(0)?, key(1)?);
            (from != to).then_some((from, to))
        })
        .collect())
}

/// `ALTER ... DEPENDS ON EXTENSION` (pg_depend's `x` dependencies: the object is dropped with
/// the extension), appended to the statement that creates the object, as pg_dump writes it:
/// functions and procedures, triggers, materialized views, indexes (and the keys they back).
pub(super) async fn extension_dependencies(
    session: &Session,
    b: &mut Builder<'_>,
) -> Result<(), PgError> {
    // The object's name as the server quotes it (regprocedure and regclass print qualified
    // names under the dump's empty search_path).
    let rows = session
        .query_catalog(
            "SELECT d.classid::oid, d.objid, \
                    CASE WHEN d.classid = 'pg_proc'::regclass THEN \
                           (SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || p.oid::regprocedure::text \
                              FROM pg_proc p WHERE p.oid = d.objid) \
                         WHEN d.classid = 'pg_trigger'::regclass THEN \
                           (SELECT format('TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass) FROM pg_trigger t WHERE t.oid = d.objid) \
                         ELSE (SELECT CASE c.relkind WHEN 'm' THEN 'MATERIALIZED VIEW ' ELSE 'INDEX ' END || c.oid::regclass::text \
                                 FROM pg_class c WHERE c.oid = d.objid) END, \
                    quote_ident(e.extname), e.oid \
             FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid \
             WHERE d.deptype = 'x' AND d.refclassid = 'pg_extension'::regclass \
               AND d.classid IN ('pg_proc'::regclass, 'pg_trigger'::regclass, 'pg_class'::regclass) \
             ORDER BY 1, 2, 4",
            &[],
        )
        .await?;
    let keyed = b.keyed();
    for r in rows {
        let (class, oid): (u32, u32) = (r.get(0), r.get(1));
        let (Some(object), extension): (Option<String>, String) = (r.get(2), r.get(3)) else {
            continue;
        };
        let at = keyed.get(&(class, oid)).copied().or_else(|| {
            (class == PG_CLASS)
                .then(|| b.indexes.get(&oid).copied())
                .flatten()
        });
        if let Some(at) = at {
            b.items[at].defn.push_str(&format!(
                "ALTER {object} DEPENDS ON EXTENSION {extension};\n"
            ));
            b.items[at]
                .deps
                .push(Dep::Object((PG_EXTENSION, r.get::<_, u32>(4))));
        }
    }
    Ok(())
}
