-- A write handed its events to the triggers of `…12_event_triggers.sql` in
-- a column of the row it wrote (`users.pending_event`,
-- `groups.pending_events`), which the trigger emptied again. For the
-- length of the statement the row was longer by the event's metadata, and
-- a row that no longer fits its page makes SQLite rebalance the page with
-- its neighbours: a PATCH with its event wrote 12.3 pages to the WAL
-- instead of the 3.3 it writes alone (100,000 users as `bench/` seeds
-- them), and SQLite kept 0.70 of its writes a second instead of 0.84 with
-- the metadata passed beside the row (a Python trial, one connection).
--
-- The metadata now goes in a per-connection TEMP table, read by TEMP
-- triggers that every connection creates when it opens
-- (src/store/sqlite_event_context.sql); a TEMP table is not in the WAL.
-- What the triggers record is unchanged.
DROP TRIGGER users_record_created;
DROP TRIGGER users_record_updated;
DROP TRIGGER groups_record_updated;
ALTER TABLE users DROP COLUMN pending_event;
ALTER TABLE groups DROP COLUMN pending_events;
