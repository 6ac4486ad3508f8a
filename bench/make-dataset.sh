#!/usr/bin/env bash
# The reference benchmark database: pgbench's tables at scale S (3M accounts at the default 30)
# and an `orders` table of N rows (2,000,000 by default) with the column types applications
# hold (identity bigint, int, text, numeric, timestamptz, jsonb) and a secondary index; about
# 0.9 GB at the defaults. With CSV_OUT set, also writes the orders (six columns, no id, with a
# header) there as CSV, the import benchmark's file. SCALE 0 leaves out pgbench's tables; with
# CORPUS set to a SQL file, that file is loaded first (the small database: the test corpus's
# schema, every object kind ferry dumps, plus the orders).
#   bench/make-dataset.sh DBNAME [SCALE] [ORDERS]      (connection from the PG* variables)
set -euo pipefail
db=${1:?usage: make-dataset.sh DBNAME [SCALE] [ORDERS]}
scale=${2:-30}
orders=${3:-2000000}
createdb "$db"
if [[ -n ${CORPUS:-} ]]; then
  PGOPTIONS="-c client_min_messages=error" psql --quiet --set ON_ERROR_STOP=1 --dbname "$db" --file "$CORPUS" >/dev/null
fi
if (( scale > 0 )); then
  pgbench --initialize --quiet --scale "$scale" "$db" >/dev/null 2>&1
fi
psql --quiet --set ON_ERROR_STOP=1 --dbname "$db" <<SQL
CREATE TABLE orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL,
    status text NOT NULL,
    total numeric(12, 2),
    placed_at timestamptz NOT NULL DEFAULT now(),
    note text,
    meta jsonb
);
INSERT INTO orders (customer_id, status, total, placed_at, note, meta)
SELECT (random() * 100000)::integer,
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + n % 4],
       round((random() * 1000)::numeric, 2),
       timestamptz '2026-01-01' - make_interval(secs => n),
       md5(n::text) || ' some note text ' || n,
       jsonb_build_object('sku', 'SKU-' || (n % 5000), 'qty', n % 7, 'tags', jsonb_build_array('a', 'b'))
FROM generate_series(1, $orders) AS n;
CREATE INDEX ON orders (customer_id);
ANALYZE;
SQL
if [[ -n ${CSV_OUT:-} ]]; then
  psql --quiet --dbname "$db" \
    --command "\\copy (SELECT customer_id, status, total, placed_at, note, meta FROM orders ORDER BY id) TO '$CSV_OUT' CSV HEADER"
fi
