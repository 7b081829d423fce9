//! Groups on PostgreSQL: the group row, and its members as rows.

use serde_json::{Map, Value};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::types::Json;
use sqlx::{Connection, Row, Transaction};
use uuid::Uuid;

use super::postgres::PgStore;
use super::query::ListQuery;
use super::{
    GroupWrite, GroupWritten, Member, MemberKind, ModifyError, Result, StoreError, StoredGroup,
    TenantScope, now,
};
use crate::scim::patch::{MemberChange, NewMember};
use crate::scim::schema::GROUP_RESOURCE;

fn group_from_row(row: &PgRow) -> Result<StoredGroup> {
    let Json(doc): Json<Map<String, Value>> = row.try_get("doc").map_err(StoreError::from_sqlx)?;
    Ok(StoredGroup {
        id: row.try_get("id").map_err(StoreError::from_sqlx)?,
        version: row.try_get("version").map_err(StoreError::from_sqlx)?,
        created: row.try_get("created_at").map_err(StoreError::from_sqlx)?,
        modified: row.try_get("modified_at").map_err(StoreError::from_sqlx)?,
        doc,
    })
}

/// Ids that are not UUIDs can name no member.
fn parse_ids(ids: &[String]) -> std::result::Result<Vec<Uuid>, StoreError> {
    ids.iter()
        .map(|s| Uuid::parse_str(s).map_err(|_| StoreError::UnknownMember(s.clone())))
        .collect()
}

type Tx<'c> = Transaction<'c, Postgres>;

/// Resolves members to users or groups of the tenant; any other id is an
/// error. Returns the ids, their kinds and their display names.
async fn resolve_members(
    tx: &mut Tx<'_>,
    scope: TenantScope,
    group: Uuid,
    members: &[NewMember],
) -> Result<Resolved> {
    let ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let uuids = parse_ids(&ids)?;
    if let Some(i) = uuids.iter().position(|u| *u == group) {
        return Err(StoreError::UnknownMember(format!(
            "{} (a group cannot be its own member)",
            ids[i]
        )));
    }
    let rows = sqlx::query(
        "SELECT id, 'User' AS kind FROM users WHERE tenant_id = $1 AND id = ANY($2) \
         UNION ALL SELECT id, 'Group' FROM groups WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(scope.tenant_id())
    .bind(&uuids)
    .fetch_all(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    let found: std::collections::HashMap<Uuid, String> = rows
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("kind")?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(StoreError::from_sqlx)?;
    let mut kinds = Vec::with_capacity(uuids.len());
    for (u, raw) in uuids.iter().zip(&ids) {
        kinds.push(
            found
                .get(u)
                .cloned()
                .ok_or_else(|| StoreError::UnknownMember(raw.clone()))?,
        );
    }
    Ok(Resolved {
        ids: uuids,
        kinds,
        displays: members.iter().map(|m| m.display.clone()).collect(),
    })
}

/// Members checked against the tenant, as parallel arrays for `unnest`.
struct Resolved {
    ids: Vec<Uuid>,
    kinds: Vec<String>,
    displays: Vec<Option<String>>,
}

async fn insert_members(
    tx: &mut Tx<'_>,
    scope: TenantScope,
    group: Uuid,
    m: &Resolved,
) -> Result<u64> {
    let done = sqlx::query(
        "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) \
         SELECT $1, $2, m.id, m.kind, m.display FROM unnest($3::uuid[], $4::text[], $5::text[]) AS m(id, kind, display) \
         ON CONFLICT DO NOTHING",
    )
    .bind(scope.tenant_id())
    .bind(group)
    .bind(&m.ids)
    .bind(&m.kinds)
    .bind(&m.displays)
    .execute(&mut **tx)
    .await
    .map_err(StoreError::from_sqlx)?;
    Ok(done.rows_affected())
}

/// Applies one change; `true` when a row was inserted or deleted.
async fn apply_change(
    tx: &mut Tx<'_>,
    scope: TenantScope,
    group: Uuid,
    change: MemberChange,
) -> Result<bool> {
    let tenant = scope.tenant_id();
    Ok(match change {
        MemberChange::Add(members) => {
            let resolved = resolve_members(tx, scope, group, &members).await?;
            insert_members(tx, scope, group, &resolved).await? > 0
        }
        MemberChange::Remove(ids) | MemberChange::RemoveMatching(ids) if ids.is_empty() => false,
        MemberChange::Remove(ids) => {
            let uuids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
            sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = ANY($3)")
                .bind(tenant)
                .bind(group)
                .bind(&uuids)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected()
                > 0
        }
        MemberChange::RemoveMatching(ids) => {
            let uuids: Vec<Uuid> = ids.iter().filter_map(|s| Uuid::parse_str(s).ok()).collect();
            let n = sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND member_id = ANY($3)")
                .bind(tenant)
                .bind(group)
                .bind(&uuids)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NoTarget(format!(
                    "no member matches value {}",
                    ids.join(", ")
                )));
            }
            true
        }
        MemberChange::RemoveAll => {
            sqlx::query("DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2")
                .bind(tenant)
                .bind(group)
                .execute(&mut **tx)
                .await
                .map_err(StoreError::from_sqlx)?
                .rows_affected()
                > 0
        }
        MemberChange::ReplaceAll(members) => {
            let resolved = resolve_members(tx, scope, group, &members).await?;
            let removed = sqlx::query(
                "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND NOT (member_id = ANY($3))",
            )
            .bind(tenant)
            .bind(group)
            .bind(&resolved.ids)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_sqlx)?
            .rows_affected();
            let added = insert_members(tx, scope, group, &resolved).await?;
            removed + added > 0
        }
    })
}

impl PgStore {
    pub async fn create_group(
        &self,
        scope: TenantScope,
        w: GroupWrite,
        members: Vec<NewMember>,
    ) -> Result<StoredGroup> {
        let id = Uuid::now_v7();
        let at = now();
        let mut conn = self.lease().await?;
        let mut tx = conn.begin().await.map_err(StoreError::from_sqlx)?;
        sqlx::query(
            "INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, version, created_at, modified_at, doc) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
        )
        .bind(scope.tenant_id())
        .bind(id)
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(at)
        .bind(Json(&w.doc))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        if !members.is_empty() {
            apply_change(&mut tx, scope, id, MemberChange::Add(members)).await?;
        }
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        conn.release();
        Ok(StoredGroup {
            id,
            version: 1,
            created: at,
            modified: at,
            doc: w.doc,
        })
    }

    pub async fn get_group(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredGroup>> {
        let sql = "SELECT id, version, created_at, modified_at, doc FROM groups WHERE tenant_id = $1 AND id = $2";
        let row = self
            .on(async |c| {
                sqlx::query(sql)
                    .bind(scope.tenant_id())
                    .bind(id)
                    .fetch_optional(c)
                    .await
            })
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn group_members(
        &self,
        scope: TenantScope,
        id: Uuid,
        limit: u64,
    ) -> Result<(u64, Vec<Member>)> {
        // Both statements on one connection.
        let (total, rows): (i64, _) = self
            .on(async |c| {
                let total = sqlx::query_scalar(
                    "SELECT count(*) FROM group_members WHERE tenant_id = $1 AND group_id = $2",
                )
                .bind(scope.tenant_id())
                .bind(id)
                .fetch_one(&mut *c)
                .await?;
                let rows = sqlx::query(
                    "SELECT m.member_id, m.member_type, m.display FROM group_members m \
                     WHERE m.tenant_id = $1 AND m.group_id = $2 ORDER BY m.member_id LIMIT $3",
                )
                .bind(scope.tenant_id())
                .bind(id)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(c)
                .await?;
                Ok((total, rows))
            })
            .await?;
        let members = rows
            .iter()
            .map(|r| {
                Ok(Member {
                    id: r.try_get("member_id")?,
                    kind: MemberKind::parse(r.try_get::<&str, _>("member_type")?),
                    display: r.try_get("display")?,
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)?;
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
        let mut conn = self.lease().await?;
        let mut tx = conn.begin().await.map_err(StoreError::from_sqlx)?;
        let row = sqlx::query(
            "SELECT id, version, created_at, modified_at, doc FROM groups WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
        )
        .bind(scope.tenant_id())
        .bind(id)
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
            conn.release();
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
        .bind(scope.tenant_id())
        .bind(id)
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(Json(&w.doc))
        .bind(now())
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let group = group_from_row(&row)?;
        tx.commit().await.map_err(StoreError::from_sqlx)?;
        conn.release();
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
        self.delete_if(
            "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 AND ($3::bigint IS NULL OR version = $3)",
            scope,
            id,
            if_version,
        )
        .await
    }
}
