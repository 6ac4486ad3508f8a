//! Grants changed on objects the dump does not create: the system's own (`pg_catalog`) and
//! those an extension creates. Each was created with the privileges `pg_init_privs` records
//! (or its kind's default); pg_dump writes an `ACL` entry for the difference, after the
//! extension that makes the object, and so does this module.

use super::*;

/// One object kind: its keyword in GRANT and the pieces of its catalog query.
struct Kind {
    /// `GRANT ... ON <keyword>`; the entry's tag begins with it too.
    keyword: &'static str,
    catalog: &'static str,
    /// SELECT list: schema (or NULL), name, arguments (or NULL), a marker telling a
    /// procedure (`p`) or a sequence (`S`) from the rest.
    select: &'static str,
    from: &'static str,
    /// Further condition on the rows of `from`.
    condition: &'static str,
    owner: &'static str,
    acl: &'static str,
    /// `acldefault`'s letter for the kind.
    letter: &'static str,
    /// Whether objects in `pg_catalog` count (others come only from extensions).
    system: &'static str,
}

const KINDS: &[Kind] = &[
    Kind {
        keyword: "SCHEMA",
        catalog: "pg_namespace",
        select: "NULL::text, o.nspname::text, NULL::text, ''",
        from: "pg_namespace o",
        condition: "true",
        owner: "o.nspowner",
        acl: "o.nspacl",
        letter: "'n'",
        system: "o.nspname = 'pg_catalog'",
    },
    Kind {
        keyword: "FUNCTION",
        catalog: "pg_proc",
        // Aggregates are granted on by their argument types, functions by their identity
        // arguments, as pg_dump tags them.
        select: "n.nspname::text, o.proname::text, \
                 CASE WHEN o.prokind = 'a' THEN (SELECT string_agg(format_type(t.t, NULL), ', ' ORDER BY t.n) \
                   FROM unnest(o.proargtypes::oid[]) WITH ORDINALITY AS t(t, n)) \
                 ELSE pg_get_function_identity_arguments(o.oid) END, o.prokind::text",
        from: "pg_proc o JOIN pg_namespace n ON n.oid = o.pronamespace",
        condition: "true",
        owner: "o.proowner",
        acl: "o.proacl",
        letter: "'f'",
        system: "n.nspname = 'pg_catalog'",
    },
    Kind {
        keyword: "TYPE",
        catalog: "pg_type",
        select: "n.nspname::text, o.typname::text, NULL::text, ''",
        from: "pg_type o JOIN pg_namespace n ON n.oid = o.typnamespace",
        // Not an array (dumped with its element), a table's row type or a multirange (dumped
        // with its range).
        condition: "NOT (o.typelem <> 0 AND o.typlen = -1) AND o.typtype <> 'm' \
                    AND (o.typrelid = 0 OR (SELECT c.relkind FROM pg_class c WHERE c.oid = o.typrelid) = 'c')",
        owner: "o.typowner",
        acl: "o.typacl",
        letter: "'T'",
        system: "n.nspname = 'pg_catalog'",
    },
    Kind {
        keyword: "TABLE",
        catalog: "pg_class",
        select: "n.nspname::text, o.relname::text, NULL::text, o.relkind::text",
        from: "pg_class o JOIN pg_namespace n ON n.oid = o.relnamespace",
        condition: "o.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')",
        owner: "o.relowner",
        acl: "o.relacl",
        letter: "(CASE o.relkind WHEN 'S' THEN 's' ELSE 'r' END)::\"char\"",
        system: "n.nspname = 'pg_catalog'",
    },
    Kind {
        keyword: "LANGUAGE",
        catalog: "pg_language",
        select: "NULL::text, o.lanname::text, NULL::text, ''",
        from: "pg_language o",
        condition: "o.lanispl",
        owner: "o.lanowner",
        acl: "o.lanacl",
        letter: "'l'",
        system: "false",
    },
    Kind {
        keyword: "FOREIGN DATA WRAPPER",
        catalog: "pg_foreign_data_wrapper",
        select: "NULL::text, o.fdwname::text, NULL::text, ''",
        from: "pg_foreign_data_wrapper o",
        condition: "true",
        owner: "o.fdwowner",
        acl: "o.fdwacl",
        letter: "'F'",
        system: "false",
    },
    Kind {
        keyword: "FOREIGN SERVER",
        catalog: "pg_foreign_server",
        select: "NULL::text, o.srvname::text, NULL::text, ''",
        from: "pg_foreign_server o",
        condition: "true",
        owner: "o.srvowner",
        acl: "o.srvacl",
        letter: "'S'",
        system: "false",
    },
];

/// The `ACL` entries of system and extension objects whose grants differ from their initial
/// ones. Like pg_dump, a dump of some schemas or tables (which has no extensions and leaves
/// `pg_catalog` alone) carries only those of the built-in extension's members.
pub(super) async fn grants(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // A filtered dump (-n, -t) still carries those of the built-in extension's members
    // (plpgsql's), as pg_dump does.
    let filtered = !b.filter.schemas.is_empty() || !b.filter.tables.is_empty();
    for kind in KINDS {
        let (owner, acl, letter) = (kind.owner, kind.acl, kind.letter);
        let sql = format!(
            "SELECT {select}, pg_get_userbyid({owner}), \
                    coalesce({acl}, acldefault({letter}, {owner}))::text[], \
                    coalesce(i.initprivs, acldefault({letter}, {owner}))::text[], e.refobjid \
             FROM {from} \
             LEFT JOIN pg_init_privs i ON i.objoid = o.oid AND i.classoid = '{catalog}'::regclass AND i.objsubid = 0 \
             LEFT JOIN pg_depend e ON e.classid = '{catalog}'::regclass AND e.objid = o.oid AND e.deptype = 'e' \
             WHERE ({system} OR e.refobjid IS NOT NULL) AND {condition} AND {builtin} \
               AND coalesce({acl}, acldefault({letter}, {owner})) \
                   IS DISTINCT FROM coalesce(i.initprivs, acldefault({letter}, {owner})) \
             ORDER BY 1 NULLS FIRST, 2, 3",
            select = kind.select,
            from = kind.from,
            catalog = kind.catalog,
            condition = kind.condition,
            system = if filtered { "false" } else { kind.system },
            builtin = if filtered {
                "e.refobjid < 16384"
            } else {
                "true"
            },
        );
        for r in session.query_catalog(&sql, &[]).await? {
            let (schema, name): (Option<String>, String) = (r.get(0), r.get(1));
            let arguments: Option<String> = r.get(2);
            let keyword = match (kind.keyword, r.get::<_, String>(3).as_str()) {
                ("FUNCTION", "p") => "PROCEDURE",
                ("TABLE", "S") => "SEQUENCE",
                (k, _) => k,
            };
            let quoted = match &arguments {
                Some(args) => format!("{}({args})", b.q.ident(&name)),
                None if kind.catalog == "pg_proc" => format!("{}()", b.q.ident(&name)),
                None => b.q.ident(&name),
            };
            let qualified = match &schema {
                Some(s) => format!("{}.{quoted}", b.q.ident(s)),
                None => quoted.clone(),
            };
            let owner: String = r.get(4);
            let statements = acl::grants(
                b.q,
                &format!("{keyword} {qualified}"),
                None,
                Some(&owner),
                &r.get::<_, Vec<String>>(5),
                &r.get::<_, Vec<String>>(6),
            );
            let tag = format!("{keyword} {quoted}");
            push(b, schema, &owner, &tag, statements, r.get(7));
        }
    }
    if filtered {
        return Ok(());
    }
    column_grants(session, b).await
}

/// Grants on the columns of system and extension tables that differ from their initial ones
/// (a column has none by default).
async fn column_grants(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = "SELECT n.nspname::text, c.relname::text, a.attname::text, pg_get_userbyid(c.relowner), \
                      coalesce(a.attacl, '{}')::text[], coalesce(i.initprivs, '{}')::text[], e.refobjid \
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               LEFT JOIN pg_init_privs i ON i.objoid = c.oid AND i.classoid = 'pg_class'::regclass \
                    AND i.objsubid = a.attnum \
               LEFT JOIN pg_depend e ON e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e' \
               WHERE (n.nspname = 'pg_catalog' OR e.refobjid IS NOT NULL) \
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND a.attnum > 0 AND NOT a.attisdropped \
                 AND coalesce(a.attacl, '{}') IS DISTINCT FROM coalesce(i.initprivs, '{}') \
               ORDER BY 1, 2, a.attnum";
    for r in session.query_catalog(sql, &[]).await? {
        let (schema, table, column): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        let owner: String = r.get(3);
        let column = b.q.ident(&column);
        let statements = acl::grants(
            b.q,
            &format!("TABLE {}", b.q.qualified(&schema, &table)),
            Some(&column),
            Some(&owner),
            &r.get::<_, Vec<String>>(4),
            &r.get::<_, Vec<String>>(5),
        );
        let tag = format!("COLUMN {}.{column}", b.q.ident(&table));
        push(b, Some(schema), &owner, &tag, statements, r.get(6));
    }
    Ok(())
}

/// The `ACL` entry, after the extension that makes the object (if one does).
fn push(
    b: &mut Builder<'_>,
    schema: Option<String>,
    owner: &str,
    tag: &str,
    statements: String,
    extension: Option<u32>,
) {
    if statements.is_empty() {
        return;
    }
    let mut item = Item::new("ACL", tag, Section::None, P_ACL);
    item.namespace = schema;
    item.owner = Some(owner.to_string());
    item.defn = statements;
    if let Some(extension) = extension {
        item.deps.push(Dep::Object((PG_EXTENSION, extension)));
    }
    b.push(item);
}
