//! Procedural languages, functions, procedures and aggregates.

use super::*;

pub(super) async fn functions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT p.oid, n.nspname, p.proname, pg_get_userbyid(p.proowner), p.prokind::text, \
                pg_get_function_identity_arguments(p.oid), \
                CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END, \
                obj_description(p.oid, 'pg_proc'), p.proacl::text[], acldefault('f', p.proowner)::text[], \
                pg_get_function_arguments(p.oid), \
                a.aggtransfn::regproc::text, format_type(a.aggtranstype, NULL), \
                NULLIF(a.aggfinalfn, 0)::regproc::text, NULLIF(a.aggcombinefn, 0)::regproc::text, \
                a.agginitval, NULLIF(a.aggsortop, 0)::regoperator::text, p.proparallel::text, \
                a.aggfinalextra, a.aggtransspace, NULLIF(a.aggserialfn, 0)::regproc::text, \
                NULLIF(a.aggdeserialfn, 0)::regproc::text, a.aggkind::text, \
                NULLIF(a.aggmtransfn, 0)::regproc::text, NULLIF(a.aggminvtransfn, 0)::regproc::text, \
                format_type(NULLIF(a.aggmtranstype, 0), NULL), a.aggmtransspace, a.aggminitval, \
                NULLIF(a.aggmfinalfn, 0)::regproc::text, a.aggmfinalextra, \
                a.aggfinalmodify::text, a.aggmfinalmodify::text, \
                (SELECT string_agg(format_type(t.t, NULL), ', ' ORDER BY t.n) \
                   FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY AS t(t, n)), p.prolang \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3, 6",
        not_internal("p.oid", "pg_proc")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let kind: String = r.get(4);
        let identity: String = r.get(5);
        let qualified = b.q.qualified(&schema, &name);
        let (desc, keyword, priority) = match kind.as_str() {
            "p" => ("PROCEDURE", "PROCEDURE", P_FUNCTION),
            "a" => ("AGGREGATE", "AGGREGATE", P_AGGREGATE),
            _ => ("FUNCTION", "FUNCTION", P_FUNCTION),
        };
        // An aggregate of no arguments is named `agg(*)`, but granted on as the function
        // `agg()` (pg_dump's tags say so too).
        let no_arguments = kind == "a" && identity.is_empty();
        let signature = if no_arguments {
            format!("{qualified}(*)")
        } else {
            format!("{qualified}({identity})")
        };
        let defn = if kind == "a" {
            aggregate(&r, &qualified)
        } else {
            let mut d: String = r.get(6);
            if !d.ends_with('\n') {
                d.push('\n');
            }
            d.push_str(";\n");
            d
        };
        // pg_dump's tags: the entry's is the bare name and argument types; its comment's and
        // grants' the quoted name with the identity arguments (aggregates: types, or `*`).
        let types = r.get::<_, Option<String>>(32).unwrap_or_default();
        let tag = match (kind.as_str(), types.as_str()) {
            ("a", "") => format!("{name}(*)"),
            _ => format!("{name}({types})"),
        };
        let quoted_signature = match (kind.as_str(), types.as_str()) {
            ("a", "") => format!("{}(*)", b.q.ident(&name)),
            ("a", _) => format!("{}({types})", b.q.ident(&name)),
            _ => format!("{}({identity})", b.q.ident(&name)),
        };
        let mut item = Item::new(desc, &tag, Section::PreData, priority)
            .of(PG_PROC, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.defn = defn;
        item.drop = Some(format!("DROP {keyword} {signature};\n"));
        item.deps.push(Dep::Object((PG_LANGUAGE, r.get(33))));
        let at = b.push(item);
        b.comment(
            at,
            &format!("{keyword} {signature}"),
            &format!("{keyword} {quoted_signature}"),
            r.get(7),
        );
        // Privileges on an aggregate are granted on it as a function.
        let grant_keyword = if kind == "a" { "FUNCTION" } else { keyword };
        let (grant_signature, grant_tag) = if no_arguments {
            (format!("{qualified}()"), format!("{}()", b.q.ident(&name)))
        } else {
            (signature.clone(), quoted_signature.clone())
        };
        b.acl(
            at,
            &format!("{grant_keyword} {grant_signature}"),
            &format!("{grant_keyword} {grant_tag}"),
            r.get(8),
            r.get(9),
        );
    }
    Ok(())
}

/// Procedural languages that are not an extension's (`plpgsql` is one). Written with their
/// handler, inline and validator functions always: pg_dump leaves them out when the functions
/// are the system's, which no server since 13 (no pg_pltemplate) can restore.
pub(super) async fn languages(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT l.oid, l.lanname, pg_get_userbyid(l.lanowner), l.lanpltrusted, \
                l.lanplcallfoid::regproc::text, NULLIF(l.laninline, 0)::regproc::text, \
                NULLIF(l.lanvalidator, 0)::regproc::text, obj_description(l.oid, 'pg_language'), \
                l.lanacl::text[], acldefault('l', l.lanowner)::text[], \
                ARRAY[l.lanplcallfoid, l.laninline, l.lanvalidator]::oid[] \
         FROM pg_language l WHERE l.lanispl AND l.oid >= 16384 AND {} ORDER BY 2",
        not_member("l.oid", "pg_language")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let mut defn = format!(
            "CREATE {}PROCEDURAL LANGUAGE {quoted} HANDLER {}",
            if r.get::<_, bool>(3) { "TRUSTED " } else { "" },
            r.get::<_, String>(4)
        );
        if let Some(inline) = opt_text(&r, 5) {
            defn.push_str(&format!(" INLINE {inline}"));
        }
        if let Some(validator) = opt_text(&r, 6) {
            defn.push_str(&format!(" VALIDATOR {validator}"));
        }
        defn.push_str(";\n");
        let mut item = Item::new("PROCEDURAL LANGUAGE", &name, Section::PreData, P_LANGUAGE)
            .of(PG_LANGUAGE, oid);
        item.owner = Some(owner);
        item.defn = defn;
        item.drop = Some(format!("DROP PROCEDURAL LANGUAGE {quoted};\n"));
        for function in r.get::<_, Vec<u32>>(10) {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        let at = b.push(item);
        let target = format!("LANGUAGE {quoted}");
        b.comment(at, &target, &target, r.get(7));
        b.acl(at, &target, &target, r.get(8), r.get(9));
    }
    Ok(())
}

/// `CREATE AGGREGATE` from `pg_aggregate` (the server has no helper for it), option by
/// option as pg_dump prints them: an empty initial condition is one (only NULL is none), and
/// a final function's modify mode only when it is not the kind's default.
pub(super) fn aggregate(r: &Row, qualified: &str) -> String {
    let text = |i: usize| r.get::<_, Option<String>>(i);
    let ordered_set = r.get::<_, String>(22) != "n";
    let modify = |mode: String| -> Option<&'static str> {
        let default = if ordered_set { "w" } else { "r" };
        match mode.as_str() {
            m if m == default => None,
            "r" => Some("READ_ONLY"),
            "s" => Some("SHAREABLE"),
            _ => Some("READ_WRITE"),
        }
    };
    let mut parts = vec![
        format!("SFUNC = {}", r.get::<_, String>(11)),
        format!("STYPE = {}", r.get::<_, String>(12)),
    ];
    let space: i32 = r.get(19);
    if space != 0 {
        parts.push(format!("SSPACE = {space}"));
    }
    if let Some(init) = text(15) {
        parts.push(format!("INITCOND = {}", dump_literal(&init)));
    }
    if let Some(f) = text(13) {
        parts.push(format!("FINALFUNC = {f}"));
        if r.get::<_, bool>(18) {
            parts.push("FINALFUNC_EXTRA".into());
        }
        if let Some(mode) = modify(r.get(30)) {
            parts.push(format!("FINALFUNC_MODIFY = {mode}"));
        }
    }
    if let Some(f) = text(14) {
        parts.push(format!("COMBINEFUNC = {f}"));
    }
    if let Some(f) = text(20) {
        parts.push(format!("SERIALFUNC = {f}"));
    }
    if let Some(f) = text(21) {
        parts.push(format!("DESERIALFUNC = {f}"));
    }
    if let (Some(forward), Some(inverse), Some(state)) = (text(23), text(24), text(25)) {
        parts.push(format!("MSFUNC = {forward}"));
        parts.push(format!("MINVFUNC = {inverse}"));
        parts.push(format!("MSTYPE = {state}"));
    }
    let moving_space: i32 = r.get(26);
    if moving_space != 0 {
        parts.push(format!("MSSPACE = {moving_space}"));
    }
    if let Some(init) = text(27) {
        parts.push(format!("MINITCOND = {}", dump_literal(&init)));
    }
    if let Some(f) = text(28) {
        parts.push(format!("MFINALFUNC = {f}"));
        if r.get::<_, bool>(29) {
            parts.push("MFINALFUNC_EXTRA".into());
        }
        if let Some(mode) = modify(r.get(31)) {
            parts.push(format!("MFINALFUNC_MODIFY = {mode}"));
        }
    }
    if let Some(op) = text(16) {
        // regoperator prints `schema.op(left,right)`: SORTOP wants the operator alone.
        let op = op.split('(').next().unwrap_or(&op).to_string();
        parts.push(format!("SORTOP = OPERATOR({op})"));
    }
    match r.get::<_, String>(17).as_str() {
        "s" => parts.push("PARALLEL = safe".into()),
        "r" => parts.push("PARALLEL = restricted".into()),
        _ => {}
    }
    if r.get::<_, String>(22) == "h" {
        parts.push("HYPOTHETICAL".into());
    }
    // An aggregate of no arguments (`count(*)`'s kind) is declared with `*`.
    let arguments = match r.get::<_, String>(10) {
        a if a.is_empty() => "*".to_string(),
        a => a,
    };
    format!(
        "CREATE AGGREGATE {qualified}({arguments}) (\n    {}\n);\n",
        parts.join(",\n    ")
    )
}
