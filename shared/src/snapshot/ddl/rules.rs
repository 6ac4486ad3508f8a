//! Triggers, rules and row-level security policies.

use super::*;

pub(super) async fn triggers_rules_policies(
    session: &Session,
    b: &mut Builder<'_>,
) -> Result<(), PgError> {
    let triggers = session
        .query_catalog(
            "SELECT t.oid, t.tgrelid, t.tgname, pg_get_triggerdef(t.oid, false), t.tgenabled::text, \
                    obj_description(t.oid, 'pg_trigger') \
                    , t.tgparentid <> 0, t.tgparentid \
             FROM pg_trigger t \
             WHERE (t.tgparentid = 0 AND NOT t.tgisinternal) \
                OR (t.tgparentid <> 0 AND EXISTS (SELECT 1 FROM pg_trigger p WHERE p.oid = t.tgparentid \
                                                   AND NOT p.tgisinternal AND p.tgenabled <> t.tgenabled)) \
             ORDER BY t.tgname",
            &[],
        )
        .await?;
    for r in triggers {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut item = Item::new(
            "TRIGGER",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_TRIGGER,
        )
        .of(PG_TRIGGER, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        // A partition's copy of its parent's trigger (marked internal before PostgreSQL 15)
        // is dumped only when its enable state differs, as that state alone; the ALTER
        // reaches the partition's own partitions, as the one that set it did.
        let cloned: bool = r.get(6);
        let state = enable_state(&r.get::<_, String>(4));
        let quoted = b.q.ident(&name);
        if cloned {
            // After the parent's trigger, whose creation made this copy.
            item.deps.push(Dep::Object((PG_TRIGGER, r.get(7))));
            item.defn = format!(
                "ALTER TABLE {table_name} {} TRIGGER {quoted};\n",
                state.unwrap_or("ENABLE")
            );
        } else {
            item.defn = format!("{};\n", r.get::<_, String>(3));
            if let Some(state) = state {
                item.defn.push_str(&format!(
                    "ALTER TABLE {table_name} {state} TRIGGER {quoted};\n"
                ));
            }
            item.drop = Some(format!("DROP TRIGGER {quoted} ON {table_name};\n"));
        }
        item.deps.push(Dep::Item(table_item));
        let table_quoted = b.q.ident(&b.items[table_item].tag);
        let at = b.push(item);
        b.comment(
            at,
            &format!("TRIGGER {quoted} ON {table_name}"),
            &format!("TRIGGER {quoted} ON {table_quoted}"),
            r.get(5),
        );
    }
    let rules = session
        .query_catalog(
            "SELECT r.oid, r.ev_class, r.rulename, pg_get_ruledef(r.oid), r.ev_enabled::text, \
                    obj_description(r.oid, 'pg_rewrite') \
             FROM pg_rewrite r WHERE r.rulename <> '_RETURN' ORDER BY r.rulename",
            &[],
        )
        .await?;
    for r in rules {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut item = Item::new(
            "RULE",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_RULE,
        )
        .of(PG_REWRITE, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        let quoted = b.q.ident(&name);
        item.defn = format!("{}\n", r.get::<_, String>(3));
        if let Some(state) = enable_state(&r.get::<_, String>(4)) {
            item.defn.push_str(&format!(
                "ALTER TABLE {table_name} {state} RULE {quoted};\n"
            ));
        }
        item.drop = Some(format!("DROP RULE {quoted} ON {table_name};\n"));
        item.deps.push(Dep::Item(table_item));
        let table_quoted = b.q.ident(&b.items[table_item].tag);
        let at = b.push(item);
        b.comment(
            at,
            &format!("RULE {quoted} ON {table_name}"),
            &format!("RULE {quoted} ON {table_quoted}"),
            r.get(5),
        );
    }
    let policies = session
        .query_catalog(
            "SELECT p.oid, p.polrelid, p.polname, p.polcmd::text, p.polpermissive, \
                    (SELECT string_agg(CASE WHEN r.role = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.role)) END, \
                                       ', ' ORDER BY r.n) \
                       FROM unnest(p.polroles) WITH ORDINALITY AS r(role, n)), \
                    pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), \
                    obj_description(p.oid, 'pg_policy') \
             FROM pg_policy p ORDER BY p.polname",
            &[],
        )
        .await?;
    for r in policies {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut defn = format!("CREATE POLICY {} ON {table_name}", b.q.ident(&name));
        if !r.get::<_, bool>(4) {
            defn.push_str(" AS RESTRICTIVE");
        }
        let command = match r.get::<_, String>(3).as_str() {
            "r" => " FOR SELECT",
            "a" => " FOR INSERT",
            "w" => " FOR UPDATE",
            "d" => " FOR DELETE",
            _ => "",
        };
        defn.push_str(command);
        if let Some(roles) = opt_text(&r, 5) {
            defn.push_str(&format!(" TO {roles}"));
        }
        if let Some(using) = opt_text(&r, 6) {
            defn.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = opt_text(&r, 7) {
            defn.push_str(&format!(" WITH CHECK ({check})"));
        }
        defn.push_str(";\n");
        let mut item = Item::new(
            "POLICY",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_POLICY,
        )
        .of(PG_POLICY, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        item.defn = defn;
        item.drop = Some(format!(
            "DROP POLICY {} ON {table_name};\n",
            b.q.ident(&name)
        ));
        item.deps.push(Dep::Item(table_item));
        let table_quoted = b.q.ident(&b.items[table_item].tag);
        let at = b.push(item);
        let quoted = b.q.ident(&name);
        b.comment(
            at,
            &format!("POLICY {quoted} ON {table_name}"),
            &format!("POLICY {quoted} ON {table_quoted}"),
            r.get(8),
        );
    }
    Ok(())
}

/// The `ALTER TABLE` words for a trigger's or rule's enable state other than the default
/// (`tgenabled` / `ev_enabled`: O origin, D disabled, R replica, A always).
fn enable_state(state: &str) -> Option<&'static str> {
    match state {
        "D" => Some("DISABLE"),
        "R" => Some("ENABLE REPLICA"),
        "A" => Some("ENABLE ALWAYS"),
        _ => None,
    }
}
