-- Object kinds pg_dump carries that ferry's snapshot still refuses (see the README): loaded on
-- top of rich.sql for the tests of validate, which must see them in copies pg_restore makes.
CREATE OPERATOR FAMILY extra.fam USING btree;
SELECT lo_from_bytea(424242, 'the content of a large object');
COMMENT ON LARGE OBJECT 424242 IS 'a blob';
GRANT SELECT ON LARGE OBJECT 424242 TO corpus_reader;
