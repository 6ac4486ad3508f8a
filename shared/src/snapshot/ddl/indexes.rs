//! Indexes, the constraints they back, foreign keys and extended statistics.

use super::*;
use tokio_postgres::types::Type;

/// A primary key or unique constraint definition with its index's storage parameters, where
/// the grammar puts them: after the columns (and `INCLUDE`), before `DEFERRABLE`.
pub(super) fn with_index_options(def: &str, options: &str) -> String {
    let tail = [" DEFERRABLE INITIALLY DEFERRED", " DEFERRABLE"]
        .into_iter()
        .find(|t| def.ends_with(t))
        .unwrap_or("");
    let head = &def[..def.len() - tail.len()];
    format!("{head} WITH ({options}){tail}")
}

pub(super) async fn indexes(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query_catalog(
            "SELECT i.indexrelid, i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid), i.indisclustered, \
                    i.indisreplident, (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid), \
                    obj_description(i.indexrelid, 'pg_class'), k.oid, k.conname, pg_get_constraintdef(k.oid), \
                    obj_description(k.oid, 'pg_constraint'), n.nspname, \
                    array_to_string(ic.reloptions, ', '), k.contype::text, \
                    (SELECT string_agg(format('ALTER INDEX %I.%I ALTER COLUMN %s SET STATISTICS %s;', \
                                              n.nspname, ic.relname, a.attnum, a.attstattarget), E'\n' ORDER BY a.attnum) \
                       FROM pg_attribute a WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0) \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = ic.relnamespace \
             LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
                  AND k.contype IN ('p', 'u', 'x') \
             WHERE (i.indisvalid OR ic.relkind = 'I') AND i.indisready \
             ORDER BY n.nspname, ic.relname",
            &[],
        )
        .await?;
    let mut by_index: HashMap<u32, usize> = HashMap::new();
    let mut attaches = Vec::new();
    for r in rows {
        let (index, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let schema: String = r.get(12);
        let table_tag = b.items[table_item].tag.clone();
        let owner = b.items[table_item].owner.clone();
        let qualified_index = b.q.qualified(&schema, &name);
        let constraint: Option<u32> = r.get(8);
        let mut item = if let Some(con_oid) = constraint {
            let con: String = r.get(9);
            let mut item = Item::new(
                "CONSTRAINT",
                format!("{table_tag} {con}"),
                Section::PostData,
                P_CONSTRAINT,
            )
            .of(PG_CONSTRAINT, con_oid);
            // pg_get_constraintdef leaves out the index's storage parameters (as pg_dump
            // does for exclusion constraints, whose definition it takes from it too).
            let mut def: String = r.get(10);
            if let (Some(options), Some("p" | "u")) =
                (opt_text(&r, 13), r.get::<_, Option<String>>(14).as_deref())
            {
                def = with_index_options(&def, &options);
            }
            item.defn = format!(
                "ALTER TABLE ONLY {table_name}\n    ADD CONSTRAINT {} {def};\n",
                b.q.ident(&con),
            );
            item.drop = Some(format!(
                "ALTER TABLE ONLY {table_name} DROP CONSTRAINT {};\n",
                b.q.ident(&con)
            ));
            item
        } else {
            let mut item =
                Item::new("INDEX", &name, Section::PostData, P_INDEX).of(PG_CLASS, index);
            item.defn = format!("{};\n", r.get::<_, String>(3));
            if let Some(statistics) = opt_text(&r, 15) {
                item.defn.push_str(&statistics);
                item.defn.push('\n');
            }
            item.drop = Some(format!("DROP INDEX {qualified_index};\n"));
            item
        };
        item.namespace = Some(schema.clone());
        item.owner = owner.clone();
        if r.get::<_, bool>(4) {
            item.defn.push_str(&format!(
                "ALTER TABLE {table_name} CLUSTER ON {};\n",
                b.q.ident(&name)
            ));
        }
        if r.get::<_, bool>(5) {
            item.defn.push_str(&format!(
                "ALTER TABLE ONLY {table_name} REPLICA IDENTITY USING INDEX {};\n",
                b.q.ident(&name)
            ));
        }
        item.deps.push(Dep::Item(table_item));
        let at = b.push(item);
        let table_quoted = b.q.ident(&table_tag);
        if let Some(con) = constraint.map(|_| b.q.ident(&r.get::<_, String>(9))) {
            b.comment(
                at,
                &format!("CONSTRAINT {con} ON {table_name}"),
                &format!("CONSTRAINT {con} ON {table_quoted}"),
                r.get(11),
            );
        }
        b.comment(
            at,
            &format!("INDEX {qualified_index}"),
            &format!("INDEX {}", b.q.ident(&name)),
            r.get(7),
        );
        by_index.insert(index, at);
        b.indexes.insert(index, at);
        if let Some(parent) = r.get::<_, Option<u32>>(6) {
            attaches.push((parent, index, schema, name, qualified_index, owner));
        }
    }
    for (parent, child, schema, name, qualified, owner) in attaches {
        let (Some(&parent_item), Some(&child_item)) = (by_index.get(&parent), by_index.get(&child))
        else {
            continue;
        };
        let parent_name: String = session
            .query_typed_one(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[(&parent, Type::OID)],
            )
            .await?
            .get(0);
        let mut attach = Item::new("INDEX ATTACH", &name, Section::PostData, P_INDEX_ATTACH)
            .in_schema(&schema, owner);
        attach.defn = format!("ALTER INDEX {parent_name} ATTACH PARTITION {qualified};\n");
        attach.deps = vec![Dep::Item(parent_item), Dep::Item(child_item)];
        b.push(attach);
    }
    Ok(())
}

pub(super) async fn foreign_keys(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query_catalog(
            "SELECT k.oid, k.conrelid, k.confrelid, k.conname, pg_get_constraintdef(k.oid), \
                    obj_description(k.oid, 'pg_constraint'), k.conindid \
             FROM pg_constraint k WHERE k.contype = 'f' AND k.conparentid = 0 ORDER BY k.conname",
            &[],
        )
        .await?;
    for r in rows {
        let (oid, table, referenced, name): (u32, u32, u32, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        let Some((table_name, kind, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let only = if kind == b'p' { "" } else { "ONLY " };
        let tag = format!("{} {name}", b.items[table_item].tag);
        let mut item =
            Item::new("FK CONSTRAINT", tag, Section::PostData, P_FK).of(PG_CONSTRAINT, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        item.defn = format!(
            "ALTER TABLE {only}{table_name}\n    ADD CONSTRAINT {} {};\n",
            b.q.ident(&name),
            r.get::<_, String>(4)
        );
        item.drop = Some(format!(
            "ALTER TABLE {only}{table_name} DROP CONSTRAINT {};\n",
            b.q.ident(&name)
        ));
        item.deps.push(Dep::Item(table_item));
        if let Some((_, _, referenced_item)) = b.relations.get(&referenced) {
            item.deps.push(Dep::Item(*referenced_item));
        }
        // The unique index or constraint it references must exist first.
        if let Some(&index) = b.indexes.get(&r.get::<_, u32>(6)) {
            item.deps.push(Dep::Item(index));
        }
        let table_quoted = b.q.ident(&b.items[table_item].tag);
        let at = b.push(item);
        let con = b.q.ident(&name);
        b.comment(
            at,
            &format!("CONSTRAINT {con} ON {table_name}"),
            &format!("CONSTRAINT {con} ON {table_quoted}"),
            r.get(5),
        );
    }
    Ok(())
}

pub(super) async fn statistics(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query_catalog(
            "SELECT s.oid, s.stxrelid, n.nspname, s.stxname, pg_get_userbyid(s.stxowner), \
                    pg_get_statisticsobjdef(s.oid), NULLIF(s.stxstattarget::int4, -1), \
                    obj_description(s.oid, 'pg_statistic_ext') \
             FROM pg_statistic_ext s JOIN pg_namespace n ON n.oid = s.stxnamespace ORDER BY 3, 4",
            &[],
        )
        .await?;
    for r in rows {
        let (oid, table, schema, name, owner): (u32, u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let Some((_, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let qualified = b.q.qualified(&schema, &name);
        let mut item = Item::new("STATISTICS", &name, Section::PostData, P_STATISTICS)
            .of(PG_STATISTIC_EXT, oid)
            .in_schema(&schema, Some(owner));
        item.defn = format!("{};\n", r.get::<_, String>(5));
        if let Some(target) = r.get::<_, Option<i32>>(6) {
            item.defn.push_str(&format!(
                "ALTER STATISTICS {qualified} SET STATISTICS {target};\n"
            ));
        }
        item.drop = Some(format!("DROP STATISTICS {qualified};\n"));
        item.deps.push(Dep::Item(table_item));
        let at = b.push(item);
        b.comment(
            at,
            &format!("STATISTICS {qualified}"),
            &format!("STATISTICS {}", b.q.ident(&name)),
            r.get(7),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_options_go_before_deferrable() {
        assert_eq!(
            with_index_options("PRIMARY KEY (id) INCLUDE (v)", "fillfactor=70"),
            "PRIMARY KEY (id) INCLUDE (v) WITH (fillfactor=70)"
        );
        assert_eq!(
            with_index_options("UNIQUE (f) DEFERRABLE INITIALLY DEFERRED", "fillfactor=80"),
            "UNIQUE (f) WITH (fillfactor=80) DEFERRABLE INITIALLY DEFERRED"
        );
        assert_eq!(
            with_index_options(
                "UNIQUE (\"a DEFERRABLE\") DEFERRABLE",
                "deduplicate_items=off"
            ),
            "UNIQUE (\"a DEFERRABLE\") WITH (deduplicate_items=off) DEFERRABLE"
        );
    }
}
