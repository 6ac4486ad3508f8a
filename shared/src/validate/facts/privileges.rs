//! Owners and privileges: who owns each object, what each grants (against the kind's
//! built-in default when it never had a grant), column grants, and default privileges.

use super::{USER_SCHEMA, not_extension_member};

/// The objects that have an owner (and most an ACL), as `(catalog, oid, owner, acl, default
/// kind)` rows: schemas, relations, routines, types, and the database-wide kinds. Not the
/// functions a range type makes for itself (its constructors): no dump carries their grants,
/// which default privileges in force when the type was made decided.
fn owned_objects() -> String {
    let member = |catalog: &str, oid: &str| not_extension_member(oid, catalog);
    format!(
        "SELECT 'pg_namespace'::regclass AS cls, n.oid, n.nspowner AS owner, n.nspacl AS acl, 'n' AS kind \
           FROM pg_namespace n WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_class', c.oid, c.relowner, c.relacl, CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_proc', p.oid, p.proowner, p.proacl, 'f' \
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {USER_SCHEMA} AND {} \
            AND NOT EXISTS (SELECT 1 FROM pg_depend i WHERE i.classid = 'pg_proc'::regclass \
                            AND i.objid = p.oid AND i.deptype = 'i') \
         UNION ALL SELECT 'pg_type', t.oid, t.typowner, t.typacl, 'T' \
           FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE {USER_SCHEMA} AND {} AND t.typtype <> 'm' \
            AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid) \
            AND (t.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') \
         UNION ALL SELECT 'pg_language', l.oid, l.lanowner, l.lanacl, 'l' FROM pg_language l \
          WHERE l.oid >= 16384 AND {} \
         UNION ALL SELECT 'pg_largeobject', m.oid, m.lomowner, m.lomacl, 'L' FROM pg_largeobject_metadata m \
         UNION ALL SELECT 'pg_foreign_data_wrapper', w.oid, w.fdwowner, w.fdwacl, 'F' FROM pg_foreign_data_wrapper w \
          WHERE {} \
         UNION ALL SELECT 'pg_foreign_server', s.oid, s.srvowner, s.srvacl, 'S' FROM pg_foreign_server s WHERE {} \
         UNION ALL SELECT 'pg_collation', c.oid, c.collowner, NULL, NULL FROM pg_collation c \
           JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_conversion', c.oid, c.conowner, NULL, NULL FROM pg_conversion c \
           JOIN pg_namespace n ON n.oid = c.connamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_operator', o.oid, o.oprowner, NULL, NULL FROM pg_operator o \
           JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_opclass', c.oid, c.opcowner, NULL, NULL FROM pg_opclass c \
           JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_opfamily', f.oid, f.opfowner, NULL, NULL FROM pg_opfamily f \
           JOIN pg_namespace n ON n.oid = f.opfnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_ts_config', c.oid, c.cfgowner, NULL, NULL FROM pg_ts_config c \
           JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_ts_dict', d.oid, d.dictowner, NULL, NULL FROM pg_ts_dict d \
           JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_statistic_ext', s.oid, s.stxowner, NULL, NULL FROM pg_statistic_ext s \
           JOIN pg_namespace n ON n.oid = s.stxnamespace WHERE {USER_SCHEMA} AND {} \
         UNION ALL SELECT 'pg_event_trigger', e.oid, e.evtowner, NULL, NULL FROM pg_event_trigger e WHERE {} \
         UNION ALL SELECT 'pg_publication', p.oid, p.pubowner, NULL, NULL FROM pg_publication p \
         UNION ALL SELECT 'pg_extension', e.oid, e.extowner, NULL, NULL FROM pg_extension e WHERE e.oid >= 16384",
        member("pg_namespace", "n.oid"),
        member("pg_class", "c.oid"),
        member("pg_proc", "p.oid"),
        member("pg_type", "t.oid"),
        member("pg_language", "l.oid"),
        member("pg_foreign_data_wrapper", "w.oid"),
        member("pg_foreign_server", "s.oid"),
        member("pg_collation", "c.oid"),
        member("pg_conversion", "c.oid"),
        member("pg_operator", "o.oid"),
        member("pg_opclass", "c.oid"),
        member("pg_opfamily", "f.oid"),
        member("pg_ts_config", "c.oid"),
        member("pg_ts_dict", "d.oid"),
        member("pg_statistic_ext", "s.oid"),
        member("pg_event_trigger", "e.oid"),
    )
}

/// Objects a dump does not create but whose grants it carries: `pg_catalog`'s and those of
/// extensions (and their columns), as `(catalog, oid, subid, owner, acl, initial acl)` rows,
/// where the two differ.
fn initial_objects() -> String {
    let kind = |catalog: &str, table: &str, owner: &str, acl: &str, letter: &str, system: &str| {
        format!(
            "SELECT '{catalog}'::regclass AS cls, o.oid, 0 AS sub, {owner} AS owner, \
                    coalesce({acl}, acldefault({letter}, {owner})) AS acl, \
                    coalesce(i.initprivs, acldefault({letter}, {owner})) AS initial \
             FROM {table} \
             LEFT JOIN pg_init_privs i ON i.classoid = '{catalog}'::regclass AND i.objoid = o.oid AND i.objsubid = 0 \
             WHERE ({system} OR EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = '{catalog}'::regclass \
                                        AND e.objid = o.oid AND e.deptype = 'e')) \
               AND coalesce({acl}, acldefault({letter}, {owner})) \
                   IS DISTINCT FROM coalesce(i.initprivs, acldefault({letter}, {owner}))"
        )
    };
    let catalog = "pg_catalog'::regnamespace";
    [
        kind("pg_namespace", "pg_namespace o", "o.nspowner", "o.nspacl", "'n'", &format!("o.oid = '{catalog}")),
        kind("pg_proc", "pg_proc o", "o.proowner", "o.proacl", "'f'", &format!("o.pronamespace = '{catalog}")),
        kind("pg_type", "pg_type o", "o.typowner", "o.typacl", "'T'", &format!("o.typnamespace = '{catalog}")),
        kind(
            "pg_class",
            "pg_class o",
            "o.relowner",
            "o.relacl",
            "(CASE o.relkind WHEN 'S' THEN 's' ELSE 'r' END)::\"char\"",
            &format!("o.relnamespace = '{catalog}"),
        ),
        kind("pg_language", "pg_language o", "o.lanowner", "o.lanacl", "'l'", "false"),
        kind("pg_foreign_data_wrapper", "pg_foreign_data_wrapper o", "o.fdwowner", "o.fdwacl", "'F'", "false"),
        kind("pg_foreign_server", "pg_foreign_server o", "o.srvowner", "o.srvacl", "'S'", "false"),
        format!(
            "SELECT 'pg_class'::regclass, c.oid, a.attnum, c.relowner, coalesce(a.attacl, '{{}}'), \
                    coalesce(i.initprivs, '{{}}') \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             LEFT JOIN pg_init_privs i ON i.classoid = 'pg_class'::regclass AND i.objoid = c.oid \
                  AND i.objsubid = a.attnum \
             WHERE a.attnum > 0 AND NOT a.attisdropped \
               AND (c.relnamespace = '{catalog} OR EXISTS (SELECT 1 FROM pg_depend e \
                    WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')) \
               AND coalesce(a.attacl, '{{}}') IS DISTINCT FROM coalesce(i.initprivs, '{{}}')"
        ),
    ]
    .join(" UNION ALL ")
}

/// The privileges of `acl` as text items, `grantee:PRIVILEGE[*]/grantor`, with `owner` for
/// the role `owner` (so that grants compare apart from who owns the object) and `PUBLIC`.
fn rendered(acl: &str, owner: &str) -> String {
    let who = |role: &str| {
        format!(
            "CASE {role} WHEN {owner} THEN 'owner' WHEN 0 THEN 'PUBLIC' \
             ELSE quote_ident(pg_get_userbyid({role})) END"
        )
    };
    format!(
        "coalesce((SELECT array_agg({} || ':' || e.privilege_type || CASE WHEN e.is_grantable THEN '*' ELSE '' END \
                                   || '/' || {}) FROM aclexplode(NULLIF({acl}, '{{}}'::aclitem[])) e), '{{}}'::text[])",
        who("e.grantee"),
        who("e.grantor")
    )
}

/// What `granted` has beyond `builtin` (`+item`) and what of `builtin` it lacks (`-item`),
/// sorted; `default` when they are the same. Both are arrays of [`rendered`] items.
fn against(granted: &str, builtin: &str) -> String {
    format!(
        "coalesce(NULLIF(concat_ws(' ', \
           (SELECT string_agg('+' || g, ',' ORDER BY g) FROM unnest({granted}) g WHERE NOT (g = ANY ({builtin}))), \
           (SELECT string_agg('-' || b, ',' ORDER BY b) FROM unnest({builtin}) b WHERE NOT (b = ANY ({granted})))), ''), \
         'default')"
    )
}

pub(super) fn queries() -> Vec<String> {
    // `public` belongs to pg_database_owner by default since 15, to the bootstrap superuser
    // (whose name differs from one cluster to another) before, and pg_dump gives a copy of an
    // older one to the bootstrap superuser: all of them its default owner.
    let default_public_owner =
        "x.cls = 'pg_namespace'::regclass AND x.oid = 2200 AND x.owner IN (6171, 10)";
    vec![
        format!(
            "SELECT 'owner ' || o.type || ' ' || o.identity, \
                    CASE WHEN {default_public_owner} THEN 'the default owner' ELSE pg_get_userbyid(x.owner) END \
             FROM ({}) x, pg_identify_object(x.cls, x.oid, 0) o WHERE o.identity IS NOT NULL",
            owned_objects()
        ),
        // Against the kind's default, as pg_dump restores them (for `public`, what initdb
        // gives it since 15: USAGE for PUBLIC too). An object never granted anything has the
        // default whether its ACL is NULL or spelled out, and the default may grow with the
        // server's version (MAINTAIN on tables in 17) without a copy differing.
        format!(
            "SELECT 'acl ' || o.type || ' ' || o.identity, {} \
             FROM ({}) x, \
                  LATERAL (SELECT CASE WHEN x.cls = 'pg_namespace'::regclass AND x.oid = 2200 \
                                       THEN acldefault('n', x.owner) || makeaclitem(0, x.owner, 'USAGE', false) \
                                       ELSE acldefault(x.kind::\"char\", x.owner) END AS builtin) d, \
                  LATERAL (SELECT {} AS granted, {} AS builtin) r, \
                  pg_identify_object(x.cls, x.oid, 0) o \
             WHERE x.kind IS NOT NULL AND o.identity IS NOT NULL",
            against("r.granted", "r.builtin"),
            owned_objects(),
            rendered("COALESCE(x.acl, d.builtin)", "x.owner"),
            rendered("d.builtin", "x.owner"),
        ),
        // A column has no privileges of its own by default.
        format!(
            "SELECT 'acl ' || o.type || ' ' || o.identity, {} \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace, \
                  LATERAL (SELECT {} AS granted) r, \
                  pg_identify_object('pg_class'::regclass, a.attrelid, a.attnum) o \
             WHERE a.attacl IS NOT NULL AND a.attnum > 0 AND NOT a.attisdropped AND {USER_SCHEMA} AND {}",
            against("r.granted", "'{}'::text[]"),
            rendered("a.attacl", "c.relowner"),
            not_extension_member("c.oid", "pg_class")
        ),
        // The system's own objects and extension members: what their grants became since
        // they were created (pg_init_privs, or the kind's default), as facts only where they
        // changed (the system has thousands of objects).
        format!(
            "SELECT 'changed acl ' || o.type || ' ' || o.identity, {} \
             FROM ({}) x, \
                  LATERAL (SELECT {} AS granted, {} AS builtin) r, \
                  pg_identify_object(x.cls, x.oid, x.sub) o \
             WHERE o.identity IS NOT NULL AND r.granted IS DISTINCT FROM r.builtin",
            against("r.granted", "r.builtin"),
            initial_objects(),
            rendered("x.acl", "x.owner"),
            rendered("x.initial", "x.owner"),
        ),
        // Everywhere: against the built-in default (as for objects); in a schema: additions.
        format!(
            "SELECT 'default acl for role ' || quote_ident(pg_get_userbyid(d.defaclrole)) \
                    || coalesce(' in schema ' || quote_ident(n.nspname), '') || ' on ' || d.defaclobjtype::text, {} \
             FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, \
                  LATERAL (SELECT CASE WHEN d.defaclnamespace = 0 \
                                       THEN acldefault(CASE d.defaclobjtype WHEN 'S' THEN 's' WHEN 'T' THEN 'T' \
                                                       WHEN 'n' THEN 'n' WHEN 'f' THEN 'f' WHEN 'L' THEN 'L' ELSE 'r' END::\"char\", \
                                                       d.defaclrole) \
                                       ELSE '{{}}'::aclitem[] END AS builtin) x, \
                  LATERAL (SELECT {} AS granted, {} AS builtin) r",
            against("r.granted", "r.builtin"),
            rendered("d.defaclacl", "d.defaclrole"),
            rendered("x.builtin", "d.defaclrole"),
        ),
    ]
}
