//! Groups on SQLite: the statements of a group write ([`GroupTx`]), the
//! transaction around them, and the reads. A group write takes the write
//! lock up front (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy
//! timeout instead of failing a lock upgrade, and nothing can delete a member
//! while the write runs. Lists of ids and members are bound as JSON arrays
//! and read with `json_each`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::Transaction;
use sqlx::sqlite::{Sqlite, SqliteRow};
use uuid::Uuid;

use super::groups::{self, GroupTx};
use super::query::ListQuery;
use super::sqlite::{SqliteStore, doc_text, from_millis, get, millis, parse_uuid};
use super::{
    GroupWrite, GroupWritten, Member, MemberKind, MemberPage, ModifyError, Result, StoreError,
    StoredGroup, TenantScope,
};
use crate::scim::membership::{MemberChange, NewMember};
use crate::scim::schema::GROUP_RESOURCE;

const GROUP_COLUMNS: &str = "id, version, created_at, modified_at, doc";

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

fn json_ids(ids: &[Uuid]) -> String {
    Value::from(ids.iter().map(Uuid::to_string).collect::<Vec<_>>()).to_string()
}

/// A group write's transaction, holding the write lock.
struct SqliteGroupTx {
    tx: Transaction<'static, Sqlite>,
    tenant: String,
}

impl GroupTx for SqliteGroupTx {
    async fn lock_members(&mut self, ids: &[Uuid]) -> Result<HashMap<Uuid, MemberKind>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, 'User' FROM users WHERE tenant_id = $1 AND id IN (SELECT value FROM json_each($2)) \
             UNION ALL SELECT id, 'Group' FROM groups WHERE tenant_id = $1 AND id IN (SELECT value FROM json_each($2))",
        )
        .bind(&self.tenant)
        .bind(json_ids(ids))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|(id, kind)| Ok((parse_uuid(id)?, MemberKind::parse(kind))))
            .collect()
    }

    async fn lock_group(&mut self, id: Uuid) -> Result<Option<StoredGroup>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(&self.tenant)
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(group_from_row).transpose()
    }

    async fn insert_group(&mut self, id: Uuid, at: DateTime<Utc>, w: &GroupWrite) -> Result<()> {
        sqlx::query(
            "INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, version, created_at, modified_at, doc) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
        )
        .bind(&self.tenant)
        .bind(id.to_string())
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(millis(at))
        .bind(doc_text(&w.doc))
        .execute(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    async fn update_group(
        &mut self,
        id: Uuid,
        w: &GroupWrite,
        at: DateTime<Utc>,
    ) -> Result<StoredGroup> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE groups SET display_name = $3, display_name_lower = $4, external_id = $5, doc = $6, \
             version = version + 1, modified_at = $7 WHERE tenant_id = $1 AND id = $2 \
             RETURNING {GROUP_COLUMNS}"
        )))
        .bind(&self.tenant)
        .bind(id.to_string())
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(doc_text(&w.doc))
        .bind(millis(at))
        .fetch_one(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        group_from_row(&row)
    }

    async fn put_members(
        &mut self,
        group: Uuid,
        members: &[Member],
        set_display: bool,
    ) -> Result<u64> {
        let on_conflict = match set_display {
            true => {
                "DO UPDATE SET display = excluded.display \
                     WHERE group_members.display IS NOT excluded.display"
            }
            false => "DO NOTHING",
        };
        let rows: Vec<Value> = members
            .iter()
            .map(|m| json!({"id": m.id.to_string(), "kind": m.kind.as_str(), "display": m.display}))
            .collect();
        // `WHERE true` keeps SQLite from reading ON CONFLICT as a join clause.
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) \
             SELECT $1, $2, j.value ->> '$.id', j.value ->> '$.kind', j.value ->> '$.display' \
             FROM json_each($3) j WHERE true \
             ON CONFLICT (tenant_id, group_id, member_id) {on_conflict}"
        )))
        .bind(&self.tenant)
        .bind(group.to_string())
        .bind(Value::from(rows).to_string())
        .execute(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn delete_members(&mut self, group: Uuid, ids: &[Uuid]) -> Result<u64> {
        self.delete_where(group, "IN", ids).await
    }

    async fn delete_members_except(&mut self, group: Uuid, keep: &[Uuid]) -> Result<u64> {
        self.delete_where(group, "NOT IN", keep).await
    }
}

impl SqliteGroupTx {
    /// Commits, or rolls back what did not change anything.
    async fn finish(self, commit: bool) -> Result<()> {
        match commit {
            true => self.tx.commit().await,
            false => self.tx.rollback().await,
        }
        .map_err(StoreError::from_sqlx)
    }

    async fn delete_where(&mut self, group: Uuid, op: &str, ids: &[Uuid]) -> Result<u64> {
        let done = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 \
             AND member_id {op} (SELECT value FROM json_each($3))"
        )))
        .bind(&self.tenant)
        .bind(group.to_string())
        .bind(json_ids(ids))
        .execute(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected())
    }
}

impl SqliteStore {
    /// This process's turn to write, and a group write's transaction
    /// holding the write lock.
    async fn begin_group_write(
        &self,
        scope: TenantScope,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, SqliteGroupTx)> {
        let turn = self.writer().await;
        let tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(StoreError::from_sqlx)?;
        let tenant = scope.tenant_id().to_string();
        Ok((turn, SqliteGroupTx { tx, tenant }))
    }

    pub async fn create_group(
        &self,
        scope: TenantScope,
        w: GroupWrite,
        members: Vec<NewMember>,
    ) -> Result<GroupWritten> {
        let (_turn, mut tx) = self.begin_group_write(scope).await?;
        let written = groups::create(&mut tx, w, members).await?;
        tx.finish(true).await?;
        Ok(written)
    }

    pub async fn modify_group<T, E>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        change: impl FnOnce(&Map<String, Value>) -> std::result::Result<(Map<String, Value>, T), E>,
        members: Vec<MemberChange>,
    ) -> std::result::Result<(GroupWritten, T), ModifyError<E>> {
        let (_turn, mut tx) = self.begin_group_write(scope).await?;
        let (written, out, changed) =
            groups::modify(&mut tx, id, if_version, change, members).await?;
        tx.finish(changed).await?;
        Ok((written, out))
    }

    pub async fn get_group(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredGroup>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn members_of(
        &self,
        scope: TenantScope,
        groups: &[Uuid],
        limit: u64,
    ) -> Result<HashMap<Uuid, MemberPage>> {
        let rows = sqlx::query(
            "SELECT group_id, member_id, member_type, display, total FROM ( \
             SELECT m.group_id, m.member_id, m.member_type, m.display, \
             count(*) OVER (PARTITION BY m.group_id) AS total, \
             row_number() OVER (PARTITION BY m.group_id ORDER BY m.member_id) AS n \
             FROM group_members m WHERE m.tenant_id = $1 AND m.group_id IN (SELECT value FROM json_each($2))) \
             WHERE n <= max($3, 1) ORDER BY group_id, member_id",
        )
        .bind(scope.tenant_id().to_string())
        .bind(json_ids(groups))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::from_sqlx)?;
        let rows = rows
            .iter()
            .map(|r| {
                let member = Member {
                    id: parse_uuid(&get::<String>(r, "member_id")?)?,
                    kind: MemberKind::parse(&get::<String>(r, "member_type")?),
                    display: get(r, "display")?,
                };
                Ok((
                    parse_uuid(&get::<String>(r, "group_id")?)?,
                    get(r, "total")?,
                    member,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(groups::member_pages(rows))
    }

    pub async fn query_groups(
        &self,
        scope: TenantScope,
        q: &ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredGroup>)> {
        self.run_list(&GROUP_RESOURCE, scope, q, group_from_row)
            .await
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
