-- Writers of events met on two shared hot spots (bench/run.sh, PATCH with
-- events on): the sequence, whose one row every nextval() locked, and the
-- btree on occurred_at, whose rightmost page every insert wrote. `seq`
-- needs only to be unique and to grow within a transaction (events are
-- read in (xid, seq) order), so each session may take its numbers from a
-- cache of its own; retention finds old events by time through a BRIN
-- index, which an append-only table keeps in a few pages.
ALTER SEQUENCE events_seq CACHE 1000;
DROP INDEX events_occurred_at;
CREATE INDEX events_occurred_at ON events USING brin (occurred_at);
