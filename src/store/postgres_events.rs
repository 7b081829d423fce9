//! Change events on PostgreSQL: reading a tenant's feed in (xid, seq) order
//! below the oldest running transaction, and retention (see `events.rs`).

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

/// How long a reader asking for the head waits for the transactions that
/// were running when it asked, and how often it looks.
const SETTLE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

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
    /// only of transactions older than every running one.
    ///
    /// A reader at the end of the feed also gets what committed before it
    /// asked: when the page is not full and transactions were running (in
    /// any database of the cluster, which the snapshot's xmin cannot tell
    /// apart), it waits for those to end, at most `SETTLE_WAIT`, and reads
    /// again. Without this a client that reads right after its own write
    /// may miss it until its next read; with a transaction that runs
    /// longer, it still does, and loses nothing.
    pub async fn read_events(&self, scope: TenantScope, q: &EventQuery) -> Result<EventPage> {
        if q.limit == 0 {
            let head = self.settled_head().await?;
            return Ok(EventPage::from_rows(Vec::new(), q, head));
        }
        let (found, head, next) = self.read_page(scope, q).await?;
        if found.len() as u64 > q.limit || head.xid + 1 >= next {
            return Ok(EventPage::from_rows(found, q, head));
        }
        if self.settle(next).await? <= head.xid + 1 {
            return Ok(EventPage::from_rows(found, q, head));
        }
        let (found, head, _) = self.read_page(scope, q).await?;
        Ok(EventPage::from_rows(found, q, head))
    }

    /// Up to `q.limit + 1` events after `q.after` below the snapshot's
    /// xmin, the head that bound gives, and the snapshot's xmax (the next
    /// transaction id). One statement: the bound and the events come from
    /// the same snapshot. (The order names the table's columns: an output
    /// alias `xid` would make it sort a computed value, and scan the whole
    /// feed, instead of reading the primary key's range.)
    async fn read_page(
        &self,
        scope: TenantScope,
        q: &EventQuery,
    ) -> Result<(Vec<StoredEvent>, Position, i64)> {
        let types: Option<Vec<&str>> =
            (!q.types.is_empty()).then(|| q.types.iter().map(|t| t.as_str()).collect());
        let limit = i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX);
        let rows = self
            .on(async |c| {
                sqlx::query(
                    "WITH h AS (SELECT pg_snapshot_xmin(s) AS xmin, pg_snapshot_xmax(s) AS xmax \
                       FROM pg_current_snapshot() s) \
                     SELECT h.xmin::text::bigint AS head, h.xmax::text::bigint AS next, e.* \
                     FROM h LEFT JOIN LATERAL ( \
                       SELECT xid::text::bigint AS position_xid, seq, id, type, occurred_at, resource_type, \
                       resource_id, version, actor, changed, created_at, modified_at, data, \
                       groups::text AS groups, member_id, member_type FROM events \
                       WHERE tenant_id = $1 AND (xid, seq) > ($2::bigint::text::xid8, $3) \
                       AND xid < h.xmin \
                       AND ($4::text[] IS NULL OR type = ANY($4)) \
                       AND ($5::uuid IS NULL OR resource_id = $5) \
                       ORDER BY events.xid, events.seq LIMIT $6) e ON true",
                )
                .bind(scope.tenant_id())
                .bind(q.after.xid)
                .bind(q.after.seq)
                .bind(types)
                .bind(q.resource_id)
                .bind(limit)
                .fetch_all(c)
                .await
            })
            .await?;
        let get = |e: sqlx::Error| StoreError::from_sqlx(e);
        let (head_xmin, next): (i64, i64) = match rows.first() {
            Some(row) => (
                row.try_get("head").map_err(get)?,
                row.try_get("next").map_err(get)?,
            ),
            None => (0, 0),
        };
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            if row.try_get::<Option<i64>, _>("seq").map_err(get)?.is_some() {
                found.push(event_from_row(row)?);
            }
        }
        // Every transaction below the snapshot's xmin has ended.
        let head = Position {
            xid: head_xmin - 1,
            seq: i64::MAX,
        };
        Ok((found, head, next))
    }

    /// The head for a reader starting now (`limit=0`, a new webhook): the
    /// position after every transaction that had begun when it asked, so
    /// that events committed before the request are at or below it and
    /// none committed after it is. A read's own head (the snapshot's xmin)
    /// is behind any transaction still running, in any database of the
    /// cluster, and would hand out events from before the request; so this
    /// waits until those transactions have ended (a write's few
    /// milliseconds). If one runs longer than `SETTLE_WAIT` (some other
    /// client's long transaction), the head stays behind it: events from
    /// just before may then come again, never be missed.
    async fn settled_head(&self) -> Result<Position> {
        let (_, next) = self.snapshot_bounds().await?;
        let oldest = self.settle(next).await?;
        // Every transaction below `oldest` has ended.
        Ok(Position {
            xid: oldest.min(next) - 1,
            seq: i64::MAX,
        })
    }

    /// Waits, at most `SETTLE_WAIT`, until every transaction below `target`
    /// has ended; returns the oldest one still running (or the next id).
    async fn settle(&self, target: i64) -> Result<i64> {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let (oldest, _) = self.snapshot_bounds().await?;
            if oldest >= target || tokio::time::Instant::now() >= deadline {
                return Ok(oldest);
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// The current snapshot's xmin (the oldest running transaction, or the
    /// next id when none runs) and xmax (the next transaction id).
    async fn snapshot_bounds(&self) -> Result<(i64, i64)> {
        let row = self
            .on(async |c| {
                sqlx::query(
                    "SELECT pg_snapshot_xmin(s)::text::bigint AS xmin, \
                     pg_snapshot_xmax(s)::text::bigint AS xmax FROM pg_current_snapshot() s",
                )
                .fetch_one(c)
                .await
            })
            .await?;
        let get = |e: sqlx::Error| StoreError::from_sqlx(e);
        Ok((
            row.try_get("xmin").map_err(get)?,
            row.try_get("xmax").map_err(get)?,
        ))
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

    /// Removes events that occurred before `cutoff`, in bounded batches,
    /// moving each tenant's horizon past them. Returns how many went.
    pub async fn purge_events(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let mut total = 0;
        for _ in 0..10_000 {
            let gone: i64 = self
                .on(async |c| {
                    sqlx::query_scalar(
                        "WITH gone AS (DELETE FROM events WHERE (tenant_id, xid, seq) IN ( \
                           SELECT tenant_id, xid, seq FROM events WHERE occurred_at < $1 LIMIT $2) \
                           RETURNING tenant_id, xid, seq), \
                         last AS (SELECT DISTINCT ON (tenant_id) tenant_id, xid, seq FROM gone \
                           ORDER BY tenant_id, xid DESC, seq DESC), \
                         moved AS (INSERT INTO event_horizons (tenant_id, xid, seq) \
                           SELECT tenant_id, xid, seq FROM last \
                           ON CONFLICT (tenant_id) DO UPDATE SET xid = EXCLUDED.xid, seq = EXCLUDED.seq \
                           WHERE (event_horizons.xid, event_horizons.seq) < (EXCLUDED.xid, EXCLUDED.seq)) \
                         SELECT count(*) FROM gone",
                    )
                    .bind(cutoff)
                    .bind(PURGE_BATCH)
                    .fetch_one(c)
                    .await
                })
                .await?;
            total += gone as u64;
            if gone < PURGE_BATCH {
                break;
            }
        }
        Ok(total)
    }

    /// Woken after every write of this process that recorded events.
    pub fn events_notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}
