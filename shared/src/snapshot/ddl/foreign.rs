//! Foreign data: wrappers, servers and user mappings (their options as the dumping role may
//! read them: `pg_user_mappings` shows a mapping's options only to who may see them, as for
//! pg_dump). Foreign tables are tables (see `tables`).

use super::*;

/// An `OPTIONS (...)` clause from an options array, names quoted and values as literals, in
/// the array's order; empty when there are none.
pub(super) fn options_sql(column: &str) -> String {
    format!(
        "(SELECT E' OPTIONS (\\n    ' || string_agg(quote_ident(o.option_name) || ' ' || quote_literal(o.option_value), \
                                            E',\\n    ') || E'\\n)' \
           FROM pg_options_to_table({column}) o)"
    )
}

pub(super) async fn foreign_data(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
        return Ok(()); // database-wide objects, left out of filtered dumps as pg_dump does
    }
    let sql = format!(
        "SELECT w.oid, w.fdwname, pg_get_userbyid(w.fdwowner), \
                CASE WHEN w.fdwhandler <> 0 THEN ' HANDLER ' || w.fdwhandler::regproc::text END, \
                CASE WHEN w.fdwvalidator <> 0 THEN ' VALIDATOR ' || w.fdwvalidator::regproc::text END, \
                {}, obj_description(w.oid, 'pg_foreign_data_wrapper'), w.fdwacl::text[], \
                acldefault('F', w.fdwowner)::text[], NULLIF(w.fdwhandler::oid, 0), NULLIF(w.fdwvalidator::oid, 0) \
         FROM pg_foreign_data_wrapper w WHERE {} ORDER BY 2",
        options_sql("w.fdwoptions"),
        not_member("w.oid", "pg_foreign_data_wrapper")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let mut item = Item::new("FOREIGN DATA WRAPPER", &name, Section::PreData, P_FOREIGN)
            .of(PG_FOREIGN_DATA_WRAPPER, oid);
        item.owner = Some(owner);
        item.defn = format!(
            "CREATE FOREIGN DATA WRAPPER {quoted}{}{}{};\n",
            opt_text(&r, 3).unwrap_or_default(),
            opt_text(&r, 4).unwrap_or_default(),
            opt_text(&r, 5).unwrap_or_default()
        );
        item.drop = Some(format!("DROP FOREIGN DATA WRAPPER {quoted};\n"));
        for function in [r.get::<_, Option<u32>>(9), r.get(10)]
            .into_iter()
            .flatten()
        {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        let at = b.push(item);
        let target = format!("FOREIGN DATA WRAPPER {quoted}");
        b.comment(at, &target, &target, r.get(6));
        b.acl(at, &target, &target, r.get(7), r.get(8));
    }
    let sql = format!(
        "SELECT s.oid, s.srvname, pg_get_userbyid(s.srvowner), w.fdwname, s.srvtype, s.srvversion, {}, \
                obj_description(s.oid, 'pg_foreign_server'), s.srvacl::text[], acldefault('S', s.srvowner)::text[], \
                s.srvfdw \
         FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw WHERE {} ORDER BY 2",
        options_sql("s.srvoptions"),
        not_member("s.oid", "pg_foreign_server")
    );
    let mut servers: HashMap<String, (usize, String)> = HashMap::new();
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let quoted = b.q.ident(&name);
        let mut defn = format!("CREATE SERVER {quoted}");
        if let Some(kind) = opt_text(&r, 4) {
            defn.push_str(&format!(" TYPE {}", dump_literal(&kind)));
        }
        if let Some(version) = opt_text(&r, 5) {
            defn.push_str(&format!(" VERSION {}", dump_literal(&version)));
        }
        defn.push_str(&format!(
            " FOREIGN DATA WRAPPER {}{};\n",
            b.q.ident(&r.get::<_, String>(3)),
            opt_text(&r, 6).unwrap_or_default()
        ));
        let mut item =
            Item::new("SERVER", &name, Section::PreData, P_FOREIGN + 1).of(PG_FOREIGN_SERVER, oid);
        item.owner = Some(owner.clone());
        item.defn = defn;
        item.drop = Some(format!("DROP SERVER {quoted};\n"));
        item.deps
            .push(Dep::Object((PG_FOREIGN_DATA_WRAPPER, r.get(10))));
        let at = b.push(item);
        b.comment(
            at,
            &format!("SERVER {quoted}"),
            &format!("SERVER {quoted}"),
            r.get(7),
        );
        let target = format!("FOREIGN SERVER {quoted}");
        b.acl(at, &target, &target, r.get(8), r.get(9));
        servers.insert(name, (at, owner));
    }
    let sql = format!(
        "SELECT u.srvname, CASE WHEN u.umuser = 0 THEN NULL ELSE u.usename END, {} \
         FROM pg_user_mappings u ORDER BY 1, 2 NULLS FIRST",
        options_sql("u.umoptions")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let server: String = r.get(0);
        let Some((server_item, owner)) = servers.get(&server).cloned() else {
            continue;
        };
        let user = r
            .get::<_, Option<String>>(1)
            .map_or("public".to_string(), |u| b.q.ident(&u));
        let tag = format!("USER MAPPING {user} SERVER {}", b.q.ident(&server));
        let mut item = Item::new("USER MAPPING", &tag, Section::PreData, P_FOREIGN + 2);
        item.owner = Some(owner);
        item.defn = format!(
            "CREATE USER MAPPING FOR {user} SERVER {}{};\n",
            b.q.ident(&server),
            opt_text(&r, 2).unwrap_or_default()
        );
        item.drop = Some(format!(
            "DROP USER MAPPING FOR {user} SERVER {};\n",
            b.q.ident(&server)
        ));
        item.deps.push(Dep::Item(server_item));
        b.push(item);
    }
    Ok(())
}
