//! Restore order: pg_dump's type priorities, bent by dependencies.
//!
//! Items are emitted lowest priority first (schemas, types, functions, tables, data, indexes,
//! constraints, ...), then by schema and name, except that nothing comes before what it depends
//! on: a view over a view, a table whose default calls a function, a function whose SQL body
//! reads a table. Dependencies come from the items themselves (an index needs its table) and
//! from `pg_depend` between the objects created before data. A cycle (which pg_dump breaks
//! with dummy objects) is broken here by taking the lowest item anyway; it is logged.

use std::{
    cmp::Reverse,
    collections::{BTreeSet, BinaryHeap, HashMap},
};

use super::ddl::{Dep, Item, Schema};
use crate::archive::Section;

/// The items in restore order, each with the positions (in that order) it depends on.
pub(super) struct Ordered {
    pub items: Vec<Item>,
    pub deps: Vec<Vec<usize>>,
}

pub(super) fn order(schema: Schema) -> Ordered {
    let Schema { items, edges } = schema;
    let by_key: HashMap<_, usize> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| item.key.map(|k| (k, i)))
        .collect();
    let mut deps: Vec<BTreeSet<usize>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.deps
                .iter()
                .filter_map(|d| match d {
                    Dep::Item(j) => Some(*j),
                    Dep::Object(k) => by_key.get(k).copied(),
                })
                .filter(|&j| j != i)
                .collect()
        })
        .collect();
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (by_key.get(&from), by_key.get(&to))
            && a != b
            && items[a].section == Section::PreData
            && items[b].section == Section::PreData
        {
            deps[a].insert(b);
        }
    }
    add_refresh_dependencies(&items, &mut deps);

    // Kahn's algorithm with a priority queue: always the lowest ready item.
    let n = items.len();
    let mut waiting_on: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let rank = |i: usize| {
        Reverse((
            items[i].priority,
            items[i].namespace.clone().unwrap_or_default(),
            items[i].tag.clone(),
            i,
        ))
    };
    let mut ready: BinaryHeap<_> = (0..n).filter(|&i| waiting_on[i] == 0).map(rank).collect();
    let mut done = vec![false; n];
    let mut sequence = Vec::with_capacity(n);
    while sequence.len() < n {
        let next = match ready.pop() {
            Some(Reverse((_, _, _, i))) if !done[i] => i,
            Some(_) => continue,
            None => {
                // A cycle: take the lowest remaining item anyway.
                let i = (0..n)
                    .filter(|&i| !done[i])
                    .min_by_key(|&i| rank(i).0)
                    .expect("items remain");
                tracing::warn!(
                    item = %items[i].tag,
                    kind = %items[i].desc,
                    "dependency cycle; emitting this item before something it depends on"
                );
                i
            }
        };
        done[next] = true;
        sequence.push(next);
        for &d in &dependents[next] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 && !done[d] {
                ready.push(rank(d));
            }
        }
    }
    let mut position = vec![0; n];
    for (p, &i) in sequence.iter().enumerate() {
        position[i] = p;
    }
    let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
    let ordered_items = sequence
        .iter()
        .map(|&i| slots[i].take().expect("each item once"))
        .collect();
    let ordered_deps = sequence
        .iter()
        .map(|&i| deps[i].iter().map(|&d| position[d]).collect())
        .collect();
    Ordered {
        items: ordered_items,
        deps: ordered_deps,
    }
}

/// A materialized view's refresh must wait for the data of every table it reads (directly or
/// through views and other materialized views), and for those materialized views' refreshes:
/// a parallel restore would otherwise refresh it over empty tables.
fn add_refresh_dependencies(items: &[Item], deps: &mut [BTreeSet<usize>]) {
    let data_of: HashMap<usize, usize> = items
        .iter()
        .enumerate()
        .filter(|(_, item)| item.data.is_some() || item.desc == "MATERIALIZED VIEW DATA")
        .filter_map(|(i, item)| match item.deps.first() {
            Some(Dep::Item(owner)) => Some((*owner, i)),
            _ => None,
        })
        .collect();
    for (i, item) in items.iter().enumerate() {
        if item.desc != "MATERIALIZED VIEW DATA" {
            continue;
        }
        let Some(Dep::Item(view)) = item.deps.first() else {
            continue;
        };
        let mut seen = BTreeSet::new();
        let mut stack: Vec<usize> = deps[*view].iter().copied().collect();
        while let Some(j) = stack.pop() {
            if !seen.insert(j) {
                continue;
            }
            if let Some(&data) = data_of.get(&j)
                && data != i
            {
                deps[i].insert(data);
            }
            stack.extend(deps[j].iter().copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(desc: &str, tag: &str, priority: u16, deps: Vec<Dep>) -> Item {
        Item {
            key: Some((1259, priority as u32 * 100 + tag.len() as u32)),
            desc: desc.into(),
            tag: tag.into(),
            namespace: Some("public".into()),
            owner: None,
            defn: String::new(),
            drop: None,
            section: Section::PreData,
            priority,
            deps,
            catalog: 1259,
            relkind: 0,
            tableam: None,
            tablespace: None,
            data: None,
            blobs: None,
            placeholder: false,
        }
    }

    #[test]
    fn priorities_order_unless_a_dependency_says_otherwise() {
        // A view "a_view" over view "b_view": same priority, b first despite the name.
        let items = vec![
            item("VIEW", "a_view", 20, vec![Dep::Item(1)]),
            item("VIEW", "b_view", 20, vec![]),
            item("FUNCTION", "f()", 8, vec![]),
            item("SCHEMA", "s", 1, vec![]),
        ];
        let ordered = order(Schema {
            items,
            edges: Vec::new(),
        });
        let tags: Vec<&str> = ordered.items.iter().map(|i| i.tag.as_str()).collect();
        assert_eq!(tags, ["s", "f()", "b_view", "a_view"]);
        assert_eq!(ordered.deps[3], vec![2]);
    }

    #[test]
    fn a_cycle_is_broken_not_lost() {
        let items = vec![
            item("TABLE", "a", 20, vec![Dep::Item(1)]),
            item("TABLE", "b", 20, vec![Dep::Item(0)]),
        ];
        let ordered = order(Schema {
            items,
            edges: Vec::new(),
        });
        assert_eq!(ordered.items.len(), 2);
    }
}
