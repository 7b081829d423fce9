-- (g) scimd's own GET-by-filter statement (src/store/query/mod.rs): (c)'s
-- lookup with the columns scimd returns, the user's groups (RFC 7643's
-- `groups`, from group_members) and the page's ORDER BY / LIMIT. (g) / (c)
-- is the most scimd's GET by filter can reach with no CPU of its own.
\set k random(1, :n)
SELECT u.id, u.version, u.created_at, u.modified_at, u.doc,
       COALESCE((SELECT jsonb_agg(jsonb_build_array(m.group_id::text, g.display_name) ORDER BY g.display_name_lower, m.group_id)
                 FROM group_members m JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id
                 WHERE m.tenant_id = u.tenant_id AND m.member_id = u.id), '[]'::jsonb)::text AS groups
FROM users u WHERE u.tenant_id = :t AND u.user_name_lower = 'u' || :k ORDER BY u.id LIMIT 100 OFFSET 0;
