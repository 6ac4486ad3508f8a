//! Security labels (`SECURITY LABEL FOR provider ON ...`), one `SECURITY LABEL` entry per
//! object as pg_dump writes them (a table's entry holds its columns' labels too), after the
//! object. A restore needs the same label providers loaded on the target (as pg_restore does).

use super::*;

pub(super) async fn security_labels(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // The SQL target as the server names the object (upper-cased kind and quoted identity);
    // the tag as pg_dump tags it (the kind and the unqualified name).
    let rows = session
        .query_catalog(
            "SELECT l.classoid::oid, l.objoid, \
                    format('FOR %s ON %s %s IS %s', quote_ident(l.provider), \
                           CASE WHEN l.objsubid <> 0 THEN 'COLUMN' \
                                WHEN l.classoid = 'pg_type'::regclass \
                                 AND (SELECT t.typtype FROM pg_type t WHERE t.oid = l.objoid) = 'd' THEN 'DOMAIN' \
                                ELSE upper(o.type) END, \
                           CASE WHEN l.classoid = 'pg_proc'::regclass \
                                THEN (SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) \
                                        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = l.objoid) \
                                ELSE o.identity END, \
                           quote_literal(l.label)), \
                    CASE l.classoid \
                      WHEN 'pg_class'::regclass THEN (SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' \
                             WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END \
                             || ' ' || quote_ident(c.relname) FROM pg_class c WHERE c.oid = l.objoid) \
                      WHEN 'pg_proc'::regclass THEN (SELECT CASE p.prokind WHEN 'a' THEN 'AGGREGATE' WHEN 'p' THEN 'PROCEDURE' \
                             ELSE 'FUNCTION' END || ' ' || quote_ident(p.proname) || '(' \
                             || pg_get_function_identity_arguments(p.oid) || ')' FROM pg_proc p WHERE p.oid = l.objoid) \
                      WHEN 'pg_type'::regclass THEN (SELECT CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END \
                             || ' ' || quote_ident(t.typname) FROM pg_type t WHERE t.oid = l.objoid) \
                      WHEN 'pg_largeobject'::regclass THEN 'LARGE OBJECT ' || l.objoid \
                      ELSE upper(o.type) || ' ' || o.identity END \
             FROM pg_seclabel l, pg_identify_object(l.classoid, l.objoid, l.objsubid) o \
             ORDER BY 1, 2, l.objsubid, l.provider",
            &[],
        )
        .await?;
    let mut entries: Vec<((u32, u32), String, String)> = Vec::new();
    for r in rows {
        let key: ObjKey = (r.get(0), r.get(1));
        let statement = format!("SECURITY LABEL {};\n", r.get::<_, String>(2));
        match entries.last_mut() {
            Some((last, _, defn)) if *last == key => defn.push_str(&statement),
            _ => entries.push((key, r.get(3), statement)),
        }
    }
    let items = b.keyed();
    for (key, tag, defn) in entries {
        // Only objects the dump makes (not the system's, an extension's, or those a filter
        // leaves out).
        let Some(&of) = items.get(&key) else { continue };
        if b.items[of].placeholder && b.items[of].desc != "SCHEMA" {
            continue;
        }
        let mut item = Item::new("SECURITY LABEL", tag, Section::None, b.items[of].priority);
        item.namespace = b.items[of].namespace.clone();
        item.owner = b.items[of].owner.clone();
        item.defn = defn;
        item.deps.push(Dep::Item(of));
        b.push(item);
    }
    Ok(())
}
