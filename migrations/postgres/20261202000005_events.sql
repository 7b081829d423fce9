-- Change events: an outbox written in the same transaction as the change it
-- records (src/store/events.rs). Read per tenant in (xid, seq) order, below
-- the oldest running transaction. `data` is the resource's stored document
-- at the event (with `created_at`, `modified_at` and, for users, `groups`:
-- what the events API renders); member events name a member instead.
CREATE SEQUENCE events_seq;
CREATE TABLE events (
    tenant_id      UUID NOT NULL,
    xid            XID8 NOT NULL DEFAULT pg_current_xact_id(),
    seq            BIGINT NOT NULL DEFAULT nextval('events_seq'),
    id             UUID NOT NULL,
    type           TEXT NOT NULL,
    occurred_at    TIMESTAMPTZ NOT NULL,
    resource_type  TEXT NOT NULL,
    resource_id    UUID NOT NULL,
    version        BIGINT NOT NULL,
    actor          JSONB,
    changed        TEXT[],
    created_at     TIMESTAMPTZ,
    modified_at    TIMESTAMPTZ,
    data           JSONB,
    groups         JSONB,
    member_id      UUID,
    member_type    TEXT,
    PRIMARY KEY (tenant_id, xid, seq)
);
CREATE INDEX events_occurred_at ON events (occurred_at);

-- Per tenant, the last event retention removed: a cursor before it may
-- have missed events (410 Gone).
CREATE TABLE event_horizons (
    tenant_id  UUID PRIMARY KEY,
    xid        XID8 NOT NULL,
    seq        BIGINT NOT NULL
);

-- Deleting a user or a group removes it from every group (whose version then
-- moves) and, when the deleting statement set `scimd.actor` (events are
-- on), records a group.member_removed event per group it left.
CREATE OR REPLACE FUNCTION scimd_forget_member() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor JSONB := NULLIF(current_setting('scimd.actor', true), '')::jsonb;
BEGIN
    IF actor IS NOT NULL THEN
        -- Lock the groups; if one was last written by a transaction younger
        -- than this one, its events would read in the wrong order: start over.
        PERFORM 1 FROM groups
        WHERE tenant_id = OLD.tenant_id
          AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id)
        FOR NO KEY UPDATE;
        IF EXISTS (SELECT 1 FROM groups
                   WHERE tenant_id = OLD.tenant_id AND age(xmin) < 0
                     AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id)) THEN
            RAISE EXCEPTION 'a group of this member was changed by a younger transaction'
                USING ERRCODE = 'serialization_failure';
        END IF;
    END IF;
    WITH bumped AS (
        UPDATE groups SET version = version + 1, modified_at = date_trunc('milliseconds', now())
        WHERE tenant_id = OLD.tenant_id
          AND id IN (SELECT group_id FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id)
        RETURNING id, version
    ), gone AS (
        DELETE FROM group_members WHERE tenant_id = OLD.tenant_id AND member_id = OLD.id
        RETURNING group_id, member_type
    )
    INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version, actor, member_id, member_type)
    SELECT OLD.tenant_id, gen_random_uuid(), 'group.member_removed', date_trunc('milliseconds', now()),
           'Group', b.id, b.version, actor, OLD.id, g.member_type
    FROM bumped b JOIN gone g ON g.group_id = b.id
    WHERE actor IS NOT NULL;
    RETURN OLD;
END $$;
