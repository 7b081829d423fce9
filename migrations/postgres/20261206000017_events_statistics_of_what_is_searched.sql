-- Autovacuum analyzes the events table every 2 % of its growth (migration
-- 8): at 600,000 events, every 13,000, or every few seconds under a busy
-- IdP. Each ANALYZE sampled 30,000 rows and built statistics for every
-- column, sorting the sampled documents (`data`, about 1 KB of JSONB each)
-- by jsonb comparison: 570-740 ms of a core per ANALYZE on 600,000 user
-- events, billed to the writes that record events. No query filters,
-- joins or sorts on these columns (the feed reads by tenant_id, (xid,
-- seq), type and resource_id; retention by position): the planner never
-- uses their statistics. Without them, the same ANALYZE takes 176-181 ms.
ALTER TABLE events
    ALTER COLUMN data SET STATISTICS 0,
    ALTER COLUMN groups SET STATISTICS 0,
    ALTER COLUMN actor SET STATISTICS 0,
    ALTER COLUMN changed SET STATISTICS 0,
    ALTER COLUMN id SET STATISTICS 0,
    ALTER COLUMN created_at SET STATISTICS 0,
    ALTER COLUMN modified_at SET STATISTICS 0,
    ALTER COLUMN occurred_at SET STATISTICS 0,
    ALTER COLUMN version SET STATISTICS 0,
    ALTER COLUMN resource_type SET STATISTICS 0,
    ALTER COLUMN member_id SET STATISTICS 0,
    ALTER COLUMN member_type SET STATISTICS 0;
