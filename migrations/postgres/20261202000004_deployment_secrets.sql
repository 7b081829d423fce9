-- Secrets shared by every process of a deployment (the key that signs
-- cursors), created on first use.
CREATE TABLE deployment_secrets (
    name        TEXT PRIMARY KEY,
    secret      BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
