#!/usr/bin/env bash
# Runs inside local-stack (PG* variables point at its server): builds the dataset, then
# alternates ours and theirs. Usage: jobs.sh SCALE ORDERS RUNS DATASET_SCRIPT
set -euo pipefail
scale=$1 orders=$2 runs=$3 dataset=$4
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "bench: building the reference database (scale $scale, $orders orders) ..." >&2
bash "$dataset" bench "$scale" "$orders"
size=$(psql -X -A -t -d bench -c "SELECT pg_database_size(current_database())")
echo "bench: database size $size bytes" >&2
db="postgres://$PGUSER@localhost:$PGPORT/bench?sslmode=verify-full&sslrootcert=$PGSSLROOTCERT"
# The database's manifest (not timed), so that validate then profiles only one database.
ferry validate --checksums --source "$db" --target "$db" --save-source-manifest "file://$work/manifest.json" >/dev/null

# The archive both restores read (pg_dump's, so pg_restore gets its data offsets).
pg_dump -Fc -f "$work/archive.dump" bench

measure() { # NAME OUTPUT COMMAND... : appends "NAME seconds max-rss-kB output-bytes" to $work/times
  local name=$1 output=$2; shift 2
  rm -rf "$output"
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  local bytes=0
  [[ -e $output ]] && bytes=$(du -sb "$output" | cut -f1)
  echo "$name $(cat "$work/t") $bytes" >> "$work/times"
  rm -rf "$output"
}
for _ in $(seq "$runs"); do
  measure pg_dump_plain "$work/dump.sql" pg_dump -Fp -f "$work/dump.sql" bench
  measure ferry_validate - ferry validate --checksums --source "file://$work/manifest.json" --target "$db"
  measure pg_dump_custom "$work/dump.custom" pg_dump -Fc -f "$work/dump.custom" bench
  measure ferry_snapshot_custom "$work/snap" ferry snapshot --source "$db" --to "file://$work/snap/"
  measure pg_dump_directory "$work/dump.dir" pg_dump -Fd -j 2 -f "$work/dump.dir" bench
  measure ferry_snapshot_directory "$work/snap" ferry snapshot --format directory --jobs 2 --source "$db" --to "file://$work/snap/"
  # Restore: the same pg_dump -Fc archive into a fresh empty database each time (not timed).
  dropdb --if-exists restored; createdb restored
  measure pg_restore_j2 - pg_restore -j 2 -d restored "$work/archive.dump"
  dropdb restored; createdb restored
  measure ferry_restore_j2 - ferry restore --jobs 2 --from "file://$work/archive.dump" \
    --target "postgres://$PGUSER@localhost:$PGPORT/restored?sslmode=verify-full&sslrootcert=$PGSSLROOTCERT"
  dropdb restored
done
python3 "$here/report.py" "$work/times" "$size" "$scale" "$orders" "$runs"
