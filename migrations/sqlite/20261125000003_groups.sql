CREATE TABLE groups (
    tenant_id           TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  TEXT NOT NULL,
    display_name        TEXT NOT NULL,
    display_name_lower  TEXT NOT NULL,
    external_id         TEXT,
    version             INTEGER NOT NULL,
    created_at          INTEGER NOT NULL,
    modified_at         INTEGER NOT NULL,
    doc                 TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX groups_display_name_lower ON groups (tenant_id, display_name_lower);
CREATE INDEX groups_external_id ON groups (tenant_id, external_id);
CREATE INDEX groups_modified_at ON groups (tenant_id, modified_at);

CREATE TABLE group_members (
    tenant_id    TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    member_id    TEXT NOT NULL,
    member_type  TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    -- The member's display name as the client gave it, if it did.
    display      TEXT,
    PRIMARY KEY (tenant_id, group_id, member_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

-- Deleting a user or a group removes it from every group (whose version then
-- moves), in the same statement.
CREATE TRIGGER users_forget_member AFTER DELETE ON users BEGIN
    UPDATE groups SET version = version + 1, modified_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
    WHERE tenant_id = OLD.tenant_id
      AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id);
    DELETE FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id;
END;
CREATE TRIGGER groups_forget_member AFTER DELETE ON groups BEGIN
    UPDATE groups SET version = version + 1, modified_at = CAST(unixepoch('subsec') * 1000 AS INTEGER)
    WHERE tenant_id = OLD.tenant_id
      AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id);
    DELETE FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id;
END;
