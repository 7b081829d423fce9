-- (e) the work of one member add or remove on one group, as every request of
-- the group benchmark does it: lock the group's row, add (or, half the time,
-- remove) one membership row of a user outside the group, bump the
-- group's version, commit. All clients contend for the same row.
\set k random(:n + 1, :n + :extra)
\set add random(0, 1)
BEGIN;
SELECT version FROM groups WHERE tenant_id = :t AND id = :g FOR UPDATE;
\if :add
INSERT INTO group_members (tenant_id, group_id, member_id, member_type)
SELECT :t, :g, id, 'User' FROM users WHERE tenant_id = :t AND user_name_lower = 'u' || :k
ON CONFLICT DO NOTHING;
\else
DELETE FROM group_members WHERE tenant_id = :t AND group_id = :g
 AND member_id = (SELECT id FROM users WHERE tenant_id = :t AND user_name_lower = 'u' || :k);
\endif
UPDATE groups SET version = version + 1, modified_at = now() WHERE tenant_id = :t AND id = :g;
COMMIT;
