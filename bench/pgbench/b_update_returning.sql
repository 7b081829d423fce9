-- (b) one version-checked UPDATE ... RETURNING.
\set k random(1, :n)
UPDATE users SET doc = jsonb_set(doc, '{title}', to_jsonb('T' || :k)), version = version + 1, modified_at = now()
 WHERE tenant_id = :t AND user_name_lower = 'u' || :k AND version = version RETURNING version;
