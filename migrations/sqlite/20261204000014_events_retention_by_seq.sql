-- Retention found expired events through an index on `occurred_at`, one
-- more b-tree every event's trigger wrote into (a Python trial on the
-- bench's data, one connection: 0.69–0.79 of SQLite's UPDATEs a second
-- kept with the event and this index, 0.83 without it). One writer at a
-- time makes `seq` follow time within the few milliseconds a write waits
-- for its turn, so retention now removes the feed's expired prefix in
-- `seq` order instead (src/store/sqlite_events.rs), reading from the
-- oldest event and stopping at the first one not yet expired.
DROP INDEX events_occurred_at;
