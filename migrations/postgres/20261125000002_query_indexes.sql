-- Index-backed lookups for the filters identity providers send.
-- displayName is caseExact=false: keep a lower-cased copy (computed by scimd).
ALTER TABLE users ADD COLUMN display_name_lower TEXT;
UPDATE users SET display_name_lower = lower(display_name);
DROP INDEX users_display_name;
CREATE INDEX users_display_name_lower ON users (tenant_id, display_name_lower);

-- emails.value eq: '<tenant_id>:<lower-cased address>' per email, in a GIN
-- index (tenant-leading without needing the btree_gin extension).
ALTER TABLE users ADD COLUMN email_keys TEXT[] NOT NULL DEFAULT '{}';
UPDATE users SET email_keys = ARRAY(
    SELECT tenant_id::text || ':' || lower(e->>'value')
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(doc->'emails') = 'array' THEN doc->'emails' ELSE '[]'::jsonb END) e
    WHERE e ? 'value'
);
CREATE INDEX users_email_keys ON users USING GIN (email_keys);
