//! Groups on SQLite: the statements of a group write ([`GroupTx`]), the
//! transaction around them, and the reads. A group write takes the write
//! lock up front (`BEGIN IMMEDIATE`), so concurrent writers queue on the busy
//! timeout instead of failing a lock upgrade, and nothing can delete a member
//! while the write runs. Lists of ids and members are bound as JSON arrays
//! and read with `json_each`. The events a group write records go to its
//! batch, which inserts them with those of its other writes
//! (`sqlite_commit.rs`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::events::NewEvent;
use super::groups::{self, GroupTx};
use super::now;
use super::query::ListQuery;
use super::sqlite::{SqliteStore, doc_text, from_millis, get, millis, parse_uuid};
use super::sqlite_events::PendingEvent;
use super::{
    GroupWrite, GroupWritten, Member, MemberKind, MemberPage, ModifyError, Result, StoreError,
    StoredGroup, TenantScope,
};
use crate::events::{Actor, EventType};
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

/// A group write, in this process's turn to write.
struct SqliteGroupTx<'t> {
    /// A savepoint of the batch's transaction ([`SqliteStore::savepoint`]).
    tx: &'t mut sqlx::SqliteConnection,
    tenant: String,
    /// The `actor` (JSON text) of the events this write records (none:
    /// events are off).
    actor: Option<String>,
    /// The events it records, for its batch to insert.
    events: Vec<PendingEvent>,
}

fn member_from_row(row: &SqliteRow) -> Result<Member> {
    Ok(Member {
        id: parse_uuid(&get::<String>(row, "member_id")?)?,
        kind: MemberKind::parse(&get::<String>(row, "member_type")?),
        display: get(row, "display")?,
    })
}

impl GroupTx for SqliteGroupTx<'_> {
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

    async fn lock_change(
        &mut self,
        members: &[Uuid],
        id: Uuid,
    ) -> Result<(HashMap<Uuid, MemberKind>, Option<StoredGroup>)> {
        // The write lock, taken by BEGIN IMMEDIATE, already holds them all.
        let kinds = match members.is_empty() {
            true => HashMap::new(),
            false => self.lock_members(members).await?,
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(&self.tenant)
        .bind(id.to_string())
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok((kinds, row.as_ref().map(group_from_row).transpose()?))
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
        events: &[NewEvent],
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
        .fetch_optional(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        // This write read the group in its savepoint, so the update finds
        // it; if it did not, the write fails and its savepoint is rolled
        // back.
        let row = row.ok_or_else(|| StoreError::from_sqlx(sqlx::Error::RowNotFound))?;
        let group = group_from_row(&row)?;
        // The events carry the version the update gave the group.
        self.record(events, millis(at), Some(group.version));
        Ok(group)
    }

    async fn put_members(
        &mut self,
        group: Uuid,
        members: &[Member],
        set_display: bool,
    ) -> Result<(u64, Vec<Member>)> {
        let rows: Vec<Value> = members
            .iter()
            .map(|m| json!({"id": m.id.to_string(), "kind": m.kind.as_str(), "display": m.display}))
            .collect();
        let rows = Value::from(rows).to_string();
        // `WHERE true` keeps SQLite from reading ON CONFLICT as a join
        // clause. RETURNING names only the rows inserted.
        let joined = sqlx::query(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) \
             SELECT $1, $2, j.value ->> '$.id', j.value ->> '$.kind', j.value ->> '$.display' \
             FROM json_each($3) j WHERE true \
             ON CONFLICT (tenant_id, group_id, member_id) DO NOTHING \
             RETURNING member_id, member_type, display",
        )
        .bind(&self.tenant)
        .bind(group.to_string())
        .bind(&rows)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let joined: Vec<Member> = joined.iter().map(member_from_row).collect::<Result<_>>()?;
        let mut written = joined.len() as u64;
        if set_display {
            let done = sqlx::query(
                "UPDATE group_members SET display = j.value ->> '$.display' FROM json_each($3) j \
                 WHERE tenant_id = $1 AND group_id = $2 AND member_id = j.value ->> '$.id' \
                 AND display IS NOT j.value ->> '$.display'",
            )
            .bind(&self.tenant)
            .bind(group.to_string())
            .bind(&rows)
            .execute(&mut *self.tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            written += done.rows_affected();
        }
        Ok((written, joined))
    }

    async fn delete_members(&mut self, group: Uuid, ids: &[Uuid]) -> Result<Vec<Member>> {
        self.delete_where(group, "IN", ids).await
    }

    async fn delete_members_except(&mut self, group: Uuid, keep: &[Uuid]) -> Result<Vec<Member>> {
        self.delete_where(group, "NOT IN", keep).await
    }

    fn records_events(&self) -> bool {
        self.actor.is_some()
    }

    async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        self.record(events, millis(now()), None);
        Ok(())
    }
}

impl SqliteGroupTx<'_> {
    /// Keeps `events`, which occurred at `at` (milliseconds), at `version`
    /// if given, for the batch to insert (if events are on).
    fn record(&mut self, events: &[NewEvent], at: i64, version: Option<i64>) {
        if let Some(actor) = &self.actor {
            self.events.extend(events.iter().map(|e| {
                let mut pending = PendingEvent::of(&self.tenant, actor, e, at);
                pending.version = version.unwrap_or(pending.version);
                pending
            }));
        }
    }

    async fn delete_where(&mut self, group: Uuid, op: &str, ids: &[Uuid]) -> Result<Vec<Member>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 \
             AND member_id {op} (SELECT value FROM json_each($3)) \
             RETURNING member_id, member_type, display"
        )))
        .bind(&self.tenant)
        .bind(group.to_string())
        .bind(json_ids(ids))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(member_from_row).collect()
    }
}

impl SqliteStore {
    /// Runs a group write (or a recorded delete, which removes its resource
    /// from groups) in a savepoint of the batch ([`Self::savepoint`]):
    /// `work` returns its result and whether it changed anything; the
    /// events it records go to the batch.
    async fn group_write<T, E>(
        &self,
        scope: TenantScope,
        actor: Option<&Actor>,
        work: impl AsyncFnOnce(&mut SqliteGroupTx<'_>) -> std::result::Result<(T, bool), ModifyError<E>>,
    ) -> std::result::Result<T, ModifyError<E>> {
        self.savepoint(async |tx| {
            let mut tx = SqliteGroupTx {
                tx,
                tenant: scope.tenant_id().to_string(),
                actor: actor.map(|a| a.to_json().to_string()),
                events: Vec::new(),
            };
            let (out, changed) = work(&mut tx).await?;
            Ok((out, changed.then_some(tx.events)))
        })
        .await
    }

    pub async fn create_group(
        &self,
        scope: TenantScope,
        w: GroupWrite,
        members: Vec<NewMember>,
        actor: Option<&Actor>,
    ) -> Result<GroupWritten> {
        self.group_write(scope, actor, async |tx| {
            Ok((groups::create(tx, w, members).await?, true))
        })
        .await
        .map_err(store_only)
    }

    pub async fn modify_group<T, E>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        change: impl Fn(&Map<String, Value>) -> std::result::Result<(Map<String, Value>, T), E>,
        members: &[MemberChange],
        actor: Option<&Actor>,
    ) -> std::result::Result<(GroupWritten, T), ModifyError<E>> {
        self.group_write(scope, actor, async |tx| {
            let (written, out, changed) =
                groups::modify(tx, id, if_version, change, members).await?;
            Ok(((written, out), changed))
        })
        .await
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
        actor: Option<&Actor>,
    ) -> Result<bool> {
        let Some(actor) = actor else {
            let _turn = self.writer().await;
            let done = sqlx::query(
                "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 AND ($3 IS NULL OR version = $3)",
            )
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .bind(if_version)
            .execute(self.writes())
            .await
            .map_err(StoreError::from_sqlx)?;
            return Ok(done.rows_affected() == 1);
        };
        self.group_write(scope, Some(actor), async |tx| {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND id = $2 AND ($3 IS NULL OR version = $3)"
            )))
            .bind(&tx.tenant)
            .bind(id.to_string())
            .bind(if_version)
            .fetch_optional(&mut *tx.tx)
            .await
            .map_err(StoreError::from_sqlx)?;
            let Some(row) = row else {
                return Ok((false, false));
            };
            let deleted = NewEvent::group(EventType::GroupDeleted, &group_from_row(&row)?, Vec::new());
            Self::delete_recorded(tx, deleted, id, MemberKind::Group, "groups").await?;
            Ok((true, true))
        })
        .await
        .map_err(store_only)
    }

    /// Deletes user or group `id` from `table` inside `tx`, recording
    /// `deleted` and the member events that follow (see
    /// [`Self::forget_member`]).
    async fn delete_recorded(
        tx: &mut SqliteGroupTx<'_>,
        deleted: NewEvent,
        id: Uuid,
        kind: MemberKind,
        table: &str,
    ) -> Result<()> {
        let mut events = vec![deleted];
        events.extend(Self::forget_member(tx, id, kind, table).await?);
        tx.insert_events(&events).await
    }

    /// Deletes user or group `id` from `table` inside `tx` (its trigger
    /// removes it from every group); the member events that follows.
    async fn forget_member(
        tx: &mut SqliteGroupTx<'_>,
        id: Uuid,
        kind: MemberKind,
        table: &str,
    ) -> Result<Vec<NewEvent>> {
        let groups: Vec<String> = sqlx::query_scalar(
            "SELECT group_id FROM group_members WHERE tenant_id = $1 AND member_id = $2",
        )
        .bind(&tx.tenant)
        .bind(id.to_string())
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1 AND id = $2"
        )))
        .bind(&tx.tenant)
        .bind(id.to_string())
        .execute(&mut *tx.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id, version FROM groups WHERE tenant_id = $1 AND id IN (SELECT value FROM json_each($2)) ORDER BY id",
        )
        .bind(&tx.tenant)
        .bind(Value::from(groups).to_string())
        .fetch_all(&mut *tx.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let member = Member {
            id,
            kind,
            display: None,
        };
        versions
            .iter()
            .map(|(group, version)| {
                Ok(NewEvent::member(
                    parse_uuid(group)?,
                    *version,
                    &member,
                    false,
                ))
            })
            .collect()
    }

    /// Deletes a user, recording its events (see [`Self::forget_member`]).
    pub(super) async fn delete_user_recorded(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: &Actor,
    ) -> Result<bool> {
        self.group_write(scope, Some(actor), async |tx| {
            let Some(user) = Self::user_in(tx.tx, scope, id).await? else {
                return Ok((false, false));
            };
            if if_version.is_some_and(|v| v != user.version) {
                return Ok((false, false));
            }
            let deleted = NewEvent::user(EventType::UserDeleted, &user, Vec::new());
            Self::delete_recorded(tx, deleted, id, MemberKind::User, "users").await?;
            Ok((true, true))
        })
        .await
        .map_err(store_only)
    }
}

/// A write's error when it has no error of its own.
fn store_only(e: ModifyError<std::convert::Infallible>) -> StoreError {
    match e {
        ModifyError::Store(e) => e,
        ModifyError::Change(never) => match never {},
    }
}
