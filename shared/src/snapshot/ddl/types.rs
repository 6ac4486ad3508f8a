//! Types: enums, composites, ranges, domains, base types and shell types.

use super::*;

pub(super) async fn types(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT t.oid, n.nspname, t.typname, pg_get_userbyid(t.typowner), t.typtype::text, \
                obj_description(t.oid, 'pg_type'), \
                (SELECT string_agg(quote_literal(e.enumlabel), E',\n    ' ORDER BY e.enumsortorder) \
                   FROM pg_enum e WHERE e.enumtypid = t.oid), \
                CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
                t.typnotnull, COALESCE(pg_get_expr(t.typdefaultbin, 0), t.typdefault), \
                CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 \
                      AND t.typcollation <> (SELECT bt.typcollation FROM pg_type bt WHERE bt.oid = t.typbasetype) \
                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                           JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END, \
                (SELECT string_agg(format(E'\\n    CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid)), '' ORDER BY k.conname) \
                   FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'), \
                (SELECT string_agg(format(E'\\n\\t%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) \
                        || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation \
                                THEN (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co \
                                      JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) \
                                ELSE '' END, ',' ORDER BY a.attnum) \
                   FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), \
                (SELECT concat_ws(E',\\n    ', 'subtype = ' || format_type(r.rngsubtype, NULL), \
                        'multirange_type_name = ' || format('%I.%I', mn.nspname, mt.typname), \
                        CASE WHEN NOT oc.opcdefault THEN 'subtype_opclass = ' || format('%I.%I', ocn.nspname, oc.opcname) END, \
                        CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation \
                             THEN 'collation = ' || (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                                  JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation) END, \
                        CASE WHEN r.rngcanonical <> 0 THEN 'canonical = ' || r.rngcanonical::regproc::text END, \
                        CASE WHEN r.rngsubdiff <> 0 THEN 'subtype_diff = ' || r.rngsubdiff::regproc::text END) \
                   FROM pg_range r JOIN pg_type st ON st.oid = r.rngsubtype \
                   LEFT JOIN pg_type mt ON mt.oid = r.rngmultitypid LEFT JOIN pg_namespace mn ON mn.oid = mt.typnamespace \
                   JOIN pg_opclass oc ON oc.oid = r.rngsubopc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace \
                  WHERE r.rngtypid = t.oid), \
                t.typacl::text[], acldefault('T', t.typowner)::text[], \
                CASE WHEN t.typtype = 'b' THEN concat_ws(E',\n    ', \
                  'INTERNALLENGTH = ' || CASE WHEN t.typlen = -1 THEN 'variable' ELSE t.typlen::text END, \
                  'INPUT = ' || t.typinput::regproc::text, 'OUTPUT = ' || t.typoutput::regproc::text, \
                  'RECEIVE = ' || NULLIF(t.typreceive, 0)::regproc::text, 'SEND = ' || NULLIF(t.typsend, 0)::regproc::text, \
                  'TYPMOD_IN = ' || NULLIF(t.typmodin, 0)::regproc::text, \
                  'TYPMOD_OUT = ' || NULLIF(t.typmodout, 0)::regproc::text, \
                  'ANALYZE = ' || NULLIF(t.typanalyze, 0)::regproc::text, \
                  'SUBSCRIPT = ' || NULLIF(t.typsubscript, 0)::regproc::text, \
                  CASE WHEN t.typcollation <> 0 THEN 'COLLATABLE = true' END, \
                  'DEFAULT = ' || quote_literal(t.typdefault), \
                  'ELEMENT = ' || format_type(NULLIF(t.typelem, 0), NULL), \
                  CASE WHEN t.typcategory <> 'U' THEN 'CATEGORY = ' || quote_literal(t.typcategory::text) END, \
                  CASE WHEN t.typispreferred THEN 'PREFERRED = true' END, \
                  CASE WHEN t.typdelim <> ',' THEN 'DELIMITER = ' || quote_literal(t.typdelim::text) END, \
                  'ALIGNMENT = ' || CASE t.typalign WHEN 'c' THEN 'char' WHEN 's' THEN 'int2' WHEN 'i' THEN 'int4' ELSE 'double' END, \
                  'STORAGE = ' || CASE t.typstorage WHEN 'p' THEN 'plain' WHEN 'e' THEN 'external' WHEN 'x' THEN 'extended' ELSE 'main' END, \
                  CASE WHEN t.typbyval THEN 'PASSEDBYVALUE' END) END, \
                array_remove(array_remove(ARRAY[t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, \
                                   t.typmodout, t.typanalyze, t.typsubscript::oid, \
                                   (SELECT r.rngcanonical::oid FROM pg_range r WHERE r.rngtypid = t.oid)]::oid[], \
                                   NULL), 0::oid), \
                EXISTS (SELECT 1 FROM pg_range r WHERE r.rngtypid = t.oid AND r.rngcanonical <> 0) \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE (t.typtype IN ('e', 'd', 'r', 'c') \
                OR (t.typtype = 'b' AND NOT EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid)) \
                OR (t.typtype = 'p' AND NOT t.typisdefined)) \
           AND {USER_SCHEMA} AND {} \
           AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') \
         ORDER BY 2, 3",
        not_member("t.oid", "pg_type")
    );
    // Comments on a type's parts: a domain's constraints, a composite type's columns.
    let mut part_comments: HashMap<u32, Vec<(String, String, String)>> = HashMap::new();
    for r in session
        .query_catalog(
            "SELECT k.contypid, 'constraint', k.conname, obj_description(k.oid, 'pg_constraint') \
               FROM pg_constraint k WHERE k.contypid <> 0 AND obj_description(k.oid, 'pg_constraint') IS NOT NULL \
             UNION ALL \
             SELECT t.oid, 'column', a.attname, col_description(a.attrelid, a.attnum) \
               FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid \
              WHERE t.typtype = 'c' AND a.attnum > 0 AND NOT a.attisdropped \
                AND col_description(a.attrelid, a.attnum) IS NOT NULL \
             ORDER BY 1, 2, 3",
            &[],
        )
        .await?
    {
        part_comments
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2), r.get(3)));
    }
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let kind: String = r.get(4);
        let qualified = b.q.qualified(&schema, &name);
        let (desc, defn) = match kind.as_str() {
            "e" => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS ENUM (\n    {}\n);\n",
                    opt_text(&r, 6).unwrap_or_default()
                ),
            ),
            "d" => {
                let mut d = format!("CREATE DOMAIN {qualified} AS {}", r.get::<_, String>(7));
                if let Some(collation) = opt_text(&r, 10) {
                    d.push_str(&format!(" COLLATE {collation}"));
                }
                if let Some(default) = opt_text(&r, 9) {
                    d.push_str(&format!(" DEFAULT {default}"));
                }
                if r.get::<_, bool>(8) {
                    d.push_str(" NOT NULL");
                }
                d.push_str(&opt_text(&r, 11).unwrap_or_default());
                d.push_str(";\n");
                ("DOMAIN", d)
            }
            "r" => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS RANGE (\n    {}\n);\n",
                    opt_text(&r, 13).unwrap_or_default()
                ),
            ),
            "b" => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} (\n    {}\n);\n",
                    opt_text(&r, 16).unwrap_or_default()
                ),
            ),
            // A shell nothing defined (yet): pg_dump writes it as a type of its own.
            "p" => ("TYPE", format!("CREATE TYPE {qualified};\n")),
            _ => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS ({}\n);\n",
                    opt_text(&r, 12).unwrap_or_default()
                ),
            ),
        };
        let keyword = if desc == "DOMAIN" { "DOMAIN" } else { "TYPE" };
        let target = format!("{keyword} {qualified}");
        let quoted = b.q.ident(&name);
        let mut item = Item::new(desc, &name, Section::PreData, P_TYPE)
            .of(PG_TYPE, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.defn = defn;
        item.drop = Some(format!("DROP {target};\n"));
        // A base type and its input and output functions (a range and its canonical
        // function) need each other: as pg_dump does, a shell type comes first, then the
        // functions, then the type. (The functions are read later: see `shell_dependencies`.)
        if kind == "b" || r.get::<_, bool>(18) {
            let mut shell = Item::new("SHELL TYPE", &name, Section::PreData, P_TYPE)
                .in_schema(&schema, Some(owner.clone()));
            shell.defn = format!("CREATE TYPE {qualified};\n");
            let shell = b.push(shell);
            item.deps.push(Dep::Item(shell));
            if kind == "b" {
                // Its functions go with it, as pg_dump drops them.
                item.drop = Some(format!("DROP TYPE {qualified} CASCADE;\n"));
            }
            b.shells.push((shell, r.get(17)));
        }
        let at = b.push(item);
        b.comment(at, &target, &format!("{keyword} {quoted}"), r.get(5));
        for (part, part_name, comment) in part_comments.remove(&oid).unwrap_or_default() {
            let part_name = b.q.ident(&part_name);
            let (part_target, part_tag) = if part == "column" {
                (
                    format!("COLUMN {qualified}.{part_name}"),
                    format!("COLUMN {quoted}.{part_name}"),
                )
            } else {
                (
                    format!("CONSTRAINT {part_name} ON DOMAIN {qualified}"),
                    format!("CONSTRAINT {part_name} ON DOMAIN {quoted}"),
                )
            };
            b.comment(at, &part_target, &part_tag, Some(comment));
        }
        let target = format!("TYPE {qualified}");
        b.acl(at, &target, &format!("TYPE {quoted}"), r.get(14), r.get(15));
    }
    Ok(())
}

/// Collations: libc, ICU (with rules) and builtin, deterministic or not. The version is left
/// to the restoring server, as pg_dump leaves it.
pub(super) async fn collations(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let locale = match b.version {
        v if v >= 170000 => "c.colllocale",
        v if v >= 150000 => "c.colliculocale",
        _ => "NULL::text",
    };
    let rules = if b.version >= 160000 {
        "c.collicurules"
    } else {
        "NULL::text"
    };
    let sql = format!(
        "SELECT c.oid, n.nspname, c.collname, pg_get_userbyid(c.collowner), c.collprovider::text, \
                c.collisdeterministic, NULLIF(c.collcollate, ''), NULLIF(c.collctype, ''), {locale}, {rules}, \
                obj_description(c.oid, 'pg_collation') \
         FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_collation")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let provider = match r.get::<_, String>(4).as_str() {
            "i" => "icu",
            "b" => "builtin",
            "c" => "libc",
            _ => "default",
        };
        let mut defn = format!("CREATE COLLATION {qualified} (provider = {provider}");
        if !r.get::<_, bool>(5) {
            defn.push_str(", deterministic = false");
        }
        let (collate, ctype, locale): (Option<String>, Option<String>, Option<String>) =
            (r.get(6), r.get(7), r.get(8));
        match (provider, locale) {
            ("libc", _) | (_, None) => match (collate, ctype) {
                (Some(collate), Some(ctype)) if collate == ctype => {
                    defn.push_str(&format!(", locale = {}", dump_literal(&collate)));
                }
                (collate, ctype) => {
                    if let Some(collate) = collate {
                        defn.push_str(&format!(", lc_collate = {}", dump_literal(&collate)));
                    }
                    if let Some(ctype) = ctype {
                        defn.push_str(&format!(", lc_ctype = {}", dump_literal(&ctype)));
                    }
                }
            },
            (_, Some(locale)) => defn.push_str(&format!(", locale = {}", dump_literal(&locale))),
        }
        if let Some(rules) = r.get::<_, Option<String>>(9) {
            defn.push_str(&format!(", rules = {}", dump_literal(&rules)));
        }
        defn.push_str(");\n");
        let mut item = Item::new("COLLATION", &name, Section::PreData, P_COLLATION)
            .of(PG_COLLATION, oid)
            .in_schema(&schema, Some(owner));
        item.defn = defn;
        item.drop = Some(format!("DROP COLLATION {qualified};\n"));
        let at = b.push(item);
        b.comment(
            at,
            &format!("COLLATION {qualified}"),
            &format!("COLLATION {}", b.q.ident(&name)),
            r.get(10),
        );
    }
    Ok(())
}

/// The support functions of base types (and ranges' canonical functions) come after their
/// shell type and before the type, which depends on them.
pub(super) fn shell_dependencies(b: &mut Builder<'_>) {
    let keyed = b.keyed();
    for (shell, support) in std::mem::take(&mut b.shells) {
        for function in support {
            if let Some(&at) = keyed.get(&(PG_PROC, function)) {
                b.items[at].deps.push(Dep::Item(shell));
            }
        }
    }
}
