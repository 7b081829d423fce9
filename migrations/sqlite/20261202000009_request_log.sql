-- The provisioning log (src/requestlog): one row per SCIM request a key
-- of the tenant made, written off the request path in batches; which
-- requests it keeps is SCIMD_REQUEST_LOG (failed ones by default). Read
-- newest first per tenant; removed past SCIMD_REQUEST_LOG_RETENTION.
CREATE TABLE request_log (
    id           INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    at           INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    user_agent   TEXT,
    client       TEXT NOT NULL,
    method       TEXT NOT NULL,
    path         TEXT NOT NULL,
    resource_id  TEXT,
    status       INTEGER NOT NULL,
    scim_type    TEXT,
    duration_ms  REAL NOT NULL,
    request_id   TEXT,
    quirks       TEXT NOT NULL,
    body         TEXT
) STRICT;
CREATE INDEX request_log_tenant ON request_log (tenant_id, id);
CREATE INDEX request_log_at ON request_log (at);

-- Per tenant, day (days since 1970-01-01) and client family, every SCIM
-- request counted (whether the log keeps it or not), and per compatibility
-- rule how many requests it fired for (`rule` empty: the totals): the
-- client report.
CREATE TABLE client_stats (
    tenant_id  TEXT NOT NULL,
    day        INTEGER NOT NULL,
    client     TEXT NOT NULL,
    rule       TEXT NOT NULL,
    requests   INTEGER NOT NULL,
    errors     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, day, client, rule)
) STRICT;
