-- Object kinds pg_dump carries that ferry's snapshot still refuses (see the README): loaded on
-- top of rich.sql for the tests of validate, which must see them in copies pg_restore makes.
CREATE OPERATOR FAMILY extra.fam USING btree;
