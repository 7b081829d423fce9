-- Projects own tenants and access keys; every SCIM resource belongs to a tenant.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenants (
    id          UUID PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT tenants_project_name_key UNIQUE (project_id, name),
    CONSTRAINT tenants_project_id_key UNIQUE (project_id, id)
);

-- Only a SHA-256 of the secret is kept. `hash_prefix` (its first 8 bytes) finds
-- the candidate rows; the full hash is then compared in constant time.
CREATE TABLE access_keys (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    tenant_id     UUID NOT NULL,
    role          TEXT NOT NULL,
    name          TEXT,
    hash_prefix   BYTEA NOT NULL,
    secret_hash   BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    FOREIGN KEY (project_id, tenant_id) REFERENCES tenants (project_id, id) ON DELETE CASCADE
);
CREATE INDEX access_keys_lookup ON access_keys (project_id, hash_prefix);
CREATE UNIQUE INDEX access_keys_secret_hash ON access_keys (secret_hash);

-- Users: the indexed columns IdPs filter on, plus the whole resource as JSONB.
-- `doc` holds the client-writable attributes; id and meta come from columns.
CREATE TABLE users (
    tenant_id        UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    user_name        TEXT NOT NULL,
    user_name_lower  TEXT NOT NULL,
    external_id      TEXT,
    active           BOOLEAN,
    display_name     TEXT,
    version          BIGINT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    modified_at      TIMESTAMPTZ NOT NULL,
    doc              JSONB NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX users_user_name_lower_key ON users (tenant_id, user_name_lower);
CREATE INDEX users_external_id ON users (tenant_id, external_id);
CREATE INDEX users_display_name ON users (tenant_id, display_name);
CREATE INDEX users_modified_at ON users (tenant_id, modified_at);
