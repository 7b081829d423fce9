//! Tombstones on PostgreSQL (see `tombstones.rs`): a revival is one
//! statement that takes the tombstone, re-inserts the resource under its
//! id and records the event.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;

use super::postgres::{PgStore, email_keys};
use super::tombstones::{Revived, parse_members, parse_memberships};
use super::{
    GroupWrite, Result, StoreError, StoredGroup, StoredUser, TenantScope, USER_NAME_KEY, UserWrite,
    now,
};
use crate::events::Actor;

/// The newest matching tombstone of `$2` type deleted after `$3`: by
/// externalId `$5` when given, else by match key `$4`.
const MATCH: &str = "SELECT id FROM tombstones WHERE tenant_id = $1 AND resource_type = $2 \
     AND deleted_at > $3 AND (($5::text IS NULL AND match_key = $4) OR external_id = $5) \
     ORDER BY deleted_at DESC LIMIT 1";

impl PgStore {
    pub async fn revive_user(
        &self,
        scope: TenantScope,
        w: &UserWrite,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<Revived<StoredUser>>> {
        let at = now();
        let sql = format!(
            "WITH t AS (DELETE FROM tombstones WHERE tenant_id = $1 AND id = ({MATCH}) \
               RETURNING id, version, created_at, memberships), \
             u AS (INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, \
               display_name, version, created_at, modified_at, doc, display_name_lower, email_keys) \
               SELECT $1, t.id, $6, $4, $5, $7, $8, t.version + 1, t.created_at, $9, $10, $11, $12 FROM t \
               RETURNING id, version, created_at), \
             e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, \
               version, actor, created_at, modified_at, data, groups) \
               SELECT $1, gen_random_uuid(), 'user.revived', $9, 'User', u.id, u.version, $13, \
               u.created_at, $9, $10, '[]'::jsonb FROM u WHERE $13::jsonb IS NOT NULL) \
             SELECT u.id, u.version, u.created_at, t.memberships::text AS memberships \
             FROM u JOIN t ON t.id = u.id"
        );
        let row = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(scope.tenant_id())
                    .bind("User")
                    .bind(since)
                    .bind(&w.user_name_lower)
                    .bind(&w.external_id)
                    .bind(&w.user_name)
                    .bind(w.active)
                    .bind(&w.display_name)
                    .bind(at)
                    .bind(Json(&w.doc))
                    .bind(&w.display_name_lower)
                    .bind(email_keys(scope, w))
                    .bind(actor.map(|a| Json(a.to_json())))
                    .fetch_optional(c)
                    .await
            })
            .await
            .map_err(|e| e.unique_on(USER_NAME_KEY, "userName"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        if actor.is_some() {
            self.notify.notify_waiters();
        }
        let get = |e: sqlx::Error| StoreError::from_sqlx(e);
        Ok(Some(Revived {
            resource: StoredUser {
                id: row.try_get("id").map_err(get)?,
                version: row.try_get("version").map_err(get)?,
                created: row.try_get("created_at").map_err(get)?,
                modified: at,
                doc: w.doc.clone(),
                groups: Vec::new(),
            },
            memberships: parse_memberships(row.try_get("memberships").map_err(get)?)?,
            members: Vec::new(),
        }))
    }

    pub async fn revive_group(
        &self,
        scope: TenantScope,
        w: &GroupWrite,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<Revived<StoredGroup>>> {
        let at = now();
        let sql = format!(
            "WITH t AS (DELETE FROM tombstones WHERE tenant_id = $1 AND id = ({MATCH}) \
               RETURNING id, version, created_at, memberships, members), \
             g AS (INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, \
               version, created_at, modified_at, doc) \
               SELECT $1, t.id, $6, $4, $5, t.version + 1, t.created_at, $7, $8 FROM t \
               RETURNING id, version, created_at), \
             e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, \
               version, actor, created_at, modified_at, data, groups) \
               SELECT $1, gen_random_uuid(), 'group.revived', $7, 'Group', g.id, g.version, $9, \
               g.created_at, $7, $8, '[]'::jsonb FROM g WHERE $9::jsonb IS NOT NULL) \
             SELECT g.id, g.version, g.created_at, t.memberships::text AS memberships, \
             COALESCE(t.members, '[]'::jsonb)::text AS members FROM g JOIN t ON t.id = g.id"
        );
        let row = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(scope.tenant_id())
                    .bind("Group")
                    .bind(since)
                    .bind(&w.display_name_lower)
                    .bind(&w.external_id)
                    .bind(&w.display_name)
                    .bind(at)
                    .bind(Json(&w.doc))
                    .bind(actor.map(|a| Json(a.to_json())))
                    .fetch_optional(c)
                    .await
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if actor.is_some() {
            self.notify.notify_waiters();
        }
        let get = |e: sqlx::Error| StoreError::from_sqlx(e);
        Ok(Some(Revived {
            resource: StoredGroup {
                id: row.try_get("id").map_err(get)?,
                version: row.try_get("version").map_err(get)?,
                created: row.try_get("created_at").map_err(get)?,
                modified: at,
                doc: w.doc.clone(),
            },
            memberships: parse_memberships(row.try_get("memberships").map_err(get)?)?,
            members: parse_members(row.try_get("members").map_err(get)?)?,
        }))
    }

    pub async fn purge_tombstones(
        &self,
        cutoff: DateTime<Utc>,
        actor: Option<&Value>,
    ) -> Result<u64> {
        let purged: i64 = self
            .on(async |c| {
                sqlx::query_scalar(
                    "WITH p AS (DELETE FROM tombstones WHERE deleted_at < $1 \
                       RETURNING tenant_id, id, resource_type, version), \
                     e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, \
                       resource_id, version, actor) \
                       SELECT p.tenant_id, gen_random_uuid(), lower(p.resource_type) || '.purged', $2, \
                       p.resource_type, p.id, p.version, $3 FROM p WHERE $3::jsonb IS NOT NULL) \
                     SELECT count(*) FROM p",
                )
                .bind(cutoff)
                .bind(now())
                .bind(actor.map(Json))
                .fetch_one(c)
                .await
            })
            .await?;
        if purged > 0 && actor.is_some() {
            self.notify.notify_waiters();
        }
        Ok(purged as u64)
    }
}
