-- Webhook subscriptions: a delivery worker on top of the events table
-- (src/webhooks). `xid`/`seq` is the position delivered up to; a process
-- delivers a subscription only while it holds its lease.
CREATE TABLE webhooks (
    tenant_id        UUID NOT NULL,
    id               UUID NOT NULL,
    url              TEXT NOT NULL,
    types            TEXT[] NOT NULL,
    secret           TEXT NOT NULL,
    enabled          BOOLEAN NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    xid              BIGINT NOT NULL,
    seq              BIGINT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_success_at  TIMESTAMPTZ,
    last_error       TEXT,
    last_error_at    TIMESTAMPTZ,
    failing_since    TIMESTAMPTZ,
    lease_owner      UUID,
    lease_until      TIMESTAMPTZ,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE enabled;
