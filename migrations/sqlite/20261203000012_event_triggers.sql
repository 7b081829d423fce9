-- A user's create or update, and a group's update, records its change events
-- in the same statement. sqlx runs each SQLite statement on the connection's own thread, so the
-- transaction a write with its event took (BEGIN, the write, the event's
-- INSERT, COMMIT) cost four crossings to that thread and back where the
-- write alone costs one; the writer's turn was held across all four.
--
-- The write now hands its events to these triggers in a column
-- (`users.pending_event`: id, type, actor, and changed for updates;
-- `groups.pending_events`: the actor and a list of such events, member
-- events naming their member); they record them with the row as written
-- (version, times, document, a user's groups) and clear the column again,
-- all inside the write's one statement. A write that matches no row (a
-- version mismatch, no change) fires nothing and records nothing. A group
-- write is still a transaction (its members are other rows), one statement
-- shorter.
ALTER TABLE users ADD COLUMN pending_event TEXT;

CREATE TRIGGER users_record_created AFTER INSERT ON users
WHEN NEW.pending_event IS NOT NULL
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups)
    VALUES (NEW.tenant_id, NEW.pending_event ->> '$.id', NEW.pending_event ->> '$.type',
            NEW.modified_at, 'User', NEW.id, NEW.version, NEW.pending_event -> '$.actor',
            NEW.pending_event -> '$.changed', NEW.created_at, NEW.modified_at, NEW.doc, '[]');
    UPDATE users SET pending_event = NULL WHERE rowid = NEW.rowid;
END;

CREATE TRIGGER users_record_updated AFTER UPDATE OF pending_event ON users
WHEN NEW.pending_event IS NOT NULL
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups)
    VALUES (NEW.tenant_id, NEW.pending_event ->> '$.id', NEW.pending_event ->> '$.type',
            NEW.modified_at, 'User', NEW.id, NEW.version, NEW.pending_event -> '$.actor',
            NEW.pending_event -> '$.changed', NEW.created_at, NEW.modified_at, NEW.doc,
            COALESCE((SELECT json_group_array(json_array(x.group_id, x.display_name)) FROM
                (SELECT m.group_id, g.display_name FROM group_members m
                 JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                 WHERE m.tenant_id = NEW.tenant_id AND m.member_id = NEW.id
                 ORDER BY g.display_name_lower, m.group_id) x), '[]'));
    UPDATE users SET pending_event = NULL WHERE rowid = NEW.rowid;
END;

ALTER TABLE groups ADD COLUMN pending_events TEXT;

CREATE TRIGGER groups_record_updated AFTER UPDATE OF pending_events ON groups
WHEN NEW.pending_events IS NOT NULL
BEGIN
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version,
                        actor, changed, created_at, modified_at, data, groups, member_id, member_type)
    SELECT NEW.tenant_id, j.value ->> '$.id', j.value ->> '$.type', NEW.modified_at, 'Group', NEW.id,
           NEW.version, NEW.pending_events -> '$.actor', j.value -> '$.changed',
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.created_at END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.modified_at END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN NEW.doc END,
           CASE WHEN j.value ->> '$.member_id' IS NULL THEN '[]' END,
           j.value ->> '$.member_id', j.value ->> '$.member_type'
    FROM json_each(NEW.pending_events, '$.events') j;
    UPDATE groups SET pending_events = NULL WHERE rowid = NEW.rowid;
END;
