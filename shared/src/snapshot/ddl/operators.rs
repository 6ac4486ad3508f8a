//! Operators, casts and conversions (operator classes and families are refused for now).

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
    for r in session.query(&sql, &[]).await? {
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
    for r in session.query(&sql, &[]).await? {
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
    for r in session.query(&sql, &[]).await? {
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
            literal(&r.get::<_, String>(4)),
            literal(&r.get::<_, String>(5)),
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
