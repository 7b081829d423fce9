-- Same shape as migrations/postgres (src/store/policy.rs).
ALTER TABLE tenants ADD COLUMN delete_mode TEXT NOT NULL DEFAULT 'hard' CHECK (delete_mode IN ('hard', 'soft'));
ALTER TABLE tenants ADD COLUMN deletion_limit INTEGER CHECK (deletion_limit > 0);
ALTER TABLE tenants ADD COLUMN deletion_window_secs INTEGER CHECK (deletion_window_secs > 0);
ALTER TABLE tenants ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN held_since INTEGER;
ALTER TABLE tenants ADD COLUMN deletions_held INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN policy_version INTEGER NOT NULL DEFAULT 1;

CREATE TABLE tenant_deletions (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX tenant_deletions_at ON tenant_deletions (tenant_id, at);
