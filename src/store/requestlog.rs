//! The provisioning log's rows (see `crate::requestlog`) on both backends:
//! a batch inserted as one statement (rows as a JSON array), a tenant's
//! records read newest first, retention.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use super::postgres::PgStore;
use super::sqlite::{SqliteStore, from_millis, millis};
use super::{Result, StoreError, TenantScope};
use crate::requestlog::{ClientCount, Query, Record, Stored};

/// The rows of `records` as one JSON array (`time` as the backend reads
/// timestamps).
fn rows_json(records: &[Record], time: fn(DateTime<Utc>) -> Value) -> String {
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "tenant_id": r.tenant_id.to_string(),
                "at": time(r.at),
                "key_id": r.key_id,
                "user_agent": r.user_agent,
                "client": r.client,
                "method": r.method,
                "path": r.path,
                "resource_id": r.resource_id,
                "status": r.status,
                "scim_type": r.scim_type,
                "duration_ms": r.duration_ms,
                "request_id": r.request_id,
                "quirks": r.quirks,
                "body": r.body,
            })
        })
        .collect();
    Value::Array(rows).to_string()
}

/// Sums of `counts` as one JSON array of rows (`day` as the backend reads it).
fn counts_json(counts: &[ClientCount], day: fn(NaiveDate) -> Value) -> String {
    let rows: Vec<Value> = counts
        .iter()
        .map(|c| {
            json!({"tenant_id": c.tenant_id.to_string(), "day": day(c.day), "client": c.client,
                   "rule": c.rule, "requests": c.requests, "errors": c.errors})
        })
        .collect();
    Value::Array(rows).to_string()
}

/// A day as SQLite keeps it: days since 1970-01-01.
fn epoch_day(day: NaiveDate) -> i64 {
    day.signed_duration_since(NaiveDate::default()).num_days()
}

fn stored_from(
    row: &impl Fn(&str) -> std::result::Result<Option<String>, sqlx::Error>,
    id: i64,
    tenant: uuid::Uuid,
    at: DateTime<Utc>,
    status: i64,
    duration_ms: f64,
) -> Result<Stored> {
    let text = |c: &str| row(c).map_err(StoreError::from_sqlx);
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let quirks: Vec<String> =
        serde_json::from_str(&text("quirks")?.unwrap_or_else(|| "[]".into())).map_err(corrupt)?;
    let body = match text("body")? {
        Some(b) => Some(serde_json::from_str(&b).map_err(corrupt)?),
        None => None,
    };
    Ok(Stored {
        id,
        record: Record {
            tenant_id: tenant,
            at,
            key_id: text("key_id")?.unwrap_or_default(),
            user_agent: text("user_agent")?,
            client: crate::scim::compat::family_named(&text("client")?.unwrap_or_default()),
            method: text("method")?.unwrap_or_default(),
            path: text("path")?.unwrap_or_default(),
            resource_id: text("resource_id")?,
            status: u16::try_from(status).unwrap_or_default(),
            scim_type: text("scim_type")?,
            duration_ms,
            request_id: text("request_id")?,
            quirks,
            body,
        },
    })
}

impl PgStore {
    pub async fn insert_requests(&self, records: &[Record]) -> Result<()> {
        let rows = rows_json(records, |t| Value::String(t.to_rfc3339()));
        self.on(async |c| {
            sqlx::query(
                "INSERT INTO request_log (tenant_id, at, key_id, user_agent, client, method, path, \
                 resource_id, status, scim_type, duration_ms, request_id, quirks, body) \
                 SELECT x.tenant_id, x.at, x.key_id, x.user_agent, x.client, x.method, x.path, \
                 x.resource_id, x.status, x.scim_type, x.duration_ms, x.request_id, \
                 ARRAY(SELECT jsonb_array_elements_text(x.quirks)), NULLIF(x.body, 'null'::jsonb) \
                 FROM jsonb_to_recordset($1::jsonb) AS x(tenant_id uuid, at timestamptz, key_id text, \
                 user_agent text, client text, method text, path text, resource_id text, status smallint, \
                 scim_type text, duration_ms float8, request_id text, quirks jsonb, body jsonb)",
            )
            .bind(&rows)
            .execute(c)
            .await
        })
        .await?;
        Ok(())
    }

    pub async fn read_requests(&self, scope: TenantScope, q: &Query) -> Result<Vec<Stored>> {
        let (low, high) = q.status.map_or((0, 999), |s| s.range());
        let rows = self
            .on(async |c| {
                sqlx::query(
                    "SELECT id, at, key_id, user_agent, client, method, path, resource_id, status, \
                     scim_type, duration_ms, request_id, to_jsonb(quirks)::text AS quirks, body::text AS body \
                     FROM request_log WHERE tenant_id = $1 AND status BETWEEN $2 AND $3 \
                     AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::bigint IS NULL OR id < $5) \
                     AND ($7::bigint IS NULL OR id > $7) ORDER BY id DESC LIMIT $6",
                )
                .bind(scope.tenant_id())
                .bind(i16::try_from(low).unwrap_or(0))
                .bind(i16::try_from(high).unwrap_or(999))
                .bind(q.since)
                .bind(q.before)
                .bind(i64::from(q.limit))
                .bind(q.newer_than)
                .fetch_all(c)
                .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                let get = |c: &str| r.try_get::<Option<String>, _>(c);
                let status: i16 = r.try_get("status").map_err(StoreError::from_sqlx)?;
                stored_from(
                    &get,
                    r.try_get("id").map_err(StoreError::from_sqlx)?,
                    scope.tenant_id(),
                    r.try_get("at").map_err(StoreError::from_sqlx)?,
                    i64::from(status),
                    r.try_get("duration_ms").map_err(StoreError::from_sqlx)?,
                )
            })
            .collect()
    }

    pub async fn purge_requests(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let done = self
            .on(async |c| {
                sqlx::query(
                    "WITH s AS (DELETE FROM client_stats WHERE day < $1::timestamptz::date) \
                     DELETE FROM request_log WHERE at < $1",
                )
                .bind(cutoff)
                .execute(c)
                .await
            })
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn add_client_counts(&self, counts: &[ClientCount]) -> Result<()> {
        let rows = counts_json(counts, |d| Value::String(d.to_string()));
        self.on(async |c| {
            sqlx::query(
                "INSERT INTO client_stats (tenant_id, day, client, rule, requests, errors) \
                 SELECT x.tenant_id, x.day, x.client, x.rule, x.requests, x.errors \
                 FROM jsonb_to_recordset($1::jsonb) AS x(tenant_id uuid, day date, client text, \
                 rule text, requests bigint, errors bigint) \
                 ON CONFLICT (tenant_id, day, client, rule) DO UPDATE SET \
                 requests = client_stats.requests + EXCLUDED.requests, \
                 errors = client_stats.errors + EXCLUDED.errors",
            )
            .bind(&rows)
            .execute(c)
            .await
        })
        .await?;
        Ok(())
    }

    pub async fn client_report(
        &self,
        scope: TenantScope,
        since: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>> {
        let rows: Vec<(String, String, i64, i64)> = self
            .on(async |c| {
                sqlx::query_as(
                    "SELECT client, rule, sum(requests)::bigint, sum(errors)::bigint FROM client_stats \
                     WHERE tenant_id = $1 AND day >= $2 GROUP BY client, rule ORDER BY client, rule",
                )
                .bind(scope.tenant_id())
                .bind(since)
                .fetch_all(c)
                .await
            })
            .await?;
        Ok(rows)
    }
}

impl SqliteStore {
    pub async fn insert_requests(&self, records: &[Record]) -> Result<()> {
        let rows = rows_json(records, |t| Value::from(millis(t)));
        let _turn = self.writer().await;
        sqlx::query(
            "INSERT INTO request_log (tenant_id, at, key_id, user_agent, client, method, path, \
             resource_id, status, scim_type, duration_ms, request_id, quirks, body) \
             SELECT j.value ->> '$.tenant_id', j.value ->> '$.at', j.value ->> '$.key_id', \
             j.value ->> '$.user_agent', j.value ->> '$.client', j.value ->> '$.method', \
             j.value ->> '$.path', j.value ->> '$.resource_id', j.value ->> '$.status', \
             j.value ->> '$.scim_type', j.value ->> '$.duration_ms', j.value ->> '$.request_id', \
             j.value -> '$.quirks', NULLIF(j.value -> '$.body', 'null') FROM json_each($1) j",
        )
        .bind(&rows)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn read_requests(&self, scope: TenantScope, q: &Query) -> Result<Vec<Stored>> {
        let (low, high) = q.status.map_or((0, 999), |s| s.range());
        let rows = sqlx::query(
            "SELECT id, at, key_id, user_agent, client, method, path, resource_id, status, \
             scim_type, duration_ms, request_id, quirks, body FROM request_log \
             WHERE tenant_id = $1 AND status BETWEEN $2 AND $3 AND ($4 IS NULL OR at >= $4) \
             AND ($5 IS NULL OR id < $5) AND ($7 IS NULL OR id > $7) ORDER BY id DESC LIMIT $6",
        )
        .bind(scope.tenant_id().to_string())
        .bind(i64::from(low))
        .bind(i64::from(high))
        .bind(q.since.map(millis))
        .bind(q.before)
        .bind(i64::from(q.limit))
        .bind(q.newer_than)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let get = |c: &str| r.try_get::<Option<String>, _>(c);
                stored_from(
                    &get,
                    r.try_get("id").map_err(StoreError::from_sqlx)?,
                    scope.tenant_id(),
                    from_millis(r.try_get("at").map_err(StoreError::from_sqlx)?)?,
                    r.try_get("status").map_err(StoreError::from_sqlx)?,
                    r.try_get("duration_ms").map_err(StoreError::from_sqlx)?,
                )
            })
            .collect()
    }

    pub async fn purge_requests(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        let _turn = self.writer().await;
        sqlx::query("DELETE FROM client_stats WHERE day < $1")
            .bind(epoch_day(cutoff.date_naive()))
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        let done = sqlx::query("DELETE FROM request_log WHERE at < $1")
            .bind(millis(cutoff))
            .execute(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected())
    }

    pub async fn add_client_counts(&self, counts: &[ClientCount]) -> Result<()> {
        let rows = counts_json(counts, |d| Value::from(epoch_day(d)));
        let _turn = self.writer().await;
        sqlx::query(
            "INSERT INTO client_stats (tenant_id, day, client, rule, requests, errors) \
             SELECT j.value ->> '$.tenant_id', j.value ->> '$.day', j.value ->> '$.client', \
             j.value ->> '$.rule', j.value ->> '$.requests', j.value ->> '$.errors' \
             FROM json_each($1) j WHERE true \
             ON CONFLICT (tenant_id, day, client, rule) DO UPDATE SET \
             requests = requests + excluded.requests, errors = errors + excluded.errors",
        )
        .bind(&rows)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn client_report(
        &self,
        scope: TenantScope,
        since: NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT client, rule, sum(requests), sum(errors) FROM client_stats \
             WHERE tenant_id = $1 AND day >= $2 GROUP BY client, rule ORDER BY client, rule",
        )
        .bind(scope.tenant_id().to_string())
        .bind(epoch_day(since))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(rows)
    }
}
