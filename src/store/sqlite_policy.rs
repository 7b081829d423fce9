//! Tenant policies on SQLite (see `policy.rs`): each change or count is
//! one `BEGIN IMMEDIATE` transaction, in this process's writer queue.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::events::EventResource;
use super::policy::{
    DeleteMode, Deletion, DeletionThreshold, PolicyChange, TenantPolicy, TenantState, Verdict,
};
use super::sqlite::{SqliteStore, from_millis, get, millis, parse_uuid};
use super::sqlite_events::PendingEvent;
use super::{Result, StoreError, Tenant, now};
use crate::events::EventType;

const COLUMNS: &str = "id, project_id, name, delete_mode, deletion_limit, deletion_window_secs, \
     paused, held_since, deletions_held, policy_version";

/// The policy columns of a `tenants` row (also read with an access key).
pub(super) fn policy_from_row(row: &SqliteRow) -> Result<TenantPolicy> {
    let limit: Option<i64> = get(row, "deletion_limit")?;
    let window: Option<i64> = get(row, "deletion_window_secs")?;
    Ok(TenantPolicy {
        delete_mode: DeleteMode::parse(&get::<String>(row, "delete_mode")?)
            .map_err(StoreError::Corrupt)?,
        deletion_threshold: match (limit, window) {
            (Some(limit), Some(window_secs)) => Some(DeletionThreshold {
                limit: u32::try_from(limit).unwrap_or(1),
                window_secs,
            }),
            _ => None,
        },
        paused: get(row, "paused")?,
        held_since: get::<Option<i64>>(row, "held_since")?
            .map(from_millis)
            .transpose()?,
    })
}

fn state_from_row(row: &SqliteRow) -> Result<TenantState> {
    Ok(TenantState {
        tenant: Tenant {
            id: parse_uuid(&get::<String>(row, "id")?)?,
            project_id: get(row, "project_id")?,
            name: get(row, "name")?,
        },
        policy: policy_from_row(row)?,
        deletions_held: get(row, "deletions_held")?,
        version: get(row, "policy_version")?,
    })
}

/// A tenant event (when there is an actor: events are on), for the
/// write's batch to insert.
fn record(
    tenant: Uuid,
    kind: EventType,
    version: i64,
    actor: Option<&Value>,
    changed: Option<&[String]>,
) -> Vec<PendingEvent> {
    let Some(actor) = actor else {
        return Vec::new();
    };
    vec![PendingEvent {
        tenant_id: tenant.to_string(),
        id: Uuid::now_v7().to_string(),
        kind: kind.as_str(),
        occurred_at: millis(now()),
        resource_type: EventResource::Tenant.as_str(),
        resource_id: tenant.to_string(),
        version,
        actor: actor.to_string(),
        changed: changed.map(|c| Value::from(c.to_vec()).to_string()),
        snapshot: None,
        member: None,
    }]
}

async fn read(c: &mut SqliteConnection, tenant: Uuid) -> Result<Option<TenantState>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1"
    )))
    .bind(tenant.to_string())
    .fetch_optional(c)
    .await
    .map_err(StoreError::from_sqlx)?;
    row.as_ref().map(state_from_row).transpose()
}

fn window_start(at: DateTime<Utc>, t: DeletionThreshold) -> i64 {
    millis(at) - t.window_secs * 1000
}

impl SqliteStore {
    pub async fn tenant_state(&self, tenant: Uuid) -> Result<Option<TenantState>> {
        let mut conn = self.pool().acquire().await.map_err(StoreError::from_sqlx)?;
        read(&mut conn, tenant).await
    }

    pub async fn change_policy(
        &self,
        tenant: Uuid,
        change: &PolicyChange,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        self.write(async |tx| {
            let Some(before) = read(tx, tenant).await? else {
                return Ok((None, Vec::new()));
            };
            let changed = change.changed(&before.policy);
            if changed.is_empty() {
                return Ok((Some(before), Vec::new()));
            }
            let after = change.applied_to(&before.policy);
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET delete_mode = $2, deletion_limit = $3, deletion_window_secs = $4, \
                 paused = $5, policy_version = policy_version + 1 WHERE id = $1 RETURNING {COLUMNS}"
            )))
            .bind(tenant.to_string())
            .bind(after.delete_mode.as_str())
            .bind(after.deletion_threshold.map(|t| i64::from(t.limit)))
            .bind(after.deletion_threshold.map(|t| t.window_secs))
            .bind(after.paused)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let state = state_from_row(&row)?;
            let events = record(tenant, EventType::TenantUpdated, state.version, actor, Some(&changed));
            Ok((Some(state), events))
        })
        .await
    }

    pub async fn release_deletions(
        &self,
        tenant: Uuid,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        self.write(async |tx| {
            let Some(before) = read(tx, tenant).await? else {
                return Ok((None, Vec::new()));
            };
            sqlx::query("DELETE FROM tenant_deletions WHERE tenant_id = $1")
                .bind(tenant.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            if before.policy.held_since.is_none() {
                return Ok((Some(before), Vec::new()));
            }
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tenants SET held_since = NULL, deletions_held = 0, \
                 policy_version = policy_version + 1 WHERE id = $1 RETURNING {COLUMNS}"
            )))
            .bind(tenant.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let state = state_from_row(&row)?;
            let events = record(
                tenant,
                EventType::TenantDeletionsReleased,
                state.version,
                actor,
                None,
            );
            Ok((Some(state), events))
        })
        .await
    }

    pub async fn count_deletion(&self, tenant: Uuid, actor: Option<&Value>) -> Result<Deletion> {
        // In the write's transaction, which wakes the event readers (a
        // trip records an event).
        self.write(async |tx| {
            let Some(state) = read(tx, tenant).await? else {
                return Ok((Deletion::Allowed, Vec::new()));
            };
            let at = now();
            let counted = match state.policy.deletion_threshold {
                Some(t) if state.policy.held_since.is_none() => sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM tenant_deletions WHERE tenant_id = $1 AND at > $2",
                )
                .bind(tenant.to_string())
                .bind(window_start(at, t))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?,
                _ => 0,
            };
            let verdict = Verdict::of(&state.policy, counted);
            let mut events = Vec::new();
            match verdict {
                Verdict::Uncounted => return Ok((Deletion::Allowed, Vec::new())),
                Verdict::Count => {
                    let t = state.policy.deletion_threshold.expect("counted");
                    sqlx::query("DELETE FROM tenant_deletions WHERE tenant_id = $1 AND at <= $2")
                        .bind(tenant.to_string())
                        .bind(window_start(at, t))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                    sqlx::query("INSERT INTO tenant_deletions (tenant_id, at) VALUES ($1, $2)")
                        .bind(tenant.to_string())
                        .bind(millis(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_sqlx)?;
                }
                Verdict::StillHeld => {
                    sqlx::query(
                        "UPDATE tenants SET deletions_held = deletions_held + 1 WHERE id = $1",
                    )
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                }
                Verdict::Trip => {
                    let version: i64 = sqlx::query_scalar(
                        "UPDATE tenants SET held_since = $2, deletions_held = 1, \
                     policy_version = policy_version + 1 WHERE id = $1 RETURNING policy_version",
                    )
                    .bind(tenant.to_string())
                    .bind(millis(at))
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
                    events = record(tenant, EventType::TenantDeletionsHeld, version, actor, None);
                }
            }
            Ok((verdict.deletion(), events))
        })
        .await
    }
}
