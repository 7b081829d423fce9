//! Groups on SQLite: the group row, and its members as rows. Group writes
//! take the write lock up front (`BEGIN IMMEDIATE`), so concurrent writers
//! queue on the busy timeout instead of failing a lock upgrade.

use serde_json::{Map, Value};
use sqlx::Transaction;
use sqlx::sqlite::{Sqlite, SqliteRow};
use uuid::Uuid;

use super::query::ListQuery;
use super::sqlite::{SqliteStore, doc_text, from_millis, get, millis, parse_uuid};
use super::{
    GroupWrite, GroupWritten, Member, MemberKind, ModifyError, Result, StoreError, StoredGroup,
    TenantScope, now,
};
use crate::scim::patch::{MemberChange, NewMember};
use crate::scim::schema::GROUP_RESOURCE;

fn group_from_row(row: &SqliteRow) -> Result<StoredGroup> {
    let doc: String = get(row, "doc")?;
    Ok(StoredGroup {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        version: get(row, "version")?,
        created: from_millis(get(row, "created_at")?)?,
        modified: from_millis(get(row, "modified_at")?)?,
        doc: serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?,
    })
}

type Tx = Transaction<'static, Sqlite>;

/// Each member's canonical id, kind and display, or the first id that
/// names nothing.
async fn resolve_members(
    tx: &mut Tx,
    scope: TenantScope,
    group: Uuid,
    members: &[NewMember],
) -> Result<Vec<Resolved>> {
    let tenant = scope.tenant_id().to_string();
    let mut out = Vec::with_capacity(members.len());
    for m in members {
        let Ok(u) = Uuid::parse_str(&m.id) else {
            return Err(StoreError::UnknownMember(m.id.clone()));
        };
        if u == group {
            return Err(StoreError::UnknownMember(format!(
                "{} (a group cannot be its own member)",
                m.id
            )));
        }
        let id = u.to_string();
        let kind: Option<String> = sqlx::query_scalar(
            "SELECT 'User' FROM users WHERE tenant_id = $1 AND id = $2 \
             UNION ALL SELECT 'Group' FROM groups WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&tenant)
        .bind(&id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let kind = match kind.as_deref() {
            Some("Group") => "Group",
            Some(_) => "User",
            None => return Err(StoreError::UnknownMember(m.id.clone())),
        };
        out.push(Resolved {
            id,
            kind,
            display: m.display.clone(),
        });
    }
    Ok(out)
}

/// A member checked against the tenant.
struct Resolved {
    id: String,
    kind: &'static str,
    display: Option<String>,
}

async fn insert_members(
    tx: &mut Tx,
    scope: TenantScope,
    group: Uuid,
    members: &[Resolved],
) -> Result<u64> {
    let (tenant, group) = (scope.tenant_id().to_string(), group.to_string());
    let mut added = 0;
    for m in members {
        added += sqlx::query(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT DO NOTHING",
        )
        .bind(&tenant)
        .bind(&group)
        .bind(&m.id)
        .bind(m.kind)
        .bind(&m.display)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?
        .rows_affected();
    }
    Ok(added)
}

async fn delete_members(
    tx: &mut Tx,
    scope: TenantScope,
    group: Uuid,
    ids: &[String],
) -> Result<u64> {
    let (tenant, group) = (scope.tenant_id().to_string(), group.to_string());
    let mut removed = 0;
    for id in ids.iter().filter_map(|s| Uuid::parse_str(s).ok()) {
        removed += sqlx::query(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = $3",
        )
        .bind(&tenant)
        .bind(&group)
        .bind(id.to_string())
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_sqlx)?
        .rows_affected();
    }
    Ok(removed)
}

/// Applies one change; `true` when a row was inserted or deleted.
async fn apply_change(
    tx: &mut Tx,
    scope: TenantScope,
    group: Uuid,
    change: MemberChange,
) -> Result<bool> {
    Ok(match change {
        MemberChange::Add(new) => {
            let members = resolve_members(tx, scope, group, &new).await?;
            insert_members(tx, scope, group, &members).await? > 0
        }
        MemberChange::Remove(ids) => delete_members(tx, scope, group, &ids).await? > 0,
        MemberChange::RemoveMatching(ids) => {
            if delete_members(tx, scope, group, &ids).await? == 0 {
                return Err(StoreError::NoTarget(format!(
                    "no member matches value {}",
                    ids.join(", ")
                )));
            }
            true
        }
        MemberChange::RemoveAll => {
            sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2")
                .bind(scope.tenant_id().to_string())
                .bind(group.to_string())
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected()
                > 0
        }
        MemberChange::ReplaceAll(new) => {
            let members = resolve_members(tx, scope, group, &new).await?;
            let keep: std::collections::HashSet<&str> =
                members.iter().map(|m| m.id.as_str()).collect();
            let current: Vec<String> = sqlx::query_scalar(
                "SELECT member_id FROM group_members WHERE tenant_id = $1 AND group_id = $2",
            )
            .bind(scope.tenant_id().to_string())
            .bind(group.to_string())
            .fetch_all(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let gone: Vec<String> = current
                .into_iter()
                .filter(|c| !keep.contains(c.as_str()))
                .collect();
            let removed = delete_members(tx, scope, group, &gone).await?;
            let added = insert_members(tx, scope, group, &members).await?;
            removed + added > 0
        }
    })
}

impl SqliteStore {
    /// This process's turn to write, and a transaction holding the write lock.
    async fn begin_write(&self) -> Result<(tokio::sync::OwnedMutexGuard<()>, Tx)> {
        let turn = self.writer().await;
        let tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok((turn, tx))
    }

    pub async fn create_group(
        &self,
        scope: TenantScope,
        w: GroupWrite,
        members: Vec<NewMember>,
    ) -> Result<StoredGroup> {
        let id = Uuid::now_v7();
        let at = now();
        let (_turn, mut tx) = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, version, created_at, modified_at, doc) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(millis(at))
        .bind(doc_text(&w.doc))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if !members.is_empty() {
            apply_change(&mut tx, scope, id, MemberChange::Add(members)).await?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(StoredGroup {
            id,
            version: 1,
            created: at,
            modified: at,
            doc: w.doc,
        })
    }

    pub async fn get_group(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredGroup>> {
        let row = sqlx::query("SELECT id, version, created_at, modified_at, doc FROM groups WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn group_members(
        &self,
        scope: TenantScope,
        id: Uuid,
        limit: u64,
    ) -> Result<(u64, Vec<Member>)> {
        let total: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM group_members WHERE tenant_id = $1 AND group_id = $2",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let rows = sqlx::query(
            "SELECT m.member_id, m.member_type, m.display FROM group_members m \
             WHERE m.tenant_id = $1 AND m.group_id = $2 ORDER BY m.member_id LIMIT $3",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let members = rows
            .iter()
            .map(|r| {
                Ok(Member {
                    id: parse_uuid(&get::<String>(r, "member_id")?)?,
                    kind: MemberKind::parse(&get::<String>(r, "member_type")?),
                    display: get(r, "display")?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((total as u64, members))
    }

    pub async fn query_groups(
        &self,
        scope: TenantScope,
        q: &ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredGroup>)> {
        self.run_list(&GROUP_RESOURCE, scope, q, group_from_row)
            .await
    }

    pub async fn modify_group<E>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        change: impl FnOnce(&Map<String, Value>) -> std::result::Result<Map<String, Value>, E>,
        members: Vec<MemberChange>,
    ) -> std::result::Result<GroupWritten, ModifyError<E>> {
        let (_turn, mut tx) = self.begin_write().await?;
        let row = sqlx::query("SELECT id, version, created_at, modified_at, doc FROM groups WHERE tenant_id = $1 AND id = $2")
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from_sqlx)?;
        let current = row
            .as_ref()
            .map(group_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)?;
        if if_version.is_some_and(|v| v != current.version) {
            return Err(StoreError::VersionMismatch.into());
        }
        let doc = change(&current.doc).map_err(ModifyError::Change)?;
        let mut changed = doc != current.doc;
        for m in members {
            changed |= apply_change(&mut tx, scope, id, m).await?;
        }
        if !changed {
            tx.rollback().await.map_err(StoreError::from_sqlx)?;
            return Ok(GroupWritten {
                group: current,
                changed: false,
            });
        }
        let w = GroupWrite::from_doc(doc);
        let row = sqlx::query(
            "UPDATE groups SET display_name = $3, display_name_lower = $4, external_id = $5, doc = $6, \
             version = version + 1, modified_at = $7 WHERE tenant_id = $1 AND id = $2 \
             RETURNING id, version, created_at, modified_at, doc",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(doc_text(&w.doc))
        .bind(millis(now()))
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let group = group_from_row(&row)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        Ok(GroupWritten {
            group,
            changed: true,
        })
    }

    pub async fn delete_group_if(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
    ) -> Result<bool> {
        let _turn = self.writer().await;
        let done = sqlx::query(
            "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 AND ($3 IS NULL OR version = $3)",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(if_version)
        .execute(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }
}
