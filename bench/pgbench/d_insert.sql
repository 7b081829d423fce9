-- (d) INSERT of one document.
\set k random(1, 1000000000)
INSERT INTO users (tenant_id, id, user_name, user_name_lower, version, created_at, modified_at, doc)
SELECT :t, u, 'pg' || u, 'pg' || u, 1, now(), now(), bench_doc(:k, 'pg' || u) FROM gen_random_uuid() u;
