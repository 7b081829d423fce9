-- Same shape as migrations/postgres (src/store/tombstones.rs).
CREATE TABLE tombstones (
    tenant_id      TEXT NOT NULL,
    id             TEXT NOT NULL,
    resource_type  TEXT NOT NULL CHECK (resource_type IN ('User', 'Group')),
    match_key      TEXT NOT NULL,
    external_id    TEXT,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    deleted_at     INTEGER NOT NULL,
    memberships    TEXT NOT NULL,
    members        TEXT,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX tombstones_external_id ON tombstones (tenant_id, resource_type, external_id);
CREATE INDEX tombstones_match_key ON tombstones (tenant_id, resource_type, match_key);
CREATE INDEX tombstones_deleted_at ON tombstones (deleted_at);

CREATE TRIGGER users_tombstone BEFORE DELETE ON users
WHEN (SELECT delete_mode FROM tenants WHERE id = OLD.tenant_id) = 'soft'
BEGIN
    INSERT OR REPLACE INTO tombstones (tenant_id, id, resource_type, match_key, external_id, version,
                                       created_at, deleted_at, memberships, members)
    VALUES (OLD.tenant_id, OLD.id, 'User', OLD.user_name_lower, OLD.external_id, OLD.version,
            OLD.created_at, CAST(unixepoch('subsec') * 1000 AS INTEGER),
            (SELECT json_group_array(json_array(m.group_id, m.display)) FROM group_members m
             WHERE m.tenant_id = OLD.tenant_id AND m.member_id = OLD.id),
            NULL);
END;
CREATE TRIGGER groups_tombstone BEFORE DELETE ON groups
WHEN (SELECT delete_mode FROM tenants WHERE id = OLD.tenant_id) = 'soft'
BEGIN
    INSERT OR REPLACE INTO tombstones (tenant_id, id, resource_type, match_key, external_id, version,
                                       created_at, deleted_at, memberships, members)
    VALUES (OLD.tenant_id, OLD.id, 'Group', OLD.display_name_lower, OLD.external_id, OLD.version,
            OLD.created_at, CAST(unixepoch('subsec') * 1000 AS INTEGER),
            (SELECT json_group_array(json_array(m.group_id, m.display)) FROM group_members m
             WHERE m.tenant_id = OLD.tenant_id AND m.member_id = OLD.id),
            (SELECT json_group_array(json_array(m.member_id, m.member_type, m.display)) FROM group_members m
             WHERE m.tenant_id = OLD.tenant_id AND m.group_id = OLD.id));
END;
