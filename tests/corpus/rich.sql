-- A rich schema for the snapshot fidelity test: every object kind ferry dumps, awkward names,
-- and values that stress COPY. Loaded into a fresh database as a superuser.
CREATE EXTENSION IF NOT EXISTS pgcrypto;
-- An extension with configuration tables (tests/fixtures/extension, installed by dev/setup):
-- the rows added since it was created are dumped, its own are not.
CREATE EXTENSION ferry_fixture;
INSERT INTO ferry_fixture.settings VALUES ('tenant', 'it''s acme', false);
INSERT INTO ferry_fixture.log (what) VALUES ('first'), ('second');
CREATE SCHEMA app;
CREATE SCHEMA "Odd Schema";
COMMENT ON SCHEMA app IS 'application schema';
DO $$ BEGIN CREATE ROLE corpus_reader NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;

CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy', 'it''s complicated');
CREATE TYPE app.pair AS (left_part integer, "right part" text COLLATE "C");
CREATE TYPE app.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE DOMAIN app.positive AS integer DEFAULT 1 NOT NULL CONSTRAINT positive_check CHECK (VALUE > 0);
CREATE DOMAIN app.email AS text COLLATE "C" CHECK (VALUE ~ '@');
COMMENT ON TYPE app.mood IS 'how it went';

CREATE FUNCTION app.add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE AS $$ SELECT i + 1 $$;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$fn$;
CREATE PROCEDURE app.noop(IN x integer) LANGUAGE plpgsql AS $$ BEGIN PERFORM x; END $$;
CREATE FUNCTION app.sum_state(s integer, v integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT s + v';
CREATE AGGREGATE app.total(integer) (SFUNC = app.sum_state, STYPE = integer, INITCOND = '0');
COMMENT ON FUNCTION app.add_one(integer) IS 'adds one';

CREATE SEQUENCE app.counter AS integer START WITH 100 INCREMENT BY 5 MINVALUE 100 MAXVALUE 100000 CACHE 1 CYCLE;
SELECT nextval('app.counter'), nextval('app.counter');
CREATE SEQUENCE app.unused_seq;

CREATE TABLE app.customers (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email app.email NOT NULL UNIQUE,
    name text NOT NULL DEFAULT 'anonymous',
    mood app.mood,
    score numeric(10, 2) CHECK (score >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    doubled integer GENERATED ALWAYS AS (id * 2) STORED,
    "select" text,
    "Mixed Case" text COLLATE "C",
    payload jsonb,
    CONSTRAINT name_not_blank CHECK (name <> '')
) WITH (fillfactor = 90);
ALTER TABLE app.customers ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE app.customers ALTER COLUMN name SET STATISTICS 500;
COMMENT ON TABLE app.customers IS 'people who buy';
COMMENT ON COLUMN app.customers."select" IS 'a reserved word';

CREATE TABLE app.orders (
    id bigserial PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES app.customers (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    placed_on date NOT NULL,
    amount app.positive,
    tags text[],
    during tstzrange,
    spread app.floatrange,
    pair app.pair,
    note text,
    raw bytea,
    ratio double precision,
    EXCLUDE USING gist (during WITH &&) WHERE (during IS NOT NULL)
);
CREATE INDEX orders_placed_idx ON app.orders (placed_on DESC) WHERE amount > 1;
CREATE INDEX orders_note_lower_idx ON app.orders (lower(note));
CREATE INDEX orders_tags_gin ON app.orders USING gin (tags);
CREATE UNIQUE INDEX orders_customer_placed_uq ON app.orders (customer_id, placed_on, id);
ALTER TABLE app.orders CLUSTER ON orders_note_lower_idx;
CREATE STATISTICS app.orders_stats (dependencies, ndistinct) ON customer_id, placed_on FROM app.orders;

-- Foreign keys in a cycle.
CREATE TABLE app.teams (id integer PRIMARY KEY, lead_id integer);
CREATE TABLE app.members (id integer PRIMARY KEY, team_id integer REFERENCES app.teams (id));
ALTER TABLE app.teams ADD CONSTRAINT teams_lead_fk FOREIGN KEY (lead_id) REFERENCES app.members (id) DEFERRABLE;

-- Declarative partitioning with a partitioned index and primary key.
CREATE TABLE app.events (
    id bigint NOT NULL,
    at date NOT NULL,
    kind text NOT NULL DEFAULT 'click',
    body text,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE app.events_2024 PARTITION OF app.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE app.events_2025 PARTITION OF app.events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')
    PARTITION BY RANGE (at);
CREATE TABLE app.events_2025_h1 PARTITION OF app.events_2025 FOR VALUES FROM ('2025-01-01') TO ('2025-07-01');
CREATE TABLE app.events_2025_h2 PARTITION OF app.events_2025 DEFAULT;
CREATE INDEX events_kind_idx ON app.events (kind);

-- Inheritance.
CREATE TABLE app.animals (id integer, name text NOT NULL);
CREATE TABLE app.dogs (breed text) INHERITS (app.animals);

CREATE UNLOGGED TABLE app.scratch (k text PRIMARY KEY, v text);

-- Identifiers with quotes, spaces, unicode.
CREATE TABLE "Odd Schema"."Table ""quoted"" name" (
    "column with space" integer PRIMARY KEY,
    "ünïcødé" text,
    "user" text
);

-- Keys of every form: composite and oddly named, INCLUDE, a fill factor, deferrable, several
-- unique keys and an index on one table, one clustered on, one the replica identity.
CREATE TABLE app.keyed (
    a integer,
    "b)c" text,
    d integer NOT NULL,
    e integer NOT NULL,
    f integer NOT NULL,
    CONSTRAINT "keyed (pk)" PRIMARY KEY (a, "b)c"),
    CONSTRAINT keyed_d_uq UNIQUE (d) INCLUDE (e),
    CONSTRAINT keyed_e_uq UNIQUE (e) WITH (fillfactor = 70),
    CONSTRAINT keyed_f_uq UNIQUE (f) WITH (fillfactor = 80) DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT keyed_df_uq UNIQUE (d, f)
);
CREATE INDEX keyed_e ON app.keyed (e);
ALTER TABLE app.keyed CLUSTER ON "keyed (pk)";
ALTER TABLE app.keyed REPLICA IDENTITY USING INDEX keyed_df_uq;

-- Values that stress COPY.
CREATE TABLE app.stress (
    id integer PRIMARY KEY,
    t text,
    f float8,
    n numeric,
    arr integer[],
    comp app.pair,
    r int4range,
    b bytea,
    j json,
    ts timestamp,
    iv interval
);

-- Views, a view over a view, a materialized view with an index.
CREATE VIEW app.customer_totals AS
    SELECT c.id, c.name, sum(o.amount) AS total FROM app.customers c LEFT JOIN app.orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
CREATE VIEW app.big_customers WITH (security_barrier = true) AS
    SELECT * FROM app.customer_totals WHERE total > 10;
CREATE MATERIALIZED VIEW app.order_stats AS
    SELECT customer_id, count(*) AS n FROM app.orders GROUP BY customer_id;
CREATE UNIQUE INDEX order_stats_customer ON app.order_stats (customer_id);
CREATE MATERIALIZED VIEW app.empty_stats AS SELECT 1 AS one WITH NO DATA;
-- Valid only once the primary key exists (the other columns of a grouped key's table): made
-- after the keys, as pg_dump makes them (a view first with NULL columns, then its query).
CREATE VIEW app.customer_orders AS SELECT c.id, c.name, c.email, count(o.id) AS orders
  FROM app.customers c LEFT JOIN app.orders o ON o.customer_id = c.id GROUP BY c.id;
CREATE MATERIALIZED VIEW app.customer_names AS SELECT c.id, c.name, count(*) AS n FROM app.customers c GROUP BY c.id;
CREATE VIEW app.customer_orders_named AS SELECT id, name FROM app.customer_orders;

-- Triggers, rules, row-level security, grants.
CREATE TRIGGER customers_touch BEFORE UPDATE ON app.customers FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE TRIGGER orders_touch_disabled BEFORE UPDATE ON app.orders FOR EACH ROW EXECUTE FUNCTION app.touch();
ALTER TABLE app.orders DISABLE TRIGGER orders_touch_disabled;
CREATE RULE scratch_no_delete AS ON DELETE TO app.scratch DO INSTEAD NOTHING;
ALTER TABLE app.customers ENABLE ROW LEVEL SECURITY;
CREATE POLICY customers_reader ON app.customers FOR SELECT TO corpus_reader USING (mood IS DISTINCT FROM 'sad');
CREATE POLICY customers_all ON app.customers AS RESTRICTIVE USING (true) WITH CHECK (score IS NULL OR score < 1000);
GRANT USAGE ON SCHEMA app TO corpus_reader;
GRANT SELECT ON app.customers TO corpus_reader;
GRANT SELECT, UPDATE (note) ON app.orders TO corpus_reader;
REVOKE EXECUTE ON FUNCTION app.add_one(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.add_one(integer) TO corpus_reader;
GRANT USAGE ON SEQUENCE app.counter TO corpus_reader;

-- Data.
INSERT INTO app.customers (email, name, mood, score, created_at, "select", "Mixed Case", payload)
SELECT 'user' || i || '@example.com', 'name ' || i, (ARRAY['sad', 'ok', 'happy', 'it''s complicated'])[1 + i % 4]::app.mood,
       i * 1.25, '2024-01-01 00:00:00+00'::timestamptz + i * interval '1 hour', 'sel ' || i, 'MC' || i,
       jsonb_build_object('i', i, 'nested', jsonb_build_array(i, 'x'))
FROM generate_series(1, 500) i;
INSERT INTO app.orders (customer_id, placed_on, amount, tags, during, spread, pair, note, raw, ratio)
SELECT 1 + i % 500, date '2024-01-01' + i % 400, 1 + i % 7, ARRAY['t' || i % 5, NULL, 'with space'],
       CASE WHEN i % 10 = 0 THEN tstzrange('2024-01-01'::timestamptz + i * interval '1 day', '2024-01-01'::timestamptz + (i + 1) * interval '1 day') END,
       app.floatrange(i, i + 0.5), ROW(i, 'r' || i)::app.pair, CASE WHEN i % 3 = 0 THEN NULL ELSE 'note ' || i END,
       decode(md5(i::text), 'hex'), i / 7.0
FROM generate_series(1, 5000) i;
INSERT INTO app.members VALUES (1, NULL), (2, NULL), (-3, NULL);
INSERT INTO app.teams VALUES (10, 1), (20, 2);
UPDATE app.members SET team_id = 10 WHERE id = 1;
INSERT INTO app.events SELECT i, date '2024-06-01' + (i % 570), CASE WHEN i % 2 = 0 THEN 'click' ELSE 'view' END, 'b' || i FROM generate_series(1, 3000) i;
INSERT INTO app.animals VALUES (1, 'cat');
INSERT INTO app.dogs VALUES (2, 'rex', 'collie');
INSERT INTO app.scratch VALUES ('a', 'b');
INSERT INTO app.keyed SELECT i, 'k' || i, i, i, i FROM generate_series(1, 500) i;
INSERT INTO "Odd Schema"."Table ""quoted"" name" VALUES (1, 'ça va', 'u'), (2, NULL, '');
INSERT INTO app.stress VALUES
    (1, E'tab\there', 'NaN', 'NaN', '{1,2,NULL}', ROW(1, E'a\\b'), '[1,5)', '\x00ff', '{"a": [1, "\\n"]}', '2024-02-29 12:34:56.789', '1 year 2 mons 3 days 04:05:06'),
    (2, E'new\nline', 'Infinity', '1e-20', '{}', ROW(NULL, NULL), 'empty', '', 'null', 'infinity', '-1 day'),
    (3, E'back\\slash', '-Infinity', '-0.000', NULL, NULL, NULL, NULL, NULL, '-infinity', NULL),
    (4, '\.', 0, 123456789012345678901234567890.123, '{{1,2},{3,4}}', ROW(4, ''), '(,)', '\x5c2e', '"\\."', NULL, '0'),
    (5, '', -0.0, NULL, '{-1}', ROW(5, 'quote"d'), '[3,3]', '\x0a0d09', '[]', '2000-01-01', '00:00:00.000001'),
    (6, NULL, 1.5e300, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (7, E'\r\n carriage', 2.2250738585072014e-308, '-Infinity', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (8, 'ünïcødé ✓ 😀', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
REFRESH MATERIALIZED VIEW app.order_stats;
SELECT setval('app.unused_seq', 42, false);
ALTER TABLE app.members ADD CONSTRAINT members_id_positive CHECK (id > 0) NOT VALID;

-- What pg_dump carries that a copy must too: positions, grants, comments and the object kinds
-- ferry once refused.
DO $$ BEGIN CREATE ROLE corpus_granter NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$;
CREATE SEQUENCE app.restarted;
ALTER SEQUENCE app.restarted RESTART WITH 1000;
GRANT CREATE ON SCHEMA public TO PUBLIC;
COMMENT ON SCHEMA public IS 'changed public';
CREATE FUNCTION app.text_length(s text) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT length(s)';
CREATE AGGREGATE app.concat_all(text) (SFUNC = textcat, STYPE = text, INITCOND = '',
    MSFUNC = textcat, MINVFUNC = textcat, MSTYPE = text, MINITCOND = '');
CREATE AGGREGATE app.total_length(text) (SFUNC = textcat, STYPE = text, INITCOND = '',
    FINALFUNC = app.text_length, FINALFUNC_MODIFY = SHAREABLE);
COMMENT ON AGGREGATE app.total_length(text) IS 'length of everything';
GRANT EXECUTE ON FUNCTION app.total_length(text) TO corpus_reader;
ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO corpus_reader;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES FOR ROLE corpus_granter IN SCHEMA app GRANT USAGE ON SEQUENCES TO corpus_reader;
GRANT USAGE ON SCHEMA app TO corpus_granter;
GRANT SELECT ON app.keyed TO corpus_granter WITH GRANT OPTION;
SET ROLE corpus_granter;
GRANT SELECT ON app.keyed TO corpus_reader;
RESET ROLE;
CREATE COLLATION app.c_sort (locale = 'C');
COMMENT ON COLLATION app.c_sort IS 'bytewise';
DO $$ BEGIN
  CREATE COLLATION app.case_blind (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXCEPTION WHEN feature_not_supported THEN NULL; -- a server built without ICU
END $$;
COMMENT ON INDEX app.orders_placed_idx IS 'recent orders';
COMMENT ON INDEX app.keyed_e_uq IS 'the index behind a key';
COMMENT ON CONSTRAINT keyed_e_uq ON app.keyed IS 'a key';
COMMENT ON CONSTRAINT name_not_blank ON app.customers IS 'names are not blank';
COMMENT ON CONSTRAINT orders_customer_id_fkey ON app.orders IS 'who ordered';
COMMENT ON CONSTRAINT members_id_positive ON app.members IS 'checked later';
COMMENT ON CONSTRAINT positive_check ON DOMAIN app.positive IS 'above zero';
COMMENT ON COLUMN app.pair."right part" IS 'a composite type''s column';
COMMENT ON TRIGGER customers_touch ON app.customers IS 'stamps updates';
COMMENT ON RULE scratch_no_delete ON app.scratch IS 'keeps rows';
COMMENT ON POLICY customers_reader ON app.customers IS 'readers see the cheerful';
COMMENT ON MATERIALIZED VIEW app.order_stats IS 'per customer';
COMMENT ON VIEW app.customer_totals IS 'totals';
COMMENT ON COLUMN app.customer_totals.total IS 'sum of amounts';
COMMENT ON SEQUENCE app.counter IS 'counts by five';
COMMENT ON STATISTICS app.orders_stats IS 'correlated columns';
GRANT SELECT (id, name) ON app.customer_totals TO corpus_reader;
ALTER INDEX app.orders_note_lower_idx ALTER COLUMN 1 SET STATISTICS 200;
ALTER TABLE app.scratch ENABLE ALWAYS RULE scratch_no_delete;
CREATE FUNCTION app.event_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER events_noop BEFORE INSERT ON app.events FOR EACH ROW EXECUTE FUNCTION app.event_noop();
ALTER TABLE app.events_2024 DISABLE TRIGGER events_noop;
ALTER TABLE app.animals ALTER COLUMN name SET DEFAULT 'unnamed';
ALTER TABLE app.dogs ALTER COLUMN name SET DEFAULT 'rex';
-- An index a failed CREATE INDEX CONCURRENTLY leaves behind: pg_dump skips it.
CREATE INDEX stress_t_invalid ON app.stress (t);
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'app.stress_t_invalid'::regclass;
CREATE PUBLICATION corpus_all FOR ALL TABLES WITH (publish = 'insert, truncate');
CREATE PUBLICATION "corpus ""some"" tables" FOR TABLE app.customers, app.events WITH (publish_via_partition_root = true);
COMMENT ON PUBLICATION corpus_all IS 'everything';
DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 150000 THEN
    EXECUTE 'CREATE PUBLICATION corpus_filtered FOR TABLE app.orders (id, customer_id, note) WHERE (note IS NOT NULL)';
    EXECUTE 'CREATE PUBLICATION corpus_schemas FOR TABLES IN SCHEMA "Odd Schema", app WITH (publish = ''insert'')';
  END IF;
END $$;
CREATE FUNCTION app.on_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER corpus_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE')
    EXECUTE FUNCTION app.on_ddl();
ALTER EVENT TRIGGER corpus_ddl ENABLE ALWAYS;
COMMENT ON EVENT TRIGGER corpus_ddl IS 'watches DDL';
DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'ALTER TABLE app.keyed ADD COLUMN twice_d integer GENERATED ALWAYS AS (d * 2) VIRTUAL';
  END IF;
END $$;

-- Operators, casts, conversions, text search, foreign data, typed tables.
CREATE SCHEMA extra;
CREATE FUNCTION extra.same(integer, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE FUNCTION extra.ltext(integer, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1::text < $2';
CREATE OPERATOR extra.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = extra.same,
    COMMUTATOR = OPERATOR(extra.===));
CREATE TEXT SEARCH DICTIONARY extra.plain (TEMPLATE = pg_catalog.simple);
CREATE TEXT SEARCH CONFIGURATION extra.words (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION extra.words ALTER MAPPING FOR word, asciiword WITH extra.plain;
CREATE TYPE extra.wrapped AS (v integer);
CREATE FUNCTION extra.wrap(integer) RETURNS extra.wrapped LANGUAGE sql IMMUTABLE AS 'SELECT ROW($1)::extra.wrapped';
CREATE CAST (integer AS extra.wrapped) WITH FUNCTION extra.wrap(integer);
CREATE CONVERSION extra.latin_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
CREATE FOREIGN DATA WRAPPER extra_wrapper OPTIONS (debug 'false');
CREATE SERVER extra_server FOREIGN DATA WRAPPER extra_wrapper OPTIONS (host 'db.example', port '5432');
CREATE USER MAPPING FOR PUBLIC SERVER extra_server OPTIONS (user 'remote', password 'never-printed');
CREATE FOREIGN TABLE extra.remote (id integer OPTIONS (column_name 'remote_id'), note text)
    SERVER extra_server OPTIONS (table_name 'remote');
GRANT USAGE ON FOREIGN SERVER extra_server TO corpus_reader;
COMMENT ON SERVER extra_server IS 'a server elsewhere';
COMMENT ON TEXT SEARCH CONFIGURATION extra.words IS 'plain words';
COMMENT ON OPERATOR extra.=== (integer, integer) IS 'equal, spelled long';
GRANT SELECT ON extra.remote TO corpus_reader;
-- A shell operator (a commutator named, never defined): pg_dump leaves it out. An operator of
-- another owner.
CREATE OPERATOR extra.<<< (LEFTARG = integer, RIGHTARG = text, FUNCTION = extra.ltext,
    COMMUTATOR = OPERATOR(extra.>>>));
ALTER OPERATOR extra.=== (integer, integer) OWNER TO corpus_granter;
CREATE TYPE extra.point2 AS (x integer, y integer);
CREATE TABLE extra.typed OF extra.point2 (x WITH OPTIONS NOT NULL, PRIMARY KEY (x));
CREATE TABLE extra.typed_plain OF extra.point2;
INSERT INTO extra.typed VALUES (1, 2), (3, NULL);
-- Cases the hostile reviews found: an enum label holding ", ", an aggregate of no arguments, a
-- trigger disabled on a partition that has partitions, a child without its parent's default, a
-- column grant made by a role a table grant empowered, 18's default privileges on large objects.
CREATE TYPE app.labels AS ENUM ('a, b', 'c');
CREATE AGGREGATE app.count_all(*) (SFUNC = int8inc, STYPE = int8, INITCOND = '0');
ALTER TABLE app.events_2025 DISABLE TRIGGER events_noop;
CREATE TABLE app.cats () INHERITS (app.animals);
ALTER TABLE app.cats ALTER COLUMN name DROP DEFAULT;
GRANT SELECT ON app.stress TO corpus_granter WITH GRANT OPTION;
SET ROLE corpus_granter;
GRANT SELECT (t) ON app.stress TO corpus_reader;
RESET ROLE;
DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'ALTER DEFAULT PRIVILEGES GRANT SELECT ON LARGE OBJECTS TO corpus_reader';
  END IF;
END $$;
-- Identity sequences whose persistence is not their table's (15+: one line, which the tests
-- of older servers leave out).
DO $$ BEGIN IF current_setting('server_version_num')::int >= 150000 THEN EXECUTE 'CREATE TABLE app.logged_ident (id int GENERATED BY DEFAULT AS IDENTITY, v text)'; EXECUTE 'ALTER SEQUENCE app.logged_ident_id_seq SET UNLOGGED'; EXECUTE 'CREATE UNLOGGED TABLE app.unlogged_ident (id int NOT NULL, v text)'; EXECUTE 'ALTER TABLE app.unlogged_ident ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME app.unlogged_ident_seq LOGGED)'; EXECUTE 'INSERT INTO app.logged_ident (v) VALUES (''a'')'; END IF; END $$;
-- Operator families and classes: a family with members of its own, a class in it (used by an
-- index), a class whose family it made, a gist class ordering by distance, an empty family.
CREATE FUNCTION app.rev_cmp(integer, integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS 'SELECT btint4cmp($2, $1)';
CREATE OPERATOR FAMILY app.rev_fam USING btree;
CREATE OPERATOR CLASS app.rev_ops FOR TYPE integer USING btree FAMILY app.rev_fam AS
  OPERATOR 1 >, OPERATOR 2 >=, OPERATOR 3 =, OPERATOR 4 <=, OPERATOR 5 <, FUNCTION 1 app.rev_cmp(integer, integer);
ALTER OPERATOR FAMILY app.rev_fam USING btree ADD OPERATOR 3 = (integer, bigint), FUNCTION 1 (integer, bigint) btint48cmp(integer, bigint);
CREATE OPERATOR CLASS "Odd Schema"."int hash ops" FOR TYPE integer USING hash AS OPERATOR 1 =, FUNCTION 1 hashint4(integer);
CREATE OPERATOR CLASS app.box_ops FOR TYPE box USING gist AS STORAGE box, OPERATOR 3 &&,
  OPERATOR 15 <-> (box, point) FOR ORDER BY pg_catalog.float_ops,
  FUNCTION 1 gist_box_consistent(internal, box, smallint, oid, internal), FUNCTION 2 gist_box_union(internal, internal),
  FUNCTION 5 gist_box_penalty(internal, internal, internal), FUNCTION 6 gist_box_picksplit(internal, internal),
  FUNCTION 7 gist_box_same(box, box, internal), FUNCTION 8 gist_box_distance(internal, box, smallint, oid, internal);
CREATE OPERATOR FAMILY extra.fam USING btree;
COMMENT ON OPERATOR CLASS app.rev_ops USING btree IS 'reverse order';
COMMENT ON OPERATOR FAMILY app.rev_fam USING btree IS 'reverse family';
ALTER OPERATOR FAMILY extra.fam USING btree OWNER TO corpus_reader;
CREATE INDEX orders_customer_rev ON app.orders (customer_id app.rev_ops);
-- Objects dropped with an extension they are not members of (plpgsql: every server has it).
ALTER FUNCTION app.add_one(integer) DEPENDS ON EXTENSION plpgsql;
ALTER TRIGGER customers_touch ON app.customers DEPENDS ON EXTENSION plpgsql;
ALTER MATERIALIZED VIEW app.empty_stats DEPENDS ON EXTENSION plpgsql;
ALTER INDEX app.orders_note_lower_idx DEPENDS ON EXTENSION plpgsql;
-- Grants changed on objects the dump does not create: the system's (pg_catalog) and an
-- extension's (pg_dump writes them against pg_init_privs).
REVOKE EXECUTE ON FUNCTION pg_catalog.pg_backend_pid() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_ls_dir(text) TO corpus_reader;
GRANT SELECT (proname) ON pg_catalog.pg_proc TO corpus_reader;
REVOKE SELECT ON pg_catalog.pg_settings FROM PUBLIC;
GRANT USAGE ON SCHEMA pg_catalog TO corpus_granter WITH GRANT OPTION;
GRANT USAGE ON LANGUAGE plpgsql TO corpus_reader;
REVOKE EXECUTE ON FUNCTION public.gen_random_uuid() FROM PUBLIC; -- pgcrypto
GRANT EXECUTE ON FUNCTION public.digest(text, text) TO corpus_reader; -- pgcrypto
-- Large objects: one with a comment and a grant, one spanning pieces, one with an oid past 2^31.
SELECT lo_from_bytea(424242, 'the content of a large object');
COMMENT ON LARGE OBJECT 424242 IS 'a blob';
GRANT SELECT ON LARGE OBJECT 424242 TO corpus_reader;
SELECT lo_from_bytea(424243, decode(repeat('0123456789abcdef', 150000), 'hex'));
SELECT lo_from_bytea(3000000000, '');
-- What reads a materialized view made after the keys waits for it too.
CREATE VIEW app.customer_names_view AS SELECT * FROM app.customer_names;
CREATE MATERIALIZED VIEW app.customer_names_again AS SELECT id, name FROM app.customer_names;
REFRESH MATERIALIZED VIEW app.customer_names;
REFRESH MATERIALIZED VIEW app.customer_names_again;
-- Kinds made of functions: a procedural language, access methods, a text search parser and
-- template, a transform, a base type (with its shell), a range with a canonical function, a
-- shell nothing defined. (Internal functions stand in for C code: a superuser loads this.)
CREATE FUNCTION app.pl_handler() RETURNS language_handler LANGUAGE c AS '$libdir/plpgsql', 'plpgsql_call_handler';
CREATE FUNCTION app.pl_inline(internal) RETURNS void LANGUAGE c STRICT AS '$libdir/plpgsql', 'plpgsql_inline_handler';
CREATE FUNCTION app.pl_validator(oid) RETURNS void LANGUAGE c STRICT AS '$libdir/plpgsql', 'plpgsql_validator';
CREATE TRUSTED LANGUAGE corpus_pl HANDLER app.pl_handler INLINE app.pl_inline VALIDATOR app.pl_validator;
COMMENT ON LANGUAGE corpus_pl IS 'a language of our own';
CREATE FUNCTION app.in_pl() RETURNS integer LANGUAGE corpus_pl AS $$ BEGIN RETURN 1; END $$;
REVOKE USAGE ON LANGUAGE corpus_pl FROM PUBLIC;
GRANT USAGE ON LANGUAGE corpus_pl TO corpus_reader;
CREATE ACCESS METHOD corpus_heap TYPE TABLE HANDLER heap_tableam_handler;
CREATE ACCESS METHOD corpus_btree TYPE INDEX HANDLER bthandler;
COMMENT ON ACCESS METHOD corpus_heap IS 'heap by another name';
CREATE TABLE app.in_am (a integer) USING corpus_heap;
-- A partitioned table's access method (17+: what its partitions are made with by default).
DO $$ BEGIN IF current_setting('server_version_num')::int >= 170000 THEN EXECUTE 'CREATE TABLE app.part_am (id int) PARTITION BY RANGE (id) USING corpus_heap'; EXECUTE 'CREATE TABLE app.part_am_1 PARTITION OF app.part_am FOR VALUES FROM (0) TO (10)'; EXECUTE 'INSERT INTO app.part_am VALUES (1)'; END IF; END $$;
INSERT INTO app.in_am VALUES (1), (2);
CREATE TEXT SEARCH PARSER app.prs (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end,
  HEADLINE = prsd_headline, LEXTYPES = prsd_lextype);
CREATE TEXT SEARCH TEMPLATE app.tmpl (INIT = dsimple_init, LEXIZE = dsimple_lexize);
COMMENT ON TEXT SEARCH PARSER app.prs IS 'the default parser again';
CREATE TEXT SEARCH DICTIONARY app.simple_dict (TEMPLATE = app.tmpl);
CREATE TEXT SEARCH CONFIGURATION app.own_cfg (PARSER = app.prs);
ALTER TEXT SEARCH CONFIGURATION app.own_cfg ADD MAPPING FOR word, asciiword WITH app.simple_dict;
CREATE FUNCTION app.tr_from(internal) RETURNS internal LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE FUNCTION app.tr_to(internal) RETURNS app.mood LANGUAGE internal IMMUTABLE STRICT AS 'int4recv';
CREATE TRANSFORM FOR app.mood LANGUAGE corpus_pl (FROM SQL WITH FUNCTION app.tr_from(internal),
  TO SQL WITH FUNCTION app.tr_to(internal));
COMMENT ON TRANSFORM FOR app.mood LANGUAGE corpus_pl IS 'never used';
CREATE TYPE app.int4ish;
CREATE FUNCTION app.int4ish_in(cstring) RETURNS app.int4ish LANGUAGE internal IMMUTABLE STRICT AS 'int4in';
CREATE FUNCTION app.int4ish_out(app.int4ish) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'int4out';
CREATE TYPE app.int4ish (INPUT = app.int4ish_in, OUTPUT = app.int4ish_out, INTERNALLENGTH = 4,
  PASSEDBYVALUE, ALIGNMENT = int4, CATEGORY = 'N', DEFAULT = '7');
COMMENT ON TYPE app.int4ish IS 'a base type';
CREATE FUNCTION app.int4ish_same(app.int4ish) RETURNS app.int4ish LANGUAGE sql IMMUTABLE AS 'SELECT $1';
CREATE TABLE app.with_base (x app.int4ish, y app.int4ish[]);
INSERT INTO app.with_base VALUES ('42', '{1,2}');
CREATE TYPE app.irange;
CREATE FUNCTION app.irange_canonical(app.irange) RETURNS app.irange LANGUAGE internal IMMUTABLE STRICT AS 'int4range_canonical';
CREATE TYPE app.irange AS RANGE (subtype = integer, canonical = app.irange_canonical);
CREATE TABLE app.with_range (r app.irange);
INSERT INTO app.with_range VALUES ('[1,5]'), ('(2,3]');
CREATE TYPE app.never_defined;
-- A subscription (never connected: made disabled, without a slot). Subscriptions live outside
-- the database's own catalogs: copies made with CREATE DATABASE ... TEMPLATE lack them.
CREATE SUBSCRIPTION corpus_sub CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere password=never-printed' PUBLICATION corpus_pub, "Odd Pub" WITH (connect = false, binary = true);
COMMENT ON SUBSCRIPTION corpus_sub IS 'a subscription';
-- Last: an event trigger that records every drop. A restore creates it after everything else
-- and drops nothing after that, so the copy's app.drops is as empty as the source's.
CREATE TABLE app.drops (tag text, object text);
CREATE FUNCTION app.record_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO app.drops SELECT tg_tag, object_identity FROM pg_event_trigger_dropped_objects();
END $$;
CREATE EVENT TRIGGER corpus_drops ON sql_drop EXECUTE FUNCTION app.record_drop();
