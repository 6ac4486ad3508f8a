-- Object kinds pg_dump carries that ferry's snapshot still refuses (see the README): loaded on
-- top of rich.sql for the tests of validate, which must see them in copies pg_restore makes.
CREATE SCHEMA extra;
CREATE FUNCTION extra.same(integer, integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 = $2';
CREATE OPERATOR extra.=== (LEFTARG = integer, RIGHTARG = integer, FUNCTION = extra.same,
    COMMUTATOR = OPERATOR(extra.===));
CREATE OPERATOR FAMILY extra.fam USING btree;
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
SELECT lo_from_bytea(424242, 'the content of a large object');
COMMENT ON LARGE OBJECT 424242 IS 'a blob';
GRANT SELECT ON LARGE OBJECT 424242 TO corpus_reader;
