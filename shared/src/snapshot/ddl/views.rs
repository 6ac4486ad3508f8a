//! Views and materialized views.

use super::*;

pub(super) async fn views(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let mut columns = super::tables::columns(session).await?;
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, \
                array_to_string(c.reloptions, ', '), pg_get_viewdef(c.oid), c.relispopulated, am.amname, \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('r', c.relowner)::text[] \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.relation_wanted(&schema, &name) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let materialized = r.get::<_, String>(4) == "m";
        let body = r.get::<_, String>(6);
        let body = body.trim_end().trim_end_matches(';');
        let with = opt_text(&r, 5).map_or(String::new(), |o| format!(" WITH ({o})"));
        let (desc, defn) = if materialized {
            (
                "MATERIALIZED VIEW",
                format!("CREATE MATERIALIZED VIEW {qualified}{with} AS\n{body}\n  WITH NO DATA;\n"),
            )
        } else {
            (
                "VIEW",
                format!("CREATE VIEW {qualified}{with} AS\n{body};\n"),
            )
        };
        let mut item = Item::new(desc, &name, Section::PreData, P_TABLE)
            .of(PG_CLASS, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.relkind = if materialized { b'm' } else { b'v' };
        item.tableam = if materialized { r.get(8) } else { None };
        item.defn = defn;
        item.drop = Some(format!("DROP {desc} {qualified};\n"));
        let at = b.push(item);
        b.relations.insert(
            oid,
            (
                qualified.clone(),
                if materialized { b'm' } else { b'v' },
                at,
            ),
        );
        let quoted = b.q.ident(&name);
        b.comment(
            at,
            &format!("{desc} {qualified}"),
            &format!("{desc} {quoted}"),
            r.get(9),
        );
        let columns = columns.remove(&oid).unwrap_or_default();
        for c in &columns {
            let column = b.q.ident(&c.name);
            b.comment(
                at,
                &format!("COLUMN {qualified}.{column}"),
                &format!("COLUMN {quoted}.{column}"),
                c.comment.clone(),
            );
            if let (Some(expr), false) = (&c.default, materialized) {
                // A view's column default is an entry of its own, after the view.
                let mut default = Item::new(
                    "DEFAULT",
                    format!("{name} {}", c.name),
                    Section::PreData,
                    P_DEFAULT,
                )
                .in_schema(&schema, Some(owner.clone()));
                default.defn = format!(
                    "ALTER TABLE ONLY {qualified} ALTER COLUMN {column} SET DEFAULT {expr};\n"
                );
                default.deps.push(Dep::Item(at));
                b.push(default);
            }
        }
        let target = format!("TABLE {qualified}");
        let table_acl = b.acl(
            at,
            &target,
            &format!("TABLE {quoted}"),
            r.get(10),
            r.get(11),
        );
        super::tables::column_grants(b, at, table_acl, &qualified, &quoted, &columns);
        if materialized && r.get::<_, bool>(7) && !b.filter.schema_only {
            let mut refresh = Item::new(
                "MATERIALIZED VIEW DATA",
                &name,
                Section::PostData,
                P_REFRESH,
            )
            .in_schema(&schema, Some(owner.clone()));
            refresh.defn = format!("REFRESH MATERIALIZED VIEW {qualified};\n");
            refresh.deps.push(Dep::Item(at));
            b.push(refresh);
        }
    }
    Ok(())
}
