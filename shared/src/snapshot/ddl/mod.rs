//! The schema as table-of-contents entries, rebuilt from the catalogs the way pg_dump does.
//!
//! Every query runs in the snapshot's transaction with an empty `search_path`, so the server's
//! own `pg_get_*def`, `format_type` and `pg_get_expr` print schema-qualified names that mean the
//! same thing on the target. Where the server has no helper (`CREATE TABLE`, sequences, types,
//! aggregates, policies, grants) the statement is assembled here from catalog columns, with every
//! identifier quoted by [`Keywords`] and every string by [`dump_literal`].
//!
//! Objects the dumping role cannot read (another's subscriptions) are not skipped silently:
//! [`unsupported`] names them and the snapshot refuses the database.
//!
//! One module per family of object kinds, as pg_dump has a reader and a writer per kind:
//! each reads its catalog and pushes [`Item`]s through the [`Builder`], which gives comments
//! and grants the separate `COMMENT` and `ACL` entries pg_dump writes for them.

mod acl;
mod blobs;
mod database;
mod deps;
mod foreign;
mod functions;
mod indexes;
mod initial;
mod labels;
mod operators;
mod publications;
mod rules;
mod schemas;
mod search;
mod sequences;
mod tables;
mod types;
mod views;

use std::collections::{BTreeMap, HashMap, HashSet};

use tokio_postgres::Row;

use super::SnapshotError;
use crate::{
    archive::Section,
    pattern::{any_object, any_schema},
    pg::{PgError, Session},
    sql::{Keywords, dump_literal},
    validate::SequencePosition,
};

/// SQL condition: namespace `n` is a user schema.
pub(super) const USER_SCHEMA: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// SQL condition: object `oid` of catalog `catalog` was not created by an extension.
fn not_member(oid: &str, catalog: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend member WHERE member.classid = '{catalog}'::regclass \
         AND member.objid = {oid} AND member.deptype = 'e')"
    )
}

/// SQL condition: object `oid` of catalog `catalog` is not an internal part of another object
/// (the constructors and casts a range type creates, for example).
fn not_internal(oid: &str, catalog: &str) -> String {
    format!(
        "{} AND NOT EXISTS (SELECT 1 FROM pg_depend part WHERE part.classid = '{catalog}'::regclass \
         AND part.objid = {oid} AND part.deptype = 'i')",
        not_member(oid, catalog)
    )
}

/// A catalog object: (catalog oid, object oid). Catalog oids are fixed in every PostgreSQL.
pub(super) type ObjKey = (u32, u32);
pub(super) const PG_CLASS: u32 = 1259;
pub(super) const PG_TYPE: u32 = 1247;
pub(super) const PG_PROC: u32 = 1255;
pub(super) const PG_NAMESPACE: u32 = 2615;
pub(super) const PG_EXTENSION: u32 = 3079;
const PG_CONSTRAINT: u32 = 2606;
const PG_ATTRDEF: u32 = 2604;
const PG_DEFAULT_ACL: u32 = 826;
const PG_COLLATION: u32 = 3456;
const PG_PUBLICATION: u32 = 6104;
const PG_PUBLICATION_REL: u32 = 6106;
const PG_PUBLICATION_NAMESPACE: u32 = 6237;
const PG_EVENT_TRIGGER: u32 = 3466;
const PG_TS_DICT: u32 = 3600;
const PG_TS_PARSER: u32 = 3601;
const PG_TS_TEMPLATE: u32 = 3764;
const PG_TS_CONFIG: u32 = 3602;
const PG_FOREIGN_DATA_WRAPPER: u32 = 2328;
const PG_FOREIGN_SERVER: u32 = 1417;
const PG_CAST: u32 = 2605;
const PG_CONVERSION: u32 = 2607;
const PG_OPERATOR: u32 = 2617;
const PG_OPCLASS: u32 = 2616;
const PG_LANGUAGE: u32 = 2612;
const PG_SUBSCRIPTION: u32 = 6100;
const PG_TRANSFORM: u32 = 3576;
const PG_AM: u32 = 2601;
const PG_OPFAMILY: u32 = 2753;
const PG_LARGEOBJECT: u32 = 2613;
const PG_TRIGGER: u32 = 2620;
const PG_REWRITE: u32 = 2618;
const PG_POLICY: u32 = 3256;
const PG_STATISTIC_EXT: u32 = 3381;

/// What an item depends on before it can be restored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Dep {
    /// The item that creates this catalog object (ignored when the object is not dumped).
    Object(ObjKey),
    /// Another item, by index.
    Item(usize),
}

/// One table's data, dumped with `COPY`.
#[derive(Debug, Clone)]
pub(super) struct TableData {
    /// The table's oid (the data entry's catalog id, as pg_dump writes it).
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `COPY schema.table (columns)` without the direction.
    pub copy_target: String,
    /// The columns COPY carries (all but generated ones), unquoted.
    pub columns: Vec<String>,
    pub blocks: u64,
    /// The COPY that dumps the rows, when not all of them: an extension configuration
    /// table's, with the condition the extension gave `pg_extension_config_dump`.
    pub copy_out: Option<String>,
}

/// One table-of-contents entry before dump ids are known.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub key: Option<ObjKey>,
    pub desc: String,
    pub tag: String,
    pub namespace: Option<String>,
    pub owner: Option<String>,
    pub defn: String,
    pub drop: Option<String>,
    pub section: Section,
    /// pg_dump's sort priority: lower restores earlier, dependencies permitting.
    pub priority: u16,
    pub deps: Vec<Dep>,
    pub catalog: u32,
    pub relkind: u8,
    pub tableam: Option<String>,
    /// The tablespace a table, materialized view or index is in (the database's default
    /// when none).
    pub tablespace: Option<String>,
    pub data: Option<TableData>,
    /// A `BLOBS` entry: the large objects whose bytes its data block carries.
    pub blobs: Option<Vec<u32>>,
    /// Not written: an object that exists on every target (a default-owned `public` schema),
    /// present so that its comment and grants have something to depend on.
    pub placeholder: bool,
}

impl Item {
    fn new(desc: &str, tag: impl Into<String>, section: Section, priority: u16) -> Item {
        Item {
            key: None,
            desc: desc.into(),
            tag: tag.into(),
            namespace: None,
            owner: None,
            defn: String::new(),
            drop: None,
            section,
            priority,
            deps: Vec::new(),
            catalog: 0,
            relkind: 0,
            tableam: None,
            tablespace: None,
            data: None,
            blobs: None,
            placeholder: false,
        }
    }

    fn of(mut self, catalog: u32, oid: u32) -> Item {
        self.key = Some((catalog, oid));
        self.catalog = catalog;
        self
    }

    fn in_schema(mut self, schema: &str, owner: Option<String>) -> Item {
        self.namespace = Some(schema.into());
        self.owner = owner;
        self
    }
}

// pg_dump's priorities (pg_dump_sort.c), spaced so the order reads.
const P_DATABASE: u16 = 0;
const P_SCHEMA: u16 = 1;
const P_COLLATION: u16 = 3;
const P_EXTENSION: u16 = 4;
const P_TYPE: u16 = 5;
const P_LANGUAGE: u16 = 7;
const P_FUNCTION: u16 = 8;
const P_AGGREGATE: u16 = 9;
const P_OPERATOR: u16 = 10;
const P_OPERATOR_CLASS: u16 = 10; // families, then their classes
const P_CONVERSION: u16 = 11;
const P_SEARCH: u16 = 12; // dictionaries, then configurations
const P_CAST: u16 = 14;
const P_FOREIGN: u16 = 15; // wrappers, servers, user mappings
const P_TABLE: u16 = 20;
const P_ATTACH: u16 = 21;
const P_OWNED_BY: u16 = 22;
const P_DEFAULT: u16 = 23;
const P_BLOB: u16 = 24;
pub(super) const P_TABLE_DATA: u16 = 30;
const P_SEQUENCE_SET: u16 = 31;
const P_BLOBS: u16 = 32;
const P_CONSTRAINT: u16 = 40;
const P_INDEX: u16 = 41;
const P_INDEX_ATTACH: u16 = 42;
const P_STATISTICS: u16 = 43;
const P_RULE: u16 = 44;
const P_TRIGGER: u16 = 45;
const P_FK: u16 = 46;
const P_POLICY: u16 = 47;
const P_ROW_SECURITY: u16 = 48;
const P_PUBLICATION: u16 = 50;
const P_PUBLICATION_MEMBER: u16 = 51;
const P_SUBSCRIPTION: u16 = 52;
const P_ACL: u16 = 60;
const P_DEFAULT_ACL: u16 = 61;
const P_REFRESH: u16 = 80;
const P_EVENT_TRIGGER: u16 = 90;

/// The server's keywords, to quote identifiers exactly as its `quote_ident` does (and pg_dump
/// writes them): only where they must be.
pub(super) async fn keywords(session: &Session) -> Result<Keywords, PgError> {
    let rows = session
        .query_catalog(
            "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'",
            &[],
        )
        .await?;
    Ok(Keywords::new(rows.iter().map(|r| r.get(0))))
}

/// What to dump. Every list holds pg_dump's patterns (see [`crate::pattern`]): `*` and `?`
/// wildcards, unquoted names folded to lower case, quoted ones as written.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these schemas (all when empty).
    pub schemas: Vec<String>,
    /// Only these tables, as `schema.table` or `table`.
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    /// Tables whose definition is dumped but not their rows.
    pub exclude_table_data: Vec<String>,
    pub schema_only: bool,
    pub data_only: bool,
}

impl Filter {
    fn schema_wanted(&self, schema: &str) -> bool {
        self.schemas.is_empty() || any_schema(&self.schemas, schema)
    }

    /// Whether a relation's definition is dumped.
    pub(super) fn relation_wanted(&self, schema: &str, name: &str) -> bool {
        self.schema_wanted(schema)
            && (self.tables.is_empty() || any_object(&self.tables, schema, name))
            && !any_object(&self.exclude_tables, schema, name)
    }

    /// Whether objects that are not relations (types, functions, schemas) are dumped.
    fn others_wanted(&self, schema: &str) -> bool {
        self.tables.is_empty() && self.schema_wanted(schema)
    }

    fn data_wanted(&self, schema: &str, name: &str) -> bool {
        !self.schema_only && !any_object(&self.exclude_table_data, schema, name)
    }

    pub fn is_filtered(&self) -> bool {
        !self.schemas.is_empty()
            || !self.tables.is_empty()
            || !self.exclude_tables.is_empty()
            || !self.exclude_table_data.is_empty()
            || self.schema_only
            || self.data_only
    }
}

/// Objects in the database that this role cannot dump, as `kind name: why` lines: only a
/// superuser can read a subscription's connection string (pg_dump leaves subscriptions out
/// with a warning; a backup that silently lacks them is refused here instead).
pub(super) async fn unsupported(session: &Session) -> Result<Vec<String>, PgError> {
    let sql = "SELECT 'subscription ' || quote_ident(s.subname) \
                      || ': only a superuser can read its connection (dump as a superuser)' \
               FROM pg_subscription s \
               WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) \
               ORDER BY 1";
    Ok(session
        .query_catalog(sql, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Everything the catalogs say, turned into items.
pub(super) struct Schema {
    pub items: Vec<Item>,
    /// Pre-data dependencies between catalog objects, from `pg_depend`.
    pub edges: Vec<(ObjKey, ObjKey)>,
}

struct Builder<'a> {
    q: &'a Keywords,
    /// The server's `server_version_num`: catalogs differ between 14 and 18.
    version: i32,
    filter: &'a Filter,
    items: Vec<Item>,
    /// Relations dumped, by oid: (qualified name, relkind, item index).
    relations: HashMap<u32, (String, u8, usize)>,
    /// Indexes (and the constraints they back), by index oid: item index.
    indexes: HashMap<u32, usize>,
    /// Schemas' `ACL` items, by schema name.
    schema_acls: HashMap<String, usize>,
    /// Shell types, with the functions that must come after them (a base type's support).
    shells: Vec<(usize, Vec<u32>)>,
    /// Where each sequence stands, by oid (read once for the archive and the manifest).
    positions: &'a BTreeMap<u32, SequencePosition>,
}

impl Builder<'_> {
    fn push(&mut self, item: Item) -> usize {
        self.items.push(item);
        self.items.len() - 1
    }

    /// The item that creates each catalog object, by key.
    fn keyed(&self) -> HashMap<ObjKey, usize> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(at, i)| i.key.map(|k| (k, at)))
            .collect()
    }

    /// A `DEFAULT` entry, after the relation item `of` creates (`qualified`, tagged by its
    /// unquoted `name`), setting `column`'s default to `expr`: a default set after the table
    /// (a serial's, an inherited column's changed locally) or a view column's. `attrdef` is the
    /// default's own catalog id, when the entry carries one. Schema and owner are the relation's.
    fn column_default(
        &mut self,
        of: usize,
        name: &str,
        qualified: &str,
        column: &str,
        expr: &str,
        attrdef: Option<u32>,
    ) {
        let mut item = Item::new(
            "DEFAULT",
            format!("{name} {column}"),
            Section::PreData,
            P_DEFAULT,
        );
        if let Some(oid) = attrdef {
            item = item.of(PG_ATTRDEF, oid);
        }
        item.namespace = self.items[of].namespace.clone();
        item.owner = self.items[of].owner.clone();
        item.defn = format!(
            "ALTER TABLE ONLY {qualified} ALTER COLUMN {} SET DEFAULT {expr};\n",
            self.q.ident(column)
        );
        item.deps.push(Dep::Item(of));
        self.push(item);
    }

    /// A `COMMENT` entry for the object item `of` creates, as pg_dump writes one: `target`
    /// names the object in SQL (`TABLE app.t`), `tag` as pg_dump tags the entry (the kind and
    /// the quoted name, unqualified: `TABLE t`). Schema and owner are the object's.
    fn comment(&mut self, of: usize, target: &str, tag: &str, comment: Option<String>) {
        let Some(comment) = comment else { return };
        let mut item = Item::new("COMMENT", tag, Section::None, self.items[of].priority);
        item.namespace = self.items[of].namespace.clone();
        item.owner = self.items[of].owner.clone();
        item.defn = format!("COMMENT ON {target} IS {};\n", dump_literal(&comment));
        item.deps.push(Dep::Item(of));
        self.push(item);
    }

    /// An `ACL` entry turning `default_acl` (aclitem text: what the object has when created)
    /// into `acl`, for the object item `of` creates; `target` and `tag` as for [`comment`].
    fn acl(
        &mut self,
        of: usize,
        target: &str,
        tag: &str,
        acl: Option<Vec<String>>,
        default_acl: Vec<String>,
    ) -> Option<usize> {
        let acl = acl?;
        let owner = self.items[of].owner.clone();
        let statements = acl::grants(self.q, target, None, owner.as_deref(), &acl, &default_acl);
        self.acl_item(of, tag, statements)
    }

    /// The `ACL` entry, if there are statements; after its schema's grants, which a grant
    /// made as another role may need (USAGE on the schema).
    fn acl_item(&mut self, of: usize, tag: &str, statements: String) -> Option<usize> {
        if statements.is_empty() {
            return None;
        }
        let mut item = Item::new("ACL", tag, Section::None, P_ACL);
        item.namespace = self.items[of].namespace.clone();
        item.owner = self.items[of].owner.clone();
        item.defn = statements;
        item.deps.push(Dep::Item(of));
        if let Some(&schema_acl) = item
            .namespace
            .as_ref()
            .and_then(|n| self.schema_acls.get(n))
        {
            item.deps.push(Dep::Item(schema_acl));
        }
        Some(self.push(item))
    }
}

fn opt_text(row: &Row, i: usize) -> Option<String> {
    row.get::<_, Option<String>>(i).filter(|s| !s.is_empty())
}

/// Reads every object the filter wants and builds its items.
pub(super) async fn read(
    session: &Session,
    q: &Keywords,
    filter: &Filter,
    positions: &BTreeMap<u32, SequencePosition>,
) -> Result<Schema, SnapshotError> {
    let version: i32 = session
        .query_catalog_one("SELECT current_setting('server_version_num')::int", &[])
        .await?
        .get(0);
    let mut b = Builder {
        q,
        version,
        filter,
        items: Vec::new(),
        relations: HashMap::new(),
        indexes: HashMap::new(),
        schema_acls: HashMap::new(),
        shells: Vec::new(),
        positions,
    };
    database::database(session, &mut b).await?;
    schemas::schemas(session, &mut b).await?;
    schemas::extensions(session, &mut b).await?;
    schemas::configuration(session, &mut b).await?;
    types::collations(session, &mut b).await?;
    types::types(session, &mut b).await?;
    functions::languages(session, &mut b).await?;
    functions::functions(session, &mut b).await?;
    types::shell_dependencies(&mut b);
    operators::operators(session, &mut b).await?;
    operators::access_methods(session, &mut b).await?;
    operators::operator_classes(session, &mut b).await?;
    operators::conversions(session, &mut b).await?;
    operators::casts(session, &mut b).await?;
    publications::transforms(session, &mut b).await?;
    search::text_search(session, &mut b).await?;
    foreign::foreign_data(session, &mut b).await?;
    sequences::sequences(session, &mut b).await?;
    tables::tables(session, &mut b).await?;
    views::views(session, &mut b).await?;
    indexes::indexes(session, &mut b).await?;
    indexes::foreign_keys(session, &mut b).await?;
    rules::triggers_rules_policies(session, &mut b).await?;
    indexes::statistics(session, &mut b).await?;
    publications::publications(session, &mut b).await?;
    publications::subscriptions(session, &mut b).await?;
    publications::event_triggers(session, &mut b).await?;
    blobs::large_objects(session, &mut b).await?;
    acl::default_privileges(session, &mut b).await?;
    initial::grants(session, &mut b).await?;
    labels::security_labels(session, &mut b).await?;
    deps::extension_dependencies(session, &mut b).await?;
    tables::tablespaces(session, &mut b).await?;
    let edges = deps::edges(session).await?;
    Ok(Schema {
        items: b.items,
        edges,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_patterns_match_schema_and_name() {
        let p = vec!["public.order*".to_string(), "audit".to_string()];
        assert!(any_object(&p, "public", "orders"));
        assert!(any_object(&p, "other", "audit"));
        assert!(!any_object(&p, "other", "orders"));
        assert!(any_object(&["*_log".into()], "s", "migration_log"));
        assert!(!any_object(&["*_log".into()], "s", "migration_logs"));
    }

    /// pg_dump folds an unquoted pattern to lower case (`-t Accounts` dumps `accounts`) and
    /// takes a quoted one as written (`-t '"Accounts"'` dumps `Accounts` only).
    #[test]
    fn filters_fold_case_unless_quoted_as_pg_dump() {
        let filter = Filter {
            schemas: vec!["Public".into()],
            tables: vec!["Accounts".into(), "\"Ledger\"".into()],
            ..Filter::default()
        };
        assert!(filter.relation_wanted("public", "accounts"));
        assert!(!filter.relation_wanted("public", "Accounts"));
        assert!(filter.relation_wanted("public", "Ledger"));
        assert!(!filter.relation_wanted("public", "ledger"));
        assert!(!filter.relation_wanted("Public", "accounts"));
    }
}
