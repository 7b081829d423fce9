//! Change events on PostgreSQL: reading a tenant's feed in (xid, seq) order
//! below the oldest transaction of this database still running, and
//! retention (see `events.rs`).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use uuid::Uuid;

use super::events::{self, EventPage, EventQuery, Position, Snapshot, StoredEvent};
use super::postgres::PgStore;
use super::{GroupRef, MemberKind, Result, StoreError, TenantScope};

/// Rows removed per retention statement.
const PURGE_BATCH: i64 = 10_000;

/// How long a settling reader waits for the transactions of this database
/// that were running when it asked, and how often it looks: after 2 ms first,
/// then twice as long each time, at most 100 ms.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(2);
const SETTLE_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(100);

/// Which running transactions may still write events, as far as a reader
/// can tell. Events are written only in this database, but a snapshot's
/// xmin is the oldest transaction of the whole cluster: a long one in
/// another database (or another test's) would hold every reader back. So
/// a reader first notes the next transaction id (`next`, from its
/// snapshot) and then the ids of the transactions running in this
/// database (`ours`, from `pg_stat_activity`, whose `backend_xid` every
/// role may read, as 32-bit ids); its page then ends before the oldest
/// transaction still running that is one of `ours` or began at or after
/// `next`. A transaction of this database that began before `next` and is
/// not in `ours` had ended before `ours` was read, so its events are in
/// the page's snapshot.
struct Running {
    next: i64,
    ours: Vec<i64>,
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent> {
    let get = |e: sqlx::Error| StoreError::from_sqlx(e);
    let kind = events::event_type(row.try_get("type").map_err(get)?)?;
    let snapshot = match row
        .try_get::<Option<Json<Map<String, Value>>>, _>("data")
        .map_err(get)?
    {
        None => None,
        Some(Json(doc)) => Some(Snapshot {
            created: row.try_get("created_at").map_err(get)?,
            modified: row.try_get("modified_at").map_err(get)?,
            doc,
            groups: match row.try_get::<Option<String>, _>("groups").map_err(get)? {
                Some(text) => GroupRef::parse_list(&text)?,
                None => Vec::new(),
            },
        }),
    };
    let member = match row.try_get::<Option<Uuid>, _>("member_id").map_err(get)? {
        None => None,
        Some(id) => {
            let kind: Option<&str> = row.try_get("member_type").map_err(get)?;
            Some((id, MemberKind::parse(kind.unwrap_or("User"))))
        }
    };
    let resource: &str = row.try_get("resource_type").map_err(get)?;
    Ok(StoredEvent {
        position: Position {
            xid: row.try_get("position_xid").map_err(get)?,
            seq: row.try_get("seq").map_err(get)?,
        },
        id: row.try_get("id").map_err(get)?,
        kind,
        occurred_at: row.try_get("occurred_at").map_err(get)?,
        resource: events::EventResource::parse(resource),
        resource_id: row.try_get("resource_id").map_err(get)?,
        version: row.try_get("version").map_err(get)?,
        actor: row
            .try_get::<Option<Json<Value>>, _>("actor")
            .map_err(get)?
            .map_or(Value::Null, |Json(v)| v),
        changed: row
            .try_get::<Option<Vec<String>>, _>("changed")
            .map_err(get)?
            .unwrap_or_default(),
        snapshot,
        member,
    })
}

impl PgStore {
    /// A page of the tenant's events after `q.after`, in (xid, seq) order,
    /// only of transactions older than every one of this database still
    /// running (see `Running`).
    ///
    /// A settling reader (`q.settle`, and always for the head, `limit=0`)
    /// also gets what committed before it asked: while a transaction of
    /// this database that began before the request still runs (a write's
    /// few milliseconds), it waits, at most `SETTLE_WAIT`, and reads again.
    /// With a transaction that runs longer the page ends before it, and a
    /// later read returns what it wrote: nothing is lost.
    pub async fn read_events(&self, scope: TenantScope, q: &EventQuery) -> Result<EventPage> {
        let settle = q.settle || q.limit == 0;
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        let mut poll = SETTLE_POLL;
        let mut asked = None;
        loop {
            let running = self.running().await?;
            // Every transaction below this had begun when the reader asked.
            let asked = *asked.get_or_insert(running.next);
            let (found, head) = self.read_page(scope, q, &running).await?;
            let now = tokio::time::Instant::now();
            if !settle || found.len() as u64 > q.limit || head.xid + 1 >= asked || now >= deadline {
                return Ok(EventPage::from_rows(found, q, head));
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
            poll = (poll * 2).min(SETTLE_POLL_MAX);
        }
    }

    /// Up to `q.limit + 1` events after `q.after` below the head, and the
    /// head: the oldest transaction, in this snapshot, that may still
    /// write events (one of `running.ours`, or one that began after
    /// `running` looked), else the snapshot's xmax. One statement: the
    /// head and the events come from the same snapshot. (The order names
    /// the table's columns: an output alias `xid` would make it sort a
    /// computed value, and scan the whole feed, instead of reading the
    /// primary key's range.)
    async fn read_page(
        &self,
        scope: TenantScope,
        q: &EventQuery,
        running: &Running,
    ) -> Result<(Vec<StoredEvent>, Position)> {
        let types: Option<Vec<&str>> =
            (!q.types.is_empty()).then(|| q.types.iter().map(|t| t.as_str()).collect());
        let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = self
            .on(async |c| {
                sqlx::query(
                    "WITH s AS (SELECT pg_current_snapshot() AS s), \
                     h AS (SELECT coalesce( \
                       (SELECT min(x) FROM pg_snapshot_xip(s.s) x \
                        WHERE x::text::bigint >= $7 OR x::text::bigint % 4294967296 = ANY($8)), \
                       pg_snapshot_xmax(s.s)) AS head FROM s) \
                     SELECT h.head::text::bigint AS head, e.* \
                     FROM h LEFT JOIN LATERAL ( \
                       SELECT xid::text::bigint AS position_xid, seq, id, type, occurred_at, resource_type, \
                       resource_id, version, actor, changed, created_at, modified_at, data, \
                       groups::text AS groups, member_id, member_type FROM events \
                       WHERE tenant_id = $1 AND (xid, seq) > ($2::bigint::text::xid8, $3) \
                       AND xid < h.head \
                       AND ($4::text[] IS NULL OR type = ANY($4)) \
                       AND ($5::uuid IS NULL OR resource_id = $5) \
                       ORDER BY events.xid, events.seq LIMIT $6) e ON true",
                )
                .bind(scope.tenant_id())
                .bind(q.after.xid)
                .bind(q.after.seq)
                .bind(types.as_deref())
                .bind(q.resource_id)
                .bind(limit)
                .bind(running.next)
                .bind(&running.ours)
                .fetch_all(c)
                .await
            })
            .await?;
        let get = |e: sqlx::Error| StoreError::from_sqlx(e);
        let head: i64 = match rows.first() {
            Some(row) => row.try_get("head").map_err(get)?,
            None => 0,
        };
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>("seq").map_err(get)?.is_some() {
                found.push(event_from_row(row)?);
            }
        }
        // Every transaction below the head that can write events has ended.
        let head = Position {
            xid: head - 1,
            seq: i64::MAX,
        };
        Ok((found, head))
    }

    /// The transactions of this database running now, for `read_page`.
    async fn running(&self) -> Result<Running> {
        let (next, ours): (i64, Vec<i64>) = self
            .on(async |c| {
                sqlx::query_as(
                    "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint, \
                     coalesce(array_agg(backend_xid::text::bigint), '{}') \
                     FROM pg_stat_activity \
                     WHERE datname = current_database() AND backend_xid IS NOT NULL",
                )
                .fetch_one(c)
                .await
            })
            .await?;
        Ok(Running { next, ours })
    }

    /// The last event retention removed from the tenant's feed.
    pub async fn event_horizon(&self, scope: TenantScope) -> Result<Position> {
        let row: Option<(i64, i64)> = self
            .on(async |c| {
                sqlx::query_as(
                    "SELECT xid::text::bigint, seq FROM event_horizons WHERE tenant_id = $1",
                )
                .bind(scope.tenant_id())
                .fetch_optional(c)
                .await
            })
            .await?;
        Ok(row.map_or(Position::START, |(xid, seq)| Position { xid, seq }))
    }

    /// Removes each tenant's expired prefix of the feed: from its oldest
    /// event up to the first one that occurred at or after `cutoff`, in
    /// bounded batches read in feed order through the primary key, moving
    /// the tenant's horizon past them. Returns how many went.
    pub async fn purge_events(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let tenants: Vec<Uuid> = self
            .on(async |c| {
                sqlx::query_scalar("SELECT id FROM tenants")
                    .fetch_all(c)
                    .await
            })
            .await?;
        let mut total = 0;
        for tenant in tenants {
            for _ in 0..10_000 {
                let gone: i64 = self
                    .on(async |c| {
                        sqlx::query_scalar(
                            "WITH page AS (SELECT xid, seq, occurred_at FROM events WHERE tenant_id = $1 \
                               ORDER BY xid, seq LIMIT $2), \
                             kept AS (SELECT xid, seq FROM page WHERE occurred_at >= $3 ORDER BY xid, seq LIMIT 1), \
                             doomed AS (SELECT xid, seq FROM page \
                               WHERE NOT EXISTS (SELECT 1 FROM kept) OR (xid, seq) < (SELECT xid, seq FROM kept)), \
                             gone AS (DELETE FROM events e USING doomed d \
                               WHERE e.tenant_id = $1 AND e.xid = d.xid AND e.seq = d.seq RETURNING e.xid, e.seq), \
                             last AS (SELECT xid, seq FROM gone ORDER BY xid DESC, seq DESC LIMIT 1), \
                             moved AS (INSERT INTO event_horizons (tenant_id, xid, seq) \
                               SELECT $1, xid, seq FROM last \
                               ON CONFLICT (tenant_id) DO UPDATE SET xid = EXCLUDED.xid, seq = EXCLUDED.seq \
                               WHERE (event_horizons.xid, event_horizons.seq) < (EXCLUDED.xid, EXCLUDED.seq)) \
                             SELECT count(*) FROM gone",
                        )
                        .bind(tenant)
                        .bind(PURGE_BATCH)
                        .bind(cutoff)
                        .fetch_one(c)
                        .await
                    })
                    .await?;
                total += gone as u64;
                // Fewer than a page went: the prefix ended (or another
                // process took part of it; the next pass goes on).
                if gone < PURGE_BATCH {
                    break;
                }
            }
        }
        Ok(total)
    }

    /// Woken after every write of this process that recorded events.
    pub fn events_notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}
