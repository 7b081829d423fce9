-- Benchmark data: a tenant of :n users with realistic documents (~1.5 KB:
-- name, emails, phones, addresses, enterprise extension), :extra more users
-- outside the big group, and a group of the first :n users.
-- psql variables: t (tenant id), n, extra, gid (big group id).
CREATE OR REPLACE FUNCTION bench_doc(k bigint, name text) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_build_object(
    'schemas', jsonb_build_array('urn:ietf:params:scim:schemas:core:2.0:User', 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User'),
    'userName', name, 'externalId', 'ext-' || k, 'active', true, 'displayName', 'Benchmark User ' || k,
    'title', 'Senior Tour Guide', 'userType', 'Employee', 'preferredLanguage', 'en-US', 'locale', 'en-US', 'timezone', 'America/Los_Angeles',
    'name', jsonb_build_object('givenName', 'Given' || k, 'familyName', 'Family' || k, 'formatted', 'Given' || k || ' Family' || k, 'middleName', 'Jane'),
    'emails', jsonb_build_array(
      jsonb_build_object('value', name || '@example.com', 'type', 'work', 'primary', true),
      jsonb_build_object('value', name || '@home.example.org', 'type', 'home')),
    'phoneNumbers', jsonb_build_array(
      jsonb_build_object('value', '+1 555 010 ' || lpad((k % 10000)::text, 4, '0'), 'type', 'work'),
      jsonb_build_object('value', '+1 555 020 ' || lpad((k % 10000)::text, 4, '0'), 'type', 'mobile')),
    'addresses', jsonb_build_array(jsonb_build_object('type', 'work', 'streetAddress', '100 Universal City Plaza',
      'locality', 'Hollywood', 'region', 'CA', 'postalCode', '91608', 'country', 'US',
      'formatted', E'100 Universal City Plaza\nHollywood, CA 91608 US', 'primary', true)),
    'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User', jsonb_build_object(
      'employeeNumber', k::text, 'costCenter', '4130', 'organization', 'Universal Studios',
      'division', 'Theme Park', 'department', 'Tour Operations',
      'manager', jsonb_build_object('value', '26118915-6090-4610-87e4-49d8ca9f808d')))
$$;

INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, display_name_lower,
                   version, created_at, modified_at, doc, email_keys)
SELECT :'t'::uuid, gen_random_uuid(), 'u' || g, 'u' || g, 'ext-' || g, true, 'Benchmark User ' || g, 'benchmark user ' || g,
       1, now(), now(), bench_doc(g, 'u' || g), ARRAY[:'t' || ':u' || g || '@example.com', :'t' || ':u' || g || '@home.example.org']
FROM generate_series(1, :n + :extra) g;

INSERT INTO group_members (tenant_id, group_id, member_id, member_type)
SELECT :'t'::uuid, :'gid'::uuid, id, 'User' FROM users
WHERE tenant_id = :'t'::uuid AND user_name_lower IN (SELECT 'u' || g FROM generate_series(1, :n) g);

VACUUM ANALYZE users;
VACUUM ANALYZE group_members;
