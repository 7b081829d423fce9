-- Same shape as migrations/postgres; timestamps are Unix epoch milliseconds,
-- ids are canonical lower-case UUID text, `doc` is JSON text.
CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    project_id  TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (project_id, name),
    UNIQUE (project_id, id)
) STRICT;

CREATE TABLE access_keys (
    id            TEXT PRIMARY KEY,
    project_id    TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    role          TEXT NOT NULL,
    name          TEXT,
    hash_prefix   BLOB NOT NULL,
    secret_hash   BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    revoked_at    INTEGER,
    last_used_at  INTEGER,
    FOREIGN KEY (project_id, tenant_id) REFERENCES tenants (project_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX access_keys_lookup ON access_keys (project_id, hash_prefix);
CREATE UNIQUE INDEX access_keys_secret_hash ON access_keys (secret_hash);

CREATE TABLE users (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id               TEXT NOT NULL,
    user_name        TEXT NOT NULL,
    user_name_lower  TEXT NOT NULL,
    external_id      TEXT,
    active           INTEGER,
    display_name     TEXT,
    version          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    modified_at      INTEGER NOT NULL,
    doc              TEXT NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE UNIQUE INDEX users_user_name_lower_key ON users (tenant_id, user_name_lower);
CREATE INDEX users_external_id ON users (tenant_id, external_id);
CREATE INDEX users_display_name ON users (tenant_id, display_name);
CREATE INDEX users_modified_at ON users (tenant_id, modified_at);
