//! Operators, access methods, operator families and classes, casts and conversions.

use super::*;

pub(super) async fn operators(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // A shell (a commutator or negator named but never defined: no function) is left out,
    // as pg_dump leaves it. regoperator/regproc print schema-qualified names where the (empty)
    // search path needs them; a commutator or negator may be the operator itself or not exist yet, which
    // CREATE OPERATOR allows (it makes a shell).
    let sql = format!(
        "SELECT o.oid, n.nspname, o.oprname, pg_get_userbyid(o.oprowner), o.oprcode::regproc::text, \
                CASE WHEN o.oprleft <> 0 THEN format_type(o.oprleft, NULL) END, \
                CASE WHEN o.oprright <> 0 THEN format_type(o.oprright, NULL) END, \
                CASE WHEN o.oprcom <> 0 THEN (SELECT format('OPERATOR(%I.%s)', cn.nspname, c.oprname) FROM pg_operator c \
                     JOIN pg_namespace cn ON cn.oid = c.oprnamespace WHERE c.oid = o.oprcom) END, \
                CASE WHEN o.oprnegate <> 0 THEN (SELECT format('OPERATOR(%I.%s)', cn.nspname, c.oprname) FROM pg_operator c \
                     JOIN pg_namespace cn ON cn.oid = c.oprnamespace WHERE c.oid = o.oprnegate) END, \
                o.oprcanmerge, o.oprcanhash, \
                CASE WHEN o.oprrest <> 0 THEN o.oprrest::regproc::text END, \
                CASE WHEN o.oprjoin <> 0 THEN o.oprjoin::regproc::text END, \
                obj_description(o.oid, 'pg_operator'), o.oprcode::oid \
         FROM pg_operator o JOIN pg_namespace n ON n.oid = o.oprnamespace \
         WHERE o.oprcode <> 0 AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_internal("o.oid", "pg_operator")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        // An operator's name is made of symbol characters: it is never quoted, and a name
        // that is not such cannot exist in the catalog.
        if name.is_empty() || !name.chars().all(|c| "+-*/<>=~!@#%^&|`?".contains(c)) {
            continue;
        }
        let qualified = format!("{}.{name}", b.q.ident(&schema));
        let (left, right): (Option<String>, Option<String>) = (r.get(5), r.get(6));
        let mut parts = vec![format!("FUNCTION = {}", r.get::<_, String>(4))];
        if let Some(left) = &left {
            parts.push(format!("LEFTARG = {left}"));
        }
        if let Some(right) = &right {
            parts.push(format!("RIGHTARG = {right}"));
        }
        if let Some(commutator) = opt_text(&r, 7) {
            parts.push(format!("COMMUTATOR = {commutator}"));
        }
        if let Some(negator) = opt_text(&r, 8) {
            parts.push(format!("NEGATOR = {negator}"));
        }
        if r.get::<_, bool>(9) {
            parts.push("MERGES".into());
        }
        if r.get::<_, bool>(10) {
            parts.push("HASHES".into());
        }
        if let Some(f) = opt_text(&r, 11) {
            parts.push(format!("RESTRICT = {f}"));
        }
        if let Some(f) = opt_text(&r, 12) {
            parts.push(format!("JOIN = {f}"));
        }
        let signature = format!(
            "{qualified} ({}, {})",
            left.as_deref().unwrap_or("NONE"),
            right.as_deref().unwrap_or("NONE")
        );
        let mut item = Item::new("OPERATOR", &name, Section::PreData, P_OPERATOR)
            .of(PG_OPERATOR, oid)
            .in_schema(&schema, Some(owner));
        item.defn = format!(
            "CREATE OPERATOR {qualified} (\n    {}\n);\n",
            parts.join(",\n    ")
        );
        item.drop = Some(format!("DROP OPERATOR {signature};\n"));
        item.deps.push(Dep::Object((PG_PROC, r.get(14))));
        let at = b.push(item);
        let tag = format!(
            "OPERATOR {name} ({}, {})",
            left.as_deref().unwrap_or("NONE"),
            right.as_deref().unwrap_or("NONE")
        );
        b.comment(at, &format!("OPERATOR {signature}"), &tag, r.get(13));
    }
    Ok(())
}

pub(super) async fn casts(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    // User casts: made after initdb, not by an extension, not a range's cast to its
    // multirange (those come with the range type).
    let sql = format!(
        "SELECT c.oid, format_type(c.castsource, NULL), format_type(c.casttarget, NULL), \
                CASE WHEN c.castfunc <> 0 THEN c.castfunc::regprocedure::text END, c.castcontext::text, \
                c.castmethod::text, obj_description(c.oid, 'pg_cast'), NULLIF(c.castfunc, 0), \
                c.castsource, c.casttarget \
         FROM pg_cast c WHERE c.oid >= 16384 AND {} \
           AND NOT EXISTS (SELECT 1 FROM pg_range r WHERE r.rngtypid = c.castsource AND r.rngmultitypid = c.casttarget) \
         ORDER BY 2, 3",
        not_internal("c.oid", "pg_cast")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let oid: u32 = r.get(0);
        let (source, target): (String, String) = (r.get(1), r.get(2));
        let pair = format!("({source} AS {target})");
        let how = match (r.get::<_, String>(5).as_str(), opt_text(&r, 3)) {
            ("i", _) => " WITH INOUT".to_string(),
            (_, Some(function)) => format!(" WITH FUNCTION {function}"),
            _ => " WITHOUT FUNCTION".to_string(),
        };
        let context = match r.get::<_, String>(4).as_str() {
            "a" => " AS ASSIGNMENT",
            "i" => " AS IMPLICIT",
            _ => "",
        };
        let mut item =
            Item::new("CAST", format!("CAST {pair}"), Section::PreData, P_CAST).of(PG_CAST, oid);
        item.owner = Some(String::new());
        item.defn = format!("CREATE CAST {pair}{how}{context};\n");
        item.drop = Some(format!("DROP CAST {pair};\n"));
        if let Some(function) = r.get::<_, Option<u32>>(7) {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        for t in [r.get::<_, u32>(8), r.get(9)] {
            item.deps.push(Dep::Object((PG_TYPE, t)));
        }
        let at = b.push(item);
        let target_sql = format!("CAST {pair}");
        b.comment(at, &target_sql, &target_sql, r.get(6));
    }
    Ok(())
}

pub(super) async fn conversions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT c.oid, n.nspname, c.conname, pg_get_userbyid(c.conowner), \
                pg_encoding_to_char(c.conforencoding), pg_encoding_to_char(c.contoencoding), \
                c.conproc::regproc::text, c.condefault, obj_description(c.oid, 'pg_conversion'), c.conproc::oid \
         FROM pg_conversion c JOIN pg_namespace n ON n.oid = c.connamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_conversion")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let mut item = Item::new("CONVERSION", &name, Section::PreData, P_CONVERSION)
            .of(PG_CONVERSION, oid)
            .in_schema(&schema, Some(owner));
        item.defn = format!(
            "CREATE {}CONVERSION {qualified} FOR {} TO {} FROM {};\n",
            if r.get::<_, bool>(7) { "DEFAULT " } else { "" },
            dump_literal(&r.get::<_, String>(4)),
            dump_literal(&r.get::<_, String>(5)),
            r.get::<_, String>(6)
        );
        item.drop = Some(format!("DROP CONVERSION {qualified};\n"));
        item.deps.push(Dep::Object((PG_PROC, r.get(9))));
        let at = b.push(item);
        b.comment(
            at,
            &format!("CONVERSION {qualified}"),
            &format!("CONVERSION {}", b.q.ident(&name)),
            r.get(8),
        );
    }
    Ok(())
}

/// The operators and support functions of an operator family or class that `pg_depend` ties
/// to it (catalog `refclass`, oid `owner`): their clauses as pg_dump writes them, and the
/// operators' and functions' oids.
fn members(refclass: &str, owner: &str, family: &str) -> String {
    format!(
        "ARRAY(SELECT format('OPERATOR %s %s', o.amopstrategy, o.amopopr::regoperator) \
                      || CASE WHEN sf.oid IS NOT NULL \
                              THEN format(' FOR ORDER BY %I.%I', sn.nspname, sf.opfname) ELSE '' END \
               FROM pg_amop o JOIN pg_depend d ON d.classid = 'pg_amop'::regclass AND d.objid = o.oid \
               LEFT JOIN pg_opfamily sf ON sf.oid = o.amopsortfamily \
               LEFT JOIN pg_namespace sn ON sn.oid = sf.opfnamespace \
              WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = {owner} AND o.amopfamily = {family} \
              ORDER BY o.amopstrategy, o.amoplefttype, o.amoprighttype), \
         ARRAY(SELECT format('FUNCTION %s (%s, %s) %s', p.amprocnum, p.amproclefttype::regtype, \
                             p.amprocrighttype::regtype, p.amproc::regprocedure) \
               FROM pg_amproc p JOIN pg_depend d ON d.classid = 'pg_amproc'::regclass AND d.objid = p.oid \
              WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = {owner} AND d.objsubid = 0 \
              ORDER BY p.amprocnum, p.amproclefttype, p.amprocrighttype), \
         ARRAY(SELECT o.amopopr FROM pg_amop o JOIN pg_depend d ON d.classid = 'pg_amop'::regclass \
               AND d.objid = o.oid WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = {owner}), \
         ARRAY(SELECT p.amproc::oid FROM pg_amproc p JOIN pg_depend d ON d.classid = 'pg_amproc'::regclass \
               AND d.objid = p.oid WHERE d.refclassid = '{refclass}'::regclass AND d.refobjid = {owner})"
    )
}

/// Operator families (every one, as pg_dump 15+ dumps them, with the members tied to the
/// family rather than to one of its classes added by `ALTER OPERATOR FAMILY`), then operator
/// classes (`FAMILY` always named).
pub(super) async fn operator_classes(
    session: &Session,
    b: &mut Builder<'_>,
) -> Result<(), PgError> {
    let families = format!(
        "SELECT f.oid, n.nspname, f.opfname, pg_get_userbyid(f.opfowner), am.amname, \
                obj_description(f.oid, 'pg_opfamily'), {}, f.opfmethod \
         FROM pg_opfamily f JOIN pg_namespace n ON n.oid = f.opfnamespace JOIN pg_am am ON am.oid = f.opfmethod \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3, 5",
        members("pg_opfamily", "f.oid", "f.oid"),
        not_member("f.oid", "pg_opfamily")
    );
    for r in session.query_catalog(&families, &[]).await? {
        let (oid, schema, name, owner, method): (u32, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let using = format!("{qualified} USING {}", b.q.ident(&method));
        let mut defn = format!("CREATE OPERATOR FAMILY {using};\n");
        let clauses: Vec<String> = r
            .get::<_, Vec<String>>(6)
            .into_iter()
            .chain(r.get::<_, Vec<String>>(7))
            .collect();
        if !clauses.is_empty() {
            defn.push_str(&format!(
                "ALTER OPERATOR FAMILY {using} ADD\n    {};\n",
                clauses.join(" ,\n    ")
            ));
        }
        let mut item = Item::new("OPERATOR FAMILY", &name, Section::PreData, P_OPERATOR_CLASS)
            .of(PG_OPFAMILY, oid)
            .in_schema(&schema, Some(owner));
        item.defn = defn;
        item.drop = Some(format!("DROP OPERATOR FAMILY {using};\n"));
        member_deps(&mut item, &r, 8);
        item.deps.push(Dep::Object((PG_AM, r.get(10))));
        let at = b.push(item);
        let tag = format!(
            "OPERATOR FAMILY {} USING {}",
            b.q.ident(&name),
            b.q.ident(&method)
        );
        b.comment(at, &format!("OPERATOR FAMILY {using}"), &tag, r.get(5));
    }

    let classes = format!(
        "SELECT c.oid, n.nspname, c.opcname, pg_get_userbyid(c.opcowner), am.amname, \
                obj_description(c.oid, 'pg_opclass'), {}, \
                c.opcdefault, c.opcintype::regtype::text, NULLIF(c.opckeytype, 0)::regtype::text, \
                format('%I.%I', fn.nspname, f.opfname), c.opcfamily, c.opcintype \
         FROM pg_opclass c JOIN pg_namespace n ON n.oid = c.opcnamespace JOIN pg_am am ON am.oid = c.opcmethod \
         JOIN pg_opfamily f ON f.oid = c.opcfamily JOIN pg_namespace fn ON fn.oid = f.opfnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3, 5",
        members("pg_opclass", "c.oid", "c.opcfamily"),
        not_member("c.oid", "pg_opclass")
    );
    for r in session.query_catalog(&classes, &[]).await? {
        let (oid, schema, name, owner, method): (u32, String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let using = format!("{qualified} USING {}", b.q.ident(&method));
        let mut clauses: Vec<String> = Vec::new();
        if let Some(storage) = r.get::<_, Option<String>>(12) {
            clauses.push(format!("STORAGE {storage}"));
        }
        clauses.extend(r.get::<_, Vec<String>>(6));
        clauses.extend(r.get::<_, Vec<String>>(7));
        let input: String = r.get(11);
        if clauses.is_empty() {
            // Nothing after AS is not valid SQL: a STORAGE of the input type changes nothing.
            clauses.push(format!("STORAGE {input}"));
        }
        let mut item = Item::new("OPERATOR CLASS", &name, Section::PreData, P_OPERATOR_CLASS)
            .of(PG_OPCLASS, oid)
            .in_schema(&schema, Some(owner));
        item.defn = format!(
            "CREATE OPERATOR CLASS {qualified}\n    {}FOR TYPE {input} USING {} FAMILY {} AS\n    {};\n",
            if r.get::<_, bool>(10) { "DEFAULT " } else { "" },
            b.q.ident(&method),
            r.get::<_, String>(13),
            clauses.join(" ,\n    ")
        );
        item.drop = Some(format!("DROP OPERATOR CLASS {using};\n"));
        member_deps(&mut item, &r, 8);
        item.deps.push(Dep::Object((PG_OPFAMILY, r.get(14))));
        item.deps.push(Dep::Object((PG_TYPE, r.get(15))));
        let at = b.push(item);
        let tag = format!(
            "OPERATOR CLASS {} USING {}",
            b.q.ident(&name),
            b.q.ident(&method)
        );
        b.comment(at, &format!("OPERATOR CLASS {using}"), &tag, r.get(5));
    }
    Ok(())
}

/// Dependencies on the member operators and functions (oid arrays at columns `at`, `at + 1`).
fn member_deps(item: &mut Item, r: &Row, at: usize) {
    for operator in r.get::<_, Vec<u32>>(at) {
        item.deps.push(Dep::Object((PG_OPERATOR, operator)));
    }
    for function in r.get::<_, Vec<u32>>(at + 1) {
        item.deps.push(Dep::Object((PG_PROC, function)));
    }
}

/// Access methods that are not an extension's (they have no owner and no schema).
pub(super) async fn access_methods(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT a.oid, a.amname, CASE a.amtype WHEN 'i' THEN 'INDEX' ELSE 'TABLE' END, \
                a.amhandler::regproc::text, obj_description(a.oid, 'pg_am'), a.amhandler::oid \
         FROM pg_am a WHERE a.oid >= 16384 AND {} ORDER BY 2",
        not_member("a.oid", "pg_am")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, kind, handler): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let quoted = b.q.ident(&name);
        let mut item =
            Item::new("ACCESS METHOD", &name, Section::PreData, P_OPERATOR_CLASS).of(PG_AM, oid);
        item.owner = Some(String::new());
        item.defn = format!("CREATE ACCESS METHOD {quoted} TYPE {kind} HANDLER {handler};\n");
        item.drop = Some(format!("DROP ACCESS METHOD {quoted};\n"));
        item.deps.push(Dep::Object((PG_PROC, r.get(5))));
        let at = b.push(item);
        let target = format!("ACCESS METHOD {quoted}");
        b.comment(at, &target, &target, r.get(4));
    }
    Ok(())
}
