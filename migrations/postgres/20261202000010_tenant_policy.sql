-- Each tenant's deprovisioning policy (src/store/policy.rs): how DELETE
-- treats a resource, the deletion circuit breaker, and the pause switch.
-- `policy_version` moves with every change of these columns (the version
-- of a tenant's events).
ALTER TABLE tenants
    ADD COLUMN delete_mode           TEXT NOT NULL DEFAULT 'hard' CHECK (delete_mode IN ('hard', 'soft')),
    ADD COLUMN deletion_limit        INTEGER CHECK (deletion_limit > 0),
    ADD COLUMN deletion_window_secs  BIGINT CHECK (deletion_window_secs > 0),
    ADD COLUMN paused                BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN held_since            TIMESTAMPTZ,
    ADD COLUMN deletions_held        BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN policy_version        BIGINT NOT NULL DEFAULT 1;

-- The deletes and deactivations a tenant's breaker counts (only while it
-- has a threshold), each when it was let through.
CREATE TABLE tenant_deletions (
    tenant_id  UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at         TIMESTAMPTZ NOT NULL
);
CREATE INDEX tenant_deletions_at ON tenant_deletions (tenant_id, at);
