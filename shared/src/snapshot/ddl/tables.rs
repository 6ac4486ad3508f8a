//! Tables: columns, CHECK constraints, partitions and inheritance, storage settings, data.

use super::*;

/// One column as `tables` reads it.
pub(super) struct Column {
    pub name: String,
    pub type_name: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// A generated column: `STORED`, or (PostgreSQL 18) `VIRTUAL`.
    pub generated: Option<&'static str>,
    pub collation: Option<String>,
    pub local: bool,
    pub storage: Option<char>,
    pub statistics: Option<i32>,
    pub options: Option<String>,
    pub compression: Option<String>,
    pub comment: Option<String>,
    pub acl: Option<Vec<String>>,
    /// PostgreSQL 18+: the name of the column's NOT NULL constraint.
    pub not_null_name: Option<String>,
    /// The default's `pg_attrdef` oid.
    pub default_oid: Option<u32>,
    /// The default calls a sequence the table itself owns (a `serial`): the sequence is
    /// created after the table, so the default is set after both, as pg_dump does.
    pub default_after_sequence: bool,
    /// An inherited column's default in its parent (a child may change it locally).
    pub parent_default: Option<String>,
    /// A foreign table's column options, as an ` OPTIONS (...)` clause.
    pub foreign_options: Option<String>,
}

pub(super) async fn columns(session: &Session) -> Result<HashMap<u32, Vec<Column>>, PgError> {
    let options = super::foreign::options_sql("a.attfdwoptions");
    let sql = format!(
        "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, \
                CASE WHEN a.atthasdef THEN pg_get_expr(ad.adbin, ad.adrelid) END, a.attgenerated::text, \
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> t.typcollation \
                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                           JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) END, \
                a.attislocal, CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END, \
                NULLIF(a.attstattarget::int4, -1), array_to_string(a.attoptions, ', '), \
                CASE a.attcompression WHEN 'p' THEN 'pglz' WHEN 'l' THEN 'lz4' END, \
                col_description(a.attrelid, a.attnum), a.attacl::text[], \
                (SELECT k.conname FROM pg_constraint k WHERE k.conrelid = a.attrelid AND k.contype = 'n' \
                   AND k.conkey[1] = a.attnum LIMIT 1), \
                ad.oid, \
                EXISTS (SELECT 1 FROM pg_depend d \
                          JOIN pg_class s ON s.oid = d.refobjid AND s.relkind = 'S' \
                          JOIN pg_depend o ON o.classid = 'pg_class'::regclass \
                          AND o.objid = d.refobjid AND o.refclassid = 'pg_class'::regclass \
                          AND o.refobjid = a.attrelid AND o.deptype = 'a' \
                         WHERE d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
                           AND d.refclassid = 'pg_class'::regclass), \
                (SELECT pg_get_expr(pd.adbin, pd.adrelid) FROM pg_inherits i \
                   JOIN pg_attribute pa ON pa.attrelid = i.inhparent AND pa.attname = a.attname \
                   JOIN pg_attrdef pd ON pd.adrelid = pa.attrelid AND pd.adnum = pa.attnum \
                  WHERE i.inhrelid = a.attrelid ORDER BY i.inhseqno LIMIT 1), \
                {} \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_SCHEMA} \
         ORDER BY a.attrelid, a.attnum",
        options
    );
    let mut out: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in session.query_catalog(&sql, &[]).await? {
        out.entry(r.get(0)).or_default().push(Column {
            name: r.get(1),
            type_name: r.get(2),
            not_null: r.get(3),
            default: r.get(4),
            generated: match r.get::<_, String>(5).as_str() {
                "s" => Some("STORED"),
                "v" => Some("VIRTUAL"),
                _ => None,
            },
            collation: r.get(6),
            local: r.get(7),
            storage: r.get::<_, Option<String>>(8).and_then(|s| s.chars().next()),
            statistics: r.get(9),
            options: opt_text(&r, 10),
            compression: r.get(11),
            comment: r.get(12),
            acl: r.get(13),
            not_null_name: r.get(14),
            default_oid: r.get(15),
            default_after_sequence: r.get(16),
            parent_default: r.get(17),
            foreign_options: r.get(18),
        });
    }
    Ok(out)
}

/// The tables (plain, partitioned, foreign) and what belongs to each: its definition,
/// partition attachment, comments, later defaults and CHECK constraints, row security, grants
/// and data. The catalog rows are read here; each table's items are made by [`table`].
pub(super) async fn tables(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let mut columns = columns(session).await?;
    let checks = session
        .query_catalog(
            "SELECT k.conrelid, k.conname, pg_get_constraintdef(k.oid), k.convalidated, k.conislocal, \
                    obj_description(k.oid, 'pg_constraint') \
             FROM pg_constraint k WHERE k.contype = 'c' AND k.conrelid <> 0 ORDER BY k.conrelid, k.conname",
            &[],
        )
        .await?;
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, c.relpersistence::text, \
                array_to_string(c.reloptions, ', '), \
                (SELECT array_to_string(tc.reloptions, ', ') FROM pg_class tc WHERE tc.oid = c.reltoastrelid), \
                CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, \
                c.relispartition, CASE WHEN c.relispartition THEN pg_get_expr(c.relpartbound, c.oid) END, \
                (SELECT array_agg(i.inhparent ORDER BY i.inhseqno) FROM pg_inherits i WHERE i.inhrelid = c.oid), \
                c.relreplident::text, c.relrowsecurity, c.relforcerowsecurity, am.amname, \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('r', c.relowner)::text[], \
                (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8, \
                CASE WHEN c.reloftype <> 0 THEN format_type(c.reloftype, NULL) END, \
                (SELECT quote_ident(s.srvname) FROM pg_foreign_table f JOIN pg_foreign_server s ON s.oid = f.ftserver \
                  WHERE f.ftrelid = c.oid), \
                (SELECT {} FROM pg_foreign_table f WHERE f.ftrelid = c.oid), \
                (SELECT f.ftserver FROM pg_foreign_table f WHERE f.ftrelid = c.oid), NULLIF(c.reloftype, 0) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('r', 'p', 'f') AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        super::foreign::options_sql("f.ftoptions"),
        not_member("c.oid", "pg_class")
    );
    let rows = session.query_catalog(&sql, &[]).await?;
    // Names first: partitions and children name their parents.
    for r in &rows {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let kind = r.get::<_, String>(4).as_bytes()[0];
        b.relations
            .insert(oid, (b.q.qualified(&schema, &name), kind, usize::MAX));
    }
    for r in rows {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.relation_wanted(&schema, &name) {
            b.relations.remove(&oid);
            continue;
        }
        let cols = columns.remove(&oid).unwrap_or_default();
        let own_checks: Vec<&Row> = checks
            .iter()
            .filter(|k| k.get::<_, u32>(0) == oid)
            .collect();
        table(b, &r, &cols, &own_checks);
    }
    Ok(())
}

/// What a table's `CREATE` leaves to later items.
struct Later<'c> {
    /// Defaults set after the table: a serial's, and an inherited column's changed locally.
    defaults: Vec<&'c Column>,
    /// CHECK constraints not validated: added after the data (name, definition, comment).
    checks: Vec<(String, String, Option<String>)>,
    /// Comments on the CHECK constraints made with the table.
    check_comments: Vec<(String, String)>,
}

/// The items of one table (a row of the query in [`tables`]).
fn table(b: &mut Builder<'_>, r: &Row, cols: &[Column], checks: &[&Row]) {
    let (oid, schema, name, owner): (u32, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let qualified = b.q.qualified(&schema, &name);
    let kind = r.get::<_, String>(4).as_bytes()[0];
    let partition: bool = r.get(9);
    let parents: Vec<u32> = r.get::<_, Option<Vec<u32>>>(11).unwrap_or_default();
    let foreign = kind == b'f';
    let table_word = if foreign { "FOREIGN TABLE" } else { "TABLE" };
    let (defn, later) = create_statement(b, r, cols, checks, &qualified, table_word);
    let at = table_item(b, r, defn, &qualified, table_word, &parents);
    b.relations.get_mut(&oid).expect("inserted above").2 = at;
    if partition {
        let parent = parents.first().copied().unwrap_or(0);
        if let Some((parent_name, _, _)) = b.relations.get(&parent) {
            let mut attach = Item::new("TABLE ATTACH", &name, Section::PreData, P_ATTACH)
                .in_schema(&schema, Some(owner.clone()));
            attach.defn = format!(
                "ALTER TABLE ONLY {parent_name} ATTACH PARTITION {qualified} {};\n",
                r.get::<_, String>(10)
            );
            attach.deps = vec![Dep::Item(at), Dep::Object((PG_CLASS, parent))];
            b.push(attach);
        }
    }
    dependents(b, r, at, cols, later, &qualified, table_word);
    if kind == b'r' && b.filter.data_wanted(&schema, &name) {
        data_item(b, r, at, cols, &qualified);
    }
}

/// The table's `CREATE` statement and the column, replica identity and row security settings
/// made with it; what must come later is handed back.
fn create_statement<'c>(
    b: &Builder<'_>,
    r: &Row,
    cols: &'c [Column],
    checks: &[&Row],
    qualified: &str,
    table_word: &str,
) -> (String, Later<'c>) {
    let name: String = r.get(2);
    let partition: bool = r.get(9);
    let parents: Vec<u32> = r.get::<_, Option<Vec<u32>>>(11).unwrap_or_default();
    let typed: Option<String> = r.get(20);
    let mut lines = Vec::new();
    let mut later = Later {
        defaults: Vec::new(),
        checks: Vec::new(),
        check_comments: Vec::new(),
    };
    for c in cols {
        if !c.local && !partition {
            // A child inherits its parent's default when created: a different one, or
            // none where the parent has one, is set after.
            if c.default != c.parent_default {
                later.defaults.push(c);
            }
            continue;
        }
        if c.default_after_sequence && c.generated.is_none() {
            later.defaults.push(c);
        }
        // A typed table's columns come from its type: only what it adds is written.
        let mut line = match &typed {
            Some(_) => format!("    {}", b.q.ident(&c.name)),
            None => format!("    {} {}", b.q.ident(&c.name), c.type_name),
        };
        if let (Some(collation), None) = (&c.collation, &typed) {
            line.push_str(&format!(" COLLATE {collation}"));
        }
        match (&c.default, c.generated) {
            (Some(expr), Some(kind)) => {
                line.push_str(&format!(" GENERATED ALWAYS AS ({expr}) {kind}"))
            }
            (Some(expr), None) if !c.default_after_sequence => {
                line.push_str(&format!(" DEFAULT {expr}"))
            }
            _ => {}
        }
        if c.not_null {
            // PostgreSQL 18 names NOT NULL constraints; a partition's are named after its
            // parent's. Print a name that is not the default, so the copy carries it.
            match &c.not_null_name {
                Some(con) if *con != format!("{name}_{}_not_null", c.name) => {
                    line.push_str(&format!(" CONSTRAINT {} NOT NULL", b.q.ident(con)));
                }
                _ => line.push_str(" NOT NULL"),
            }
        }
        if typed.is_none() || line.trim() != b.q.ident(&c.name) {
            lines.push(line);
        }
    }
    for k in checks {
        let (con, def, valid, local): (String, String, bool, bool) =
            (k.get(1), k.get(2), k.get(3), k.get(4));
        if !local && !partition {
            continue;
        }
        if valid {
            lines.push(format!("    CONSTRAINT {} {def}", b.q.ident(&con)));
            if let Some(comment) = k.get::<_, Option<String>>(5) {
                later.check_comments.push((con, comment));
            }
        } else {
            later.checks.push((con, def, k.get::<_, Option<String>>(5)));
        }
    }
    let unlogged = if r.get::<_, String>(5) == "u" {
        "UNLOGGED "
    } else {
        ""
    };
    let mut defn = match (&typed, lines.is_empty()) {
        (Some(of), true) => format!("CREATE {unlogged}TABLE {qualified} OF {of}"),
        (Some(of), false) => format!(
            "CREATE {unlogged}TABLE {qualified} OF {of} (\n{}\n)",
            lines.join(",\n")
        ),
        (None, true) => format!("CREATE {unlogged}{table_word} {qualified} (\n)"),
        (None, false) => format!(
            "CREATE {unlogged}{table_word} {qualified} (\n{}\n)",
            lines.join(",\n")
        ),
    };
    if !partition && !parents.is_empty() {
        let names: Vec<String> = parents
            .iter()
            .filter_map(|p| b.relations.get(p).map(|r| r.0.clone()))
            .collect();
        defn.push_str(&format!("\nINHERITS ({})", names.join(", ")));
    }
    if let Some(key) = opt_text(r, 8) {
        defn.push_str(&format!("\nPARTITION BY {key}"));
    }
    if let Some(server) = opt_text(r, 21) {
        defn.push_str(&format!("\nSERVER {server}"));
        if let Some(options) = opt_text(r, 22) {
            defn.push_str(&format!("\n{}", options.trim_start()));
        }
    }
    let mut with = Vec::new();
    if let Some(options) = opt_text(r, 6) {
        with.push(options);
    }
    if let Some(options) = opt_text(r, 7) {
        with.extend(options.split(", ").map(|o| format!("toast.{o}")));
    }
    if !with.is_empty() {
        defn.push_str(&format!("\nWITH ({})", with.join(", ")));
    }
    defn.push_str(";\n");
    defn.push_str(&settings(b, r, cols, qualified, table_word));
    (defn, later)
}

/// The settings made after a table's `CREATE`: its columns' options, storage, compression and
/// statistics targets, its replica identity and forced row security.
fn settings(
    b: &Builder<'_>,
    r: &Row,
    cols: &[Column],
    qualified: &str,
    table_word: &str,
) -> String {
    let foreign = table_word == "FOREIGN TABLE";
    let mut defn = String::new();
    for c in cols {
        let col = format!(
            "ALTER {table_word} ONLY {qualified} ALTER COLUMN {}",
            b.q.ident(&c.name)
        );
        if let Some(options) = &c.foreign_options {
            defn.push_str(&format!("{col}{options};\n"));
        }
        if let Some(storage) = c.storage {
            let s = match storage {
                'p' => "PLAIN",
                'e' => "EXTERNAL",
                'm' => "MAIN",
                _ => "EXTENDED",
            };
            defn.push_str(&format!("{col} SET STORAGE {s};\n"));
        }
        if let Some(compression) = &c.compression {
            defn.push_str(&format!("{col} SET COMPRESSION {compression};\n"));
        }
        if let Some(n) = c.statistics {
            defn.push_str(&format!("{col} SET STATISTICS {n};\n"));
        }
        if let Some(options) = &c.options {
            defn.push_str(&format!("{col} SET ({options});\n"));
        }
    }
    // A foreign table has no replica identity to set (its `n` is not a choice).
    match r.get::<_, String>(12).as_str() {
        _ if foreign => {}
        "n" => defn.push_str(&format!(
            "ALTER TABLE ONLY {qualified} REPLICA IDENTITY NOTHING;\n"
        )),
        "f" => defn.push_str(&format!(
            "ALTER TABLE ONLY {qualified} REPLICA IDENTITY FULL;\n"
        )),
        _ => {}
    }
    if r.get::<_, bool>(14) {
        defn.push_str(&format!(
            "ALTER TABLE ONLY {qualified} FORCE ROW LEVEL SECURITY;\n"
        ));
    }
    defn
}

/// The table's own item (its definition, owner, access method, dependencies); its index.
fn table_item(
    b: &mut Builder<'_>,
    r: &Row,
    defn: String,
    qualified: &str,
    table_word: &str,
    parents: &[u32],
) -> usize {
    let (oid, schema, name, owner): (u32, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let kind = r.get::<_, String>(4).as_bytes()[0];
    let mut item = Item::new(table_word, &name, Section::PreData, P_TABLE)
        .of(PG_CLASS, oid)
        .in_schema(&schema, Some(owner));
    item.relkind = kind;
    item.tableam = if matches!(kind, b'p' | b'f') {
        None
    } else {
        r.get(15)
    };
    // A partitioned table's access method (17+: what its partitions get by default) has
    // no storage to make it with: set afterwards, as pg_restore does for archive 1.16.
    let partitioned_method = (kind == b'p')
        .then(|| r.get::<_, Option<String>>(15))
        .flatten();
    if let Some(server) = r.get::<_, Option<u32>>(23) {
        item.deps.push(Dep::Object((PG_FOREIGN_SERVER, server)));
    }
    if let Some(of) = r.get::<_, Option<u32>>(24) {
        item.deps.push(Dep::Object((PG_TYPE, of)));
    }
    item.defn = defn;
    if let Some(method) = partitioned_method {
        item.defn.push_str(&format!(
            "ALTER TABLE {qualified} SET ACCESS METHOD {};\n",
            b.q.ident(&method)
        ));
    }
    item.drop = Some(format!("DROP {table_word} {qualified};\n"));
    for p in parents {
        item.deps.push(Dep::Object((PG_CLASS, *p)));
    }
    b.push(item)
}

/// What follows a table's item: comments on it, its columns and CHECK constraints; defaults
/// set later; row security; CHECK constraints added after the data; grants.
fn dependents(
    b: &mut Builder<'_>,
    r: &Row,
    at: usize,
    cols: &[Column],
    later: Later<'_>,
    qualified: &str,
    table_word: &str,
) {
    let (oid, schema, name, owner): (u32, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let quoted = b.q.ident(&name);
    b.comment(
        at,
        &format!("{table_word} {qualified}"),
        &format!("{table_word} {quoted}"),
        r.get(16),
    );
    for c in cols {
        let column = b.q.ident(&c.name);
        b.comment(
            at,
            &format!("COLUMN {qualified}.{column}"),
            &format!("COLUMN {quoted}.{column}"),
            c.comment.clone(),
        );
    }
    for (con, comment) in later.check_comments {
        let con = b.q.ident(&con);
        b.comment(
            at,
            &format!("CONSTRAINT {con} ON {qualified}"),
            &format!("CONSTRAINT {con} ON {quoted}"),
            Some(comment),
        );
    }
    for c in later.defaults {
        let expr = c.default.as_deref().unwrap_or("NULL");
        b.column_default(at, &name, qualified, &c.name, expr, c.default_oid);
    }
    if r.get::<_, bool>(13) {
        let mut security = Item::new("ROW SECURITY", &name, Section::PostData, P_ROW_SECURITY)
            .of(0, oid)
            .in_schema(&schema, Some(owner.clone()));
        security.defn = format!("ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY;\n");
        security.deps.push(Dep::Item(at));
        b.push(security);
    }
    for (con, def, comment) in later.checks {
        let mut check = Item::new(
            "CHECK CONSTRAINT",
            format!("{name} {con}"),
            Section::PostData,
            P_FK,
        )
        .in_schema(&schema, Some(owner.clone()));
        let con = b.q.ident(&con);
        check.defn = format!("ALTER TABLE {qualified}\n    ADD CONSTRAINT {con} {def};\n");
        check.deps.push(Dep::Item(at));
        let check = b.push(check);
        b.comment(
            check,
            &format!("CONSTRAINT {con} ON {qualified}"),
            &format!("CONSTRAINT {con} ON {quoted}"),
            comment,
        );
    }
    let table_acl = b.acl(
        at,
        &format!("TABLE {qualified}"),
        &format!("TABLE {quoted}"),
        r.get(17),
        r.get(18),
    );
    column_grants(b, at, table_acl, qualified, &quoted, cols);
}

/// The table's data item: its COPY target (columns that are not generated) and size.
fn data_item(b: &mut Builder<'_>, r: &Row, at: usize, cols: &[Column], qualified: &str) {
    let (oid, schema, name, owner): (u32, String, String, String) =
        (r.get(0), r.get(1), r.get(2), r.get(3));
    let copy_columns: Vec<String> = cols
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| b.q.ident(&c.name))
        .collect();
    let columns: Vec<String> = cols
        .iter()
        .filter(|c| c.generated.is_none())
        .map(|c| c.name.clone())
        .collect();
    let copy_target = if copy_columns.is_empty() {
        qualified.to_string()
    } else {
        format!("{qualified} ({})", copy_columns.join(", "))
    };
    let mut data =
        Item::new("TABLE DATA", &name, Section::Data, P_TABLE_DATA).in_schema(&schema, Some(owner));
    data.catalog = 0;
    data.key = None;
    data.deps.push(Dep::Item(at));
    data.data = Some(TableData {
        oid,
        schema: schema.clone(),
        name: name.clone(),
        copy_target,
        columns,
        blocks: r.get::<_, i64>(19).max(0) as u64,
        copy_out: None,
    });
    b.push(data);
}

/// `ACL` entries for the columns of a table or view that have privileges of their own
/// (a column has none by default), tagged `COLUMN table.column` as pg_dump tags them, each
/// after the table's own grants (a column grant made by a role the table grant empowered).
pub(super) fn column_grants(
    b: &mut Builder<'_>,
    of: usize,
    table_acl: Option<usize>,
    qualified: &str,
    quoted: &str,
    columns: &[Column],
) {
    for c in columns {
        if let Some(acl) = &c.acl {
            let column = b.q.ident(&c.name);
            let target = format!("TABLE {qualified}");
            let owner = b.items[of].owner.clone();
            let statements =
                super::acl::grants(b.q, &target, Some(&column), owner.as_deref(), acl, &[]);
            let tag = format!("COLUMN {quoted}.{column}");
            if let (Some(at), Some(table_acl)) = (b.acl_item(of, &tag, statements), table_acl) {
                b.items[at].deps.push(Dep::Item(table_acl));
            }
        }
    }
}

/// The tablespaces of tables, materialized views and indexes (and the keys they back) that
/// are not in the database's default one: pg_restore sets `default_tablespace` before making
/// each, as for pg_dump's archives.
pub(super) async fn tablespaces(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query_catalog(
            "SELECT c.oid, t.spcname::text FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace \
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I')",
            &[],
        )
        .await?;
    let places: HashMap<u32, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    if places.is_empty() {
        return Ok(());
    }
    for at in 0..b.items.len() {
        let oid = match (b.items[at].key, b.items[at].desc.as_str()) {
            (Some((PG_CLASS, oid)), "TABLE" | "MATERIALIZED VIEW" | "INDEX") => oid,
            _ => continue,
        };
        if let Some(space) = places.get(&oid) {
            b.items[at].tablespace = Some(space.clone());
        }
    }
    for (index, &at) in &b.indexes {
        if let Some(space) = places.get(index) {
            b.items[at].tablespace = Some(space.clone());
        }
    }
    Ok(())
}
