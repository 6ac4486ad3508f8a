//! Comments and security labels, on every kind of object (the `public` schema's included).

/// SQL condition: the described object (`catalog`, `oid`) is a user object: created after
/// initdb (or the `public` schema, oid 2200) and not by an extension; not a partition's copy
/// of its parent's trigger (whose comment no dump carries).
fn user_object(catalog: &str, oid: &str) -> String {
    format!(
        "({oid} >= 16384 OR ({catalog} = 'pg_namespace'::regclass AND {oid} = 2200)) \
         AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {catalog} AND e.objid = {oid} \
                          AND e.deptype = 'e') \
         AND o.identity IS NOT NULL AND o.schema IS DISTINCT FROM 'pg_toast' \
         AND NOT ({catalog} = 'pg_trigger'::regclass \
                  AND EXISTS (SELECT 1 FROM pg_trigger t WHERE t.oid = {oid} AND t.tgparentid <> 0))"
    )
}

pub(super) fn queries() -> Vec<String> {
    vec![
        format!(
            "SELECT 'comment ' || o.type || ' ' || o.identity, d.description \
             FROM pg_description d, pg_identify_object(d.classoid, d.objoid, d.objsubid) o \
             WHERE {}",
            user_object("d.classoid", "d.objoid")
        ),
        format!(
            "SELECT 'security label ' || s.provider || ' ' || o.type || ' ' || o.identity, s.label \
             FROM pg_seclabel s, pg_identify_object(s.classoid, s.objoid, s.objsubid) o \
             WHERE {}",
            user_object("s.classoid", "s.objoid")
        ),
    ]
}
