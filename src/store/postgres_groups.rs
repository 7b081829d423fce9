//! Groups on PostgreSQL: the statements of a group write ([`GroupTx`]),
//! the transaction around them, and the reads.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::types::Json;
use sqlx::{Connection, Row, Transaction};
use uuid::Uuid;

use super::events::{self, NewEvent};
use super::groups::{self, GroupTx};
use super::now;
use super::pg_conns::Lease;
use super::postgres::PgStore;
use super::query::ListQuery;
use super::{
    GroupWrite, GroupWritten, Member, MemberKind, MemberPage, ModifyError, Result, StoreError,
    StoredGroup, TenantScope,
};
use crate::events::Actor;
use crate::scim::membership::{MemberChange, NewMember};
use crate::scim::schema::GROUP_RESOURCE;

const GROUP_COLUMNS: &str = "id, version, created_at, modified_at, doc";

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

/// A group write's transaction on a leased connection.
struct PgGroupTx<'c> {
    tx: Transaction<'c, Postgres>,
    tenant: Uuid,
    /// The `actor` of the events this write records (none: events are off).
    actor: Option<Value>,
}

/// The advisory-lock key of a group: the random half of its UUIDv7.
fn group_lock_key(id: Uuid) -> i64 {
    let bytes = id.as_bytes();
    i64::from_be_bytes(bytes[8..16].try_into().unwrap_or_default())
}

impl GroupTx for PgGroupTx<'_> {
    async fn lock_members(&mut self, ids: &[Uuid]) -> Result<HashMap<Uuid, MemberKind>> {
        // KEY SHARE: a concurrent DELETE of a member waits for this
        // transaction, and then removes the membership it made.
        let rows = sqlx::query(
            "WITH u AS (SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2) FOR KEY SHARE), \
             g AS (SELECT id FROM groups WHERE tenant_id = $1 AND id = ANY($2) FOR KEY SHARE) \
             SELECT id, 'User' AS kind FROM u UNION ALL SELECT id, 'Group' FROM g",
        )
        .bind(self.tenant)
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                let kind: &str = r.try_get("kind")?;
                Ok((r.try_get("id")?, MemberKind::parse(kind)))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)
    }

    async fn lock_change(
        &mut self,
        members: &[Uuid],
        id: Uuid,
    ) -> Result<(HashMap<Uuid, MemberKind>, Option<StoredGroup>)> {
        // One statement, its parts run in order (an Append): the advisory
        // lock of the group when this write records events (see
        // `begin_group_write`), which takes no transaction id; then the
        // members, KEY SHARE as in `lock_members`; then the group, NO KEY
        // UPDATE: excludes other writers of this group, but not a write
        // that adds this group to another (which takes KEY SHARE).
        // `stale`: the row's last writer is younger than this transaction
        // (a delete's trigger, which takes no advisory lock, got in first).
        let rows = sqlx::query(
            "WITH u AS (SELECT id FROM users WHERE tenant_id = $1 AND id = ANY($2) FOR KEY SHARE), \
             m AS (SELECT id FROM groups WHERE tenant_id = $1 AND id = ANY($2) FOR KEY SHARE), \
             g AS (SELECT id, version, created_at, modified_at, doc, age(xmin) < 0 AS stale \
             FROM groups WHERE tenant_id = $1 AND id = $3 FOR NO KEY UPDATE) \
             SELECT NULL::text AS kind, NULL::uuid AS id, NULL::bigint AS version, \
             NULL::timestamptz AS created_at, NULL::timestamptz AS modified_at, NULL::jsonb AS doc, \
             NULL::boolean AS stale WHERE $4::bigint IS NOT NULL AND pg_advisory_xact_lock($4) IS NULL \
             UNION ALL SELECT 'User', id, NULL, NULL, NULL, NULL, NULL FROM u \
             UNION ALL SELECT 'Group', id, NULL, NULL, NULL, NULL, NULL FROM m \
             UNION ALL SELECT 'Self', id, version, created_at, modified_at, doc, stale FROM g",
        )
        .bind(self.tenant)
        .bind(members)
        .bind(id)
        .bind(self.actor.is_some().then(|| group_lock_key(id)))
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut kinds = HashMap::new();
        let mut group = None;
        for row in &rows {
            let kind: &str = row.try_get("kind").map_err(StoreError::from_sqlx)?;
            if kind != "Self" {
                let id = row.try_get("id").map_err(StoreError::from_sqlx)?;
                kinds.insert(id, MemberKind::parse(kind));
                continue;
            }
            let stale: bool = row.try_get("stale").map_err(StoreError::from_sqlx)?;
            if stale && self.actor.is_some() {
                return Err(StoreError::Contention);
            }
            group = Some(group_from_row(row)?);
        }
        Ok((kinds, group))
    }

    async fn insert_group(&mut self, id: Uuid, at: DateTime<Utc>, w: &GroupWrite) -> Result<()> {
        sqlx::query(
            "INSERT INTO groups (tenant_id, id, display_name, display_name_lower, external_id, version, created_at, modified_at, doc) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6, $7)",
        )
        .bind(self.tenant)
        .bind(id)
        .bind(&w.display_name)
        .bind(&w.display_name_lower)
        .bind(&w.external_id)
        .bind(at)
        .bind(Json(&w.doc))
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
        macro_rules! update {
            () => {
                "UPDATE groups SET display_name = $3, display_name_lower = $4, external_id = $5, doc = $6, \
                 version = version + 1, modified_at = $7 WHERE tenant_id = $1 AND id = $2 \
                 RETURNING id, version, created_at, modified_at, doc"
            };
        }
        let recorded = self.actor.as_ref().filter(|_| !events.is_empty());
        let sql = match recorded {
            Some(_) => concat!(
                "WITH g AS (",
                update!(),
                "), e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, \
                 version, actor, changed, created_at, modified_at, data, groups, member_id, member_type) \
                 SELECT $1, x.id, x.type, $7, x.resource_type, x.resource_id, g.version, $8, \
                 ARRAY(SELECT jsonb_array_elements_text(x.changed)), x.created_at, x.modified_at, x.data, \
                 x.groups, x.member_id, x.member_type \
                 FROM g, jsonb_to_recordset($9::jsonb) AS x(id uuid, type text, resource_type text, \
                 resource_id uuid, changed jsonb, created_at timestamptz, modified_at timestamptz, \
                 data jsonb, groups jsonb, member_id uuid, member_type text)) SELECT * FROM g"
            ),
            None => update!(),
        };
        let query = sqlx::query(sql)
            .bind(self.tenant)
            .bind(id)
            .bind(&w.display_name)
            .bind(&w.display_name_lower)
            .bind(&w.external_id)
            .bind(Json(&w.doc))
            .bind(at);
        let query = match recorded {
            Some(actor) => query.bind(Json(actor)).bind(rows_json(events)),
            None => query,
        };
        let row = query
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
    ) -> Result<(u64, Vec<Member>)> {
        let on_conflict = match set_display {
            true => {
                "DO UPDATE SET display = EXCLUDED.display \
                     WHERE group_members.display IS DISTINCT FROM EXCLUDED.display"
            }
            false => "DO NOTHING",
        };
        let ids: Vec<Uuid> = members.iter().map(|m| m.id).collect();
        let kinds: Vec<&str> = members.iter().map(|m| m.kind.as_str()).collect();
        let displays: Vec<Option<&str>> = members.iter().map(|m| m.display.as_deref()).collect();
        // `xmax = 0`: a row this statement inserted, not one it updated.
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO group_members (tenant_id, group_id, member_id, member_type, display) \
             SELECT $1, $2, m.id, m.kind, m.display FROM unnest($3::uuid[], $4::text[], $5::text[]) AS m(id, kind, display) \
             ON CONFLICT (tenant_id, group_id, member_id) {on_conflict} \
             RETURNING member_id, member_type, display, xmax = 0 AS inserted"
        )))
        .bind(self.tenant)
        .bind(group)
        .bind(&ids)
        .bind(&kinds)
        .bind(&displays)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        let mut joined = Vec::new();
        for row in &rows {
            if row.try_get("inserted").map_err(StoreError::from_sqlx)? {
                joined.push(member_from_row(row)?);
            }
        }
        Ok((rows.len() as u64, joined))
    }

    async fn delete_members(&mut self, group: Uuid, ids: &[Uuid]) -> Result<Vec<Member>> {
        self.delete_where(group, "member_id = ANY($3)", ids).await
    }

    async fn delete_members_except(&mut self, group: Uuid, keep: &[Uuid]) -> Result<Vec<Member>> {
        self.delete_where(group, "NOT (member_id = ANY($3))", keep)
            .await
    }

    fn records_events(&self) -> bool {
        self.actor.is_some()
    }

    async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        let Some(actor) = &self.actor else {
            return Ok(());
        };
        sqlx::query(
            "INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, version, \
             actor, changed, created_at, modified_at, data, groups, member_id, member_type) \
             SELECT $1, x.id, x.type, $2, x.resource_type, x.resource_id, x.version, $3, \
             ARRAY(SELECT jsonb_array_elements_text(x.changed)), x.created_at, x.modified_at, x.data, \
             x.groups, x.member_id, x.member_type \
             FROM jsonb_to_recordset($4::jsonb) AS x(id uuid, type text, resource_type text, \
             resource_id uuid, version bigint, changed jsonb, created_at timestamptz, \
             modified_at timestamptz, data jsonb, groups jsonb, member_id uuid, member_type text)",
        )
        .bind(self.tenant)
        .bind(now())
        .bind(Json(actor))
        .bind(rows_json(events))
        .execute(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }
}

fn member_from_row(row: &PgRow) -> Result<Member> {
    let kind: &str = row.try_get("member_type").map_err(StoreError::from_sqlx)?;
    Ok(Member {
        id: row.try_get("member_id").map_err(StoreError::from_sqlx)?,
        kind: MemberKind::parse(kind),
        display: row.try_get("display").map_err(StoreError::from_sqlx)?,
    })
}

impl PgGroupTx<'_> {
    /// Commits, or rolls back what did not change anything.
    async fn finish(self, commit: bool) -> Result<()> {
        match commit {
            true => self.tx.commit().await,
            false => self.tx.rollback().await,
        }
        .map_err(StoreError::from_sqlx)
    }

    async fn delete_where(
        &mut self,
        group: Uuid,
        condition: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Member>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM group_members WHERE tenant_id = $1 AND group_id = $2 AND {condition} \
             RETURNING member_id, member_type, display"
        )))
        .bind(self.tenant)
        .bind(group)
        .bind(ids)
        .fetch_all(&mut *self.tx)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter().map(member_from_row).collect()
    }
}

impl PgStore {
    /// A group write's transaction. When it records events, a change of a
    /// group first waits for an advisory lock on that group, in the
    /// statement that then locks its rows ([`GroupTx::lock_change`]): an
    /// advisory lock takes no transaction id, so writers of one group get
    /// theirs in the order they come through (see `events.rs`).
    async fn begin_group_write<'c>(
        conn: &'c mut Lease,
        scope: TenantScope,
        actor: Option<&Actor>,
    ) -> Result<PgGroupTx<'c>> {
        Ok(PgGroupTx {
            tx: conn.begin().await.map_err(StoreError::from_sqlx)?,
            tenant: scope.tenant_id(),
            actor: actor.map(Actor::to_json),
        })
    }

    pub async fn create_group(
        &self,
        scope: TenantScope,
        w: GroupWrite,
        members: Vec<NewMember>,
        actor: Option<&Actor>,
    ) -> Result<GroupWritten> {
        let mut conn = self.lease().await?;
        let mut tx = Self::begin_group_write(&mut conn, scope, actor).await?;
        let written = groups::create(&mut tx, w, members).await?;
        tx.finish(true).await?;
        conn.release();
        if actor.is_some() {
            self.notify.notify_waiters();
        }
        Ok(written)
    }

    /// One group write (see [`groups::modify`]), started over (bounded)
    /// when the database or the event order asks for it.
    pub async fn modify_group<T, E>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        change: impl Fn(&Map<String, Value>) -> std::result::Result<(Map<String, Value>, T), E>,
        members: &[MemberChange],
        actor: Option<&Actor>,
    ) -> std::result::Result<(GroupWritten, T), ModifyError<E>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut conn = self.lease().await?;
            let mut tx = Self::begin_group_write(&mut conn, scope, actor).await?;
            match groups::modify(&mut tx, id, if_version, &change, members).await {
                Ok((written, out, changed)) => {
                    tx.finish(changed).await?;
                    conn.release();
                    if changed && actor.is_some() {
                        self.notify.notify_waiters();
                    }
                    return Ok((written, out));
                }
                Err(ModifyError::Store(StoreError::Contention))
                    if attempt < super::WRITE_ATTEMPTS =>
                {
                    tx.finish(false).await?;
                    conn.release();
                    super::back_off(attempt).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub async fn get_group(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredGroup>> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE tenant_id = $1 AND id = $2");
        let row = self
            .on(async |c| {
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(scope.tenant_id())
                    .bind(id)
                    .fetch_optional(c)
                    .await
            })
            .await?;
        row.as_ref().map(group_from_row).transpose()
    }

    pub async fn members_of(
        &self,
        scope: TenantScope,
        groups: &[Uuid],
        limit: u64,
    ) -> Result<HashMap<Uuid, MemberPage>> {
        let rows = self
            .on(async |c| {
                sqlx::query(
                    "SELECT group_id, member_id, member_type, display, total FROM ( \
                     SELECT m.group_id, m.member_id, m.member_type, m.display, \
                     count(*) OVER (PARTITION BY m.group_id) AS total, \
                     row_number() OVER (PARTITION BY m.group_id ORDER BY m.member_id) AS n \
                     FROM group_members m WHERE m.tenant_id = $1 AND m.group_id = ANY($2)) x \
                     WHERE n <= GREATEST($3, 1) ORDER BY group_id, member_id",
                )
                .bind(scope.tenant_id())
                .bind(groups)
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(c)
                .await
            })
            .await?;
        let rows = rows
            .iter()
            .map(|r| {
                let kind: &str = r.try_get("member_type")?;
                let member = Member {
                    id: r.try_get("member_id")?,
                    kind: MemberKind::parse(kind),
                    display: r.try_get("display")?,
                };
                Ok((r.try_get("group_id")?, r.try_get("total")?, member))
            })
            .collect::<std::result::Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)?;
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
        match actor {
            None => self.delete_if(
                "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 AND ($3::bigint IS NULL OR version = $3)",
                scope,
                id,
                if_version,
                None,
            ),
            Some(actor) => self.delete_if(
                "WITH a AS (SELECT set_config('scimd.actor', $4, true) AS actor), \
                 d AS (DELETE FROM groups WHERE tenant_id = $1 AND id = $2 \
                 AND ($3::bigint IS NULL OR version = $3) AND age(xmin) >= 0 \
                 RETURNING id, version, created_at, modified_at, doc), \
                 e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, \
                 resource_id, version, actor, created_at, modified_at, data, groups) \
                 SELECT $1, $5, 'group.deleted', $6, 'Group', d.id, d.version, a.actor::jsonb, \
                 d.created_at, d.modified_at, d.doc, '[]'::jsonb FROM d, a) \
                 SELECT count(*) FROM d",
                scope,
                id,
                if_version,
                Some(actor),
            ),
        }
        .await
    }
}

/// `events` as a JSON array of rows, for one multi-row `INSERT` (read with
/// `jsonb_to_recordset`; timestamps in RFC 3339).
fn rows_json(events: &[NewEvent]) -> String {
    let rows: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut row = Map::new();
            row.insert("id".into(), Value::String(Uuid::now_v7().to_string()));
            row.insert("type".into(), e.kind.as_str().into());
            row.insert("resource_type".into(), e.resource.as_str().into());
            row.insert("resource_id".into(), e.resource_id.to_string().into());
            row.insert("version".into(), e.version.into());
            if e.kind.has_changes() {
                row.insert("changed".into(), e.changed.clone().into());
            }
            if let Some(s) = &e.snapshot {
                row.insert("created_at".into(), Value::String(s.created.to_rfc3339()));
                row.insert("modified_at".into(), Value::String(s.modified.to_rfc3339()));
                row.insert("data".into(), Value::Object(s.doc.clone()));
                row.insert("groups".into(), events::groups_json(&s.groups));
            }
            if let Some((id, kind)) = e.member {
                row.insert("member_id".into(), id.to_string().into());
                row.insert("member_type".into(), kind.as_str().into());
            }
            Value::Object(row)
        })
        .collect();
    Value::Array(rows).to_string()
}
