//! Webhook subscriptions on SQLite (see `webhooks.rs`). Times are epoch
//! milliseconds, types a JSON array.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::events::{EventQuery, Position};
use super::sqlite::{SqliteStore, from_millis, get, millis, parse_uuid};
use super::webhooks::{Delivery, Webhook, type_names, types_of};
use super::{Result, StoreError, TenantScope, now};

const COLUMNS: &str = "tenant_id, id, url, types, secret, enabled, created_at, xid, seq, attempts, \
     next_attempt_at, last_success_at, last_error, last_error_at, failing_since";

fn opt_time(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    get::<Option<i64>>(row, col)?.map(from_millis).transpose()
}

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    let types: Vec<String> = serde_json::from_str(&get::<String>(row, "types")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Webhook {
        tenant: TenantScope::new(parse_uuid(&get::<String>(row, "tenant_id")?)?),
        id: parse_uuid(&get::<String>(row, "id")?)?,
        url: get(row, "url")?,
        types: types_of(&types),
        secret: get(row, "secret")?,
        enabled: get(row, "enabled")?,
        created: from_millis(get(row, "created_at")?)?,
        position: Position {
            xid: get(row, "xid")?,
            seq: get(row, "seq")?,
        },
        attempts: get(row, "attempts")?,
        next_attempt_at: from_millis(get(row, "next_attempt_at")?)?,
        last_success_at: opt_time(row, "last_success_at")?,
        last_error: get(row, "last_error")?,
        last_error_at: opt_time(row, "last_error_at")?,
        failing_since: opt_time(row, "failing_since")?,
    })
}

impl SqliteStore {
    pub async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        let _turn = self.writer().await;
        sqlx::query(
            "INSERT INTO webhooks (tenant_id, id, url, types, secret, enabled, created_at, xid, seq, \
             attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $7)",
        )
        .bind(w.tenant.tenant_id().to_string())
        .bind(w.id.to_string())
        .bind(&w.url)
        .bind(Value::from(type_names(&w.types)).to_string())
        .bind(&w.secret)
        .bind(w.enabled)
        .bind(millis(w.created))
        .bind(w.position.xid)
        .bind(w.position.seq)
        .execute(self.writes())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn webhooks(&self, scope: TenantScope, id: Option<Uuid>) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND ($2 IS NULL OR id = $2) \
             ORDER BY created_at, id"
        )))
        .bind(scope.tenant_id().to_string())
        .bind(id.map(|id| id.to_string()))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn delete_webhook(&self, scope: TenantScope, id: Uuid) -> Result<bool> {
        let _turn = self.writer().await;
        let done = sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .execute(self.writes())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn restart_webhook(
        &self,
        scope: TenantScope,
        id: Uuid,
        from: Option<Position>,
    ) -> Result<bool> {
        let _turn = self.writer().await;
        let done = sqlx::query(
            "UPDATE webhooks SET enabled = 1, attempts = 0, failing_since = NULL, \
             next_attempt_at = $3, xid = COALESCE($4, xid), seq = COALESCE($5, seq), \
             lease_owner = NULL, lease_until = NULL \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(millis(now()))
        .bind(from.map(|p| p.xid))
        .bind(from.map(|p| p.seq))
        .execute(self.writes())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    /// See [`super::Store::webhook_backlog`].
    pub async fn webhook_backlog(&self) -> Result<Vec<u64>> {
        let counts: Vec<i64> = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.tenant_id = w.tenant_id \
             AND e.seq > w.seq LIMIT 100000)) FROM webhooks w WHERE w.enabled",
        )
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(counts.into_iter().map(|n| n.max(0) as u64).collect())
    }

    pub async fn claim_webhooks(
        &self,
        owner: Uuid,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Webhook>> {
        // What may be leased: enabled, due, and leased by no one else.
        const CLAIMABLE: &str = "enabled AND next_attempt_at <= $2 \
            AND (lease_until IS NULL OR lease_until < $2 OR lease_owner = $1)";
        let at = millis(now());
        // The worker looks every time this process's writes record events
        // (up to 20 times a second). With no subscription, or only ones
        // backing off, every look finds nothing due. A lease is a write,
        // which takes the writer's turn: it commits the batch open at that
        // moment and writes alone. So look on the read pool first.
        let due: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT EXISTS (SELECT 1 FROM webhooks WHERE {CLAIMABLE})"
        )))
        .bind(owner.to_string())
        .bind(at)
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        if !due {
            return Ok(Vec::new());
        }
        let _turn = self.writer().await;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhooks SET lease_owner = $1, lease_until = $3 WHERE rowid IN ( \
             SELECT rowid FROM webhooks WHERE {CLAIMABLE} ORDER BY next_attempt_at LIMIT $4) \
             RETURNING {COLUMNS}"
        )))
        .bind(owner.to_string())
        .bind(at)
        .bind(millis(until))
        .bind(limit)
        .fetch_all(self.writes())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn record_delivery(
        &self,
        w: &Webhook,
        owner: Uuid,
        outcome: &Delivery,
    ) -> Result<bool> {
        let (tenant, id, owner) = (
            w.tenant.tenant_id().to_string(),
            w.id.to_string(),
            owner.to_string(),
        );
        let at = millis(now());
        let _turn = self.writer().await;
        let query = match outcome {
            Delivery::Progress {
                from,
                position,
                lease_until,
            } => sqlx::query(
                "UPDATE webhooks SET xid = $4, seq = $5, lease_until = $6, attempts = 0, \
                 failing_since = NULL, last_success_at = $7 \
                 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND xid = $8 AND seq = $9",
            )
            .bind(tenant)
            .bind(id)
            .bind(owner)
            .bind(position.xid)
            .bind(position.seq)
            .bind(millis(*lease_until))
            .bind(at)
            .bind(from.xid)
            .bind(from.seq),
            Delivery::Failed {
                error,
                retry_at,
                disable,
            } => sqlx::query(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = $4, last_error_at = $7, \
                 failing_since = COALESCE(failing_since, $7), next_attempt_at = $5, \
                 enabled = enabled AND NOT $6, lease_owner = NULL, lease_until = NULL \
                 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
            )
            .bind(tenant)
            .bind(id)
            .bind(owner)
            .bind(error.clone())
            .bind(millis(*retry_at))
            .bind(*disable)
            .bind(at),
            Delivery::Idle => sqlx::query(
                "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL \
                 WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
            )
            .bind(tenant)
            .bind(id)
            .bind(owner),
        };
        let done = query
            .execute(self.writes())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn count_events(&self, scope: TenantScope, q: &EventQuery) -> Result<u64> {
        let types: Option<String> = (!q.types.is_empty()).then(|| {
            Value::from(q.types.iter().map(|t| t.as_str()).collect::<Vec<_>>()).to_string()
        });
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE tenant_id = $1 AND seq > $2 \
             AND ($3 IS NULL OR type IN (SELECT value FROM json_each($3)))",
        )
        .bind(scope.tenant_id().to_string())
        .bind(q.after.seq)
        .bind(types)
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(n as u64)
    }
}
