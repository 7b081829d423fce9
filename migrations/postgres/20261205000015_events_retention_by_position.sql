-- Retention found expired events through a BRIN index on `occurred_at`,
-- one more index every event's insert opened and wrote (for an append-only
-- table a few pages, but each statement that records an event also opens
-- it, builds its IndexInfo and reads its revmap). Retention now removes
-- each tenant's expired prefix in feed order instead (src/store/
-- postgres_events.rs), through the primary key the feed is read by: from
-- the tenant's oldest event, up to the first one not yet expired, as on
-- SQLite (migration 14 there).
DROP INDEX events_occurred_at;
