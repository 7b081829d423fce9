//! Webhook subscriptions on PostgreSQL (see `webhooks.rs`).

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use uuid::Uuid;

use super::events::{EventQuery, Position};
use super::postgres::PgStore;
use super::webhooks::{Delivery, Webhook, type_names, types_of};
use super::{Result, StoreError, TenantScope};

const COLUMNS: &str = "tenant_id, id, url, types, secret, enabled, created_at, xid, seq, attempts, \
     next_attempt_at, last_success_at, last_error, last_error_at, failing_since";

fn webhook_from_row(row: &PgRow) -> Result<Webhook> {
    let get = |e: sqlx::Error| StoreError::from_sqlx(e);
    let types: Vec<String> = row.try_get("types").map_err(get)?;
    Ok(Webhook {
        tenant: TenantScope::new(row.try_get("tenant_id").map_err(get)?),
        id: row.try_get("id").map_err(get)?,
        url: row.try_get("url").map_err(get)?,
        types: types_of(&types),
        secret: row.try_get("secret").map_err(get)?,
        enabled: row.try_get("enabled").map_err(get)?,
        created: row.try_get("created_at").map_err(get)?,
        position: Position {
            xid: row.try_get("xid").map_err(get)?,
            seq: row.try_get("seq").map_err(get)?,
        },
        attempts: row.try_get("attempts").map_err(get)?,
        next_attempt_at: row.try_get("next_attempt_at").map_err(get)?,
        last_success_at: row.try_get("last_success_at").map_err(get)?,
        last_error: row.try_get("last_error").map_err(get)?,
        last_error_at: row.try_get("last_error_at").map_err(get)?,
        failing_since: row.try_get("failing_since").map_err(get)?,
    })
}

impl PgStore {
    pub async fn create_webhook(&self, w: &Webhook) -> Result<()> {
        self.on(async |c| {
            sqlx::query(
                "INSERT INTO webhooks (tenant_id, id, url, types, secret, enabled, created_at, xid, seq, \
                 attempts, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $7)",
            )
            .bind(w.tenant.tenant_id())
            .bind(w.id)
            .bind(&w.url)
            .bind(type_names(&w.types))
            .bind(&w.secret)
            .bind(w.enabled)
            .bind(w.created)
            .bind(w.position.xid)
            .bind(w.position.seq)
            .execute(c)
            .await
        })
        .await?;
        Ok(())
    }

    pub async fn webhooks(&self, scope: TenantScope, id: Option<Uuid>) -> Result<Vec<Webhook>> {
        let rows = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND ($2::uuid IS NULL OR id = $2) \
                     ORDER BY created_at, id"
                )))
                .bind(scope.tenant_id())
                .bind(id)
                .fetch_all(c)
                .await
            })
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    pub async fn delete_webhook(&self, scope: TenantScope, id: Uuid) -> Result<bool> {
        let done = self
            .on(async |c| {
                sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
                    .bind(scope.tenant_id())
                    .bind(id)
                    .execute(c)
                    .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Enables the subscription (again), delivering from `from` when given,
    /// at once.
    pub async fn restart_webhook(
        &self,
        scope: TenantScope,
        id: Uuid,
        from: Option<Position>,
    ) -> Result<bool> {
        let done = self
            .on(async |c| {
                // The lease ends too: a run under way stops at its next record.
                sqlx::query(
                    "UPDATE webhooks SET enabled = true, attempts = 0, failing_since = NULL, \
                     next_attempt_at = now(), xid = COALESCE($3, xid), seq = COALESCE($4, seq), \
                     lease_owner = NULL, lease_until = NULL \
                     WHERE tenant_id = $1 AND id = $2",
                )
                .bind(scope.tenant_id())
                .bind(id)
                .bind(from.map(|p| p.xid))
                .bind(from.map(|p| p.seq))
                .execute(c)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Leases up to `limit` enabled subscriptions that are due and not
    /// leased by another process, until `until`.
    /// See [`super::Store::webhook_backlog`].
    pub async fn webhook_backlog(&self) -> Result<Vec<u64>> {
        let counts: Vec<i64> = self
            .on(async |c| {
                sqlx::query_scalar(
                    "SELECT (SELECT count(*) FROM (SELECT 1 FROM events e WHERE e.tenant_id = w.tenant_id \
                     AND (e.xid, e.seq) > (w.xid::text::xid8, w.seq) LIMIT 100000) x) \
                     FROM webhooks w WHERE w.enabled",
                )
                .fetch_all(c)
                .await
            })
            .await?;
        Ok(counts.into_iter().map(|n| n.max(0) as u64).collect())
    }

    pub async fn claim_webhooks(
        &self,
        owner: Uuid,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Webhook>> {
        let rows = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE webhooks SET lease_owner = $1, lease_until = $2 WHERE (tenant_id, id) IN ( \
                     SELECT tenant_id, id FROM webhooks WHERE enabled AND next_attempt_at <= now() \
                     AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1) \
                     ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) RETURNING {COLUMNS}"
                )))
                .bind(owner)
                .bind(until)
                .bind(limit)
                .fetch_all(c)
                .await
            })
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    /// Records a delivery attempt of a subscription this owner leases;
    /// `false` when the lease is no longer this owner's.
    pub async fn record_delivery(
        &self,
        w: &Webhook,
        owner: Uuid,
        outcome: &Delivery,
    ) -> Result<bool> {
        let (tenant, id) = (w.tenant.tenant_id(), w.id);
        let done = self
            .on(async |c| match outcome {
                Delivery::Progress { from, position, lease_until } => {
                    sqlx::query(
                        "UPDATE webhooks SET xid = $4, seq = $5, lease_until = $6, attempts = 0, \
                         failing_since = NULL, last_success_at = now() \
                         WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3 AND xid = $7 AND seq = $8",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(owner)
                    .bind(position.xid)
                    .bind(position.seq)
                    .bind(*lease_until)
                    .bind(from.xid)
                    .bind(from.seq)
                    .execute(c)
                    .await
                }
                Delivery::Failed { error, retry_at, disable } => {
                    sqlx::query(
                        "UPDATE webhooks SET attempts = attempts + 1, last_error = $4, last_error_at = now(), \
                         failing_since = COALESCE(failing_since, now()), next_attempt_at = $5, \
                         enabled = enabled AND NOT $6, lease_owner = NULL, lease_until = NULL \
                         WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(owner)
                    .bind(error)
                    .bind(*retry_at)
                    .bind(*disable)
                    .execute(c)
                    .await
                }
                Delivery::Idle => {
                    sqlx::query(
                        "UPDATE webhooks SET lease_owner = NULL, lease_until = NULL \
                         WHERE tenant_id = $1 AND id = $2 AND lease_owner = $3",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(owner)
                    .execute(c)
                    .await
                }
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many of the tenant's events after `q.after` match `q.types`.
    pub async fn count_events(&self, scope: TenantScope, q: &EventQuery) -> Result<u64> {
        let types: Option<Vec<&str>> =
            (!q.types.is_empty()).then(|| q.types.iter().map(|t| t.as_str()).collect());
        let n: i64 = self
            .on(async |c| {
                sqlx::query_scalar(
                    "SELECT count(*) FROM events WHERE tenant_id = $1 \
                     AND (xid, seq) > ($2::bigint::text::xid8, $3) \
                     AND ($4::text[] IS NULL OR type = ANY($4))",
                )
                .bind(scope.tenant_id())
                .bind(q.after.xid)
                .bind(q.after.seq)
                .bind(types)
                .fetch_one(c)
                .await
            })
            .await?;
        Ok(n as u64)
    }
}
