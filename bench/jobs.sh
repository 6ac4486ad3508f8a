#!/usr/bin/env bash
# Runs inside local-stack (PG* variables point at its server): builds the dataset, then
# alternates ours and theirs. Usage: jobs.sh SCALE ORDERS RUNS DATASET_SCRIPT [JOBS]
# JOBS: a comma-separated subset of validate,snapshot,restore,import (default: all).
# BENCH_CORPUS: a SQL file the dataset script loads first (the small database).
# BENCH_DELAY_MS: every timed command reaches the server through delay-proxy, which holds each
# chunk that many milliseconds in each direction (the round trip to a server farther away).
set -euo pipefail
scale=$1 orders=$2 runs=$3 dataset=$4 only=${5:-validate,snapshot,restore,import}
want() { [[ ",$only," == *",$1,"* ]]; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
delay=${BENCH_DELAY_MS:-0}
echo "bench: building the database (scale $scale, $orders orders${BENCH_CORPUS:+, after $BENCH_CORPUS}) ..." >&2
CSV_OUT="$work/orders.csv" CORPUS=${BENCH_CORPUS:-} bash "$dataset" bench "$scale" "$orders"
if (( delay > 0 )); then
  # From here on every client (ours and theirs, timed or not) goes through the proxy.
  delay-proxy 127.0.0.1:0 "localhost:$PGPORT" "$delay" > "$work/proxy" &
  proxy=$!
  trap 'kill $proxy 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do grep -q listening "$work/proxy" && break; sleep 0.1; done
  PGPORT=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/proxy")
  [[ -n $PGPORT ]] || { echo "bench: delay-proxy did not start" >&2; exit 1; }
  export PGPORT
  echo "bench: through delay-proxy on port $PGPORT, ${delay} ms each way" >&2
fi
# The CSV import reads the same file from the S3-compatible server (uploaded through its API, so
# that it keeps the object's ETag as S3 does) that psql \copy reads from local disk; both load
# an empty copy of orders.
want import && s3-put "$work/orders.csv" "${FERRY_S3_BUCKET}orders.csv"
want import && psql -X -q -d bench -c "CREATE TABLE orders_csv (LIKE orders INCLUDING ALL)"
csv_bytes=$(stat -c %s "$work/orders.csv")
echo "bench: orders.csv $csv_bytes bytes" >&2
size=$(psql -X -A -t -d bench -c "SELECT pg_database_size(current_database())")
echo "bench: database size $size bytes" >&2
db="postgres://$PGUSER@localhost:$PGPORT/bench?sslmode=verify-full&sslrootcert=$PGSSLROOTCERT"
# The database's manifest (not timed), so that validate then profiles only one database.
want validate && ferry validate --checksums --source "$db" --target "$db" --save-source-manifest "file://$work/manifest.json" >/dev/null

# The archive both restores read (pg_dump's, so pg_restore gets its data offsets).
want restore && pg_dump -Fc -f "$work/archive.dump" bench
want restore && s3-put "$work/archive.dump" "${FERRY_S3_BUCKET}archive.dump"

measure() { # NAME OUTPUT COMMAND... : appends "NAME seconds max-rss-kB output-bytes" to $work/times
  local name=$1 output=$2; shift 2
  rm -rf "$output"
  /usr/bin/time -f "%e %M" -o "$work/t" "$@" >"$work/out" 2>"$work/err" || {
    echo "bench: $name failed: $*" >&2; cat "$work/out" "$work/err" >&2; exit 1; }
  local bytes=0
  [[ -e $output ]] && bytes=$(du -sb "$output" | cut -f1)
  echo "$name $(cat "$work/t") $bytes" >> "$work/times"
  rm -rf "$output"
}
# Which of a pair goes first alternates from run to run, after a CHECKPOINT (so that neither pays
# for writes what ran before left behind).
pair() { # THEIRS-COMMAND... -- OURS-COMMAND...
  local theirs=() ours=()
  while [[ $1 != -- ]]; do theirs+=("$1"); shift; done
  shift; ours=("$@")
  psql -X -q -d bench -c CHECKPOINT
  if (( run % 2 )); then "${theirs[@]}"; "${ours[@]}"; else "${ours[@]}"; "${theirs[@]}"; fi
}
for run in $(seq "$runs"); do
  if want validate; then
    pair measure pg_dump_plain "$work/dump.sql" pg_dump -Fp -f "$work/dump.sql" bench \
      -- measure ferry_validate - ferry validate --checksums --source "file://$work/manifest.json" --target "$db"
  fi
  if want snapshot; then
    pair measure pg_dump_custom "$work/dump.custom" pg_dump -Fc -f "$work/dump.custom" bench \
      -- measure ferry_snapshot_custom "$work/snap" ferry snapshot --source "$db" --to "file://$work/snap/"
    pair measure pg_dump_directory "$work/dump.dir" pg_dump -Fd -j 2 -f "$work/dump.dir" bench \
      -- measure ferry_snapshot_directory "$work/snap" ferry snapshot --format directory --jobs 2 --source "$db" --to "file://$work/snap/"
    # The same into the S3-compatible server (sizes read from the directory it keeps them in).
    measure ferry_snapshot_custom_s3 "$FERRY_S3_BUCKET_DIR/snap" ferry snapshot --source "$db" --to "${FERRY_S3_BUCKET}snap/"
    measure ferry_snapshot_directory_s3 "$FERRY_S3_BUCKET_DIR/snap" ferry snapshot --format directory --jobs 2 --source "$db" --to "${FERRY_S3_BUCKET}snap/"
  fi
  if want restore; then
    # The same pg_dump -Fc archive into a fresh empty database each time (not timed), after a
    # CHECKPOINT so that no restore pays for writes left by what ran before it; which tool goes
    # first alternates from run to run.
    # A restored subscription (the small database's corpus has one) keeps its database from
    # being dropped until it is detached from its (never created) slot and dropped.
    drop_restored() {
      if psql -X -q -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'restored'" | grep -q 1; then
        psql -X -q -At -d restored -c "SELECT format('ALTER SUBSCRIPTION %I DISABLE; ALTER SUBSCRIPTION %I SET (slot_name = NONE); DROP SUBSCRIPTION %I;', subname, subname, subname) FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())" \
          | psql -X -q -d restored
        dropdb restored
      fi
    }
    restore_pg() {
      drop_restored; createdb restored; psql -X -q -d bench -c CHECKPOINT
      measure pg_restore_j2 - pg_restore -j 2 -d restored "$work/archive.dump"
    }
    restore_ferry() { # NAME FROM
      drop_restored; createdb restored; psql -X -q -d bench -c CHECKPOINT
      measure "$1" - ferry restore --jobs 2 --from "$2" \
        --target "postgres://$PGUSER@localhost:$PGPORT/restored?sslmode=verify-full&sslrootcert=$PGSSLROOTCERT"
    }
    if (( run % 2 )); then restore_pg; fi
    restore_ferry ferry_restore_j2 "file://$work/archive.dump"
    restore_ferry ferry_restore_j2_s3 "${FERRY_S3_BUCKET}archive.dump"
    if (( run % 2 == 0 )); then restore_pg; fi
    drop_restored
  fi
  if want import; then
    # An empty table each time (and an empty ledger, or the import would be a no-op).
    empty_csv_table() {
      psql -X -q -d bench -c "TRUNCATE orders_csv" \
        -c "DO \$\$ BEGIN IF to_regclass('ferry_import.ledger') IS NOT NULL THEN TRUNCATE ferry_import.ledger; END IF; END \$\$"
    }
    empty_csv_table
    measure psql_copy - psql -X -q -d bench \
      -c "\\copy orders_csv (customer_id, status, total, placed_at, note, meta) from '$work/orders.csv' csv header"
    empty_csv_table
    measure ferry_import_s3 - ferry import-csv --from "${FERRY_S3_BUCKET}orders.csv" --target "$db" --table public.orders_csv
    empty_csv_table
    measure ferry_import_local - ferry import-csv --from "file://$work/orders.csv" --target "$db" --table public.orders_csv
    # Back to the state the manifest recorded (validate compares against it on the next run):
    # the identity sequence too, and the manifest saved again (not timed), since the cleanup
    # itself may change what the database holds (the small database's event trigger logs drops).
    psql -X -q -d bench -c "TRUNCATE orders_csv RESTART IDENTITY" -c "DROP SCHEMA IF EXISTS ferry_import CASCADE" -c "ANALYZE orders_csv"
    want validate && ferry validate --checksums --source "$db" --target "$db" --save-source-manifest "file://$work/manifest.json" >/dev/null
  fi
done
python3 "$here/report.py" "$work/times" "$size" "$scale" "$orders" "$runs" "$delay" "${BENCH_CORPUS:-}"
