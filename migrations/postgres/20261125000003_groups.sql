-- Groups: indexed columns plus the resource as JSONB, without its members.
CREATE TABLE groups (
    tenant_id           UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id                  UUID NOT NULL,
    display_name        TEXT NOT NULL,
    display_name_lower  TEXT NOT NULL,
    external_id         TEXT,
    version             BIGINT NOT NULL,
    created_at          TIMESTAMPTZ NOT NULL,
    modified_at         TIMESTAMPTZ NOT NULL,
    doc                 JSONB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX groups_display_name_lower ON groups (tenant_id, display_name_lower);
CREATE INDEX groups_external_id ON groups (tenant_id, external_id);
CREATE INDEX groups_modified_at ON groups (tenant_id, modified_at);

-- Membership as rows, so a group of 100k members changes in O(change).
-- A member is a user or a group of the same tenant.
CREATE TABLE group_members (
    tenant_id    UUID NOT NULL,
    group_id     UUID NOT NULL,
    member_id    UUID NOT NULL,
    member_type  TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    -- The member's display name as the client gave it, if it did.
    display      TEXT,
    PRIMARY KEY (tenant_id, group_id, member_id),
    FOREIGN KEY (tenant_id, group_id) REFERENCES groups (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX group_members_member ON group_members (tenant_id, member_id);

-- Deleting a user or a group removes it from every group (whose version then
-- moves), in the same statement.
CREATE FUNCTION scimd_forget_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE groups SET version = version + 1, modified_at = date_trunc('milliseconds', now())
    WHERE tenant_id = OLD.tenant_id
      AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id);
    DELETE FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id;
    RETURN OLD;
END $$;
CREATE TRIGGER users_forget_member AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION scimd_forget_member();
CREATE TRIGGER groups_forget_member AFTER DELETE ON groups FOR EACH ROW EXECUTE FUNCTION scimd_forget_member();
