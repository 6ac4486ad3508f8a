//! The schema as table-of-contents entries, rebuilt from the catalogs the way pg_dump does.
//!
//! Every query runs in the snapshot's transaction with an empty `search_path`, so the server's
//! own `pg_get_*def`, `format_type` and `pg_get_expr` print schema-qualified names that mean the
//! same thing on the target. Where the server has no helper (`CREATE TABLE`, sequences, types,
//! aggregates, policies, grants) the statement is assembled here from catalog columns, with every
//! identifier quoted by [`Quoter`] and every string by [`literal`].
//!
//! Objects this module cannot rebuild yet (base types, operators, casts, foreign tables, ...)
//! are not skipped silently: [`unsupported`] names them and the snapshot refuses the database.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Row;

use super::SnapshotError;
use crate::{
    archive::{Section, glob, matches_table},
    pg::{PgError, Session, literal},
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
    pub schema: String,
    pub name: String,
    /// `COPY schema.table (columns)` without the direction.
    pub copy_target: String,
    /// The columns COPY carries (all but generated ones), unquoted.
    pub columns: Vec<String>,
    pub blocks: u64,
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
    pub data: Option<TableData>,
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
            data: None,
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
const P_SCHEMA: u16 = 1;
const P_EXTENSION: u16 = 4;
const P_TYPE: u16 = 5;
const P_FUNCTION: u16 = 8;
const P_AGGREGATE: u16 = 9;
const P_TABLE: u16 = 20;
const P_ATTACH: u16 = 21;
const P_OWNED_BY: u16 = 22;
pub(super) const P_TABLE_DATA: u16 = 30;
const P_SEQUENCE_SET: u16 = 31;
const P_CONSTRAINT: u16 = 40;
const P_INDEX: u16 = 41;
const P_INDEX_ATTACH: u16 = 42;
const P_STATISTICS: u16 = 43;
const P_RULE: u16 = 44;
const P_TRIGGER: u16 = 45;
const P_FK: u16 = 46;
const P_POLICY: u16 = 47;
const P_ACL: u16 = 60;
const P_REFRESH: u16 = 80;

/// Quotes identifiers exactly as the server's `quote_ident` does, keywords included.
pub(super) struct Quoter {
    keywords: HashSet<String>,
}

impl Quoter {
    pub async fn load(session: &Session) -> Result<Quoter, PgError> {
        let rows = session
            .query(
                "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'",
                &[],
            )
            .await?;
        Ok(Quoter {
            keywords: rows.iter().map(|r| r.get(0)).collect(),
        })
    }

    pub fn ident(&self, name: &str) -> String {
        let plain = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if plain && !self.keywords.contains(name) {
            name.to_string()
        } else {
            format!("\"{}\"", name.replace('"', "\"\""))
        }
    }

    pub fn qualified(&self, schema: &str, name: &str) -> String {
        format!("{}.{}", self.ident(schema), self.ident(name))
    }
}

/// What to dump.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only these schemas (all when empty).
    pub schemas: Vec<String>,
    /// Only these tables, as `schema.table` or `table`, `*` matching any run of characters.
    pub tables: Vec<String>,
    pub exclude_tables: Vec<String>,
    /// Tables whose definition is dumped but not their rows.
    pub exclude_table_data: Vec<String>,
    pub schema_only: bool,
    pub data_only: bool,
}

impl Filter {
    fn schema_wanted(&self, schema: &str) -> bool {
        self.schemas.is_empty() || self.schemas.iter().any(|p| glob(p, schema))
    }

    /// Whether a relation's definition is dumped.
    pub(super) fn relation_wanted(&self, schema: &str, name: &str) -> bool {
        self.schema_wanted(schema)
            && (self.tables.is_empty() || matches_table(&self.tables, schema, name))
            && !matches_table(&self.exclude_tables, schema, name)
    }

    /// Whether objects that are not relations (types, functions, schemas) are dumped.
    fn others_wanted(&self, schema: &str) -> bool {
        self.tables.is_empty() && self.schema_wanted(schema)
    }

    fn data_wanted(&self, schema: &str, name: &str) -> bool {
        !self.schema_only && !matches_table(&self.exclude_table_data, schema, name)
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

/// Objects in the database that this version cannot dump, as `kind name` lines.
pub(super) async fn unsupported(session: &Session) -> Result<Vec<String>, PgError> {
    let sql = format!(
        "SELECT 'base type ' || format('%I.%I', n.nspname, t.typname) FROM pg_type t \
           JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE t.typtype = 'b' AND NOT EXISTS (SELECT 1 FROM pg_type a WHERE a.typarray = t.oid) \
            AND {USER_SCHEMA} AND {t} \
         UNION ALL SELECT 'range type with a canonical function ' || format('%I.%I', n.nspname, t.typname) \
           FROM pg_range r JOIN pg_type t ON t.oid = r.rngtypid JOIN pg_namespace n ON n.oid = t.typnamespace \
          WHERE r.rngcanonical <> 0 AND {USER_SCHEMA} AND {t} \
         UNION ALL SELECT 'operator ' || format('%I.%s', n.nspname, o.oprname) FROM pg_operator o \
           JOIN pg_namespace n ON n.oid = o.oprnamespace WHERE {USER_SCHEMA} AND {o} \
         UNION ALL SELECT 'operator class ' || format('%I.%I', n.nspname, c.opcname) FROM pg_opclass c \
           JOIN pg_namespace n ON n.oid = c.opcnamespace WHERE {USER_SCHEMA} AND {opc} \
         UNION ALL SELECT 'cast ' || format_type(c.castsource, NULL) || ' AS ' || format_type(c.casttarget, NULL) \
           FROM pg_cast c WHERE c.oid >= 16384 AND {cast} \
         UNION ALL SELECT 'collation ' || format('%I.%I', n.nspname, c.collname) FROM pg_collation c \
           JOIN pg_namespace n ON n.oid = c.collnamespace WHERE {USER_SCHEMA} AND {coll} \
         UNION ALL SELECT 'conversion ' || format('%I.%I', n.nspname, c.conname) FROM pg_conversion c \
           JOIN pg_namespace n ON n.oid = c.connamespace WHERE {USER_SCHEMA} AND {conv} \
         UNION ALL SELECT 'foreign table ' || format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'f' AND {USER_SCHEMA} AND {rel} \
         UNION ALL SELECT 'typed table ' || format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.reloftype <> 0 AND c.relkind IN ('r', 'p') \
            AND {USER_SCHEMA} AND {rel} \
         UNION ALL SELECT 'foreign data wrapper ' || quote_ident(w.fdwname) FROM pg_foreign_data_wrapper w \
          WHERE {fdw} \
         UNION ALL SELECT 'foreign server ' || quote_ident(s.srvname) FROM pg_foreign_server s WHERE {srv} \
         UNION ALL SELECT 'text search configuration ' || format('%I.%I', n.nspname, c.cfgname) FROM pg_ts_config c \
           JOIN pg_namespace n ON n.oid = c.cfgnamespace WHERE {USER_SCHEMA} AND {cfg} \
         UNION ALL SELECT 'text search dictionary ' || format('%I.%I', n.nspname, d.dictname) FROM pg_ts_dict d \
           JOIN pg_namespace n ON n.oid = d.dictnamespace WHERE {USER_SCHEMA} AND {dict} \
         UNION ALL SELECT 'publication ' || quote_ident(p.pubname) FROM pg_publication p \
         UNION ALL SELECT 'event trigger ' || quote_ident(e.evtname) FROM pg_event_trigger e WHERE {evt} \
         UNION ALL SELECT 'procedural language ' || quote_ident(l.lanname) FROM pg_language l \
          WHERE l.oid >= 16384 AND {lan} \
         UNION ALL SELECT 'default privileges of ' || pg_get_userbyid(d.defaclrole) FROM pg_default_acl d \
         UNION ALL SELECT 'large objects (' || count(*) || ')' FROM pg_largeobject_metadata HAVING count(*) > 0 \
         ORDER BY 1",
        t = not_member("t.oid", "pg_type"),
        o = not_internal("o.oid", "pg_operator"),
        opc = not_member("c.oid", "pg_opclass"),
        cast = not_internal("c.oid", "pg_cast"),
        coll = not_member("c.oid", "pg_collation"),
        conv = not_member("c.oid", "pg_conversion"),
        rel = not_member("c.oid", "pg_class"),
        fdw = not_member("w.oid", "pg_foreign_data_wrapper"),
        srv = not_member("s.oid", "pg_foreign_server"),
        cfg = not_member("c.oid", "pg_ts_config"),
        dict = not_member("d.oid", "pg_ts_dict"),
        evt = not_member("e.oid", "pg_event_trigger"),
        lan = not_member("l.oid", "pg_language"),
    );
    Ok(session
        .query(&sql, &[])
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
    q: &'a Quoter,
    filter: &'a Filter,
    items: Vec<Item>,
    /// Relations dumped, by oid: (qualified name, relkind, item index).
    relations: HashMap<u32, (String, u8, usize)>,
    /// Indexes (and the constraints they back), by index oid: item index.
    indexes: HashMap<u32, usize>,
}

impl Builder<'_> {
    fn push(&mut self, item: Item) -> usize {
        self.items.push(item);
        self.items.len() - 1
    }

    /// A `COMMENT ON` statement, when there is a comment.
    fn comment(&self, what: &str, comment: Option<String>) -> String {
        comment.map_or(String::new(), |c| {
            format!("\n\nCOMMENT ON {what} IS {};\n", literal(&c))
        })
    }

    /// An `ACL` entry restoring `acl` (aclitem text) against the defaults of `default_acl`.
    #[allow(clippy::too_many_arguments)]
    fn acl(
        &mut self,
        target: &str,
        tag: &str,
        schema: Option<&str>,
        owner: &str,
        acl: Option<Vec<String>>,
        default_acl: Vec<String>,
        of: usize,
    ) {
        let Some(acl) = acl else { return };
        let statements = grants(self.q, target, None, &acl, &default_acl);
        self.acl_item(statements, tag, schema, owner, of);
    }

    fn acl_item(
        &mut self,
        statements: String,
        tag: &str,
        schema: Option<&str>,
        owner: &str,
        of: usize,
    ) {
        if statements.is_empty() {
            return;
        }
        let mut item = Item::new("ACL", tag, Section::None, P_ACL);
        item.namespace = schema.map(str::to_string);
        item.owner = Some(owner.to_string());
        item.defn = statements;
        item.deps.push(Dep::Item(of));
        self.push(item);
    }
}

/// One aclitem's text form, `grantee=privileges/grantor`, split: grantee (`""` for PUBLIC)
/// and the privilege letters (a `*` after a letter means with grant option).
fn parse_aclitem(item: &str) -> Option<(String, String)> {
    let (grantee, rest) = if let Some(quoted) = item.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if quoted[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                name.push(c);
            }
        }
        (name, quoted[end?..].strip_prefix('=')?)
    } else {
        let (g, rest) = item.split_once('=')?;
        (g.to_string(), rest)
    };
    let privileges = rest.split_once('/').map_or(rest, |(p, _)| p);
    Some((grantee, privileges.to_string()))
}

fn privilege_name(letter: char) -> Option<&'static str> {
    Some(match letter {
        'r' => "SELECT",
        'w' => "UPDATE",
        'a' => "INSERT",
        'd' => "DELETE",
        'D' => "TRUNCATE",
        'x' => "REFERENCES",
        't' => "TRIGGER",
        'X' => "EXECUTE",
        'U' => "USAGE",
        'C' => "CREATE",
        'c' => "CONNECT",
        'T' => "TEMPORARY",
        'm' => "MAINTAIN",
        's' => "SET",
        'A' => "ALTER SYSTEM",
        _ => return None,
    })
}

/// GRANT and REVOKE statements that turn the default privileges into `acl`, grantee by
/// grantee in the order the catalog holds them.
fn grants(
    q: &Quoter,
    target: &str,
    column: Option<&str>,
    acl: &[String],
    default_acl: &[String],
) -> String {
    let parse = |items: &[String]| -> Vec<(String, String)> {
        items.iter().filter_map(|i| parse_aclitem(i)).collect()
    };
    let (want, default) = (parse(acl), parse(default_acl));
    let who = |g: &str| {
        if g.is_empty() {
            "PUBLIC".to_string()
        } else {
            q.ident(g)
        }
    };
    let mut out = String::new();
    for (grantee, privileges) in &default {
        let wanted = want.iter().find(|(g, _)| g == grantee).map(|(_, p)| p);
        if wanted != Some(privileges) {
            out.push_str(&format!("REVOKE ALL ON {target} FROM {};\n", who(grantee)));
        }
    }
    for (grantee, privileges) in &want {
        if default.iter().any(|(g, p)| g == grantee && p == privileges) {
            continue;
        }
        let (mut plain, mut with_option) = (Vec::new(), Vec::new());
        let letters: Vec<char> = privileges.chars().collect();
        for (i, &letter) in letters.iter().enumerate() {
            let Some(name) = privilege_name(letter) else {
                continue;
            };
            let name = match column {
                Some(column) => format!("{name}({column})"),
                None => name.to_string(),
            };
            if letters.get(i + 1) == Some(&'*') {
                with_option.push(name);
            } else {
                plain.push(name);
            }
        }
        if !plain.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {};\n",
                plain.join(","),
                who(grantee)
            ));
        }
        if !with_option.is_empty() {
            out.push_str(&format!(
                "GRANT {} ON {target} TO {} WITH GRANT OPTION;\n",
                with_option.join(","),
                who(grantee)
            ));
        }
    }
    out
}

/// A primary key or unique constraint definition with its index's storage parameters, where
/// the grammar puts them: after the columns (and `INCLUDE`), before `DEFERRABLE`.
fn with_index_options(def: &str, options: &str) -> String {
    let tail = [" DEFERRABLE INITIALLY DEFERRED", " DEFERRABLE"]
        .into_iter()
        .find(|t| def.ends_with(t))
        .unwrap_or("");
    let head = &def[..def.len() - tail.len()];
    format!("{head} WITH ({options}){tail}")
}

fn opt_text(row: &Row, i: usize) -> Option<String> {
    row.get::<_, Option<String>>(i).filter(|s| !s.is_empty())
}

/// Reads every object the filter wants and builds its items.
pub(super) async fn read(
    session: &Session,
    q: &Quoter,
    filter: &Filter,
) -> Result<Schema, SnapshotError> {
    let mut b = Builder {
        q,
        filter,
        items: Vec::new(),
        relations: HashMap::new(),
        indexes: HashMap::new(),
    };
    schemas(session, &mut b).await?;
    extensions(session, &mut b).await?;
    types(session, &mut b).await?;
    functions(session, &mut b).await?;
    sequences(session, &mut b).await?;
    tables(session, &mut b).await?;
    views(session, &mut b).await?;
    indexes(session, &mut b).await?;
    foreign_keys(session, &mut b).await?;
    triggers_rules_policies(session, &mut b).await?;
    statistics(session, &mut b).await?;
    let edges = edges(session).await?;
    Ok(Schema {
        items: b.items,
        edges,
    })
}

async fn schemas(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT n.oid, n.nspname, pg_get_userbyid(n.nspowner), obj_description(n.oid, 'pg_namespace'), \
                n.nspacl::text[], acldefault('n', n.nspowner)::text[] \
         FROM pg_namespace n WHERE {USER_SCHEMA} AND n.nspname <> 'public' AND {} ORDER BY 2",
        not_member("n.oid", "pg_namespace")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, name, owner): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        if !b.filter.others_wanted(&name) {
            continue;
        }
        let quoted = b.q.ident(&name);
        let mut item = Item::new("SCHEMA", &name, Section::PreData, P_SCHEMA).of(PG_NAMESPACE, oid);
        item.owner = Some(owner.clone());
        item.defn = format!("CREATE SCHEMA {quoted};\n");
        item.defn
            .push_str(&b.comment(&format!("SCHEMA {quoted}"), r.get(3)));
        item.drop = Some(format!("DROP SCHEMA {quoted};\n"));
        let at = b.push(item);
        b.acl(
            &format!("SCHEMA {quoted}"),
            &format!("SCHEMA {name}"),
            None,
            &owner,
            r.get(4),
            r.get(5),
            at,
        );
    }
    Ok(())
}

async fn extensions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query(
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
        item.defn
            .push_str(&b.comment(&format!("EXTENSION {quoted}"), r.get(3)));
        item.drop = Some(format!("DROP EXTENSION {quoted};\n"));
        b.push(item);
    }
    Ok(())
}

async fn types(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT t.oid, n.nspname, t.typname, pg_get_userbyid(t.typowner), t.typtype::text, \
                obj_description(t.oid, 'pg_type'), \
                (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) \
                   FROM pg_enum e WHERE e.enumtypid = t.oid), \
                CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, \
                t.typnotnull, t.typdefault, \
                CASE WHEN t.typtype = 'd' AND t.typcollation <> 0 \
                      AND t.typcollation <> (SELECT bt.typcollation FROM pg_type bt WHERE bt.oid = t.typbasetype) \
                     THEN (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                           JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation) END, \
                (SELECT string_agg(format(E'\\n    CONSTRAINT %I %s', k.conname, pg_get_constraintdef(k.oid)), '' ORDER BY k.conname) \
                   FROM pg_constraint k WHERE k.contypid = t.oid AND k.contype = 'c'), \
                (SELECT string_agg(format(E'\\n\\t%I %s', a.attname, format_type(a.atttypid, a.atttypmod)) \
                        || CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation \
                                THEN (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co \
                                      JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation) \
                                ELSE '' END, ',' ORDER BY a.attnum) \
                   FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid \
                  WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped), \
                (SELECT concat_ws(E',\\n    ', 'subtype = ' || format_type(r.rngsubtype, NULL), \
                        'multirange_type_name = ' || format('%I.%I', mn.nspname, mt.typname), \
                        CASE WHEN NOT oc.opcdefault THEN 'subtype_opclass = ' || format('%I.%I', ocn.nspname, oc.opcname) END, \
                        CASE WHEN r.rngcollation <> 0 AND r.rngcollation <> st.typcollation \
                             THEN 'collation = ' || (SELECT format('%I.%I', cn.nspname, co.collname) FROM pg_collation co \
                                  JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = r.rngcollation) END, \
                        CASE WHEN r.rngsubdiff <> 0 THEN 'subtype_diff = ' || r.rngsubdiff::regproc::text END) \
                   FROM pg_range r JOIN pg_type st ON st.oid = r.rngsubtype \
                   LEFT JOIN pg_type mt ON mt.oid = r.rngmultitypid LEFT JOIN pg_namespace mn ON mn.oid = mt.typnamespace \
                   JOIN pg_opclass oc ON oc.oid = r.rngsubopc JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace \
                  WHERE r.rngtypid = t.oid), \
                t.typacl::text[], acldefault('T', t.typowner)::text[] \
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
         WHERE t.typtype IN ('e', 'd', 'r', 'c') AND {USER_SCHEMA} AND {} \
           AND (t.typtype <> 'c' OR (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c') \
         ORDER BY 2, 3",
        not_member("t.oid", "pg_type")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let kind: String = r.get(4);
        let qualified = b.q.qualified(&schema, &name);
        let (desc, mut defn) = match kind.as_str() {
            "e" => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS ENUM (\n    {}\n);\n",
                    opt_text(&r, 6).unwrap_or_default().replace(", ", ",\n    ")
                ),
            ),
            "d" => {
                let mut d = format!("CREATE DOMAIN {qualified} AS {}", r.get::<_, String>(7));
                if let Some(collation) = opt_text(&r, 10) {
                    d.push_str(&format!(" COLLATE {collation}"));
                }
                if let Some(default) = opt_text(&r, 9) {
                    d.push_str(&format!(" DEFAULT {default}"));
                }
                if r.get::<_, bool>(8) {
                    d.push_str(" NOT NULL");
                }
                d.push_str(&opt_text(&r, 11).unwrap_or_default());
                d.push_str(";\n");
                ("DOMAIN", d)
            }
            "r" => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS RANGE (\n    {}\n);\n",
                    opt_text(&r, 13).unwrap_or_default()
                ),
            ),
            _ => (
                "TYPE",
                format!(
                    "CREATE TYPE {qualified} AS ({}\n);\n",
                    opt_text(&r, 12).unwrap_or_default()
                ),
            ),
        };
        let target = format!(
            "{} {qualified}",
            if desc == "DOMAIN" { "DOMAIN" } else { "TYPE" }
        );
        defn.push_str(&b.comment(&target, r.get(5)));
        let mut item = Item::new(desc, &name, Section::PreData, P_TYPE)
            .of(PG_TYPE, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.defn = defn;
        item.drop = Some(format!("DROP {target};\n"));
        let at = b.push(item);
        b.acl(
            &format!("TYPE {qualified}"),
            &format!("TYPE {name}"),
            Some(&schema),
            &owner,
            r.get(14),
            r.get(15),
            at,
        );
    }
    Ok(())
}

async fn functions(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT p.oid, n.nspname, p.proname, pg_get_userbyid(p.proowner), p.prokind::text, \
                pg_get_function_identity_arguments(p.oid), \
                CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END, \
                obj_description(p.oid, 'pg_proc'), p.proacl::text[], acldefault('f', p.proowner)::text[], \
                pg_get_function_arguments(p.oid), \
                a.aggtransfn::regproc::text, format_type(a.aggtranstype, NULL), \
                NULLIF(a.aggfinalfn, 0)::regproc::text, NULLIF(a.aggcombinefn, 0)::regproc::text, \
                a.agginitval, NULLIF(a.aggsortop, 0)::regoperator::text, p.proparallel::text, \
                a.aggfinalextra, a.aggtransspace, NULLIF(a.aggserialfn, 0)::regproc::text, \
                NULLIF(a.aggdeserialfn, 0)::regproc::text, a.aggkind::text \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3, 6",
        not_internal("p.oid", "pg_proc")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.others_wanted(&schema) {
            continue;
        }
        let kind: String = r.get(4);
        let identity: String = r.get(5);
        let qualified = b.q.qualified(&schema, &name);
        let (desc, keyword, priority) = match kind.as_str() {
            "p" => ("PROCEDURE", "PROCEDURE", P_FUNCTION),
            "a" => ("AGGREGATE", "AGGREGATE", P_AGGREGATE),
            _ => ("FUNCTION", "FUNCTION", P_FUNCTION),
        };
        let signature = format!("{qualified}({identity})");
        let mut defn = if kind == "a" {
            aggregate(&r, &qualified)
        } else {
            let mut d: String = r.get(6);
            if !d.ends_with('\n') {
                d.push('\n');
            }
            d.push_str(";\n");
            d
        };
        defn.push_str(&b.comment(&format!("{keyword} {signature}"), r.get(7)));
        let tag = format!("{}({identity})", b.q.ident(&name));
        let mut item = Item::new(desc, &tag, Section::PreData, priority)
            .of(PG_PROC, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.defn = defn;
        item.drop = Some(format!("DROP {keyword} {signature};\n"));
        let at = b.push(item);
        b.acl(
            &format!("{keyword} {signature}"),
            &format!("{keyword} {tag}"),
            Some(&schema),
            &owner,
            r.get(8),
            r.get(9),
            at,
        );
    }
    Ok(())
}

/// `CREATE AGGREGATE` from `pg_aggregate` (the server has no helper for it).
fn aggregate(r: &Row, qualified: &str) -> String {
    let mut parts = vec![
        format!("SFUNC = {}", r.get::<_, String>(11)),
        format!("STYPE = {}", r.get::<_, String>(12)),
    ];
    let space: i32 = r.get(19);
    if space != 0 {
        parts.push(format!("SSPACE = {space}"));
    }
    if let Some(init) = opt_text(r, 15) {
        parts.push(format!("INITCOND = {}", literal(&init)));
    }
    if let Some(f) = opt_text(r, 13) {
        parts.push(format!("FINALFUNC = {f}"));
        if r.get::<_, bool>(18) {
            parts.push("FINALFUNC_EXTRA".into());
        }
    }
    if let Some(f) = opt_text(r, 14) {
        parts.push(format!("COMBINEFUNC = {f}"));
    }
    if let Some(f) = opt_text(r, 20) {
        parts.push(format!("SERIALFUNC = {f}"));
    }
    if let Some(f) = opt_text(r, 21) {
        parts.push(format!("DESERIALFUNC = {f}"));
    }
    if let Some(op) = opt_text(r, 16) {
        // regoperator prints `schema.op(left,right)`: SORTOP wants the operator alone.
        let op = op.split('(').next().unwrap_or(&op).to_string();
        parts.push(format!("SORTOP = OPERATOR({op})"));
    }
    match r.get::<_, String>(17).as_str() {
        "s" => parts.push("PARALLEL = safe".into()),
        "r" => parts.push("PARALLEL = restricted".into()),
        _ => {}
    }
    if r.get::<_, String>(22) == "h" {
        parts.push("HYPOTHETICAL".into());
    }
    format!(
        "CREATE AGGREGATE {qualified}({}) (\n    {}\n);\n",
        r.get::<_, String>(10),
        parts.join(",\n    ")
    )
}

async fn sequences(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), format_type(s.seqtypid, NULL), \
                s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle, \
                c.relpersistence::text, pg_sequence_last_value(c.oid), \
                o.refobjid, o.deptype = 'i', \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('s', c.relowner)::text[], \
                o.nspname, o.relname, o.attname, o.attidentity \
         FROM pg_class c JOIN pg_sequence s ON s.seqrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN LATERAL (SELECT d.refobjid, d.deptype::text, tn.nspname, tc.relname, a.attname, a.attidentity::text \
                  FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid \
                  JOIN pg_namespace tn ON tn.oid = tc.relnamespace \
                  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid \
                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1) o ON true \
         WHERE {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        // A sequence owned by a table goes with the table (pg_dump's rule); others by name.
        let owning: Option<(String, String)> =
            r.get::<_, Option<u32>>(13).map(|_| (r.get(18), r.get(19)));
        let wanted = match &owning {
            Some((table_schema, table)) => b.filter.relation_wanted(table_schema, table),
            None => b.filter.relation_wanted(&schema, &name),
        };
        if !wanted {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let type_name: String = r.get(4);
        let (start, increment, max, min, cache): (i64, i64, i64, i64, i64) =
            (r.get(5), r.get(6), r.get(7), r.get(8), r.get(9));
        let cycle: bool = r.get(10);
        let options = format!(
            "    START WITH {start}\n    INCREMENT BY {increment}\n    MINVALUE {min}\n    MAXVALUE {max}\n    CACHE {cache}{}",
            if cycle { "\n    CYCLE" } else { "" }
        );
        let owning_table: Option<u32> = r.get(13);
        let identity = r.get::<_, Option<bool>>(14).unwrap_or(false);
        let owner_column = match owning_table {
            Some(table) => {
                let (table_schema, table_name, column): (String, String, String) =
                    (r.get(18), r.get(19), r.get(20));
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
            let always = r.get::<_, String>(21) == "a";
            item.defn = format!(
                "ALTER TABLE {table_name} ALTER COLUMN {column} ADD GENERATED {} AS IDENTITY (\n    SEQUENCE NAME {qualified}\n{options}\n);\n",
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
        item.defn
            .push_str(&b.comment(&format!("SEQUENCE {qualified}"), r.get(15)));
        let at = b.push(item);
        if !identity && let Some((table, table_name, column)) = owner_column {
            let mut owned = Item::new("SEQUENCE OWNED BY", &name, Section::PreData, P_OWNED_BY)
                .in_schema(&schema, Some(owner.clone()));
            owned.defn = format!("ALTER SEQUENCE {qualified} OWNED BY {table_name}.{column};\n");
            owned.deps = vec![Dep::Item(at), Dep::Object((PG_CLASS, table))];
            b.push(owned);
        }
        if !b.filter.schema_only {
            let last: Option<i64> = r.get(12);
            let mut set = Item::new("SEQUENCE SET", &name, Section::Data, P_SEQUENCE_SET)
                .in_schema(&schema, Some(owner.clone()));
            set.defn = format!(
                "SELECT pg_catalog.setval({}, {}, {});\n",
                literal(&qualified),
                last.unwrap_or(start),
                last.is_some()
            );
            set.deps.push(Dep::Item(at));
            b.push(set);
        }
        b.acl(
            &format!("SEQUENCE {qualified}"),
            &format!("SEQUENCE {name}"),
            Some(&schema),
            &owner,
            r.get(16),
            r.get(17),
            at,
        );
    }
    Ok(())
}

/// One column as `tables` reads it.
struct Column {
    name: String,
    type_name: String,
    not_null: bool,
    default: Option<String>,
    generated: bool,
    collation: Option<String>,
    local: bool,
    storage: Option<char>,
    statistics: Option<i32>,
    options: Option<String>,
    compression: Option<String>,
    comment: Option<String>,
    acl: Option<Vec<String>>,
    /// PostgreSQL 18+: the name of the column's NOT NULL constraint.
    not_null_name: Option<String>,
}

async fn columns(session: &Session) -> Result<HashMap<u32, Vec<Column>>, PgError> {
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
                   AND k.conkey[1] = a.attnum LIMIT 1) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm') AND {USER_SCHEMA} \
         ORDER BY a.attrelid, a.attnum"
    );
    let mut out: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in session.query(&sql, &[]).await? {
        out.entry(r.get(0)).or_default().push(Column {
            name: r.get(1),
            type_name: r.get(2),
            not_null: r.get(3),
            default: r.get(4),
            generated: r.get::<_, String>(5) == "s",
            collation: r.get(6),
            local: r.get(7),
            storage: r.get::<_, Option<String>>(8).and_then(|s| s.chars().next()),
            statistics: r.get(9),
            options: opt_text(&r, 10),
            compression: r.get(11),
            comment: r.get(12),
            acl: r.get(13),
            not_null_name: r.get(14),
        });
    }
    Ok(out)
}

async fn tables(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let mut columns = columns(session).await?;
    let checks = session
        .query(
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
                (pg_relation_size(c.oid) / current_setting('block_size')::int8)::int8 \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('r', 'p') AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    let rows = session.query(&sql, &[]).await?;
    // Names first: partitions and children name their parents.
    for r in &rows {
        let (oid, schema, name): (u32, String, String) = (r.get(0), r.get(1), r.get(2));
        let kind = r.get::<_, String>(4).as_bytes()[0];
        b.relations
            .insert(oid, (b.q.qualified(&schema, &name), kind, usize::MAX));
    }
    for r in rows {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.relation_wanted(&schema, &name) {
            b.relations.remove(&oid);
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let kind = r.get::<_, String>(4).as_bytes()[0];
        let partition: bool = r.get(9);
        let parents: Vec<u32> = r.get::<_, Option<Vec<u32>>>(11).unwrap_or_default();
        let cols = columns.remove(&oid).unwrap_or_default();
        let mut lines = Vec::new();
        for c in &cols {
            if !c.local && !partition {
                continue;
            }
            let mut line = format!("    {} {}", b.q.ident(&c.name), c.type_name);
            if let Some(collation) = &c.collation {
                line.push_str(&format!(" COLLATE {collation}"));
            }
            match (&c.default, c.generated) {
                (Some(expr), true) => {
                    line.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"))
                }
                (Some(expr), false) => line.push_str(&format!(" DEFAULT {expr}")),
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
            lines.push(line);
        }
        let mut later_checks = Vec::new();
        for k in checks.iter().filter(|k| k.get::<_, u32>(0) == oid) {
            let (con, def, valid, local): (String, String, bool, bool) =
                (k.get(1), k.get(2), k.get(3), k.get(4));
            if !local && !partition {
                continue;
            }
            if valid {
                lines.push(format!("    CONSTRAINT {} {def}", b.q.ident(&con)));
            } else {
                later_checks.push((con, def, k.get::<_, Option<String>>(5)));
            }
        }
        let unlogged = if r.get::<_, String>(5) == "u" {
            "UNLOGGED "
        } else {
            ""
        };
        let mut defn = format!(
            "CREATE {unlogged}TABLE {qualified} (\n{}\n)",
            lines.join(",\n")
        );
        if lines.is_empty() {
            defn = format!("CREATE {unlogged}TABLE {qualified} (\n)");
        }
        if !partition && !parents.is_empty() {
            let names: Vec<String> = parents
                .iter()
                .filter_map(|p| b.relations.get(p).map(|r| r.0.clone()))
                .collect();
            defn.push_str(&format!("\nINHERITS ({})", names.join(", ")));
        }
        if let Some(key) = opt_text(&r, 8) {
            defn.push_str(&format!("\nPARTITION BY {key}"));
        }
        let mut with = Vec::new();
        if let Some(options) = opt_text(&r, 6) {
            with.push(options);
        }
        if let Some(options) = opt_text(&r, 7) {
            with.extend(options.split(", ").map(|o| format!("toast.{o}")));
        }
        if !with.is_empty() {
            defn.push_str(&format!("\nWITH ({})", with.join(", ")));
        }
        defn.push_str(";\n");
        for c in &cols {
            let col = format!(
                "ALTER TABLE ONLY {qualified} ALTER COLUMN {}",
                b.q.ident(&c.name)
            );
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
        match r.get::<_, String>(12).as_str() {
            "n" => defn.push_str(&format!(
                "ALTER TABLE ONLY {qualified} REPLICA IDENTITY NOTHING;\n"
            )),
            "f" => defn.push_str(&format!(
                "ALTER TABLE ONLY {qualified} REPLICA IDENTITY FULL;\n"
            )),
            _ => {}
        }
        if r.get::<_, bool>(13) {
            defn.push_str(&format!(
                "ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY;\n"
            ));
        }
        if r.get::<_, bool>(14) {
            defn.push_str(&format!(
                "ALTER TABLE ONLY {qualified} FORCE ROW LEVEL SECURITY;\n"
            ));
        }
        defn.push_str(&b.comment(&format!("TABLE {qualified}"), r.get(16)));
        for c in &cols {
            defn.push_str(&b.comment(
                &format!("COLUMN {qualified}.{}", b.q.ident(&c.name)),
                c.comment.clone(),
            ));
        }
        let mut item = Item::new("TABLE", &name, Section::PreData, P_TABLE)
            .of(PG_CLASS, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.relkind = kind;
        item.tableam = if kind == b'p' { None } else { r.get(15) };
        item.defn = defn;
        item.drop = Some(format!("DROP TABLE {qualified};\n"));
        for p in &parents {
            item.deps.push(Dep::Object((PG_CLASS, *p)));
        }
        let at = b.push(item);
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
        {
            for (con, def, comment) in later_checks {
                let mut check = Item::new(
                    "CHECK CONSTRAINT",
                    format!("{name} {con}"),
                    Section::PostData,
                    P_FK,
                )
                .in_schema(&schema, Some(owner.clone()));
                check.defn = format!(
                    "ALTER TABLE {qualified}\n    ADD CONSTRAINT {} {def};\n",
                    b.q.ident(&con)
                );
                check.defn.push_str(&b.comment(
                    &format!("CONSTRAINT {} ON {qualified}", b.q.ident(&con)),
                    comment,
                ));
                check.deps.push(Dep::Item(at));
                b.push(check);
            }
            b.acl(
                &format!("TABLE {qualified}"),
                &format!("TABLE {name}"),
                Some(&schema),
                &owner,
                r.get(17),
                r.get(18),
                at,
            );
            for c in &cols {
                if let Some(acl) = &c.acl {
                    let column = b.q.ident(&c.name);
                    let statements =
                        grants(b.q, &format!("TABLE {qualified}"), Some(&column), acl, &[]);
                    b.acl_item(
                        statements,
                        &format!("COLUMN {name}.{}", c.name),
                        Some(&schema),
                        &owner,
                        at,
                    );
                }
            }
        }
        if kind == b'r' && b.filter.data_wanted(&schema, &name) {
            let copy_columns: Vec<String> = cols
                .iter()
                .filter(|c| !c.generated)
                .map(|c| b.q.ident(&c.name))
                .collect();
            let columns: Vec<String> = cols
                .iter()
                .filter(|c| !c.generated)
                .map(|c| c.name.clone())
                .collect();
            let copy_target = if copy_columns.is_empty() {
                qualified.clone()
            } else {
                format!("{qualified} ({})", copy_columns.join(", "))
            };
            let mut data = Item::new("TABLE DATA", &name, Section::Data, P_TABLE_DATA)
                .in_schema(&schema, Some(owner.clone()));
            data.catalog = 0;
            data.key = None;
            data.deps.push(Dep::Item(at));
            data.data = Some(TableData {
                schema: schema.clone(),
                name: name.clone(),
                copy_target,
                columns,
                blocks: r.get::<_, i64>(19).max(0) as u64,
            });
            b.push(data);
        }
    }
    Ok(())
}

async fn views(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let mut columns = columns(session).await?;
    let sql = format!(
        "SELECT c.oid, n.nspname, c.relname, pg_get_userbyid(c.relowner), c.relkind::text, \
                array_to_string(c.reloptions, ', '), pg_get_viewdef(c.oid), c.relispopulated, am.amname, \
                obj_description(c.oid, 'pg_class'), c.relacl::text[], acldefault('r', c.relowner)::text[] \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('v', 'm') AND {USER_SCHEMA} AND {} ORDER BY 2, 3",
        not_member("c.oid", "pg_class")
    );
    for r in session.query(&sql, &[]).await? {
        let (oid, schema, name, owner): (u32, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if !b.filter.relation_wanted(&schema, &name) {
            continue;
        }
        let qualified = b.q.qualified(&schema, &name);
        let materialized = r.get::<_, String>(4) == "m";
        let body = r.get::<_, String>(6);
        let body = body.trim_end().trim_end_matches(';');
        let with = opt_text(&r, 5).map_or(String::new(), |o| format!(" WITH ({o})"));
        let (desc, mut defn) = if materialized {
            (
                "MATERIALIZED VIEW",
                format!("CREATE MATERIALIZED VIEW {qualified}{with} AS\n{body}\n  WITH NO DATA;\n"),
            )
        } else {
            (
                "VIEW",
                format!("CREATE VIEW {qualified}{with} AS\n{body};\n"),
            )
        };
        defn.push_str(&b.comment(&format!("{desc} {qualified}"), r.get(9)));
        for c in columns.remove(&oid).unwrap_or_default() {
            defn.push_str(&b.comment(
                &format!("COLUMN {qualified}.{}", b.q.ident(&c.name)),
                c.comment,
            ));
            if let (Some(expr), false) = (&c.default, materialized) {
                defn.push_str(&format!(
                    "ALTER TABLE ONLY {qualified} ALTER COLUMN {} SET DEFAULT {expr};\n",
                    b.q.ident(&c.name)
                ));
            }
        }
        let mut item = Item::new(desc, &name, Section::PreData, P_TABLE)
            .of(PG_CLASS, oid)
            .in_schema(&schema, Some(owner.clone()));
        item.relkind = if materialized { b'm' } else { b'v' };
        item.tableam = if materialized { r.get(8) } else { None };
        item.defn = defn;
        item.drop = Some(format!("DROP {desc} {qualified};\n"));
        let at = b.push(item);
        b.relations.insert(
            oid,
            (
                qualified.clone(),
                if materialized { b'm' } else { b'v' },
                at,
            ),
        );
        b.acl(
            &format!("TABLE {qualified}"),
            &format!("TABLE {name}"),
            Some(&schema),
            &owner,
            r.get(10),
            r.get(11),
            at,
        );
        if materialized && r.get::<_, bool>(7) && !b.filter.schema_only {
            let mut refresh = Item::new(
                "MATERIALIZED VIEW DATA",
                &name,
                Section::PostData,
                P_REFRESH,
            )
            .in_schema(&schema, Some(owner.clone()));
            refresh.defn = format!("REFRESH MATERIALIZED VIEW {qualified};\n");
            refresh.deps.push(Dep::Item(at));
            b.push(refresh);
        }
    }
    Ok(())
}

async fn indexes(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query(
            "SELECT i.indexrelid, i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid), i.indisclustered, \
                    i.indisreplident, (SELECT h.inhparent FROM pg_inherits h WHERE h.inhrelid = i.indexrelid), \
                    obj_description(i.indexrelid, 'pg_class'), k.oid, k.conname, pg_get_constraintdef(k.oid), \
                    obj_description(k.oid, 'pg_constraint'), n.nspname, \
                    array_to_string(ic.reloptions, ', '), k.contype::text \
             FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = ic.relnamespace \
             LEFT JOIN pg_constraint k ON k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
                  AND k.contype IN ('p', 'u', 'x') \
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
            item.defn.push_str(&b.comment(
                &format!("CONSTRAINT {} ON {table_name}", b.q.ident(&con)),
                r.get(11),
            ));
            item.drop = Some(format!(
                "ALTER TABLE ONLY {table_name} DROP CONSTRAINT {};\n",
                b.q.ident(&con)
            ));
            item
        } else {
            let mut item =
                Item::new("INDEX", &name, Section::PostData, P_INDEX).of(PG_CLASS, index);
            item.defn = format!("{};\n", r.get::<_, String>(3));
            item.defn
                .push_str(&b.comment(&format!("INDEX {qualified_index}"), r.get(7)));
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
            .query_one(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&parent],
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

async fn foreign_keys(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query(
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
        item.defn.push_str(&b.comment(
            &format!("CONSTRAINT {} ON {table_name}", b.q.ident(&name)),
            r.get(5),
        ));
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
        b.push(item);
    }
    Ok(())
}

async fn triggers_rules_policies(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let triggers = session
        .query(
            "SELECT t.oid, t.tgrelid, t.tgname, pg_get_triggerdef(t.oid, false), t.tgenabled::text, \
                    obj_description(t.oid, 'pg_trigger') \
             FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgparentid = 0 ORDER BY t.tgname",
            &[],
        )
        .await?;
    for r in triggers {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut item = Item::new(
            "TRIGGER",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_TRIGGER,
        )
        .of(PG_TRIGGER, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        item.defn = format!("{};\n", r.get::<_, String>(3));
        let state = match r.get::<_, String>(4).as_str() {
            "D" => Some("DISABLE"),
            "R" => Some("ENABLE REPLICA"),
            "A" => Some("ENABLE ALWAYS"),
            _ => None,
        };
        if let Some(state) = state {
            item.defn.push_str(&format!(
                "ALTER TABLE {table_name} {state} TRIGGER {};\n",
                b.q.ident(&name)
            ));
        }
        item.defn.push_str(&b.comment(
            &format!("TRIGGER {} ON {table_name}", b.q.ident(&name)),
            r.get(5),
        ));
        item.drop = Some(format!(
            "DROP TRIGGER {} ON {table_name};\n",
            b.q.ident(&name)
        ));
        item.deps.push(Dep::Item(table_item));
        b.push(item);
    }
    let rules = session
        .query(
            "SELECT r.oid, r.ev_class, r.rulename, pg_get_ruledef(r.oid), r.ev_enabled::text, \
                    obj_description(r.oid, 'pg_rewrite') \
             FROM pg_rewrite r WHERE r.rulename <> '_RETURN' ORDER BY r.rulename",
            &[],
        )
        .await?;
    for r in rules {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut item = Item::new(
            "RULE",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_RULE,
        )
        .of(PG_REWRITE, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        item.defn = format!("{}\n", r.get::<_, String>(3));
        if r.get::<_, String>(4) == "D" {
            item.defn.push_str(&format!(
                "ALTER TABLE {table_name} DISABLE RULE {};\n",
                b.q.ident(&name)
            ));
        }
        item.defn.push_str(&b.comment(
            &format!("RULE {} ON {table_name}", b.q.ident(&name)),
            r.get(5),
        ));
        item.drop = Some(format!("DROP RULE {} ON {table_name};\n", b.q.ident(&name)));
        item.deps.push(Dep::Item(table_item));
        b.push(item);
    }
    let policies = session
        .query(
            "SELECT p.oid, p.polrelid, p.polname, p.polcmd::text, p.polpermissive, \
                    (SELECT string_agg(CASE WHEN r.role = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r.role)) END, \
                                       ', ' ORDER BY r.n) \
                       FROM unnest(p.polroles) WITH ORDINALITY AS r(role, n)), \
                    pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid), \
                    obj_description(p.oid, 'pg_policy') \
             FROM pg_policy p ORDER BY p.polname",
            &[],
        )
        .await?;
    for r in policies {
        let (oid, table, name): (u32, u32, String) = (r.get(0), r.get(1), r.get(2));
        let Some((table_name, _, table_item)) = b.relations.get(&table).cloned() else {
            continue;
        };
        let mut defn = format!("CREATE POLICY {} ON {table_name}", b.q.ident(&name));
        if !r.get::<_, bool>(4) {
            defn.push_str(" AS RESTRICTIVE");
        }
        let command = match r.get::<_, String>(3).as_str() {
            "r" => " FOR SELECT",
            "a" => " FOR INSERT",
            "w" => " FOR UPDATE",
            "d" => " FOR DELETE",
            _ => "",
        };
        defn.push_str(command);
        if let Some(roles) = opt_text(&r, 5) {
            defn.push_str(&format!(" TO {roles}"));
        }
        if let Some(using) = opt_text(&r, 6) {
            defn.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = opt_text(&r, 7) {
            defn.push_str(&format!(" WITH CHECK ({check})"));
        }
        defn.push_str(";\n");
        defn.push_str(&b.comment(
            &format!("POLICY {} ON {table_name}", b.q.ident(&name)),
            r.get(8),
        ));
        let mut item = Item::new(
            "POLICY",
            format!("{} {name}", b.items[table_item].tag),
            Section::PostData,
            P_POLICY,
        )
        .of(PG_POLICY, oid);
        item.namespace = b.items[table_item].namespace.clone();
        item.owner = b.items[table_item].owner.clone();
        item.defn = defn;
        item.drop = Some(format!(
            "DROP POLICY {} ON {table_name};\n",
            b.q.ident(&name)
        ));
        item.deps.push(Dep::Item(table_item));
        b.push(item);
    }
    Ok(())
}

async fn statistics(session: &Session, b: &mut Builder<'_>) -> Result<(), PgError> {
    let rows = session
        .query(
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
        item.defn
            .push_str(&b.comment(&format!("STATISTICS {qualified}"), r.get(7)));
        item.drop = Some(format!("DROP STATISTICS {qualified};\n"));
        item.deps.push(Dep::Item(table_item));
        b.push(item);
    }
    Ok(())
}

/// Dependencies between the objects created before data, from `pg_depend`, each side mapped
/// to the object whose statement creates it: a view's rewrite rule to the view, a column
/// default or CHECK constraint to its table, a domain constraint to its domain, a table's row
/// type to the table, an array type to its element, an extension's member to the extension.
async fn edges(session: &Session) -> Result<Vec<(ObjKey, ObjKey)>, PgError> {
    // Each side as `catalog:oid` text, mapped to the object whose statement creates it.
    let canon = |class: &str, oid: &str| {
        format!(
            "CASE \
               WHEN EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = {class} AND e.objid = {oid} AND e.deptype = 'e') \
                 THEN '3079:' || (SELECT e.refobjid FROM pg_depend e WHERE e.classid = {class} \
                       AND e.objid = {oid} AND e.deptype = 'e' LIMIT 1) \
               WHEN {class} = 'pg_rewrite'::regclass THEN '1259:' || (SELECT ev_class FROM pg_rewrite WHERE oid = {oid}) \
               WHEN {class} = 'pg_attrdef'::regclass THEN '1259:' || (SELECT adrelid FROM pg_attrdef WHERE oid = {oid}) \
               WHEN {class} = 'pg_constraint'::regclass THEN (SELECT CASE WHEN conrelid <> 0 THEN '1259:' || conrelid \
                       ELSE '1247:' || contypid END FROM pg_constraint WHERE oid = {oid}) \
               WHEN {class} = 'pg_type'::regclass THEN (SELECT CASE \
                       WHEN t.typelem <> 0 AND EXISTS (SELECT 1 FROM pg_type el WHERE el.typarray = t.oid) \
                         THEN (SELECT CASE WHEN el.typrelid <> 0 AND (SELECT relkind FROM pg_class WHERE oid = el.typrelid) <> 'c' \
                                THEN '1259:' || el.typrelid ELSE '1247:' || el.oid END \
                               FROM pg_type el WHERE el.oid = t.typelem) \
                       WHEN t.typrelid <> 0 AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) <> 'c' \
                         THEN '1259:' || t.typrelid \
                       ELSE '1247:' || t.oid END FROM pg_type t WHERE t.oid = {oid}) \
               WHEN {class} = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = {oid}) = 'c' \
                 THEN '1247:' || (SELECT reltype FROM pg_class WHERE oid = {oid}) \
               ELSE {class}::oid || ':' || {oid} END"
        )
    };
    let sql = format!(
        "SELECT DISTINCT x.a, x.b FROM ( \
           SELECT ({}) AS a, ({}) AS b FROM pg_depend d \
           WHERE d.deptype = 'n' AND d.objid >= 16384 AND d.refobjid >= 16384 \
             AND d.classid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, \
                               'pg_rewrite'::regclass, 'pg_attrdef'::regclass, 'pg_constraint'::regclass) \
             AND d.refclassid IN ('pg_class'::regclass, 'pg_type'::regclass, 'pg_proc'::regclass, \
                                  'pg_namespace'::regclass, 'pg_extension'::regclass) \
             AND NOT (d.classid = 'pg_constraint'::regclass AND (SELECT contype FROM pg_constraint WHERE oid = d.objid) NOT IN ('c')) \
             AND NOT (d.classid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('i', 'I', 'S')) \
             AND NOT (d.refclassid = 'pg_class'::regclass AND (SELECT relkind FROM pg_class WHERE oid = d.refobjid) IN ('i', 'I')) \
         ) x",
        canon("d.classid", "d.objid"),
        canon("d.refclassid", "d.refobjid"),
    );
    let rows = session.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let key = |i: usize| -> Option<ObjKey> {
                let text: String = r.get::<_, Option<String>>(i)?;
                let (class, oid) = text.split_once(':')?;
                Some((class.parse().ok()?, oid.parse().ok()?))
            };
            let (from, to) = (key(0)?, key(1)?);
            (from != to).then_some((from, to))
        })
        .collect())
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

    #[test]
    fn aclitems_parse_with_quoted_names_and_public() {
        assert_eq!(
            parse_aclitem("alice=arwdDxt/alice"),
            Some(("alice".into(), "arwdDxt".into()))
        );
        assert_eq!(parse_aclitem("=U/alice"), Some((String::new(), "U".into())));
        assert_eq!(
            parse_aclitem(r#""odd ""one"""=r*w/"al/ice""#),
            Some((r#"odd "one""#.into(), "r*w".into()))
        );
    }

    #[test]
    fn grants_revoke_only_what_differs_from_the_default() {
        let keywords = Quoter {
            keywords: ["user".to_string()].into(),
        };
        let default = vec!["owner=arwdDxt/owner".to_string()];
        let acl = vec![
            "owner=arwdDxt/owner".to_string(),
            "user=r*w/owner".to_string(),
        ];
        assert_eq!(
            grants(&keywords, "TABLE public.t", None, &acl, &default),
            "GRANT UPDATE ON TABLE public.t TO \"user\";\n\
             GRANT SELECT ON TABLE public.t TO \"user\" WITH GRANT OPTION;\n"
        );
        let revoked = vec!["owner=r/owner".to_string()];
        assert_eq!(
            grants(&keywords, "TABLE public.t", None, &revoked, &default),
            "REVOKE ALL ON TABLE public.t FROM owner;\nGRANT SELECT ON TABLE public.t TO owner;\n"
        );
    }

    #[test]
    fn table_patterns_match_schema_and_name() {
        let p = vec!["public.order*".to_string(), "audit".to_string()];
        assert!(matches_table(&p, "public", "orders"));
        assert!(matches_table(&p, "other", "audit"));
        assert!(!matches_table(&p, "other", "orders"));
        assert!(glob("*_log", "migration_log"));
        assert!(!glob("*_log", "migration_logs"));
    }
}
