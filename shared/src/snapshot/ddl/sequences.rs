//! Sequences: definition, ownership by a column, position.

use super::*;

pub(super) async fn sequences(session: &Session, b: &mut Builder<'_>) -> Result<(), SnapshotError> {
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), format_type(s.seqtypid, NULL), \
                s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle, \
                c.relpersistence::text, \
                o.refobjid, o.deptype = 'i', \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('s', c.relowner)::text[], \
                o.nspname, o.relname, o.attname, o.attidentity, o.relpersistence \
         FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN LATERAL (SELECT d.refobjid, d.deptype::text, tn.nspname, tc.relname, a.attname, a.attidentity::text, \
                                   tc.relpersistence::text \
                  FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) o ON true \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    let rows: Vec<Row> = session
        .query_catalog(&sql, &[])
        .await?
        .into_iter()
        .filter(|r| {
            // A sequence owned by a table goes with the table (pg_dump's rule); others by name.
            match r.get::<_, Option<u32>>(12) {
                Some(_) => b.filter.relation_wanted(r.get(17), r.get(18)),
                None => b.filter.relation_wanted(r.get(1), r.get(2)),
            }
        })
        .collect();
    for r in rows {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let qualified = b.q.qualified(&schema, &name);
        let type_name: String = r.get(4);
        let (start, increment, max, min, cache): (i64, i64, i64, i64, i64) =
            (r.get(5), r.get(6), r.get(7), r.get(8), r.get(9));
        let cycle: bool = r.get(10);
        let options = format!(
            "    START WITH {start}\n    INCREMENT BY {increment}\n    MINVALUE {min}\n    MAXVALUE {max}\n    CACHE {cache}{}",
            if cycle { "\n    CYCLE" } else { "" }
        );
        let owning_table: Option<u32> = r.get(12);
        let identity = r.get::<_, Option<bool>>(13).unwrap_or(false);
        let owner_column = match owning_table {
            Some(table) => {
                let (table_schema, table_name, column): (String, String, String) =
                    (r.get(17), r.get(18), r.get(19));
                Some((
                    table,
                    b.q.qualified(&table_schema, &table_name),
                    b.q.ident(&column),
                ))
            }
            None => None,
        };
        let mut item = Item::new("SEQUENCE", &name, Section::PreData, P_TABLE)
            .of(PG_CLASS, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.relkind = b'S';
        if let (true, Some((table, table_name, column))) = (identity, &owner_column) {
            // Created by the table's column: `ADD GENERATED ... AS IDENTITY`, after the table.
            let always = r.get::<_, String>(20) == "a";
            // The sequence is made as its table is (unlogged with an unlogged table, 15+):
            // said only where the two differ, as pg_dump says it.
            let (mine, tables): (String, Option<String>) = (r.get(11), r.get(21));
            let persistence = match (mine.as_str(), tables.as_deref()) {
                ("u", Some(t)) if t != "u" => "    UNLOGGED\n",
                ("p", Some("u")) => "    LOGGED\n",
                _ => "",
            };
            item.defn = format!(
                "ALTER TABLE {table_name} ALTER COLUMN {column} ADD GENERATED {} AS IDENTITY (\n    SEQUENCE NAME {qualified}\n{persistence}{options}\n);\n",
                if always { "ALWAYS" } else { "BY DEFAULT" }
            );
            item.deps.push(Dep::Object((PG_CLASS, *table)));
        } else {
            let unlogged = if r.get::<_, String>(11) == "u" {
                "UNLOGGED "
            } else {
                ""
            };
            let as_type = if type_name == "bigint" {
                String::new()
            } else {
                format!("    AS {type_name}\n")
            };
            item.defn = format!("CREATE {unlogged}SEQUENCE {qualified}\n{as_type}{options};\n");
            item.drop = Some(format!("DROP SEQUENCE {qualified};\n"));
        }
        let at = b.push(item);
        let (target, tag) = (
            format!("SEQUENCE {qualified}"),
            format!("SEQUENCE {}", b.q.ident(&name)),
        );
        b.comment(at, &target, &tag, r.get(14));
        if !identity && let Some((table, table_name, column)) = owner_column {
            let mut owned = Item::new("SEQUENCE OWNED BY", &name, Section::PreData, P_OWNED_BY)
                .in_schema(&schema, Some(owner.clone()));
            owned.defn = format!("ALTER SEQUENCE {qualified} OWNED BY {table_name}.{column};\n");
            owned.deps = vec![Dep::Item(at), Dep::Object((PG_CLASS, table))];
            b.push(owned);
        }
        if !b.filter.schema_only && !b.positions.contains_key(&oid) {
            return Err(SnapshotError::Unsupported(vec![format!(
                "sequence {qualified}: this role may not read where it stands (SELECT)"
            )]));
        }
        if let Some(position) = b.positions.get(&oid).filter(|_| !b.filter.schema_only) {
            let (last_value, is_called) = (position.last_value, position.is_called);
            let mut set = Item::new("SEQUENCE SET", &name, Section::Data, P_SEQUENCE_SET)
                .in_schema(&schema, Some(owner.clone()));
            set.defn = format!(
                "SELECT pg_catalog.setval({}, {last_value}, {is_called});\n",
                dump_literal(&qualified),
            );
            set.deps.push(Dep::Item(at));
            b.push(set);
        }
        b.acl(at, &target, &tag, r.get(15), r.get(16));
    }
    Ok(())
}
