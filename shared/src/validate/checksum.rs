//! Row counts and content checksums, computed inside the server, piece by piece.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex},
};

use serde::{Deserialize, Serialize};

use super::TableStats;
use crate::pg::{PgConfig, PgError};

/// Blocks per piece: 1 GiB of heap at the default 8 KiB block size, which one Lambda
/// invocation scans with time to spare.
pub const PIECE_BLOCKS: u64 = 131_072;

/// A table to count.
#[derive(Debug, Clone)]
pub(crate) struct TableRef {
    pub schema: String,
    pub name: String,
    /// `schema.table` quoted by the server (`format('%I.%I')`): safe to put in SQL.
    pub sql_name: String,
    pub blocks: u64,
    /// Every column type can be hashed directly (see `catalog::probe_hashable`).
    pub hashable: bool,
}

/// One piece of work: a table, or a range of its blocks (`ctid` range, PostgreSQL 14+).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub table: usize,
    pub first_block: u64,
    /// `None`: to the end of the table (rows added since the size was read count too).
    pub end_block: Option<u64>,
}

/// The pieces of `tables`: one per table, or one per `PIECE_BLOCKS` blocks of a large table.
pub(crate) fn pieces(tables: &[TableRef]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut first = 0;
        while first + PIECE_BLOCKS < t.blocks {
            out.push(Piece {
                table: i,
                first_block: first,
                end_block: Some(first + PIECE_BLOCKS),
            });
            first += PIECE_BLOCKS;
        }
        out.push(Piece {
            table: i,
            first_block: first,
            end_block: None,
        });
    }
    // Largest first, so that the long pieces do not end up last.
    out.sort_by_key(|p| {
        let end = p.end_block.unwrap_or(tables[p.table].blocks);
        std::cmp::Reverse(end.saturating_sub(p.first_block))
    });
    out
}

/// The partial result of one piece: count, sum of the high 32 bits of each row's 64-bit hash
/// (summed as int4 into an int8, which PostgreSQL does without numeric arithmetic), and xor of
/// the whole hashes. The sum catches duplicated rows, which an xor alone would cancel out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fold {
    rows: u64,
    sum: i64,
    xor: i64,
}

impl Fold {
    fn add(&mut self, other: Fold) {
        self.rows += other.rows;
        self.sum = self.sum.wrapping_add(other.sum);
        self.xor ^= other.xor;
    }

    fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.sum as u64, self.xor as u64)
    }
}

fn piece_sql(table: &TableRef, piece: &Piece, checksums: bool) -> String {
    let mut filter = String::new();
    if piece.first_block > 0 || piece.end_block.is_some() {
        filter = format!(" WHERE t.ctid >= '({},0)'::tid", piece.first_block);
        if let Some(end) = piece.end_block {
            filter.push_str(&format!(" AND t.ctid < '({end},0)'::tid"));
        }
    }
    if checksums {
        // Values hashed by their type's own hash function where every column has one (about
        // twice as fast as rendering text); otherwise the row's text form.
        let hash = if table.hashable {
            "hash_record_extended(t, 42)"
        } else {
            "hashtextextended(t::text, 42)"
        };
        format!(
            "SELECT count(*)::int8, coalesce(sum((h >> 32)::int4), 0)::int8, coalesce(bit_xor(h), 0)::int8 \
             FROM (SELECT {hash} AS h FROM ONLY {} t{filter}) q",
            table.sql_name
        )
    } else {
        format!(
            "SELECT count(*)::int8, 0::int8, 0::int8 FROM ONLY {} t{filter}",
            table.sql_name
        )
    }
}

/// Counts (and checksums) every table over `options.jobs` connections, largest pieces first.
pub(super) async fn run(
    config: &PgConfig,
    tables: &[TableRef],
    options: super::Options,
    snapshot: Option<String>,
) -> Result<Vec<TableStats>, PgError> {
    let queue = Arc::new(Mutex::new(
        pieces(tables).into_iter().collect::<VecDeque<_>>(),
    ));
    let results: Arc<Mutex<BTreeMap<usize, Fold>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let tables = Arc::new(tables.to_vec());
    let workers = options.jobs.max(1).min(queue.lock().unwrap().len().max(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let (queue, results, tables, config, snapshot) = (
            queue.clone(),
            results.clone(),
            tables.clone(),
            config.clone(),
            snapshot.clone(),
        );
        tasks.spawn(async move {
            let session = super::session(&config, snapshot.as_deref()).await?;
            loop {
                let Some(piece) = queue.lock().unwrap().pop_front() else {
                    return Ok::<_, PgError>(());
                };
                let row = session
                    .query_catalog_one(
                        &piece_sql(&tables[piece.table], &piece, options.checksums),
                        &[],
                    )
                    .await?;
                let fold = Fold {
                    rows: row.get::<_, i64>(0) as u64,
                    sum: row.get(1),
                    xor: row.get(2),
                };
                results
                    .lock()
                    .unwrap()
                    .entry(piece.table)
                    .or_default()
                    .add(fold);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| PgError::Connect {
            target: config.target(),
            reason: format!("a validation worker failed: {e}"),
        })??;
    }
    let results = results.lock().unwrap();
    Ok(tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let fold = results.get(&i).copied().unwrap_or_default();
            TableStats {
                schema: t.schema.clone(),
                name: t.name.clone(),
                rows: fold.rows,
                checksum: options.checksums.then(|| fold.hex()),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_tables_are_split_into_block_ranges() {
        let t = |blocks| TableRef {
            schema: "s".into(),
            name: "t".into(),
            sql_name: "s.t".into(),
            blocks,
            hashable: false,
        };
        let tables = vec![t(10), t(PIECE_BLOCKS * 2 + 5)];
        let pieces = pieces(&tables);
        assert_eq!(pieces.len(), 4);
        let big: Vec<&Piece> = pieces.iter().filter(|p| p.table == 1).collect();
        assert_eq!(big.len(), 3);
        assert!(
            big.iter()
                .any(|p| p.first_block == 2 * PIECE_BLOCKS && p.end_block.is_none())
        );
        let sql = piece_sql(&tables[1], big[0], true);
        assert!(
            sql.contains("ctid >=") && sql.contains("FROM ONLY s.t t"),
            "{sql}"
        );
    }

    #[test]
    fn folds_combine_in_any_order() {
        let a = Fold {
            rows: 2,
            sum: i64::MAX,
            xor: 5,
        };
        let b = Fold {
            rows: 3,
            sum: 7,
            xor: 9,
        };
        let mut ab = a;
        ab.add(b);
        let mut ba = b;
        ba.add(a);
        assert_eq!(ab, ba);
        assert_eq!(ab.rows, 5);
    }
}
