//! Tombstones on SQLite (see `tombstones.rs`): a revival is one
//! transaction in this process's writer queue.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::events::NewEvent;
use super::sqlite::{SqliteStore, doc_text, from_millis, get, millis, parse_uuid};
use super::sqlite_events::PendingEvent;
use super::tombstones::{Revived, parse_members, parse_memberships};
use super::{
    GroupWrite, MemberKind, Result, StoreError, StoredGroup, StoredUser, TenantScope,
    USER_NAME_KEY, UserWrite, now,
};
use crate::events::{Actor, EventType};

/// The newest matching tombstone (see the PostgreSQL twin).
async fn take(
    c: &mut sqlx::SqliteConnection,
    scope: TenantScope,
    kind: &str,
    since: DateTime<Utc>,
    match_key: &str,
    external_id: Option<&str>,
) -> Result<Option<SqliteRow>> {
    let row = sqlx::query(
        "SELECT id, version, created_at, memberships, COALESCE(members, '[]') AS members \
         FROM tombstones WHERE tenant_id = $1 AND resource_type = $2 AND deleted_at > $3 \
         AND (($5 IS NULL AND match_key = $4) OR external_id = $5) \
         ORDER BY deleted_at DESC LIMIT 1",
    )
    .bind(scope.tenant_id().to_string())
    .bind(kind)
    .bind(millis(since))
    .bind(match_key)
    .bind(external_id)
    .fetch_optional(&mut *c)
    .await
    .map_err(StoreError::from_sqlx)?;
    let Some(row) = row else {
        return Ok(None);
    };
    sqlx::query("DELETE FROM tombstones WHERE tenant_id = $1 AND id = $2")
        .bind(scope.tenant_id().to_string())
        .bind(get::<String>(&row, "id")?)
        .execute(&mut *c)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(Some(row))
}

/// The event `e` of a write by `actor`, if events are on.
fn recorded(scope: TenantScope, actor: Option<&Actor>, e: NewEvent) -> Vec<PendingEvent> {
    actor
        .map(|a| {
            let actor = a.to_json().to_string();
            PendingEvent::of(&scope.tenant_id().to_string(), &actor, &e, millis(now()))
        })
        .into_iter()
        .collect()
}

impl SqliteStore {
    pub async fn revive_user(
        &self,
        scope: TenantScope,
        w: &UserWrite,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<Revived<StoredUser>>> {
        let at = now();
        self.write(async |c| {
            let Some(t) = take(c, scope, "User", since, &w.user_name_lower, w.external_id.as_deref()).await? else {
                return Ok((None, Vec::new()));
            };
            let user = StoredUser {
                id: parse_uuid(&get::<String>(&t, "id")?)?,
                version: get::<i64>(&t, "version")? + 1,
                created: from_millis(get(&t, "created_at")?)?,
                modified: at,
                doc: w.doc.clone(),
                groups: Vec::new(),
            };
            sqlx::query(
                "INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, version, created_at, modified_at, doc, display_name_lower) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(scope.tenant_id().to_string())
            .bind(user.id.to_string())
            .bind(&w.user_name)
            .bind(&w.user_name_lower)
            .bind(&w.external_id)
            .bind(w.active)
            .bind(&w.display_name)
            .bind(user.version)
            .bind(millis(user.created))
            .bind(millis(at))
            .bind(doc_text(&w.doc))
            .bind(&w.display_name_lower)
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_sqlx(e).unique_on(USER_NAME_KEY, "userName"))?;
            let events = recorded(scope, actor, NewEvent::user(EventType::UserRevived, &user, Vec::new()));
            let revived = Revived {
                resource: user,
                memberships: parse_memberships(&get::<String>(&t, "memberships")?)?,
                members: Vec::new(),
            };
            Ok((Some(revived), events))
        })
        .await
    }

    pub async fn revive_group(
        &self,
        scope: TenantScope,
        w: &GroupWrite,
        actor: Option<&Actor>,
        since: DateTime<Utc>,
    ) -> Result<Option<Revived<StoredGroup>>> {
        let at = now();
        self.write(async |c| {
            let Some(t) = take(c, scope, "Group", since, &w.display_name_lower, w.external_id.as_deref()).await? else {
                return Ok((None, Vec::new()));
            };
            let group = StoredGroup {
                id: parse_uuid(&get::<String>(&t, "id")?)?,
                version: get::<i64>(&t, "version")? + 1,
                created: from_millis(get(&t, "created_at")?)?,
                modified: at,
                doc: w.doc.clone(),
            };
            sqlx::query(
                "INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, version, created_at, modified_at, doc) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(scope.tenant_id().to_string())
            .bind(group.id.to_string())
            .bind(&w.display_name)
            .bind(&w.display_name_lower)
            .bind(&w.external_id)
            .bind(group.version)
            .bind(millis(group.created))
            .bind(millis(at))
            .bind(doc_text(&w.doc))
            .execute(&mut *c)
            .await
            .map_err(StoreError::from_sqlx)?;
            let events = recorded(scope, actor, NewEvent::group(EventType::GroupRevived, &group, Vec::new()));
            let revived = Revived {
                resource: group,
                memberships: parse_memberships(&get::<String>(&t, "memberships")?)?,
                members: parse_members(&get::<String>(&t, "members")?)?,
            };
            Ok((Some(revived), events))
        })
        .await
    }

    pub async fn purge_tombstones(
        &self,
        cutoff: DateTime<Utc>,
        actor: Option<&Value>,
    ) -> Result<u64> {
        self.write(async |c| {
            let rows = sqlx::query(
                "DELETE FROM tombstones WHERE deleted_at < $1 \
                 RETURNING tenant_id, id, resource_type, version",
            )
            .bind(millis(cutoff))
            .fetch_all(&mut *c)
            .await
            .map_err(StoreError::from_sqlx)?;
            let mut events = Vec::new();
            if let Some(actor) = actor.map(Value::to_string) {
                let at = millis(now());
                for row in &rows {
                    let tenant: String = row.try_get("tenant_id").map_err(StoreError::from_sqlx)?;
                    let kind: String = row
                        .try_get("resource_type")
                        .map_err(StoreError::from_sqlx)?;
                    let (event, resource) = match kind.as_str() {
                        "Group" => (EventType::GroupPurged, MemberKind::Group),
                        _ => (EventType::UserPurged, MemberKind::User),
                    };
                    let purged = NewEvent {
                        kind: event,
                        resource,
                        resource_id: parse_uuid(&get::<String>(row, "id")?)?,
                        version: get(row, "version")?,
                        changed: Vec::new(),
                        snapshot: None,
                        member: None,
                    };
                    events.push(PendingEvent::of(&tenant, &actor, &purged, at));
                }
            }
            Ok((rows.len() as u64, events))
        })
        .await
    }
}
