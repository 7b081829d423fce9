//! Tenant policies on PostgreSQL (see `policy.rs`): each change or count
//! is one transaction holding the tenant's row.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::policy::{
    DeleteMode, Deletion, DeletionThreshold, PolicyChange, TenantPolicy, TenantState, Verdict,
};
use super::postgres::PgStore;
use super::{Result, StoreError, Tenant, now};
use crate::events::EventType;

const COLUMNS: &str = "id, project_id, name, delete_mode, deletion_limit, deletion_window_secs, \
     paused, held_since, deletions_held, policy_version";

/// The policy columns of a `tenants` row (also read with an access key).
pub(super) fn policy_from_row(row: &PgRow) -> Result<TenantPolicy> {
    let get = |e: sqlx::Error| StoreError::from_sqlx(e);
    let limit: Option<i32> = row.try_get("deletion_limit").map_err(get)?;
    let window: Option<i64> = row.try_get("deletion_window_secs").map_err(get)?;
    Ok(TenantPolicy {
        delete_mode: DeleteMode::parse(row.try_get("delete_mode").map_err(get)?)
            .map_err(StoreError::Corrupt)?,
        deletion_threshold: match (limit, window) {
            (Some(limit), Some(window_secs)) => Some(DeletionThreshold {
                limit: u32::try_from(limit).unwrap_or(1),
                window_secs,
            }),
            _ => None,
        },
        paused: row.try_get("paused").map_err(get)?,
        held_since: row.try_get("held_since").map_err(get)?,
    })
}

fn state_from_row(row: &PgRow) -> Result<TenantState> {
    let get = |e: sqlx::Error| StoreError::from_sqlx(e);
    Ok(TenantState {
        tenant: Tenant {
            id: row.try_get("id").map_err(get)?,
            project_id: row.try_get("project_id").map_err(get)?,
            name: row.try_get("name").map_err(get)?,
        },
        policy: policy_from_row(row)?,
        deletions_held: row.try_get("deletions_held").map_err(get)?,
        version: row.try_get("policy_version").map_err(get)?,
    })
}

/// Records a tenant event (when there is an actor: events are on).
async fn record(
    c: &mut PgConnection,
    tenant: Uuid,
    kind: EventType,
    version: i64,
    actor: Option<&Value>,
    changed: Option<&[String]>,
) -> Result<()> {
    let Some(actor) = actor else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version, actor, changed) \
         VALUES ($1, $2, $3, $4, 'Tenant', $1, $5, $6, $7)",
    )
    .bind(tenant)
    .bind(Uuid::now_v7())
    .bind(kind.as_str())
    .bind(now())
    .bind(version)
    .bind(Json(actor))
    .bind(changed)
    .execute(c)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(())
}

async fn locked(c: &mut PgConnection, tenant: Uuid) -> Result<Option<TenantState>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tenants WHERE id = $1 FOR UPDATE"
    )))
    .bind(tenant)
    .fetch_optional(c)
    .await
    .map_err(StoreError::from_sqlx)?;
    row.as_ref().map(state_from_row).transpose()
}

impl PgStore {
    pub async fn tenant_state(&self, tenant: Uuid) -> Result<Option<TenantState>> {
        let row = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM tenants WHERE id = $1"
                )))
                .bind(tenant)
                .fetch_optional(c)
                .await
            })
            .await?;
        row.as_ref().map(state_from_row).transpose()
    }

    pub async fn change_policy(
        &self,
        tenant: Uuid,
        change: &PolicyChange,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        let mut conn = self.lease().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
        let Some(before) = locked(&mut tx, tenant).await? else {
            return Ok(None);
        };
        let changed = change.changed(&before.policy);
        if changed.is_empty() {
            return Ok(Some(before));
        }
        let after = change.applied_to(&before.policy);
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenants SET delete_mode = $2, deletion_limit = $3, deletion_window_secs = $4, \
             paused = $5, policy_version = policy_version + 1 WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(tenant)
        .bind(after.delete_mode.as_str())
        .bind(after.deletion_threshold.map(|t| t.limit as i32))
        .bind(after.deletion_threshold.map(|t| t.window_secs))
        .bind(after.paused)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let state = state_from_row(&row)?;
        record(
            &mut tx,
            tenant,
            EventType::TenantUpdated,
            state.version,
            actor,
            Some(&changed),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        conn.release();
        self.notify.notify_waiters();
        Ok(Some(state))
    }

    pub async fn release_deletions(
        &self,
        tenant: Uuid,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        let mut conn = self.lease().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
        let Some(before) = locked(&mut tx, tenant).await? else {
            return Ok(None);
        };
        sqlx::query("DELETE FROM tenant_deletions WHERE tenant_id = $1")
            .bind(tenant)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        if before.policy.held_since.is_none() {
            tx.commit().await.map_err(StoreError::from_sqlx)?;
            conn.release();
            return Ok(Some(before));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE tenants SET held_since = NULL, deletions_held = 0, \
             policy_version = policy_version + 1 WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let state = state_from_row(&row)?;
        record(
            &mut tx,
            tenant,
            EventType::TenantDeletionsReleased,
            state.version,
            actor,
            None,
        )
        .await?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        conn.release();
        self.notify.notify_waiters();
        Ok(Some(state))
    }

    pub async fn count_deletion(&self, tenant: Uuid, actor: Option<&Value>) -> Result<Deletion> {
        let mut conn = self.lease().await?;
        let mut tx = sqlx::Connection::begin(&mut *conn)
            .await
            .map_err(StoreError::from_sqlx)?;
        let Some(state) = locked(&mut tx, tenant).await? else {
            return Ok(Deletion::Allowed);
        };
        let at = now();
        let counted = match state.policy.deletion_threshold {
            Some(t) if state.policy.held_since.is_none() => sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM tenant_deletions WHERE tenant_id = $1 AND at > $2",
            )
            .bind(tenant)
            .bind(window_start(at, t))
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?,
            _ => 0,
        };
        let verdict = Verdict::of(&state.policy, counted);
        match verdict {
            Verdict::Uncounted => return Ok(Deletion::Allowed),
            Verdict::Count => {
                let t = state.policy.deletion_threshold.expect("counted");
                sqlx::query(
                    "WITH old AS (DELETE FROM tenant_deletions WHERE tenant_id = $1 AND at <= $3) \
                     INSERT INTO tenant_deletions (tenant_id, at) VALUES ($1, $2)",
                )
                .bind(tenant)
                .bind(at)
                .bind(window_start(at, t))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
            }
            Verdict::StillHeld => {
                sqlx::query("UPDATE tenants SET deletions_held = deletions_held + 1 WHERE id = $1")
                    .bind(tenant)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from_sqlx)?;
            }
            Verdict::Trip => {
                let version: i64 = sqlx::query_scalar(
                    "UPDATE tenants SET held_since = $2, deletions_held = 1, \
                     policy_version = policy_version + 1 WHERE id = $1 RETURNING policy_version",
                )
                .bind(tenant)
                .bind(at)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from_sqlx)?;
                record(
                    &mut tx,
                    tenant,
                    EventType::TenantDeletionsHeld,
                    version,
                    actor,
                    None,
                )
                .await?;
            }
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        conn.release();
        if verdict == Verdict::Trip {
            self.notify.notify_waiters();
        }
        Ok(verdict.deletion())
    }
}

fn window_start(at: DateTime<Utc>, t: DeletionThreshold) -> DateTime<Utc> {
    at - chrono::TimeDelta::seconds(t.window_secs)
}
