//! Views and materialized views.

use super::*;
use tokio_postgres::types::Type;

pub(super) async fn views(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let mut columns = super::tables::columns(session).await?;
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, \
                array_to_string(c.reloptions, ', '), pg_get_viewdef(c.oid), c.relispopulated, am.amname, \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('r', c.relowner)::text[], \
                ARRAY(SELECT d.refobjid FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid \
                       WHERE d.classid = 'pg_rewrite'::regclass AND rw.ev_class = c.oid \
                         AND d.refclassid = 'pg_constraint'::regclass), \
                array_to_string(ARRAY(SELECT o FROM unnest(c.reloptions) o \
                       WHERE o NOT IN ('check_option=local', 'check_option=cascaded')), ', '), \
                (SELECT string_agg(format('NULL::%s%s AS %I', format_type(a.atttypid, a.atttypmod), \
                          CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation THEN \
                            (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co \
                               JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END, \
                          a.attname), E',\n    ' ORDER BY a.attnum) \
                   FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), \
                ARRAY(SELECT DISTINCT d.refobjid FROM pg_depend d JOIN pg_rewrite rw ON rw.oid = d.objid \
                       WHERE d.classid = 'pg_rewrite'::regclass AND rw.ev_class = c.oid \
                         AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    let rows = session.query_catalog(&sql, &[]).await?;
    // A materialized view made after the keys (see below) holds back what reads it: views
    // over it are given their query after it too, materialized views over it are made after
    // it, and so on.
    let mut postponed: HashSet<u32> = rows
        .iter()
        .filter(|r| r.get::<_, String>(4) == "m" && !r.get::<_, Vec<u32>>(12).is_empty())
        .map(|r| r.get(0))
        .collect();
    let mut after_postponed: HashMap<u32, Vec<u32>> = HashMap::new();
    loop {
        let mut grew = false;
        for r in &rows {
            let oid: u32 = r.get(0);
            let waits: Vec<u32> = r
                .get::<_, Vec<u32>>(15)
                .into_iter()
                .filter(|d| postponed.contains(d))
                .collect();
            if waits.is_empty() {
                continue;
            }
            if r.get::<_, String>(4) == "m" && postponed.insert(oid) {
                grew = true;
            }
            after_postponed.insert(oid, waits);
        }
        if !grew {
            break;
        }
    }
    for r in rows {
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
        // A definition that is valid only once a key exists (`GROUP BY id` selecting the
        // other columns of id's table) cannot come before the keys, which are made after the
        // data: as pg_dump does, a view is made first with its columns only (NULLs of their
        // types) and given its query by a `RULE _RETURN` entry after the keys; a materialized
        // view is made after them.
        let keys: Vec<u32> = r.get(12);
        let waits = after_postponed.remove(&oid).unwrap_or_default();
        let mut after: Vec<Dep> = keys
            .iter()
            .map(|&k| Dep::Object((PG_CONSTRAINT, k)))
            .collect();
        after.extend(waits.iter().map(|&v| Dep::Object((PG_CLASS, v))));
        let split = !after.is_empty();
        let (desc, defn) = if materialized {
            (
                "MATERIALIZED VIEW",
                format!("CREATE MATERIALIZED VIEW {qualified}{with} AS\n{body}\n  WITH NO DATA;\n"),
            )
        } else if split {
            let options = opt_text(&r, 13).map_or(String::new(), |o| format!(" WITH ({o})"));
            let columns = r.get::<_, Option<String>>(14).unwrap_or_default();
            (
                "VIEW",
                format!("CREATE VIEW {qualified}{options} AS\n SELECT\n    {columns};\n"),
            )
        } else {
            (
                "VIEW",
                format!("CREATE VIEW {qualified}{with} AS\n{body};\n"),
            )
        };
        let (section, priority) = if materialized && split {
            (Section::PostData, P_RULE)
        } else {
            (Section::PreData, P_TABLE)
        };
        let mut item = Item::new(desc, &name, section, priority)
            .of(PG_CLASS, oid)
            .in_schema(&schema, Some(owner.clone()));
        if materialized {
            item.deps.extend(after.iter().copied());
        }
        item.relkind = if materialized { b'm' } else { b'v' };
        item.tableam = if materialized { r.get(8) } else { None };
        item.defn = defn;
        item.drop = Some(format!("DROP {desc} {qualified};\n"));
        let at = b.push(item);
        if !materialized && split {
            let mut rule = Item::new("RULE", format!("{name} _RETURN"), Section::PostData, P_RULE)
                .in_schema(&schema, Some(owner.clone()));
            rule.defn = format!("CREATE OR REPLACE VIEW {qualified}{with} AS\n{body};\n");
            rule.drop = Some(
                b.items[at]
                    .defn
                    .replacen("CREATE VIEW", "CREATE OR REPLACE VIEW", 1),
            );
            rule.deps.push(Dep::Item(at));
            rule.deps.extend(after.iter().copied());
            b.push(rule);
        }
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
                b.column_default(at, &name, &qualified, &c.name, expr, None);
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
    // A function that takes or returns such a materialized view's rows is made after it too
    // (pg_dump moves it after the view as well).
    if !postponed.is_empty() {
        let views: Vec<u32> = postponed.iter().copied().collect();
        let functions = session
            .query_typed(
                "SELECT DISTINCT d.objid, c.oid FROM pg_depend d JOIN pg_class c ON c.oid = ANY($1) \
                   AND ((d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid) \
                        OR (d.refclassid = 'pg_type'::regclass AND d.refobjid = c.reltype)) \
                 WHERE d.classid = 'pg_proc'::regclass",
                &[(&views, Type::OID_ARRAY)],
            )
            .await?;
        let keyed = b.keyed();
        for f in functions {
            let (function, view): (u32, u32) = (f.get(0), f.get(1));
            if let Some(&at) = keyed.get(&(PG_PROC, function)) {
                let item = &mut b.items[at];
                item.section = Section::PostData;
                item.priority = P_RULE;
                item.deps.push(Dep::Object((PG_CLASS, view)));
            }
        }
    }
    Ok(())
}
