//! Change events on SQLite: one writer at a time, so a tenant's feed is
//! read in rowid order, and retention (see `events.rs`).
//!
//! A new event's `seq` is the table's largest plus one (no AUTOINCREMENT,
//! whose counter row every event would also rewrite). So that numbers
//! never go back, retention keeps the table's newest position: when it
//! removes the newest event, it keeps its row emptied and in no tenant
//! (`tenant_id = ''`) until a newer event exists.
//!
//! A write does not insert its events itself: it hands them to its batch
//! ([`PendingEvent`]), which inserts the events of all its writes in one
//! statement just before it commits, in the order the writes were made
//! (`sqlite_commit.rs`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;

use super::events::{self, EventPage, EventQuery, NewEvent, Position, Snapshot, StoredEvent};
use super::sqlite::{SqliteStore, doc_text, from_millis, get, millis, parse_uuid};
use super::{GroupRef, MemberKind, Result, StoreError, TenantScope};

/// Rows removed per retention statement.
const PURGE_BATCH: i64 = 10_000;

/// A write's event, waiting in its batch to be inserted: the values of its
/// row.
#[derive(Debug)]
pub(super) struct PendingEvent {
    pub tenant_id: String,
    pub id: String,
    pub kind: &'static str,
    /// Milliseconds; a user's event occurred at the row's `modified_at`.
    pub occurred_at: i64,
    pub resource_type: &'static str,
    pub resource_id: String,
    pub version: i64,
    /// The actor, as JSON text.
    pub actor: String,
    pub changed: Option<String>,
    /// The resource as written (none on member and tenant events).
    pub snapshot: Option<PendingSnapshot>,
    pub member: Option<(String, &'static str)>,
}

/// A resource as an event holds it: its times (milliseconds), document
/// and, for a user, groups (`[[id, display], …]`), as text.
#[derive(Debug)]
pub(super) struct PendingSnapshot {
    pub created_at: i64,
    pub modified_at: i64,
    pub data: String,
    pub groups: String,
}

impl PendingEvent {
    /// `e`, recorded by `actor` (JSON text) at `at` (milliseconds).
    pub fn of(tenant: &str, actor: &str, e: &NewEvent, at: i64) -> PendingEvent {
        PendingEvent {
            tenant_id: tenant.to_owned(),
            id: uuid::Uuid::now_v7().to_string(),
            kind: e.kind.as_str(),
            occurred_at: at,
            resource_type: e.resource.as_str(),
            resource_id: e.resource_id.to_string(),
            version: e.version,
            actor: actor.to_owned(),
            changed: e
                .kind
                .has_changes()
                .then(|| Value::from(e.changed.clone()).to_string()),
            snapshot: e.snapshot.as_ref().map(|s| PendingSnapshot {
                created_at: millis(s.created),
                modified_at: millis(s.modified),
                data: doc_text(&s.doc),
                groups: events::groups_json(&s.groups).to_string(),
            }),
            member: e.member.map(|(id, kind)| (id.to_string(), kind.as_str())),
        }
    }
}

/// The most rows one statement of [`insert_pending`] inserts: a batch's
/// writes (15 values a row, far below SQLite's 32,766), so that the events
/// of a batch of writes that record one each take one statement.
pub(super) const PENDING_ROWS: usize = super::sqlite_commit::MOST_WRITES;

/// `INSERT … VALUES` of `rows` rows (1 to [`PENDING_ROWS`]; the writer
/// connection keeps them prepared), bound in order by [`insert_pending`].
///
/// The placeholders are anonymous (`?`). sqlx asks SQLite the name of
/// each placeholder it binds, and SQLite finds a named one (`$7`) by
/// walking the statement's list of names: binding n named values costs
/// n²/2 steps, on the writer's turn that every write of the batch waits
/// on (a batch of 27 binds about 300; under POST with events,
/// `sqlite3_bind_parameter_name` took 2.3 % of the machine's samples).
/// An anonymous placeholder has no name to look for.
fn pending_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        (1..=PENDING_ROWS)
            .map(|n| {
                format!(
                    "INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, \
                     version, actor, changed, created_at, modified_at, data, groups, member_id, \
                     member_type) VALUES {}",
                    vec![row; n].join(", ")
                )
            })
            .collect()
    });
    &all[rows - 1]
}

/// Inserts `events` in their order (which `seq` follows): one statement
/// for each [`PENDING_ROWS`] of them.
pub(super) async fn insert_pending(
    conn: &mut sqlx::SqliteConnection,
    events: Vec<PendingEvent>,
) -> Result<()> {
    for these in events.chunks(PENDING_ROWS) {
        let mut query = sqlx::query(pending_sql(these.len()));
        for e in these {
            let s = e.snapshot.as_ref();
            query = query
                .bind(&e.tenant_id)
                .bind(&e.id)
                .bind(e.kind)
                .bind(e.occurred_at)
                .bind(e.resource_type)
                .bind(&e.resource_id)
                .bind(e.version)
                .bind(&e.actor)
                .bind(&e.changed)
                .bind(s.map(|s| s.created_at))
                .bind(s.map(|s| s.modified_at))
                .bind(s.map(|s| s.data.as_str()))
                .bind(s.map(|s| s.groups.as_str()))
                .bind(e.member.as_ref().map(|(id, _)| id.as_str()))
                .bind(e.member.as_ref().map(|(_, kind)| *kind));
        }
        query
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
    }
    Ok(())
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let snapshot = match get::<Option<String>>(row, "data")? {
        None => None,
        Some(doc) => Some(Snapshot {
            created: from_millis(get(row, "created_at")?)?,
            modified: from_millis(get(row, "modified_at")?)?,
            doc: serde_json::from_str(&doc).map_err(corrupt)?,
            groups: match get::<Option<String>>(row, "groups")? {
                Some(text) => GroupRef::parse_list(&text)?,
                None => Vec::new(),
            },
        }),
    };
    let member = match get::<Option<String>>(row, "member_id")? {
        None => None,
        Some(id) => {
            let kind: Option<String> = get(row, "member_type")?;
            Some((
                parse_uuid(&id)?,
                MemberKind::parse(kind.as_deref().unwrap_or("User")),
            ))
        }
    };
    let changed: Option<String> = get(row, "changed")?;
    let actor: Option<String> = get(row, "actor")?;
    Ok(StoredEvent {
        position: Position {
            xid: 0,
            seq: get(row, "seq")?,
        },
        id: parse_uuid(&get::<String>(row, "id")?)?,
        kind: events::event_type(&get::<String>(row, "type")?)?,
        occurred_at: from_millis(get(row, "occurred_at")?)?,
        resource: events::EventResource::parse(&get::<String>(row, "resource_type")?),
        resource_id: parse_uuid(&get::<String>(row, "resource_id")?)?,
        version: get(row, "version")?,
        actor: match actor {
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
            None => Value::Null,
        },
        changed: match changed {
            Some(text) => serde_json::from_str(&text).map_err(corrupt)?,
            None => Vec::new(),
        },
        snapshot,
        member,
    })
}

impl SqliteStore {
    /// A page of the tenant's events after `q.after`, in rowid order. The
    /// head (the largest rowid ever given, which retention keeps) is read
    /// first and bounds the page, so that what the page skips
    /// (filtered out) it skips only up to where it read.
    pub async fn read_events(&self, scope: TenantScope, q: &EventQuery) -> Result<EventPage> {
        let head: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM events")
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        let head = Position {
            xid: 0,
            seq: head.unwrap_or(0),
        };
        let types: Option<String> = (!q.types.is_empty()).then(|| {
            Value::from(q.types.iter().map(|t| t.as_str()).collect::<Vec<_>>()).to_string()
        });
        let rows = sqlx::query(
            "SELECT seq, id, type, occurred_at, resource_type, resource_id, version, actor, changed, \
             created_at, modified_at, data, groups, member_id, member_type FROM events \
             WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 \
             AND ($4 IS NULL OR type IN (SELECT value FROM json_each($4))) \
             AND ($5 IS NULL OR resource_id = $5) \
             ORDER BY seq LIMIT $6",
        )
        .bind(scope.tenant_id().to_string())
        .bind(q.after.seq)
        .bind(head.seq)
        .bind(types)
        .bind(q.resource_id.map(|id| id.to_string()))
        .bind(i64::try_from(q.limit.saturating_add(1)).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let events = rows.iter().map(event_from_row).collect::<Result<_>>()?;
        Ok(EventPage::from_rows(events, q, head))
    }

    /// The last event retention removed from the tenant's feed.
    pub async fn event_horizon(&self, scope: TenantScope) -> Result<Position> {
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM event_horizons WHERE tenant_id = $1")
                .bind(scope.tenant_id().to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::from_sqlx)?;
        Ok(Position {
            xid: 0,
            seq: seq.unwrap_or(0),
        })
    }

    /// Removes events that occurred before `cutoff`, in bounded batches,
    /// moving each tenant's horizon past them. Returns how many went.
    /// The feed is cut at its start, in `seq` order, up to the first event
    /// not yet expired: `seq` follows time (one writer at a time) within
    /// the moments a write waits for its turn.
    pub async fn purge_events(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let cutoff = millis(cutoff);
        let mut total = 0;
        for _ in 0..10_000 {
            let _turn = self.writer().await;
            let mut tx = self
                .writes()
                .begin_with("BEGIN IMMEDIATE")
                .await
                .map_err(StoreError::from_sqlx)?;
            let oldest: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT seq, tenant_id, occurred_at FROM events ORDER BY seq LIMIT $1",
            )
            .bind(PURGE_BATCH)
            .fetch_all(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let expired = oldest.iter().take_while(|(_, _, at)| *at < cutoff).count();
            let Some((last, _, _)) = expired.checked_sub(1).map(|i| &oldest[i]) else {
                break;
            };
            let mut horizons: std::collections::HashMap<&str, i64> = Default::default();
            for (seq, tenant, _) in &oldest[..expired] {
                if !tenant.is_empty() {
                    horizons.insert(tenant, *seq);
                }
            }
            let newest: i64 = sqlx::query_scalar("SELECT max(seq) FROM events")
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            let mut gone = sqlx::query("DELETE FROM events WHERE seq <= $1 AND seq < $2")
                .bind(last)
                .bind(newest)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected();
            if *last == newest {
                // The newest position stays, in no tenant's feed.
                gone += sqlx::query(
                    "UPDATE events SET tenant_id = '', id = '', type = '', resource_type = '', \
                     resource_id = '', version = 0, actor = NULL, changed = NULL, \
                     created_at = NULL, modified_at = NULL, data = NULL, groups = NULL, \
                     member_id = NULL, member_type = NULL WHERE seq = $1 AND tenant_id <> ''",
                )
                .bind(last)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected();
            }
            for (tenant, seq) in &horizons {
                sqlx::query(
                    "INSERT INTO event_horizons (tenant_id, seq) VALUES ($1, $2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET seq = max(seq, excluded.seq)",
                )
                .bind(tenant)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            }
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            total += gone;
            if expired < oldest.len() || oldest.len() < PURGE_BATCH as usize {
                break;
            }
        }
        Ok(total)
    }

    /// Woken after every write of this process that recorded events.
    pub fn events_notify(&self) -> &tokio::sync::Notify {
        &self.writers.notify
    }
}
