-- Tombstones (src/store/tombstones.rs): a user or group deleted while its
-- tenant's delete mode is `soft` is gone to SCIM (the row goes, with its
-- memberships, as in hard mode) but kept here, with the groups it was in
-- and (groups) its members, until a create with the same externalId
-- (else userName / displayName) revives it or retention purges it.
CREATE TABLE tombstones (
    tenant_id      UUID NOT NULL,
    id             UUID NOT NULL,
    resource_type  TEXT NOT NULL CHECK (resource_type IN ('User', 'Group')),
    -- Lower-cased userName (users) or displayName (groups).
    match_key      TEXT NOT NULL,
    external_id    TEXT,
    version        BIGINT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    deleted_at     TIMESTAMPTZ NOT NULL,
    -- [[group id, display], …]: the groups it was a direct member of.
    memberships    JSONB NOT NULL,
    -- Groups: [[member id, member type, display], …].
    members        JSONB,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX tombstones_external_id ON tombstones (tenant_id, resource_type, external_id);
CREATE INDEX tombstones_match_key ON tombstones (tenant_id, resource_type, match_key);
CREATE INDEX tombstones_deleted_at ON tombstones (deleted_at);

-- Before a user or group row goes: its tombstone, when the tenant's mode
-- is soft (TG_ARGV: the resource type, the match column).
CREATE FUNCTION scimd_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (SELECT delete_mode FROM tenants WHERE id = OLD.tenant_id) = 'soft' THEN
        INSERT INTO tombstones (tenant_id, id, resource_type, match_key, external_id, version,
                                created_at, deleted_at, memberships, members)
        VALUES (OLD.tenant_id, OLD.id, TG_ARGV[0], to_jsonb(OLD) ->> TG_ARGV[1], OLD.external_id,
                OLD.version, OLD.created_at, date_trunc('milliseconds', now()),
                COALESCE((SELECT jsonb_agg(jsonb_build_array(m.group_id, m.display))
                          FROM group_members m
                          WHERE m.tenant_id = OLD.tenant_id AND m.member_id = OLD.id), '[]'::jsonb),
                CASE WHEN TG_ARGV[0] = 'Group' THEN
                    COALESCE((SELECT jsonb_agg(jsonb_build_array(m.member_id, m.member_type, m.display))
                              FROM group_members m
                              WHERE m.tenant_id = OLD.tenant_id AND m.group_id = OLD.id), '[]'::jsonb)
                END)
        ON CONFLICT (tenant_id, id) DO UPDATE SET
            match_key = EXCLUDED.match_key, external_id = EXCLUDED.external_id,
            version = EXCLUDED.version, deleted_at = EXCLUDED.deleted_at,
            memberships = EXCLUDED.memberships, members = EXCLUDED.members;
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER users_tombstone BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION scimd_tombstone('User', 'user_name_lower');
CREATE TRIGGER groups_tombstone BEFORE DELETE ON groups
    FOR EACH ROW EXECUTE FUNCTION scimd_tombstone('Group', 'display_name_lower');
