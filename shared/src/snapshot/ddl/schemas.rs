//! Schemas (the `public` schema as pg_dump 15+ writes it) and extensions.

use super::*;

/// The fixed oid of the `pg_database_owner` role (PostgreSQL 14+).
const PG_DATABASE_OWNER: u32 = 6171;

/// The comment every database's `public` schema is created with.
const PUBLIC_COMMENT: &str = "standard public schema";

pub(super) async fn schemas(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // An object's privileges are restored against what it has when created: for `public`,
    // what initdb gives it since 15 (owner USAGE and CREATE, PUBLIC USAGE; older servers gave
    // PUBLIC CREATE too, which a copy onto a newer server keeps only by a grant), as pg_dump
    // does. `public`'s default owner: pg_database_owner since 15, the bootstrap superuser
    // before (pg_dump writes the entry whenever the owner is not pg_database_owner).
    let sql = format!(
        "SELECT n.oid, n.nspname, pg_get_userbyid(n.nspowner), obj_description(n.oid, 'pg_namespace'), \
                n.nspacl::text[], \
                CASE WHEN n.nspname = 'public' \
                     THEN ARRAY[makeaclitem(n.nspowner, n.nspowner, 'USAGE', false)::text, \
                                makeaclitem(n.nspowner, n.nspowner, 'CREATE', false)::text, \
                                makeaclitem(0, n.nspowner, 'USAGE', false)::text] \
                     ELSE acldefault('n', n.nspowner)::text[] END, \
                n.nspowner = {PG_DATABASE_OWNER} \
         FROM pg_namespace n WHERE {USER_SCHEMA} AND {} ORDER BY 2",
        not_member("n.oid", "pg_namespace")
    );
    for r in session.query_catalog(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.others_wanted(&name) {
            continue;
        }
        let quoted = b.q.ident(&name);
        let public = name == "public";
        let mut item = Item::new("SCHEMA", &name, Section::PreData, P_SCHEMA).of(PG_NAMESPACE, oid);
        item.owner = Some(owner.clone());
        let mut comment: Option<String> = r.get(3);
        if public {
            // initdb creates it: only a changed owner, comment or grants are dumped. The
            // entry itself exists (pg_restore gives the schema its owner from it) only when
            // the owner is not the default.
            item.placeholder = r.get::<_, bool>(6);
            item.defn = "-- *not* creating schema, since initdb creates it\n".into();
            item.drop = Some("-- *not* dropping schema, since initdb creates it\n".into());
            comment = match comment {
                Some(c) if c == PUBLIC_COMMENT => None,
                Some(c) => Some(c),
                None => Some(String::new()), // the target's default comment goes
            };
        } else {
            item.defn = format!("CREATE SCHEMA {quoted};\n");
            item.drop = Some(format!("DROP SCHEMA {quoted};\n"));
        }
        let at = b.push(item);
        let target = format!("SCHEMA {quoted}");
        b.comment(at, &target, &target, comment);
        if let Some(acl) = b.acl(at, &target, &target, r.get(4), r.get(5)) {
            b.schema_acls.insert(name, acl);
        }
    }
    Ok(())
}

pub(super) async fn extensions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query_catalog(
            "SELECT e.oid, e.extname, n.nspname, obj_description(e.oid, 'pg_extension') \
             FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.oid >= 16384 ORDER BY 2",
            &[],
        )
        .await?;
    for r in rows {
        let (oid, name, schema): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() {
            continue; // pg_dump leaves extensions out of schema- and table-filtered dumps too
        }
        let quoted = b.q.ident(&name);
        let mut item =
            Item::new("EXTENSION", &name, Section::PreData, P_EXTENSION).of(PG_EXTENSION, oid);
        item.defn = format!(
            "CREATE EXTENSION IF NOT EXISTS {quoted} WITH SCHEMA {};\n",
            b.q.ident(&schema)
        );
        item.drop = Some(format!("DROP EXTENSION {quoted};\n"));
        let at = b.push(item);
        let target = format!("EXTENSION {quoted}");
        b.comment(at, &target, &target, r.get(3));
    }
    Ok(())
}

/// The rows of extensions' configuration tables (`pg_extension_config_dump`): the extension's
/// script creates the table, the dump carries what was added to it since (the rows its
/// condition selects, or all) and where its configuration sequences stand, as pg_dump does.
pub(super) async fn configuration(
    session: &Session,
    b: &mut Builder<'_>,
) -> Result<(), SnapshotError> {
    if b.filter.schema_only {
        return Ok(());
    }
    let rows = session
        .query_catalog(
            "SELECT e.oid, c.oid, n.nspname::text, c.relname::text, c.relkind::text, \
                    pg_get_userbyid(c.relowner), x.condition, c.relpages::bigint, \
                    ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid \
                          AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum) \
             FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(config, condition) \
             JOIN pg_class c ON c.oid = x.config JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE e.oid >= 16384 ORDER BY 3, 4",
            &[],
        )
        .await?;
    for r in rows {
        let (extension, schema, name, kind): (u32, String, String, String) =
            (r.get(0), r.get(2), r.get(3), r.get(4));
        // As pg_dump: all of them in a whole dump, those a -t or -n names in a filtered one
        // (whose extensions are not dumped), none that -T or --exclude-table-data names.
        if !b.filter.relation_wanted(&schema, &name) || !b.filter.data_wanted(&schema, &name) {
            continue;
        }
        let owner: String = r.get(5);
        let qualified = b.q.qualified(&schema, &name);
        if kind == "S" {
            let Some(position) = b.positions.get(&r.get::<_, u32>(1)) else {
                return Err(SnapshotError::Unsupported(vec![format!(
                    "sequence {qualified}: this role may not read where it stands (SELECT)"
                )]));
            };
            let (last_value, is_called) = (position.last_value, position.is_called);
            let mut set = Item::new("SEQUENCE SET", &name, Section::Data, P_SEQUENCE_SET)
                .in_schema(&schema, Some(owner));
            set.defn = format!(
                "SELECT pg_catalog.setval({}, {last_value}, {is_called});\n",
                dump_literal(&qualified),
            );
            set.deps.push(Dep::Object((PG_EXTENSION, extension)));
            b.push(set);
            continue;
        }
        let names: Vec<String> = r.get(8);
        let columns: Vec<String> = names.iter().map(|c| b.q.ident(c)).collect();
        let copy_target = if columns.is_empty() {
            qualified.clone()
        } else {
            format!("{qualified} ({})", columns.join(", "))
        };
        let mut data = Item::new("TABLE DATA", &name, Section::Data, P_TABLE_DATA)
            .in_schema(&schema, Some(owner));
        data.deps.push(Dep::Object((PG_EXTENSION, extension)));
        let copy_out = r
            .get::<_, Option<String>>(6)
            .filter(|c| !c.trim().is_empty())
            .map(|condition| super::super::condition_copy(&qualified, &columns, &condition));
        data.data = Some(TableData {
            oid: r.get(1),
            schema,
            name,
            copy_target,
            columns: names,
            blocks: r.get::<_, i64>(7).max(0) as u64,
            copy_out,
        });
        b.push(data);
    }
    Ok(())
}
