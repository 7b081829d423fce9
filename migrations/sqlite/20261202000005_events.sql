-- Change events: an outbox written in the same transaction as the change it
-- records (src/store/events.rs). SQLite has one writer at a time, so `seq`
-- is commit order. `data` is the resource's stored document at the event
-- (with `created_at`, `modified_at` and, for users, `groups`); member
-- events name a member instead.
CREATE TABLE events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    type           TEXT NOT NULL,
    occurred_at    INTEGER NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    version        INTEGER NOT NULL,
    actor          TEXT,
    changed        TEXT,
    created_at     INTEGER,
    modified_at    INTEGER,
    data           TEXT,
    groups         TEXT,
    member_id      TEXT,
    member_type    TEXT
) STRICT;
CREATE INDEX events_tenant ON events (tenant_id, seq);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- Per tenant, the last event retention removed: a cursor before it may
-- have missed events (410 Gone).
CREATE TABLE event_horizons (
    tenant_id  TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL
) STRICT;
