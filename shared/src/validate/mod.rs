//! Validate: prove that what arrived is what left.
//!
//! A [`Profile`] of a database is everything a comparison needs, computed inside the server so
//! that no table data crosses the network: per-table row counts and order-independent content
//! checksums, a schema fingerprint with the facts behind it, and integrity problems (orphaned
//! foreign keys, sequences behind their column, invalid indexes, unvalidated constraints).
//! [`compare`] turns two profiles (or a snapshot manifest and a profile) into a report that
//! names every difference with the expected and the actual value.
//!
//! Checksums: each row is hashed to 64 bits, by its columns' own hash functions
//! (`hash_record_extended`) where every column type has one, else from its text form (with the
//! output settings pinned so both sides render alike), and folded with a sum and an xor, which
//! do not depend on row order and combine across pieces. Values therefore compare by their
//! type's equality (numeric `1.0` equals `1.00`). Large tables are split into ranges of blocks
//! (`ctid` ranges), so each piece fits a Lambda invocation and pieces run in parallel.

mod catalog;
mod checksum;
mod facts;
mod integrity;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use crate::manifest::Problem;
use crate::sql::display_name;
use crate::{
    manifest::{Manifest, ManifestTable, SchemaDigest},
    pg::{PgConfig, PgError, Session, connect},
};

pub use checksum::{PIECE_BLOCKS, Piece};
pub use facts::{Category, KINDS, SequencePosition, kind_of, sequence_positions, sequence_states};

/// Settings every validating session uses, so that both sides render values identically.
/// The search path is pinned (a database may set its own, which a restore without `-C` does
/// not carry): names the server prints are qualified alike on both sides. Literals are
/// standard-conforming whatever the database says.
pub(crate) const SESSION_SETUP: &str = "SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; \
     SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET bytea_output = 'hex'; \
     SET standard_conforming_strings = on; SET search_path = public; \
     SET statement_timeout = 0; SET lock_timeout = '30s'; \
     SET default_transaction_read_only = on";

/// One table's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    /// Hex of the folded row hashes; `None` when checksums were not asked for.
    pub checksum: Option<String>,
}

impl TableStats {
    /// `schema.table`, quoted where needed.
    pub fn qualified(&self) -> String {
        format!(
            "{}.{}",
            display_name(&self.schema),
            display_name(&self.name)
        )
    }
}

/// What differs between source and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// `rows`, `checksum`, `table` (missing or extra) or `schema`.
    pub check: String,
    /// What kind of thing differs: `rows`, `checksum` and `table` for tables' contents, else
    /// the fact's kind (`sequence state`, `acl`, `comment`, `publication table`, ...).
    #[serde(default)]
    pub kind: String,
    pub object: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// Everything a comparison needs to know about one database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub server_version: String,
    pub database: String,
    pub tables: Vec<TableStats>,
    pub schema: SchemaDigest,
    pub integrity: Vec<Problem>,
}

impl Profile {
    /// The profile with `facts` in place of its own of the same keys: a dump's sequence
    /// positions, read when the dump read them rather than after its data was copied
    /// (sequences are not transactional: a snapshot does not hold them still).
    pub fn with_facts(mut self, facts: BTreeMap<String, String>) -> Profile {
        let mut all = std::mem::take(&mut self.schema.facts);
        all.extend(facts);
        self.schema = digest(all);
        self
    }
}

/// What to compute.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub checksums: bool,
    /// Connections used at once.
    pub jobs: usize,
}

/// Opens a session pinned for validation: stable output settings, read-only; inside the
/// exported `snapshot` when one is given (so that it sees exactly what a dump saw).
pub(crate) async fn session(config: &PgConfig, snapshot: Option<&str>) -> Result<Session, PgError> {
    let session = connect(config).await?;
    session.batch_execute(SESSION_SETUP).await?;
    if let Some(id) = snapshot {
        session
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET TRANSACTION SNAPSHOT {}",
                crate::sql::literal(id)
            ))
            .await?;
    }
    Ok(session)
}

/// Profiles a database: counts (and checksums), schema facts, integrity problems.
pub async fn profile(config: &PgConfig, options: Options) -> Result<Profile, PgError> {
    profile_at(config, options, None).await
}

/// Profiles a database as an exported snapshot (`pg_export_snapshot()`) sees it.
pub async fn profile_at(
    config: &PgConfig,
    options: Options,
    snapshot: Option<&str>,
) -> Result<Profile, PgError> {
    describe_at(config, options, snapshot)
        .await?
        .count(config, options, snapshot)
        .await
}

/// A profile's first part: what the catalog says (the tables, the schema facts) and the
/// integrity problems, read on one connection. [`Described::count`] reads the rest.
pub struct Described {
    server_version: String,
    database: String,
    tables: Vec<checksum::TableRef>,
    facts: BTreeMap<String, String>,
    integrity: Vec<Problem>,
}

/// The first part of [`profile_at`]: a snapshot reads it beside its catalog reads, and counts
/// the tables once its own scans of them are done.
pub async fn describe_at(
    config: &PgConfig,
    options: Options,
    snapshot: Option<&str>,
) -> Result<Described, PgError> {
    let main = session(config, snapshot).await?;
    let row = main
        .query_catalog_one(
            "SELECT current_setting('server_version'), current_database()",
            &[],
        )
        .await?;
    let mut tables = catalog::tables(&main).await?;
    if options.checksums {
        catalog::probe_hashable(&main, &mut tables, snapshot.is_some()).await?;
    }
    let facts = facts::facts(&main).await?;
    let integrity = integrity::check(&main).await?;
    Ok(Described {
        server_version: row.get(0),
        database: row.get(1),
        tables,
        facts,
        integrity,
    })
}

impl Described {
    /// The profile: the tables' row counts (and checksums) over `options.jobs` connections.
    pub async fn count(
        self,
        config: &PgConfig,
        options: Options,
        snapshot: Option<&str>,
    ) -> Result<Profile, PgError> {
        let stats =
            checksum::run(config, &self.tables, options, snapshot.map(str::to_string)).await?;
        Ok(Profile {
            server_version: self.server_version,
            database: self.database,
            tables: stats,
            schema: digest(self.facts),
            integrity: self.integrity,
        })
    }
}

/// The fingerprint of a set of schema facts: sha256 of the sorted `key<TAB>value` lines.
pub fn digest(facts: BTreeMap<String, String>) -> SchemaDigest {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (key, value) in &facts {
        hasher.update(key.as_bytes());
        hasher.update(b"\t");
        hasher.update(value.as_bytes());
        hasher.update(b"\n");
    }
    SchemaDigest {
        fingerprint: hex::encode(hasher.finalize()),
        facts,
    }
}

/// What was expected: a profile of the source database, or a snapshot's manifest.
pub struct Expected {
    pub tables: Vec<TableStats>,
    pub schema: Option<SchemaDigest>,
    /// Problems the source already had; the same problems in the target are not failures.
    pub integrity: Vec<Problem>,
    /// The manifest format the facts were recorded in: kinds of facts added since are not
    /// compared (the manifest could not record them).
    pub format_version: u32,
    /// The source server's version, when known: definitions a newer server prints
    /// differently are compared by what they say (see [`unqualified`]).
    pub server_version: Option<String>,
}

/// What a comparison looks at beyond definitions and contents.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    /// Owners of objects (a restore with `--no-owner`, Neon's default, gives everything to
    /// the restoring role).
    pub owners: bool,
    /// Grants and default privileges (a restore with `--no-privileges` leaves them out).
    pub privileges: bool,
    /// The database's own settings, comment, connection limit and grants (only a restore
    /// that creates the database carries them).
    pub database: bool,
}

impl From<Profile> for Expected {
    fn from(p: Profile) -> Expected {
        Expected {
            tables: p.tables,
            schema: Some(p.schema),
            integrity: p.integrity,
            format_version: crate::manifest::FORMAT_VERSION,
            server_version: Some(p.server_version),
        }
    }
}

impl From<Manifest> for Expected {
    fn from(m: Manifest) -> Expected {
        Expected {
            tables: m
                .tables
                .into_iter()
                .map(|t| TableStats {
                    schema: t.schema,
                    name: t.name,
                    rows: t.rows,
                    checksum: t.checksum,
                })
                .collect(),
            schema: m.schema,
            integrity: m.integrity,
            format_version: m.format_version,
            server_version: Some(m.source.server_version),
        }
    }
}

/// A manifest recording a profile: tables with counts and checksums, and the schema digest.
/// Snapshots add their archive and objects to it.
pub fn manifest_of(profile: &Profile) -> Manifest {
    Manifest {
        format_version: crate::manifest::FORMAT_VERSION,
        tool_version: crate::VERSION.to_string(),
        created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        source: crate::manifest::ManifestSource {
            server_version: profile.server_version.clone(),
            database: profile.database.clone(),
            neon_project: None,
            neon_branch: None,
            lsn: None,
        },
        archive: None,
        tables: profile
            .tables
            .iter()
            .map(|t| ManifestTable {
                schema: t.schema.clone(),
                name: t.name.clone(),
                rows: t.rows,
                bytes: None,
                checksum: t.checksum.clone(),
            })
            .collect(),
        objects: Vec::new(),
        schema: Some(profile.schema.clone()),
        integrity: profile.integrity.clone(),
        data_offsets: Default::default(),
        storage: None,
    }
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    pub differences: Vec<Difference>,
    /// Integrity problems of the target the source did not have: failures.
    pub integrity: Vec<Problem>,
    /// Integrity problems the source had too: reported, not failures.
    pub inherited: Vec<Problem>,
    pub tables_compared: usize,
    pub rows_compared: u64,
    /// What was not compared, and how to have it compared (`owners (--owners)`).
    pub not_compared: Vec<String>,
}

impl Comparison {
    pub fn matches(&self) -> bool {
        self.differences.is_empty() && self.integrity.is_empty()
    }
}

/// Compares what was expected with the target's profile, within `scope`. Checksums are
/// compared when both sides have them.
pub fn compare(expected: &Expected, actual: &Profile, scope: Scope) -> Comparison {
    let mut out = Comparison::default();
    let key = |t: &TableStats| t.qualified();
    let actual_tables: BTreeMap<String, &TableStats> =
        actual.tables.iter().map(|t| (key(t), t)).collect();
    let expected_tables: BTreeMap<String, &TableStats> =
        expected.tables.iter().map(|t| (key(t), t)).collect();
    let table_difference =
        |kind: &str, object: &str, expected: String, actual: String| Difference {
            check: kind.into(),
            kind: kind.into(),
            object: object.into(),
            expected: Some(expected),
            actual: Some(actual),
        };
    for (name, want) in &expected_tables {
        let Some(got) = actual_tables.get(name) else {
            out.differences.push(table_difference(
                "table",
                name,
                format!("{} rows", want.rows),
                "missing".into(),
            ));
            continue;
        };
        out.tables_compared += 1;
        out.rows_compared += got.rows;
        if want.rows != got.rows {
            out.differences.push(table_difference(
                "rows",
                name,
                want.rows.to_string(),
                got.rows.to_string(),
            ));
        } else if let (Some(a), Some(b)) = (&want.checksum, &got.checksum)
            && a != b
        {
            out.differences
                .push(table_difference("checksum", name, a.clone(), b.clone()));
        }
    }
    for (name, got) in &actual_tables {
        if !expected_tables.contains_key(name) {
            out.differences.push(table_difference(
                "table",
                name,
                "absent".into(),
                format!("{} rows", got.rows),
            ));
        }
    }
    if !scope.owners {
        out.not_compared.push("owners (--owners)".into());
    }
    if !scope.privileges {
        out.not_compared
            .push("grants and default privileges (--privileges)".into());
    }
    if !scope.database {
        out.not_compared.push(
            "the database's own settings, comment, connection limit and grants (--database)".into(),
        );
    }
    if let Some(want) = &expected.schema
        && want.fingerprint != actual.schema.fingerprint
    {
        // Facts of a kind this comparison leaves out, or that the expected side's format
        // could not record, are not compared.
        // Manifests before format 4 recorded custom (dotted) settings' values in clear; they
        // are compared by digest since, so not against those.
        let clear_custom_setting = |fact: &str| {
            expected.format_version < 4
                && kind_of(fact)
                    .is_some_and(|(k, _, _)| k.starts_with("database") && k.ends_with("setting"))
                && fact
                    .rsplit(' ')
                    .next()
                    .is_some_and(|name| name.contains('.'))
        };
        let compared = |fact: &str| match kind_of(fact) {
            _ if clear_custom_setting(fact) => false,
            Some((_, _, since)) if since > expected.format_version => false,
            Some((_, Category::Owners, _)) => scope.owners,
            Some((_, Category::Privileges, _)) => scope.privileges,
            Some((_, Category::Database, _)) => scope.database,
            _ => true,
        };
        let kind = |fact: &str| kind_of(fact).map_or("schema", |(k, _, _)| k).to_string();
        // Servers of different major versions deparse some definitions differently (16 stopped
        // qualifying the columns of a one-table view): those compare without qualifiers.
        let across_versions = expected
            .server_version
            .as_deref()
            .is_some_and(|v| major(v) != major(&actual.server_version));
        // Schema names (of the expected side's schemas, and the system's) stay as they are:
        // only the qualifiers of columns go.
        let schemas: Vec<String> = want
            .facts
            .keys()
            .filter_map(|k| k.strip_prefix("schema "))
            .map(str::to_string)
            .chain(["pg_catalog".to_string(), "public".to_string()])
            .collect();
        let same = |fact: &str, want: &str, got: &str| {
            want == got
                || (across_versions
                    && matches!(
                        kind_of(fact),
                        Some(("view" | "materialized view" | "rule", _, _))
                    )
                    && unqualified(want, &schemas) == unqualified(got, &schemas))
        };
        // What format 1 recorded that is no longer a fact: PostgreSQL 18's NOT NULL
        // constraints (now a column's property) and partitions' copies of their parents'
        // triggers (a trigger of the same name on another table; now their states only).
        let retired = |fact: &str, definition: &str| {
            expected.format_version < 2
                && match kind_of(fact) {
                    Some(("constraint", _, _)) => definition.starts_with("NOT NULL"),
                    Some(("trigger", _, _)) => {
                        let name = fact.rsplit('.').next().unwrap_or(fact);
                        !actual.schema.facts.contains_key(fact)
                            && want.facts.keys().any(|other| {
                                other != fact
                                    && other.starts_with("trigger ")
                                    && other.rsplit('.').next() == Some(name)
                            })
                    }
                    _ => false,
                }
        };
        for (fact, definition) in &want.facts {
            if !compared(fact) || retired(fact, definition) {
                continue;
            }
            let got = actual.schema.facts.get(fact);
            if !got.is_some_and(|g| same(fact, definition, g)) {
                out.differences.push(Difference {
                    check: "schema".into(),
                    kind: kind(fact),
                    object: fact.clone(),
                    expected: Some(definition.clone()),
                    actual: got.cloned(),
                });
            }
        }
        for (fact, definition) in &actual.schema.facts {
            if compared(fact) && !want.facts.contains_key(fact) {
                out.differences.push(Difference {
                    check: "schema".into(),
                    kind: kind(fact),
                    object: fact.clone(),
                    expected: None,
                    actual: Some(definition.clone()),
                });
            }
        }
    }
    if expected.format_version < crate::manifest::FORMAT_VERSION {
        out.not_compared.push(format!(
            "what manifest format {} could not record ({})",
            expected.format_version,
            if expected.format_version < 2 {
                "sequence positions, grants, comments, ..."
            } else {
                "grants changed on system objects and extension members, DEPENDS ON EXTENSION, subscriptions, custom settings"
            }
        ));
    }
    for problem in &actual.integrity {
        if expected.integrity.contains(problem) {
            out.inherited.push(problem.clone());
        } else {
            out.integrity.push(problem.clone());
        }
    }
    out
}

/// A server version's major number (`14` of `14.23`, `18` of `18beta1`).
fn major(version: &str) -> &str {
    let end = version
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version.len());
    &version[..end]
}

/// A deparsed definition without the qualifiers before its columns (`orders.customer_id`
/// becomes `customer_id`); a qualifier that is one of `schemas` (as SQL spells it, quoted
/// where it must be) stays, string literals and everything else too. Used only to compare
/// what servers of different versions printed.
pub fn unqualified(sql: &str, schemas: &[String]) -> String {
    let mut out = String::with_capacity(sql.len());
    let chars: Vec<char> = sql.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c == '\'' {
            // A string literal, '' inside it escaping a quote.
            i += 1;
            while i < chars.len() && !(chars[i] == '\'' && chars.get(i + 1) != Some(&'\'')) {
                i += if chars[i] == '\'' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
        } else if c == '"' {
            i += 1;
            while i < chars.len() && !(chars[i] == '"' && chars.get(i + 1) != Some(&'"')) {
                i += if chars[i] == '"' { 2 } else { 1 };
            }
            i = (i + 1).min(chars.len());
        } else if c.is_alphabetic() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
            continue;
        }
        let name: String = chars[start..i].iter().collect();
        let qualifier = c != '\''
            && chars.get(i) == Some(&'.')
            && chars
                .get(i + 1)
                .is_some_and(|n| n.is_alphabetic() || *n == '_' || *n == '"')
            && !schemas.contains(&name);
        if qualifier {
            i += 1; // the name and its dot go
        } else {
            out.extend(&chars[start..i]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(name: &str, rows: u64, checksum: &str) -> TableStats {
        TableStats {
            schema: "public".into(),
            name: name.into(),
            rows,
            checksum: Some(checksum.into()),
        }
    }

    fn profile(tables: Vec<TableStats>, facts: &[(&str, &str)]) -> Profile {
        Profile {
            server_version: "15".into(),
            database: "d".into(),
            tables,
            schema: digest(
                facts
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            integrity: Vec::new(),
        }
    }

    #[test]
    fn differences_are_named() {
        let source = profile(
            vec![
                stats("a", 10, "x"),
                stats("b", 5, "y"),
                stats("gone", 1, "z"),
            ],
            &[
                ("index public.i", "CREATE INDEX i ON a (x)"),
                ("column public.a.x", "integer"),
            ],
        );
        let mut target = profile(
            vec![
                stats("a", 9, "x"),
                stats("b", 5, "changed"),
                stats("new", 2, "w"),
            ],
            &[("column public.a.x", "bigint")],
        );
        target.integrity.push(Problem {
            check: "invalid-index".into(),
            object: "public.j".into(),
            detail: "not valid".into(),
        });
        let c = compare(&source.into(), &target, Scope::default());
        assert!(!c.matches());
        let found: Vec<(String, String)> = c
            .differences
            .iter()
            .map(|d| (d.check.clone(), d.object.clone()))
            .collect();
        for want in [
            ("rows", "public.a"),
            ("checksum", "public.b"),
            ("table", "public.gone"),
            ("table", "public.new"),
            ("schema", "index public.i"),
            ("schema", "column public.a.x"),
        ] {
            assert!(
                found.contains(&(want.0.into(), want.1.into())),
                "{want:?} not in {found:?}"
            );
        }
        assert_eq!(c.integrity.len(), 1);
    }

    #[test]
    fn identical_profiles_match_and_inherited_problems_do_not_fail() {
        let problem = Problem {
            check: "unvalidated-constraint".into(),
            object: "public.a.fk".into(),
            detail: "NOT VALID".into(),
        };
        let mut a = profile(vec![stats("a", 3, "c")], &[("table public.a", "r")]);
        a.integrity.push(problem.clone());
        let b = a.clone();
        let c = compare(&a.into(), &b, Scope::default());
        assert!(c.matches(), "{c:?}");
        assert_eq!(c.inherited, vec![problem]);
        assert_eq!((c.tables_compared, c.rows_compared), (1, 3));
    }

    #[test]
    fn qualifiers_go_and_literals_stay() {
        let schemas = ["app".to_string(), "\"Odd S\"".to_string()];
        assert_eq!(
            unqualified(
                "SELECT orders.customer_id, count(*) FROM app.orders GROUP BY orders.customer_id",
                &schemas
            ),
            "SELECT customer_id, count(*) FROM app.orders GROUP BY customer_id"
        );
        assert_eq!(
            unqualified(
                r#"SELECT "T t"."C c" FROM "Odd S"."T t" WHERE x = 'a.b' AND y = 'it''s.x'"#,
                &schemas
            ),
            r#"SELECT "C c" FROM "Odd S"."T t" WHERE x = 'a.b' AND y = 'it''s.x'"#
        );
        // Another schema's table is another table.
        assert_ne!(
            unqualified("SELECT x FROM app.t", &schemas),
            unqualified("SELECT x FROM other.t", &["other".to_string()])
        );
        assert_eq!(unqualified("SELECT 1.5", &schemas), "SELECT 1.5");
        assert_eq!(major("14.23"), "14");
        assert_eq!(major("18beta1"), "18");
    }

    #[test]
    fn format_1_manifests_are_compared_on_what_they_recorded() {
        let source = profile(
            vec![],
            &[
                ("constraint public.t.t_a_not_null", "NOT NULL a"),
                (
                    "trigger public.p.tg",
                    "CREATE TRIGGER tg BEFORE INSERT ON public.p",
                ),
                (
                    "trigger public.c.tg",
                    "CREATE TRIGGER tg BEFORE INSERT ON public.c",
                ),
                (
                    "trigger public.p.gone",
                    "CREATE TRIGGER gone BEFORE INSERT ON public.p",
                ),
                ("acl table public.t", "+x:SELECT/owner"),
            ],
        );
        let mut expected: Expected = source.into();
        expected.format_version = 1;
        let target = profile(
            vec![],
            &[
                (
                    "trigger public.p.tg",
                    "CREATE TRIGGER tg BEFORE INSERT ON public.p",
                ),
                ("acl table public.t", "+y:SELECT/owner"),
                ("sequence state public.s", "last_value 1 is_called false"),
            ],
        );
        let all = Scope {
            owners: true,
            privileges: true,
            database: true,
        };
        let c = compare(&expected, &target, all);
        // Only the trigger that is really gone differs.
        let objects: Vec<&str> = c.differences.iter().map(|d| d.object.as_str()).collect();
        assert_eq!(objects, ["trigger public.p.gone"], "{c:?}");
        assert!(
            c.not_compared.iter().any(|n| n.contains("format 1")),
            "{c:?}"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(display_name("orders"), "orders");
        assert_eq!(display_name("Orders"), "\"Orders\"");
        assert_eq!(display_name("my table"), "\"my table\"");
        assert_eq!(display_name("a\"b"), "\"a\"\"b\"");
    }
}
