-- (c) point SELECT by (tenant_id, lower(user_name)).
\set k random(1, :n)
SELECT doc FROM users WHERE tenant_id = :t AND user_name_lower = 'u' || :k;
