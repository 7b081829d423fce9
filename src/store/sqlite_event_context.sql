-- Run by every SQLite connection when it opens, after the migrations
-- (src/store/sqlite.rs). A write that records events sets this
-- connection's `event_context` in the same call, just before it writes:
-- the resource it writes and its events as JSON (see `pending_event` and
-- `pending_events`). These triggers record them with the row as written
-- (version, times, document, a user's groups) and empty the context again,
-- all inside the write's statement. A write that matches no row (a version
-- mismatch, no change) fires nothing; its caller empties the context.
-- A trigger fires only for the resource the context names.
CREATE TEMP TABLE event_context (resource_id TEXT, pending TEXT);
INSERT INTO event_context VALUES (NULL, NULL);

CREATE TEMP TRIGGER users_record_created AFTER INSERT ON main.users
WHEN NEW.id = (SELECT resource_id FROM event_context)
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups)
    SELECT NEW.tenant_id, c.pending ->> '$.id', c.pending ->> '$.type', NEW.modified_at, 'User',
           NEW.id, NEW.version, c.pending -> '$.actor', c.pending -> '$.changed', NEW.created_at,
           NEW.modified_at, NEW.doc, '[]'
    FROM event_context c;
    UPDATE event_context SET resource_id = NULL, pending = NULL;
END;

CREATE TEMP TRIGGER users_record_updated AFTER UPDATE OF version ON main.users
WHEN NEW.id = (SELECT resource_id FROM event_context)
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups)
    SELECT NEW.tenant_id, c.pending ->> '$.id', c.pending ->> '$.type', NEW.modified_at, 'User',
           NEW.id, NEW.version, c.pending -> '$.actor', c.pending -> '$.changed', NEW.created_at,
           NEW.modified_at, NEW.doc,
           COALESCE((SELECT json_group_array(json_array(x.group_id, x.display_name)) FROM
               (SELECT m.group_id, g.display_name FROM group_members m
                JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                WHERE m.tenant_id = NEW.tenant_id AND m.member_id = NEW.id
                ORDER BY g.display_name_lower, m.group_id) x), '[]')
    FROM event_context c;
    UPDATE event_context SET resource_id = NULL, pending = NULL;
END;

CREATE TEMP TRIGGER groups_record_updated AFTER UPDATE OF version ON main.groups
WHEN NEW.id = (SELECT resource_id FROM event_context)
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups, member_id, member_type)
    SELECT NEW.tenant_id, j.value ->> '$.id', j.value ->> '$.type', NEW.modified_at, 'Group', NEW.id,
           NEW.version, c.pending -> '$.actor', j.value -> '$.changed',
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.created_at END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.modified_at END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.doc END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN '[]' END,
           j.value ->> '$.member_id', j.value ->> '$.member_type'
    FROM event_context c, json_each(c.pending, '$.events') j;
    UPDATE event_context SET resource_id = NULL, pending = NULL;
END;
