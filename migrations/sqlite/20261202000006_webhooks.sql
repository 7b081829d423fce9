-- Webhook subscriptions: a delivery worker on top of the events table
-- (src/webhooks). `seq` is the position delivered up to; a process
-- delivers a subscription only while it holds its lease.
CREATE TABLE webhooks (
    tenant_id        TEXT NOT NULL,
    id               TEXT NOT NULL,
    url              TEXT NOT NULL,
    types            TEXT NOT NULL,
    secret           TEXT NOT NULL,
    enabled          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    xid              INTEGER NOT NULL,
    seq              INTEGER NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    last_success_at  INTEGER,
    last_error       TEXT,
    last_error_at    INTEGER,
    failing_since    INTEGER,
    lease_owner      TEXT,
    lease_until      INTEGER,
    PRIMARY KEY (tenant_id, id)
) STRICT;
CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE enabled;
