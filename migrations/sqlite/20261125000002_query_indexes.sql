-- displayName is caseExact=false: keep a lower-cased copy (computed by scimd).
ALTER TABLE users ADD COLUMN display_name_lower TEXT;
UPDATE users SET display_name_lower = lower(display_name);
DROP INDEX users_display_name;
CREATE INDEX users_display_name_lower ON users (tenant_id, display_name_lower);
