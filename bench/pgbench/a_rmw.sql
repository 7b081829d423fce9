-- (a) read-modify-write: lock, rewrite the whole document with version + 1.
\set k random(1, :n)
BEGIN;
SELECT doc, version FROM users WHERE tenant_id = :t AND user_name_lower = 'u' || :k FOR UPDATE;
UPDATE users SET doc = jsonb_set(doc, '{title}', to_jsonb('T' || :k)), version = version + 1, modified_at = now()
 WHERE tenant_id = :t AND user_name_lower = 'u' || :k;
COMMIT;
