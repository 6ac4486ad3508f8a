//! Publications (logical replication's outbound side), their tables (with column lists and
//! row filters) and schemas, and event triggers: the database-wide objects pg_dump writes
//! after the data.

use super::*;

pub(super) async fn publications(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // pg_dump leaves them out of dumps filtered by schema or table.
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let generated = if b.version >= 180000 {
        "p.pubgencols::text = 's'"
    } else {
        "false"
    };
    let sql = format!(
        "SELECT p.oid, p.pubname, pg_get_userbyid(p.pubowner), p.puballtables, \
                concat_ws(', ', CASE WHEN p.pubinsert THEN 'insert' END, CASE WHEN p.pubupdate THEN 'update' END, \
                          CASE WHEN p.pubdelete THEN 'delete' END, CASE WHEN p.pubtruncate THEN 'truncate' END), \
                p.pubviaroot, {generated}, obj_description(p.oid, 'pg_publication') \
         FROM pg_publication p ORDER BY 2"
    );
    let mut by_oid: HashMap<u32, (usize, String)> = HashMap::new();
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let mut defn = format!("CREATE PUBLICATION {quoted}");
        if r.get::<_, bool>(3) {
            defn.push_str(" FOR ALL TABLES");
        }
        defn.push_str(&format!(
            " WITH (publish = {}",
            dump_literal(&r.get::<_, String>(4))
        ));
        if r.get::<_, bool>(5) {
            defn.push_str(", publish_via_partition_root = true");
        }
        if r.get::<_, bool>(6) {
            defn.push_str(", publish_generated_columns = stored");
        }
        defn.push_str(");\n");
        let mut item = Item::new("PUBLICATION", &name, Section::PostData, P_PUBLICATION)
            .of(PG_PUBLICATION, oid);
        item.owner = Some(owner);
        item.defn = defn;
        item.drop = Some(format!("DROP PUBLICATION {quoted};\n"));
        let at = b.push(item);
        let target = format!("PUBLICATION {quoted}");
        b.comment(at, &target, &target, r.get(7));
        by_oid.insert(oid, (at, quoted));
    }
    if by_oid.is_empty() {
        return Ok(());
    }
    // Column lists and row filters arrived in 15, with publications of whole schemas.
    let (columns, filter) = if b.version >= 150000 {
        (
            "(SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.n) \
               FROM unnest(r.prattrs::int2[]) WITH ORDINALITY AS k(attnum, n) \
               JOIN pg_attribute a ON a.attrelid = r.prrelid AND a.attnum = k.attnum)",
            "pg_get_expr(r.prqual, r.prrelid)",
        )
    } else {
        ("NULL::text", "NULL::text")
    };
    let sql = format!(
        "SELECT r.oid, r.prpubid, r.prrelid, {columns}, {filter} FROM pg_publication_rel r ORDER BY r.oid"
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, publication, table): (u32, u32, u32) = (r.get(0), r.get(1), r.get(2));
        let (Some((pub_item, quoted)), Some((table_name, _, table_item))) = (
            by_oid.get(&publication).cloned(),
            b.relations.get(&table).cloned(),
        ) else {
            continue;
        };
        let mut defn = format!("ALTER PUBLICATION {quoted} ADD TABLE ONLY {table_name}");
        if let Some(columns) = opt_text(&r, 3) {
            defn.push_str(&format!(" ({columns})"));
        }
        if let Some(condition) = opt_text(&r, 4) {
            defn.push_str(&format!(" WHERE ({condition})"));
        }
        defn.push_str(";\n");
        let tag = format!("{} {}", b.items[pub_item].tag, b.items[table_item].tag);
        let mut item = Item::new(
            "PUBLICATION TABLE",
            tag,
            Section::PostData,
            P_PUBLICATION_MEMBER,
        )
        .of(PG_PUBLICATION_REL, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[pub_item].owner.clone();
        item.defn = defn;
        item.deps = vec![Dep::Item(pub_item), Dep::Item(table_item)];
        b.push(item);
    }
    if b.version < 150000 {
        return Ok(());
    }
    let rows = session
        .query_catalog(
            "SELECT s.oid, s.pnpubid, s.pnnspid, n.nspname FROM pg_publication_namespace s \
             JOIN pg_namespace n ON n.oid = s.pnnspid ORDER BY s.oid",
            &[],
        )
        .await?;
    for r in rows {
        let (oid, publication, schema): (u32, u32, String) = (r.get(0), r.get(1), r.get(3));
        let Some((pub_item, quoted)) = by_oid.get(&publication).cloned() else {
            continue;
        };
        let tag = format!("{} {schema}", b.items[pub_item].tag);
        let mut item = Item::new(
            "PUBLICATION TABLES IN SCHEMA",
            tag,
            Section::PostData,
            P_PUBLICATION_MEMBER,
        )
        .of(PG_PUBLICATION_NAMESPACE, oid);
        item.namespace = Some(schema.clone());
        item.owner = b.items[pub_item].owner.clone();
        item.defn = format!(
            "ALTER PUBLICATION {quoted} ADD TABLES IN SCHEMA {};\n",
            b.q.ident(&schema)
        );
        item.deps = vec![Dep::Item(pub_item), Dep::Object((PG_NAMESPACE, r.get(2)))];
        b.push(item);
    }
    Ok(())
}

/// Event triggers: created after everything else, so that restoring the dump does not fire
/// them.
pub(super) async fn event_triggers(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT e.oid, e.evtname, pg_get_userbyid(e.evtowner), e.evtevent, e.evtfoid::regproc::text, \
                (SELECT string_agg(quote_literal(t), ', ' ORDER BY n) \
                   FROM unnest(e.evttags) WITH ORDINALITY AS x(t, n)), \
                e.evtenabled::text, obj_description(e.oid, 'pg_event_trigger'), e.evtfoid \
         FROM pg_event_trigger e WHERE {} ORDER BY 2",
        not_member("e.oid", "pg_event_trigger")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let mut defn = format!(
            "CREATE EVENT TRIGGER {quoted} ON {}\n",
            b.q.ident(&r.get::<_, String>(3))
        );
        if let Some(tags) = opt_text(&r, 5) {
            defn.push_str(&format!("         WHEN TAG IN ({tags})\n"));
        }
        defn.push_str(&format!(
            "   EXECUTE FUNCTION {}();\n",
            r.get::<_, String>(4)
        ));
        match r.get::<_, String>(6).as_str() {
            "D" => defn.push_str(&format!("ALTER EVENT TRIGGER {quoted} DISABLE;\n")),
            "A" => defn.push_str(&format!("ALTER EVENT TRIGGER {quoted} ENABLE ALWAYS;\n")),
            "R" => defn.push_str(&format!("ALTER EVENT TRIGGER {quoted} ENABLE REPLICA;\n")),
            _ => {}
        }
        let mut item = Item::new("EVENT TRIGGER", &name, Section::PostData, P_EVENT_TRIGGER)
            .of(PG_EVENT_TRIGGER, oid);
        item.owner = Some(owner);
        item.defn = defn;
        item.drop = Some(format!("DROP EVENT TRIGGER {quoted};\n"));
        item.deps.push(Dep::Object((PG_PROC, r.get(8))));
        let at = b.push(item);
        let target = format!("EVENT TRIGGER {quoted}");
        b.comment(at, &target, &target, r.get(7));
    }
    Ok(())
}

/// Subscriptions, as pg_dump writes them: not connected (no slot made, not enabled), with the
/// slot name and the options to enable them by hand. Only a superuser can read their
/// connection strings: for another role a database with subscriptions is refused (see
/// [`super::unsupported`]), where pg_dump would leave them out with a warning.
pub(super) async fn subscriptions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let superuser: bool = session
        .query_catalog_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await?
        .get(0);
    if !superuser {
        return Ok(());
    }
    let since = |version: i32, column: &str, otherwise: &str| -> String {
        if b.version >= version {
            column.to_string()
        } else {
            otherwise.to_string()
        }
    };
    let sql = format!(
        "SELECT s.oid, s.subname, pg_get_userbyid(s.subowner), s.subconninfo, s.subslotname::text, \
                s.subpublications, s.subbinary, s.substream::text, {two_phase}, {disable}, \
                {password}, {run_as_owner}, {origin}, {failover}, s.subsynccommit, \
                obj_description(s.oid, 'pg_subscription') \
         FROM pg_subscription s \
         WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 2",
        two_phase = since(150000, "s.subtwophasestate::text", "'d'"),
        disable = since(150000, "s.subdisableonerr", "false"),
        password = since(160000, "s.subpasswordrequired", "true"),
        // Before 16 changes were always applied as the owner, which 16+ calls run_as_owner
        // (pg_dump 16+ writes it for those servers, and its dump no longer restores into
        // them): left out, so the dump restores into the server it came from.
        run_as_owner = since(160000, "s.subrunasowner", "false"),
        origin = since(160000, "s.suborigin", "'any'"),
        failover = since(170000, "s.subfailover", "false"),
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let publications: Vec<String> = r.get(5);
        let slot = r
            .get::<_, Option<String>>(4)
            .map_or("NONE".to_string(), |s| dump_literal(&s));
        let mut options = vec!["connect = false".to_string(), format!("slot_name = {slot}")];
        if r.get::<_, bool>(6) {
            options.push("binary = true".into());
        }
        // Written always: the default changed in 18 (parallel).
        options.push(
            match r.get::<_, String>(7).as_str() {
                "t" | "true" => "streaming = on",
                "p" => "streaming = parallel",
                _ => "streaming = off",
            }
            .into(),
        );
        if r.get::<_, String>(8) != "d" {
            options.push("two_phase = on".into());
        }
        if r.get::<_, bool>(9) {
            options.push("disable_on_error = true".into());
        }
        if !r.get::<_, bool>(10) {
            options.push("password_required = false".into());
        }
        if r.get::<_, bool>(11) {
            options.push("run_as_owner = true".into());
        }
        let origin: String = r.get(12);
        if origin != "any" {
            options.push(format!("origin = {}", dump_literal(&origin)));
        }
        if r.get::<_, bool>(13) {
            options.push("failover = true".into());
        }
        let commit: String = r.get(14);
        if commit != "off" {
            options.push(format!("synchronous_commit = {}", dump_literal(&commit)));
        }
        let mut item = Item::new("SUBSCRIPTION", &name, Section::PostData, P_SUBSCRIPTION)
            .of(PG_SUBSCRIPTION, oid);
        item.owner = Some(owner);
        item.defn = format!(
            "CREATE SUBSCRIPTION {quoted} CONNECTION {} PUBLICATION {} WITH ({});\n",
            dump_literal(&r.get::<_, String>(3)),
            publications
                .iter()
                .map(|p| b.q.ident(p))
                .collect::<Vec<_>>()
                .join(", "),
            options.join(", ")
        );
        item.drop = Some(format!("DROP SUBSCRIPTION {quoted};\n"));
        let at = b.push(item);
        let target = format!("SUBSCRIPTION {quoted}");
        b.comment(at, &target, &target, r.get(15));
    }
    Ok(())
}

/// Transforms that are not an extension's (no owner, no schema).
pub(super) async fn transforms(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "SELECT t.oid, format_type(t.trftype, NULL), quote_ident(l.lanname), \
                NULLIF(t.trffromsql, 0)::regprocedure::text, NULLIF(t.trftosql, 0)::regprocedure::text, \
                obj_description(t.oid, 'pg_transform'), t.trftype, t.trflang, \
                array_remove(ARRAY[t.trffromsql::oid, t.trftosql::oid], 0::oid) \
         FROM pg_transform t JOIN pg_language l ON l.oid = t.trflang WHERE {} ORDER BY 2, 3",
        not_member("t.oid", "pg_transform")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let oid: u32 = r.get(0);
        let (kind, language): (String, String) = (r.get(1), r.get(2));
        let what = format!("FOR {kind} LANGUAGE {language}");
        let mut parts = Vec::new();
        if let Some(from) = opt_text(&r, 3) {
            parts.push(format!("FROM SQL WITH FUNCTION {from}"));
        }
        if let Some(to) = opt_text(&r, 4) {
            parts.push(format!("TO SQL WITH FUNCTION {to}"));
        }
        let tag = format!("TRANSFORM {what}");
        let mut item = Item::new("TRANSFORM", &tag, Section::PreData, P_CAST).of(PG_TRANSFORM, oid);
        item.owner = Some(String::new());
        item.defn = format!("CREATE TRANSFORM {what} ({});\n", parts.join(", "));
        item.drop = Some(format!("DROP TRANSFORM {what};\n"));
        item.deps.push(Dep::Object((PG_TYPE, r.get(6))));
        item.deps.push(Dep::Object((PG_LANGUAGE, r.get(7))));
        for function in r.get::<_, Vec<u32>>(8) {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        let at = b.push(item);
        b.comment(at, &tag, &tag, r.get(5));
    }
    Ok(())
}
