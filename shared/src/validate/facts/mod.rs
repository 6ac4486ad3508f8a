//! The schema as normalised facts, `kind object -> definition`: everything `pg_dump -s` would
//! show of a database and a restore could get wrong, plus the state that lives outside tables
//! (sequence positions, large objects). Definitions come from the server's own `pg_get_*def`
//! functions and catalog columns, and objects are named by `pg_identify_object` (names that
//! are not translated and do not contain oids), so that two servers that agree on an object
//! print it alike, whatever their versions.
//!
//! These queries are validate's own: it judges snapshot and restore, so it shares no code
//! with them. One module per family; each fact's kind is one of [`KINDS`].

mod comments;
mod objects;
mod privileges;
mod relations;

use std::collections::BTreeMap;

use crate::pg::{PgError, Session};

/// SQL condition: namespace `n` is a user schema.
const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// SQL condition: the object with oid `oid` of catalog `catalog` is not an extension member
/// (created by `CREATE EXTENSION`, which a dump carries as that one statement).
fn not_extension_member(oid: &str, catalog: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend ext WHERE ext.classid = '{catalog}'::regclass \
         AND ext.objid = {oid} AND ext.deptype = 'e')"
    )
}

/// What a fact is about, which decides whether a comparison looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Definitions: always compared.
    Schema,
    /// State outside tables (sequence positions, large objects): always compared.
    Data,
    /// Who owns what: compared when asked (`--owners`), since restores into Neon give
    /// everything to the restoring role by default.
    Owners,
    /// Grants and default privileges: compared when asked (`--privileges`).
    Privileges,
    /// The database's own settings, comment, connection limit and grants: compared when asked
    /// (`--database`), since only a restore that creates the database (`pg_restore -C`)
    /// carries them.
    Database,
}

/// Every kind of fact, longest first where one kind starts another, with its category and
/// the manifest format that first recorded it (older manifests are compared on what they
/// hold).
pub const KINDS: &[(&str, Category, u32)] = &[
    ("materialized view", Category::Schema, 1),
    ("table options", Category::Schema, 2),
    ("table", Category::Schema, 1),
    ("column settings", Category::Schema, 2),
    ("column", Category::Schema, 1),
    ("constraint", Category::Schema, 1),
    ("index settings", Category::Schema, 2),
    ("index", Category::Schema, 1),
    ("sequence state", Category::Data, 2),
    ("sequence options", Category::Schema, 2),
    ("sequence", Category::Schema, 1),
    ("view", Category::Schema, 1),
    ("function", Category::Schema, 1),
    ("procedure", Category::Schema, 1),
    ("aggregate definition", Category::Schema, 2),
    ("aggregate", Category::Schema, 1),
    ("trigger state", Category::Schema, 2),
    ("trigger", Category::Schema, 1),
    ("policy", Category::Schema, 1),
    ("rule", Category::Schema, 2),
    ("statistics", Category::Schema, 2),
    ("type", Category::Schema, 2),
    ("collation", Category::Schema, 2),
    ("extension dependency", Category::Schema, 3),
    ("extension", Category::Schema, 2),
    ("operator class", Category::Schema, 2),
    ("operator family", Category::Schema, 2),
    ("operator", Category::Schema, 2),
    ("cast", Category::Schema, 2),
    ("conversion", Category::Schema, 2),
    ("language", Category::Schema, 2),
    ("transform", Category::Schema, 2),
    ("access method", Category::Schema, 2),
    ("text search configuration", Category::Schema, 2),
    ("text search dictionary", Category::Schema, 2),
    ("text search parser", Category::Schema, 2),
    ("text search template", Category::Schema, 2),
    ("foreign data wrapper", Category::Schema, 2),
    ("foreign server", Category::Schema, 2),
    ("foreign table", Category::Schema, 2),
    ("user mapping", Category::Schema, 2),
    ("event trigger", Category::Schema, 2),
    ("publication table", Category::Schema, 2),
    ("publication schema", Category::Schema, 2),
    ("publication", Category::Schema, 2),
    ("subscription", Category::Schema, 3),
    ("schema", Category::Schema, 2),
    ("large objects", Category::Data, 2),
    ("comment", Category::Schema, 2),
    ("security label", Category::Schema, 2),
    ("owner", Category::Owners, 2),
    ("database role setting", Category::Database, 2),
    ("database setting", Category::Database, 2),
    ("database options", Category::Database, 2),
    ("default acl", Category::Privileges, 2),
    ("changed acl", Category::Privileges, 3),
    ("acl", Category::Privileges, 2),
];

/// A fact key's kind (`sequence state` of `sequence state app.s`) and its entry in [`KINDS`].
pub fn kind_of(key: &str) -> Option<(&'static str, Category, u32)> {
    KINDS
        .iter()
        .find(|(kind, _, _)| {
            key.strip_prefix(kind)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        })
        .copied()
}

/// Reads every fact of the database `session` is connected to.
pub(super) async fn facts(session: &Session) -> Result<BTreeMap<String, String>, PgError> {
    let version: i32 = session
        .query_catalog_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    let queries = relations::queries()
        .into_iter()
        .chain(objects::queries(version))
        .chain(privileges::queries())
        .chain(comments::queries())
        .chain(database_queries());
    let mut facts = BTreeMap::new();
    for sql in queries {
        for row in session.query_catalog(&sql, &[]).await? {
            let key: String = row.get(0);
            let value: Option<String> = row.get(1);
            facts.insert(key, value.unwrap_or_default());
        }
    }
    // Named as 16+ names them: 14 and 15 print "transform for t on language l".
    let facts = facts
        .into_iter()
        .map(|(key, value)| match key.find("transform for ") {
            Some(at) if key[at..].contains(" on language ") => (
                format!(
                    "{}{}",
                    &key[..at],
                    key[at..].replacen(" on language ", " language ", 1)
                ),
                value,
            ),
            _ => (key, value),
        });
    let mut facts: BTreeMap<String, String> = facts.collect();
    facts.extend(sequence_states(&sequence_positions(session, false).await?));
    facts.extend(objects::large_objects(session).await?);
    facts.extend(objects::subscriptions(session, version).await?);
    Ok(facts)
}

/// The database's settings (`ALTER DATABASE ... SET`, `ALTER ROLE ... IN DATABASE ...
/// SET`), comment, connection limit and grants (against the default, owner-neutral).
fn database_queries() -> Vec<String> {
    let this = "(SELECT oid FROM pg_database WHERE datname = current_database())";
    vec![
        // A custom setting's value (`app.token`, a dotted name) may be a secret: compared by
        // its digest, so that it reaches neither a manifest nor a report.
        format!(
            "SELECT CASE WHEN s.setrole = 0 THEN 'database setting ' \
                         ELSE 'database role setting ' || quote_ident(pg_get_userbyid(s.setrole)) || ' ' END \
                    || split_part(c, '=', 1), \
                    CASE WHEN split_part(c, '=', 1) LIKE '%.%' \
                         THEN 'sha256:' || encode(sha256(convert_to(substr(c, length(split_part(c, '=', 1)) + 2), 'UTF8')), 'hex') \
                         ELSE substr(c, length(split_part(c, '=', 1)) + 2) END \
             FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE s.setdatabase = {this}"
        ),
        format!(
            "SELECT 'database options', concat_ws(' ', 'connection-limit=' || d.datconnlimit, \
                    'comment=' || quote_literal(shobj_description(d.oid, 'pg_database')), \
                    'acl=' || (SELECT string_agg(CASE e.grantee WHEN d.datdba THEN 'owner' WHEN 0 THEN 'PUBLIC' \
                                                 ELSE quote_ident(pg_get_userbyid(e.grantee)) END \
                                            || ':' || e.privilege_type || CASE WHEN e.is_grantable THEN '*' ELSE '' END, \
                                            ',' ORDER BY 1) \
                               FROM aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) e)) \
             FROM pg_database d WHERE d.oid = {this}"
        ),
    ]
}

/// Where one sequence stands: its name (quoted and qualified by the server), `last_value`
/// and `is_called`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencePosition {
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// Every sequence's position, by oid, read from the sequence itself (extensions'
/// configuration sequences too, whose positions a dump carries); with `readable_only`, of
/// those this role may read (a snapshot of some tables reads those it needs, and one that
/// needs a sequence it may not read fails naming it). Validate reads them all. Sequences are not
/// transactional: this is where they stand now, whatever snapshot the session reads. A
/// snapshot reads them once, here, for both its archive and its manifest, so that the two
/// agree on a database being written.
pub async fn sequence_positions(
    session: &Session,
    readable_only: bool,
) -> Result<BTreeMap<u32, SequencePosition>, PgError> {
    let readable = if readable_only {
        // Only ever asked of sequences (it errors on other relations, in whatever order the
        // planner evaluates conditions).
        "CASE WHEN c.relkind = 'S' THEN has_sequence_privilege(c.oid, 'SELECT') END"
    } else {
        "true"
    };
    let sequences: BTreeMap<u32, String> = session
        .query_catalog(
            &format!(
                "SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind = 'S' \
                   AND (({USER_SCHEMA} AND {}) OR c.oid IN (SELECT unnest(e.extconfig) FROM pg_extension e)) \
                   AND {readable} ORDER BY 2",
                not_extension_member("c.oid", "pg_class")
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let list: Vec<(&u32, &String)> = sequences.iter().collect();
    let mut out = BTreeMap::new();
    for chunk in list.chunks(200) {
        // The names were quoted by the server (format %I); each row says which sequence by
        // its oid, so no name is written as a literal.
        let sql = chunk
            .iter()
            .map(|(oid, name)| format!("SELECT {oid}::oid, last_value, is_called FROM {name}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for r in session.query_catalog(&sql, &[]).await? {
            let oid: u32 = r.get(0);
            out.insert(
                oid,
                SequencePosition {
                    name: sequences[&oid].clone(),
                    last_value: r.get(1),
                    is_called: r.get(2),
                },
            );
        }
    }
    Ok(out)
}

/// The `sequence state` facts of these positions.
pub fn sequence_states(positions: &BTreeMap<u32, SequencePosition>) -> BTreeMap<String, String> {
    positions
        .values()
        .map(|p| {
            (
                format!("sequence state {}", p.name),
                format!("last_value {} is_called {}", p.last_value, p.is_called),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_apart_by_their_longest_name() {
        assert_eq!(kind_of("sequence state app.s").unwrap().0, "sequence state");
        assert_eq!(kind_of("sequence app.s").unwrap().0, "sequence");
        assert_eq!(
            kind_of("materialized view app.v").unwrap().0,
            "materialized view"
        );
        assert_eq!(kind_of("default acl x").unwrap().1, Category::Privileges);
        assert_eq!(kind_of("acl table app.t").unwrap().1, Category::Privileges);
        assert_eq!(
            kind_of("changed acl function pg_catalog.now()").unwrap().0,
            "changed acl"
        );
        assert_eq!(kind_of("owner table app.t").unwrap().1, Category::Owners);
        assert_eq!(kind_of("tablespace x"), None);
        // A fact that names no object (the database's own options) is of its kind too.
        assert_eq!(kind_of("database options").unwrap().1, Category::Database);
    }
}
