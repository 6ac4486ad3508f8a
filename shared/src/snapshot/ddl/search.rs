//! Text search dictionaries and configurations (their parsers and templates are C code, which
//! a dump cannot carry: those are refused).

use super::*;

pub(super) async fn text_search(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT d.oid, n.nspname, d.dictname, pg_get_userbyid(d.dictowner), \
                (SELECT format('%I.%I', tn.nspname, t.tmplname) FROM pg_ts_template t \
                   JOIN pg_namespace tn ON tn.oid = t.tmplnamespace WHERE t.oid = d.dicttemplate), \
                d.dictinitoption, obj_description(d.oid, 'pg_ts_dict') \
         FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("d.oid", "pg_ts_dict")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let mut defn = format!(
            "CREATE TEXT SEARCH DICTIONARY {qualified} (\n    TEMPLATE = {}",
            r.get::<_, String>(4)
        );
        // The options as the server keeps them: `name = value` pairs in SQL syntax.
        if let Some(options) = opt_text(&r, 5) {
            defn.push_str(&format!(", {options}"));
        }
        defn.push_str(" );\n");
        let mut item = Item::new("TEXT SEARCH DICTIONARY", &name, Section::PreData, P_SEARCH)
            .of(PG_TS_DICT, oid)
            .in_schema(&schema, Some(owner));
        item.defn = defn;
        item.drop = Some(format!("DROP TEXT SEARCH DICTIONARY {qualified};\n"));
        let at = b.push(item);
        let target = format!("TEXT SEARCH DICTIONARY {qualified}");
        let tag = format!("TEXT SEARCH DICTIONARY {}", b.q.ident(&name));
        b.comment(at, &target, &tag, r.get(6));
    }
    let sql = format!(
        "SELECT c.oid, n.nspname, c.cfgname, pg_get_userbyid(c.cfgowner), \
                (SELECT format('%I.%I', pn.nspname, p.prsname) FROM pg_ts_parser p \
                   JOIN pg_namespace pn ON pn.oid = p.prsnamespace WHERE p.oid = c.cfgparser), \
                (SELECT string_agg(format(E'ALTER TEXT SEARCH CONFIGURATION %I.%I\\n    ADD MAPPING FOR %s WITH %s;\\n', \
                                          n.nspname, c.cfgname, quote_ident(t.alias), \
                                          (SELECT string_agg(m.mapdict::regdictionary::text, ', ' ORDER BY m.mapseqno) \
                                             FROM pg_ts_config_map m WHERE m.mapcfg = c.oid AND m.maptokentype = t.tokid)), \
                                   '' ORDER BY t.tokid) \
                   FROM ts_token_type(c.cfgparser) t \
                  WHERE EXISTS (SELECT 1 FROM pg_ts_config_map m WHERE m.mapcfg = c.oid AND m.maptokentype = t.tokid)), \
                obj_description(c.oid, 'pg_ts_config'), \
                (SELECT array_agg(DISTINCT m.mapdict) FROM pg_ts_config_map m WHERE m.mapcfg = c.oid) \
         FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_ts_config")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let mut defn = format!(
            "CREATE TEXT SEARCH CONFIGURATION {qualified} (\n    PARSER = {} );\n",
            r.get::<_, String>(4)
        );
        defn.push_str(&opt_text(&r, 5).unwrap_or_default());
        let mut item = Item::new(
            "TEXT SEARCH CONFIGURATION",
            &name,
            Section::PreData,
            P_SEARCH + 1,
        )
        .of(PG_TS_CONFIG, oid)
        .in_schema(&schema, Some(owner));
        item.defn = defn;
        item.drop = Some(format!("DROP TEXT SEARCH CONFIGURATION {qualified};\n"));
        for dictionary in r.get::<_, Option<Vec<u32>>>(7).unwrap_or_default() {
            item.deps.push(Dep::Object((PG_TS_DICT, dictionary)));
        }
        let at = b.push(item);
        let target = format!("TEXT SEARCH CONFIGURATION {qualified}");
        let tag = format!("TEXT SEARCH CONFIGURATION {}", b.q.ident(&name));
        b.comment(at, &target, &tag, r.get(6));
    }
    Ok(())
}
