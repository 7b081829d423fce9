-- (f) (b) with its change event in the same statement, as scimd records
-- one: the event row carries the document after the change. (f) / (b) is
-- what an event costs PostgreSQL itself, the yardstick for scimd's events
-- on/off ratio.
\set k random(1, :n)
WITH u AS (
  UPDATE users SET doc = jsonb_set(doc, '{title}', to_jsonb('T' || :k)), version = version + 1, modified_at = now()
   WHERE tenant_id = :t AND user_name_lower = 'u' || :k AND version = version
   RETURNING id, version, created_at, modified_at, doc)
INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version, actor, changed,
                    created_at, modified_at, data, groups)
SELECT :t, gen_random_uuid(), 'user.updated', u.modified_at, 'User', u.id, u.version,
       '{"keyId": "KSOvVjGMmwYuTpmWwL7O", "requestId": "ff5d49f2-c011-4860-b8e5-e5b6416b0ed7", "userAgent": "Azure Active Directory SCIM Client"}',
       '{title}', u.created_at, u.modified_at, u.doc, '[]' FROM u;
