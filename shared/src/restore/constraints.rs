//! Constraint splitting: a primary key or unique constraint built as a unique index first (an
//! item of its own), then attached, so that the index builds on one table run side by side.

use std::collections::HashMap;

use crate::archive::{Section, TocEntry};

/// A primary key or unique constraint in two steps: `build` creates its unique index (an item
/// of its own, with a negative id: an interrupted run leaves the index, and the next one keeps
/// it), `attach` is the archive's item, making that index the constraint.
pub(super) struct SplitConstraint {
    pub(super) build: TocEntry,
    pub(super) attach: TocEntry,
}

/// The parts of `ALTER TABLE ONLY t ADD CONSTRAINT c PRIMARY KEY (cols);` (or `UNIQUE`) as
/// pg_dump writes it: table, constraint name, kind and columns. Anything more (`INCLUDE`,
/// `WITH`, `DEFERRABLE`, `NULLS NOT DISTINCT`, ...) is not matched and runs as written.
pub(super) fn unique_constraint(defn: &str) -> Option<(&str, &str, &str, &str)> {
    /// A possibly quoted, possibly qualified name, up to unquoted whitespace.
    fn name(s: &str) -> Option<(&str, &str)> {
        let mut quoted = false;
        for (i, c) in s.char_indices() {
            match c {
                '"' => quoted = !quoted,
                c if c.is_whitespace() && !quoted => {
                    return (i > 0).then(|| (&s[..i], &s[i..]));
                }
                '(' | ')' | ';' | ',' if !quoted => return None,
                _ => {}
            }
        }
        None
    }
    let rest = defn.strip_prefix("ALTER TABLE ONLY ")?;
    let (table, rest) = name(rest)?;
    let rest = rest.trim_start().strip_prefix("ADD CONSTRAINT ")?;
    let (constraint, rest) = name(rest)?;
    let rest = rest.strip_prefix(' ')?;
    let (kind, rest) = match rest.strip_prefix("PRIMARY KEY (") {
        Some(r) => ("PRIMARY KEY", r),
        None => ("UNIQUE", rest.strip_prefix("UNIQUE (")?),
    };
    // Column names only, each a plain identifier or a quoted one, separated by ", " (not
    // `WITHOUT OVERLAPS` or anything else a newer pg_dump may write there).
    let bytes = rest.as_bytes();
    let mut at = 0;
    loop {
        if bytes.get(at) == Some(&b'"') {
            at += 1;
            loop {
                match bytes.get(at)? {
                    b'"' if bytes.get(at + 1) == Some(&b'"') => at += 2,
                    b'"' => break,
                    _ => at += 1,
                }
            }
            at += 1;
        } else {
            let start = at;
            while bytes.get(at).is_some_and(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'$'
            }) {
                at += 1;
            }
            if at == start {
                return None;
            }
        }
        let after = &rest[at..];
        if after.starts_with(", ") {
            at += 2;
        } else if let Some(end) = after.strip_prefix(')') {
            return (end.trim() == ";").then_some((table, constraint, kind, &rest[..at]));
        } else {
            return None;
        }
    }
}

/// The primary keys and unique constraints of `phase` that can be split (see
/// [`SplitConstraint`]): pg_dump's plain form, on a table that is not partitioned (a
/// partitioned table's constraint cannot take an index). Each attach waits for the other index
/// builds on its table, so that it does not hold a connection while it waits for their locks.
pub(super) fn split_unique_constraints(
    phase: &[&TocEntry],
    all: &[TocEntry],
    first_id: i32,
) -> Vec<SplitConstraint> {
    let tables: HashMap<i32, &TocEntry> = all
        .iter()
        .filter(|t| t.desc == "TABLE")
        .map(|t| (t.dump_id, t))
        .collect();
    let table_of = |e: &TocEntry| e.dependencies.iter().find_map(|d| tables.get(d).copied());
    let mut out: Vec<SplitConstraint> = Vec::new();
    for e in phase.iter().filter(|e| e.desc == "CONSTRAINT") {
        let Some((table, name, kind, columns)) = e.defn.as_deref().and_then(unique_constraint)
        else {
            continue;
        };
        let partitioned = table_of(e)
            .and_then(|t| t.defn.as_deref())
            .is_none_or(|d| d.contains("PARTITION BY "));
        if partitioned {
            continue;
        }
        let mut build = TocEntry::new(
            first_id - out.len() as i32,
            &e.desc,
            &e.tag,
            Section::PostData,
        );
        build.namespace = e.namespace.clone();
        build.tablespace = e.tablespace.clone();
        build.dependencies = e.dependencies.clone();
        build.defn = Some(format!(
            "CREATE UNIQUE INDEX IF NOT EXISTS {name} ON {table} USING btree ({columns});\n"
        ));
        let mut attach = (*e).clone();
        attach.defn = Some(format!(
            "ALTER TABLE ONLY {table}\n    ADD CONSTRAINT {name} {kind} USING INDEX {name};\n"
        ));
        attach.dependencies.push(build.dump_id);
        out.push(SplitConstraint { build, attach });
    }
    // Each attach after every index build on its table, its own and the others (but not an
    // index that itself waits for the constraint).
    let mut builds_on: HashMap<i32, Vec<&TocEntry>> = HashMap::new();
    for b in phase.iter().copied().filter(|o| o.desc == "INDEX") {
        if let Some(t) = table_of(b) {
            builds_on.entry(t.dump_id).or_default().push(b);
        }
    }
    let own: Vec<(i32, i32)> = out
        .iter()
        .filter_map(|s| Some((table_of(&s.build)?.dump_id, s.build.dump_id)))
        .collect();
    for s in &mut out {
        let Some(table) = table_of(&s.attach).map(|t| t.dump_id) else {
            continue;
        };
        let indexes = builds_on.get(&table).into_iter().flatten();
        let waits: Vec<i32> = indexes
            .filter(|b| !b.dependencies.contains(&s.attach.dump_id))
            .map(|b| b.dump_id)
            .chain(own.iter().filter(|(t, _)| *t == table).map(|(_, id)| *id))
            .filter(|id| !s.attach.dependencies.contains(id))
            .collect();
        s.attach.dependencies.extend(waits);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_unique_constraints_are_split() {
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY public.orders\n    ADD CONSTRAINT orders_pkey PRIMARY KEY (id);\n"
            ),
            Some(("public.orders", "orders_pkey", "PRIMARY KEY", "id"))
        );
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY \"Odd Schema\".\"t (x)\"\n    ADD CONSTRAINT \"a b)\" UNIQUE (\"c)\", d);\n"
            ),
            Some((
                "\"Odd Schema\".\"t (x)\"",
                "\"a b)\"",
                "UNIQUE",
                "\"c)\", d"
            ))
        );
        for other in [
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id) INCLUDE (v);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (id) DEFERRABLE;\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE NULLS NOT DISTINCT (id);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id) WITH (fillfactor='70');\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k EXCLUDE USING gist (r WITH &&);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k CHECK ((id > 0));\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k PRIMARY KEY (id, during WITHOUT OVERLAPS);\n",
            "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (\"a\"\"\", Upper);\n",
            "ALTER TABLE s.t\n    ADD CONSTRAINT k PRIMARY KEY (id);\n",
        ] {
            assert_eq!(unique_constraint(other), None, "{other}");
        }
    }

    #[test]
    fn split_key_columns_may_be_quoted_with_quotes_inside() {
        assert_eq!(
            unique_constraint(
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT k UNIQUE (\"a\"\"b\", c_1$);\n"
            ),
            Some(("s.t", "k", "UNIQUE", "\"a\"\"b\", c_1$"))
        );
    }

    #[test]
    fn split_constraints_wait_for_the_index_builds_on_their_table() {
        let table = |id: i32, tag: &str, defn: &str| {
            let mut t = TocEntry::new(id, "TABLE", tag, Section::PreData);
            t.defn = Some(defn.into());
            t
        };
        let on = |id: i32, desc: &str, table: i32, defn: &str| {
            let mut e = TocEntry::new(id, desc, "x", Section::PostData);
            e.dependencies = vec![table];
            e.defn = Some(defn.into());
            e
        };
        let all = vec![
            table(1, "t", "CREATE TABLE s.t (id integer, v integer);\n"),
            table(
                2,
                "p",
                "CREATE TABLE s.p (\n    id integer\n)\nPARTITION BY RANGE (id);\n",
            ),
            on(
                10,
                "CONSTRAINT",
                1,
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);\n",
            ),
            on(11, "INDEX", 1, "CREATE INDEX t_v ON s.t USING btree (v);\n"),
            on(
                12,
                "CONSTRAINT",
                2,
                "ALTER TABLE ONLY s.p\n    ADD CONSTRAINT p_pkey PRIMARY KEY (id);\n",
            ),
            on(
                13,
                "INDEX",
                2,
                "CREATE INDEX p_id ON ONLY s.p USING btree (id);\n",
            ),
        ];
        let phase: Vec<&TocEntry> = all[2..].iter().collect();
        let split = split_unique_constraints(&phase, &all, -5);
        assert_eq!(
            split.len(),
            1,
            "the partitioned table's key is left as written"
        );
        let s = &split[0];
        assert_eq!(s.build.dump_id, -5);
        assert_eq!(
            s.build.defn.as_deref(),
            Some("CREATE UNIQUE INDEX IF NOT EXISTS t_pkey ON s.t USING btree (id);\n")
        );
        assert_eq!(
            s.attach.defn.as_deref(),
            Some(
                "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY USING INDEX t_pkey;\n"
            )
        );
        assert_eq!(s.attach.dump_id, 10);
        assert_eq!(s.attach.dependencies, vec![1, -5, 11]);
        assert_eq!(s.build.dependencies, vec![1]);
    }
}
