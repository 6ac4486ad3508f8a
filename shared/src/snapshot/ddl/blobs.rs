//! Large objects, as pg_dump writes them in archive 1.14: one `BLOB` entry per object (its
//! creation, owner, comment and grants), and one `BLOBS` entry whose data block carries every
//! object's bytes.

use super::*;

pub(super) async fn large_objects(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    // pg_dump leaves them out of dumps filtered by schema or table, and out of schema-only
    // dumps (a large object is data).
    if !b.filter.schemas.is_empty() || !b.filter.tables.is_empty() || b.filter.schema_only {
        return Ok(());
    }
    let rows = session
        .query_catalog(
            "SELECT m.oid, pg_get_userbyid(m.lomowner), m.lomacl::text[], acldefault('L', m.lomowner)::text[], \
                    obj_description(m.oid, 'pg_largeobject') \
             FROM pg_largeobject_metadata m ORDER BY 1",
            &[],
        )
        .await?;
    let mut objects = Vec::new();
    let mut items = Vec::new();
    for r in rows {
        let (oid, owner): (u32, String) = (r.get(0), r.get(1));
        let mut item =
            Item::new("BLOB", oid.to_string(), Section::PreData, P_BLOB).of(PG_LARGEOBJECT, oid);
        item.owner = Some(owner);
        item.defn = format!("SELECT pg_catalog.lo_create('{oid}');\n");
        item.drop = Some(format!("SELECT pg_catalog.lo_unlink('{oid}');\n"));
        let at = b.push(item);
        let target = format!("LARGE OBJECT {oid}");
        b.comment(at, &target, &target, r.get(4));
        b.acl(at, &target, &target, r.get(2), r.get(3));
        objects.push(oid);
        items.push(at);
    }
    if objects.is_empty() {
        return Ok(());
    }
    let mut data = Item::new("BLOBS", "BLOBS", Section::Data, P_BLOBS);
    data.owner = Some(String::new());
    data.deps = items.into_iter().map(Dep::Item).collect();
    data.blobs = Some(objects);
    b.push(data);
    Ok(())
}
