-- `seq` was `INTEGER PRIMARY KEY AUTOINCREMENT`: every event also read
-- and rewrote the `events` row of `sqlite_sequence`, one more b-tree
-- write in the transaction of every change. Without AUTOINCREMENT, SQLite
-- gives a new row the largest `seq` in the table plus one, which follows
-- commit order just as well (one writer at a time; a rolled-back write's
-- numbers were never seen). It would go back only if the rows holding the
-- largest numbers were deleted; retention therefore never leaves the table
-- empty of its newest position: when it removes every event, it keeps a
-- row that belongs to no tenant at that position (src/store/sqlite_events.rs).
CREATE TABLE events_next (
    seq            INTEGER PRIMARY KEY,
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
INSERT INTO events_next (seq, tenant_id, id, type, occurred_at, resource_type, resource_id,
                         version, actor, changed, created_at, modified_at, data, groups,
                         member_id, member_type)
SELECT seq, tenant_id, id, type, occurred_at, resource_type, resource_id, version, actor,
       changed, created_at, modified_at, data, groups, member_id, member_type
FROM events;
-- Retention may have emptied the table: its last position is then only in
-- `sqlite_sequence`, and a cursor or horizon may stand there.
INSERT INTO events_next (seq, tenant_id, id, type, occurred_at, resource_type, resource_id, version)
SELECT seq, '', '', '', 0, '', '', 0 FROM sqlite_sequence
WHERE name = 'events' AND seq > (SELECT coalesce(max(seq), 0) FROM events);
DROP TABLE events;
ALTER TABLE events_next RENAME TO events;
CREATE INDEX events_tenant ON events (tenant_id, seq);
