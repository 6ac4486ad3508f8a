//! Text search parsers and templates (made of functions, built-in or an extension's), then
//! dictionaries and configurations.

use super::*;

pub(super) async fn text_search(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // Parsers and templates have no owner. Their functions print schema-qualified where the
    // empty search path needs it.
    let sql = format!(
        "SELECT p.oid, n.nspname, p.prsname, p.prsstart::regproc::text, p.prstoken::regproc::text, \
                p.prsend::regproc::text, NULLIF(p.prsheadline, 0)::regproc::text, p.prslextype::regproc::text, \
                obj_description(p.oid, 'pg_ts_parser'), \
                ARRAY[p.prsstart::oid, p.prstoken::oid, p.prsend::oid, p.prsheadline::oid, p.prslextype::oid] \
         FROM pg_ts_parser p JOIN pg_namespace n ON n.oid = p.prsnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("p.oid", "pg_ts_parser")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let mut defn = format!(
            "CREATE TEXT SEARCH PARSER {qualified} (\n    START = {},\n    GETTOKEN = {},\n    END = {},\n",
            r.get::<_, String>(3),
            r.get::<_, String>(4),
            r.get::<_, String>(5)
        );
        if let Some(headline) = opt_text(&r, 6) {
            defn.push_str(&format!("    HEADLINE = {headline},\n"));
        }
        defn.push_str(&format!("    LEXTYPES = {} );\n", r.get::<_, String>(7)));
        let mut item = Item::new("TEXT SEARCH PARSER", &name, Section::PreData, P_SEARCH)
            .of(PG_TS_PARSER, oid)
            .in_schema(&schema, Some(String::new()));
        item.defn = defn;
        item.drop = Some(format!("DROP TEXT SEARCH PARSER {qualified};\n"));
        for function in r.get::<_, Vec<u32>>(9) {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        let at = b.push(item);
        let target = format!("TEXT SEARCH PARSER {qualified}");
        let tag = format!("TEXT SEARCH PARSER {}", b.q.ident(&name));
        b.comment(at, &target, &tag, r.get(8));
    }
    let sql = format!(
        "SELECT t.oid, n.nspname, t.tmplname, NULLIF(t.tmplinit, 0)::regproc::text, t.tmpllexize::regproc::text, \
                obj_description(t.oid, 'pg_ts_template'), ARRAY[t.tmplinit::oid, t.tmpllexize::oid] \
         FROM pg_ts_template t JOIN pg_namespace n ON n.oid = t.tmplnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("t.oid", "pg_ts_template")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let mut defn = format!("CREATE TEXT SEARCH TEMPLATE {qualified} (\n");
        if let Some(init) = opt_text(&r, 3) {
            defn.push_str(&format!("    INIT = {init},\n"));
        }
        defn.push_str(&format!("    LEXIZE = {} );\n", r.get::<_, String>(4)));
        let mut item = Item::new("TEXT SEARCH TEMPLATE", &name, Section::PreData, P_SEARCH)
            .of(PG_TS_TEMPLATE, oid)
            .in_schema(&schema, Some(String::new()));
        item.defn = defn;
        item.drop = Some(format!("DROP TEXT SEARCH TEMPLATE {qualified};\n"));
        for function in r.get::<_, Vec<u32>>(6) {
            item.deps.push(Dep::Object((PG_PROC, function)));
        }
        let at = b.push(item);
        let target = format!("TEXT SEARCH TEMPLATE {qualified}");
        let tag = format!("TEXT SEARCH TEMPLATE {}", b.q.ident(&name));
        b.comment(at, &target, &tag, r.get(5));
    }
    let sql = format!(
        "SELECT d.oid, n.nspname, d.dictname, pg_get_userbyid(d.dictowner), \
                (SELECT format('%I.%I', tn.nspname, t.tmplname) FROM pg_ts_template t \
                   JOIN pg_namespace tn ON tn.oid = t.tmplnamespace WHERE t.oid = d.dicttemplate), \
                d.dictinitoption, obj_description(d.oid, 'pg_ts_dict'), d.dicttemplate \
         FROM pg_ts_dict d JOIN pg_namespace n ON n.oid = d.dictnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("d.oid", "pg_ts_dict")
    );
    for r in session.query_catalog(&sql, &[]).await? {
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
        item.deps.push(Dep::Object((PG_TS_TEMPLATE, r.get(7))));
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
                (SELECT array_agg(DISTINCT m.mapdict) FROM pg_ts_config_map m WHERE m.mapcfg = c.oid), c.cfgparser \
         FROM pg_ts_config c JOIN pg_namespace n ON n.oid = c.cfgnamespace \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_ts_config")
    );
    for r in session.query_catalog(&sql, &[]).await? {
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
        item.deps.push(Dep::Object((PG_TS_PARSER, r.get(8))));
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
