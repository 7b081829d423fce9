//! The PostgreSQL backend.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use std::sync::Arc;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use uuid::Uuid;

use super::pg_conns::{Conns, IDLE_CHECK_AFTER, Lease};
use super::query::{Bind, Dialect, ListQuery, list_sql};
use crate::scim::schema::USER_RESOURCE;
use sqlx::AssertSqlSafe;

use super::events::UserEvent;
use crate::events::Actor;

use super::{
    GroupRef, KeyInfo, KeyRecord, NewKey, PROJECT_KEY, PoolConfig, Project, Result, StoreError,
    StoredUser, StoredUserText, TENANT_NAME_KEY, Tenant, TenantScope, USER_NAME_KEY, UserWrite,
    WrittenUser, now,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    conns: Arc<Conns>,
    /// Woken after a write that recorded events (for readers that wait).
    pub(super) notify: Arc<tokio::sync::Notify>,
}

/// `'<tenant>:<lower-cased email>'` keys for the GIN index on `email_keys`.
pub(super) fn email_keys(scope: TenantScope, w: &UserWrite) -> Vec<String> {
    let tenant = scope.tenant_id();
    w.emails_lower
        .iter()
        .map(|e| format!("{tenant}:{e}"))
        .collect()
}

pub(super) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s.as_str()),
            Bind::Bool(v) => query.bind(*v),
            Bind::Time(t) => query.bind(*t),
            Bind::Uuid(u) => query.bind(*u),
            Bind::TextArray(a) => query.bind(a.as_slice()),
        };
    }
    query
}

/// The `groups` column of user queries: the user's direct memberships as
/// `[[group id, display name], …]`, read with the user in one round trip.
macro_rules! groups_of {
    ($t:literal) => {
        concat!(
            "COALESCE((SELECT jsonb_agg(jsonb_build_array(m.group_id::text, g.display_name) \
             ORDER BY g.display_name_lower, m.group_id) FROM group_members m \
             JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id \
             WHERE m.tenant_id = ",
            $t,
            ".tenant_id AND m.member_id = ",
            $t,
            ".id), '[]'::jsonb)::text AS groups"
        )
    };
}
pub(super) use groups_of;

fn user_from_row(row: &PgRow) -> Result<StoredUser> {
    let Json(doc): Json<Map<String, Value>> = row.try_get("doc").map_err(StoreError::from_sqlx)?;
    user_with(row, doc)
}

/// A user row with its document as text: JSONB comes in binary format as a
/// version byte (1) and the document's text, which is taken as it is.
fn user_text_from_row(row: &PgRow) -> Result<StoredUserText> {
    use sqlx::postgres::PgValueFormat;
    let raw = row.try_get_raw("doc").map_err(StoreError::from_sqlx)?;
    let binary = raw.format() == PgValueFormat::Binary;
    let bytes = raw
        .as_bytes()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let text = match (binary, bytes.split_first()) {
        (false, _) => bytes,
        (true, Some((1, text))) => text,
        (true, _) => return Err(StoreError::Corrupt("unknown JSONB format".into())),
    };
    let doc = std::str::from_utf8(text)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?
        .to_owned();
    user_with(row, doc)
}

fn user_with<D>(row: &PgRow, doc: D) -> Result<StoredUser<D>> {
    Ok(StoredUser {
        id: row.try_get("id").map_err(StoreError::from_sqlx)?,
        version: row.try_get("version").map_err(StoreError::from_sqlx)?,
        created: row.try_get("created_at").map_err(StoreError::from_sqlx)?,
        modified: row.try_get("modified_at").map_err(StoreError::from_sqlx)?,
        doc,
        groups: GroupRef::parse_list(row.try_get("groups").map_err(StoreError::from_sqlx)?)?,
    })
}

/// The URL's options (read as libpq does, see `pg_url`), and on every
/// session:
/// - `default_transaction_isolation = 'read committed'`, whatever the
///   database's default: scimd's writes are built on it (a row lock waits
///   for a concurrent writer and then sees what it wrote; a version check
///   decides), where serializable would abort one of two writers of a row,
///   or a writer beside an events reader, and make it start over;
/// - a `statement_timeout`: a request that times out leaves no statement
///   running behind it (sqlx cannot cancel a statement whose future is
///   dropped).
fn connect_options(url: &str, cfg: &PoolConfig) -> Result<PgConnectOptions> {
    let options =
        super::pg_url::options(url)?.options([("default_transaction_isolation", "read committed")]);
    Ok(match cfg.statement_timeout {
        Some(t) => options.options([("statement_timeout", format!("{}ms", t.as_millis().max(1)))]),
        None => options,
    })
}

impl PgStore {
    pub async fn connect(url: &str, cfg: &PoolConfig) -> Result<PgStore> {
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections)
            .acquire_timeout(cfg.acquire_timeout)
            // Statements lease connections through `Conns`, which pings only
            // those that sat idle; the pool's own check on every hand-out
            // would be one more round trip per statement.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_CHECK_AFTER {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect_options(url, cfg)?)
            .await
            .map_err(StoreError::from_sqlx)?;
        let conns = Conns::new(pool.clone(), cfg.max_connections, cfg.acquire_timeout);
        Ok(PgStore {
            pool,
            conns,
            notify: Default::default(),
        })
    }

    pub fn pool_stats(&self) -> super::PoolStats {
        self.conns.stats()
    }

    /// A connection for a series of statements (see [`Lease`]); also what
    /// tests and tools use for raw SQL.
    pub async fn lease(&self) -> Result<Lease> {
        self.conns.lease().await.map_err(StoreError::from_sqlx)
    }

    /// Runs `statement` on a leased connection and releases it when the
    /// statement succeeded.
    pub(super) async fn on<T>(
        &self,
        statement: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> Result<T> {
        let mut conn = self.lease().await?;
        let out = statement(&mut conn).await.map_err(StoreError::from_sqlx)?;
        conn.release();
        Ok(out)
    }

    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        self.on(async |c| sqlx::query("SELECT 1").execute(c).await)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.conns.close();
        self.pool.close().await
    }

    /// The secret named `name`, stored as `fresh` if there is none yet (the
    /// first process to ask wins; the others read its secret).
    pub async fn deployment_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>> {
        self.on(async |c| {
            sqlx::query(
                "INSERT INTO deployment_secrets (name, secret, created_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(fresh)
            .execute(&mut *c)
            .await?;
            sqlx::query_scalar("SELECT secret FROM deployment_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(c)
                .await
        })
        .await
    }

    pub async fn has_projects(&self) -> Result<bool> {
        self.on(async |c| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects)")
                .fetch_one(c)
                .await
        })
        .await
    }

    pub async fn create_project(&self, id: &str, name: &str) -> Result<Project> {
        let created_at = now();
        self.on(async |c| {
            sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(name)
                .bind(created_at)
                .execute(c)
                .await
        })
        .await
        .map_err(|e| e.unique_on(PROJECT_KEY, "project id"))?;
        Ok(Project {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at,
        })
    }

    pub async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        let row = self
            .on(async |c| {
                sqlx::query("SELECT id, name, created_at FROM projects WHERE id = $1")
                    .bind(id)
                    .fetch_optional(c)
                    .await
            })
            .await?;
        row.map(|r| {
            Ok(Project {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .transpose()
        .map_err(StoreError::from_sqlx)
    }

    pub async fn create_tenant(&self, project_id: &str, name: &str) -> Result<Tenant> {
        let id = Uuid::now_v7();
        self.on(async |c| {
            sqlx::query(
                "INSERT INTO tenants (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(project_id)
            .bind(name)
            .bind(now())
            .execute(c)
            .await
        })
        .await
        .map_err(|e| e.unique_on(TENANT_NAME_KEY, "tenant name"))?;
        Ok(Tenant {
            id,
            project_id: project_id.to_owned(),
            name: name.to_owned(),
        })
    }

    pub async fn find_tenant(&self, project_id: &str, id_or_name: &str) -> Result<Option<Tenant>> {
        let id = Uuid::parse_str(id_or_name).ok();
        let row = self
            .on(async |c| {
                sqlx::query(
                    "SELECT id, project_id, name FROM tenants \
             WHERE project_id = $1 AND (id = $2 OR name = $3) ORDER BY (id = $2) DESC LIMIT 1",
                )
                .bind(project_id)
                .bind(id)
                .bind(id_or_name)
                .fetch_optional(c)
                .await
            })
            .await?;
        row.map(|r| {
            Ok(Tenant {
                id: r.try_get("id")?,
                project_id: r.try_get("project_id")?,
                name: r.try_get("name")?,
            })
        })
        .transpose()
        .map_err(StoreError::from_sqlx)
    }

    pub async fn create_key(&self, key: &NewKey) -> Result<()> {
        let sql = "INSERT INTO access_keys (id, project_id, tenant_id, role, name, hash_prefix, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        self.on(async |c| {
            sqlx::query(sql)
                .bind(&key.id)
                .bind(&key.project_id)
                .bind(key.tenant_id)
                .bind(&key.role)
                .bind(&key.name)
                .bind(&key.secret_hash[..8])
                .bind(&key.secret_hash[..])
                .bind(now())
                .bind(key.expires_at)
                .execute(c)
                .await
        })
        .await?;
        Ok(())
    }

    pub async fn find_keys(&self, project_id: &str, hash_prefix: &[u8]) -> Result<Vec<KeyRecord>> {
        let sql = "SELECT k.id, k.project_id, k.tenant_id, k.role, k.secret_hash, k.expires_at, k.revoked_at, \
             k.last_used_at, t.delete_mode, t.deletion_limit, t.deletion_window_secs, t.paused, t.held_since \
             FROM access_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.project_id = $1 AND k.hash_prefix = $2";
        let rows = self
            .on(async |c| {
                sqlx::query(sql)
                    .bind(project_id)
                    .bind(hash_prefix)
                    .fetch_all(c)
                    .await
            })
            .await?;
        rows.iter()
            .map(|r| {
                let get = |e: sqlx::Error| StoreError::from_sqlx(e);
                Ok(KeyRecord {
                    id: r.try_get("id").map_err(get)?,
                    project_id: r.try_get("project_id").map_err(get)?,
                    tenant_id: r.try_get("tenant_id").map_err(get)?,
                    role: r.try_get("role").map_err(get)?,
                    secret_hash: r.try_get("secret_hash").map_err(get)?,
                    expires_at: r.try_get("expires_at").map_err(get)?,
                    revoked_at: r.try_get("revoked_at").map_err(get)?,
                    last_used_at: r.try_get("last_used_at").map_err(get)?,
                    policy: super::postgres_policy::policy_from_row(r)?,
                })
            })
            .collect()
    }

    pub async fn key_exists_with_hash(&self, secret_hash: &[u8]) -> Result<bool> {
        self.on(async |c| {
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM access_keys WHERE secret_hash = $1)")
                .bind(secret_hash)
                .fetch_one(c)
                .await
        })
        .await
    }

    pub async fn touch_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.on(async |c| {
            sqlx::query("UPDATE access_keys SET last_used_at = $2 WHERE id = $1")
                .bind(key_id)
                .bind(at)
                .execute(c)
                .await
        })
        .await?;
        Ok(())
    }

    pub async fn list_keys(&self, project_id: Option<&str>) -> Result<Vec<KeyInfo>> {
        let sql = "SELECT id, project_id, tenant_id, role, name, created_at, expires_at, revoked_at, last_used_at \
             FROM access_keys WHERE $1::text IS NULL OR project_id = $1 ORDER BY created_at, id";
        let rows = self
            .on(async |c| sqlx::query(sql).bind(project_id).fetch_all(c).await)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(KeyInfo {
                    id: r.try_get("id")?,
                    project_id: r.try_get("project_id")?,
                    tenant_id: r.try_get("tenant_id")?,
                    role: r.try_get("role")?,
                    name: r.try_get("name")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    revoked_at: r.try_get("revoked_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from_sqlx)
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<bool> {
        let done = self
            .on(async |c| {
                sqlx::query(
                    "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                )
                .bind(key_id)
                .bind(now())
                .execute(c)
                .await
            })
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_user(
        &self,
        scope: TenantScope,
        w: &UserWrite,
        actor: Option<&Actor>,
    ) -> Result<StoredUser> {
        let id = Uuid::now_v7();
        let at = now();
        macro_rules! insert_user {
            () => {
                "INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, version, created_at, modified_at, doc, display_name_lower, email_keys) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $10, $11)"
            };
        }
        let sql = match actor {
            None => insert_user!(),
            Some(_) => concat!(
                "WITH u AS (",
                insert_user!(),
                " RETURNING id) INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, \
                 resource_id, version, actor, created_at, modified_at, data, groups) \
                 SELECT $1, $12, 'user.created', $8, 'User', u.id, 1, $13, $8, $8, $9, '[]'::jsonb FROM u"
            ),
        };
        self.on(async |c| {
            let query = sqlx::query(sql)
                .bind(scope.tenant_id())
                .bind(id)
                .bind(&w.user_name)
                .bind(&w.user_name_lower)
                .bind(&w.external_id)
                .bind(w.active)
                .bind(&w.display_name)
                .bind(at)
                .bind(Json(&w.doc))
                .bind(&w.display_name_lower)
                .bind(email_keys(scope, w));
            match actor {
                None => query.execute(c).await,
                Some(actor) => {
                    query
                        .bind(Uuid::now_v7())
                        .bind(Json(actor.to_json()))
                        .execute(c)
                        .await
                }
            }
        })
        .await
        .map_err(|e| e.unique_on(USER_NAME_KEY, "userName"))?;
        if actor.is_some() {
            self.notify.notify_waiters();
        }
        Ok(StoredUser {
            id,
            version: 1,
            created: at,
            modified: at,
            doc: w.doc.clone(),
            groups: Vec::new(),
        })
    }

    pub async fn get_user(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredUser>> {
        self.user_as(scope, id, user_from_row).await
    }

    pub async fn get_user_text(
        &self,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<Option<StoredUserText>> {
        self.user_as(scope, id, user_text_from_row).await
    }

    async fn user_as<D>(
        &self,
        scope: TenantScope,
        id: Uuid,
        from_row: fn(&PgRow) -> Result<StoredUser<D>>,
    ) -> Result<Option<StoredUser<D>>> {
        let row = self
            .on(async |c| {
                sqlx::query(concat!(
                    "SELECT id, version, created_at, modified_at, doc, ",
                    groups_of!("users"),
                    " FROM users WHERE tenant_id = $1 AND id = $2"
                ))
                .bind(scope.tenant_id())
                .bind(id)
                .fetch_optional(c)
                .await
            })
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn query_users(
        &self,
        scope: TenantScope,
        q: &ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredUser>)> {
        self.run_list(&USER_RESOURCE, scope, q, user_from_row).await
    }

    pub async fn query_users_text(
        &self,
        scope: TenantScope,
        q: &ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredUserText>)> {
        self.run_list(&USER_RESOURCE, scope, q, user_text_from_row)
            .await
    }

    /// Runs a listing of resource type `rt` (see [`super::list_page`]).
    pub(super) async fn run_list<T>(
        &self,
        rt: &'static crate::scim::schema::ResourceType,
        scope: TenantScope,
        q: &ListQuery,
        from_row: fn(&PgRow) -> Result<T>,
    ) -> Result<(Option<u64>, Vec<T>)> {
        let sql =
            list_sql(Dialect::Postgres, rt, scope, q).map_err(|e| StoreError::InvalidQuery(e.0))?;
        let count = async {
            let n: i64 = self
                .on(async |c| {
                    bind_all(
                        sqlx::query(AssertSqlSafe(sql.count.text.clone())),
                        &sql.count.binds,
                    )
                    .fetch_one(c)
                    .await
                    .and_then(|row| row.try_get(0))
                })
                .await?;
            Ok(n as u64)
        };
        let page = async {
            self.on(async |c| {
                bind_all(
                    sqlx::query(AssertSqlSafe(sql.page.text.clone()))
                        .persistent(sql.page_persistent),
                    &sql.page.binds,
                )
                .fetch_all(c)
                .await
            })
            .await
        };
        super::list_page(q, count, page, from_row).await
    }

    /// The query plans (`EXPLAIN`) of a user listing's count and page
    /// statements: for checking that a filter shape is index-backed.
    pub async fn explain_users(&self, scope: TenantScope, q: &ListQuery) -> Result<Vec<String>> {
        let sql = list_sql(Dialect::Postgres, &USER_RESOURCE, scope, q)
            .map_err(|e| StoreError::InvalidQuery(e.0))?;
        let mut plans = Vec::new();
        for stmt in [&sql.count, &sql.page] {
            let rows = self
                .on(async |c| {
                    bind_all(
                        sqlx::query(AssertSqlSafe(format!("EXPLAIN {}", stmt.text))),
                        &stmt.binds,
                    )
                    .fetch_all(c)
                    .await
                })
                .await?;
            let lines: Vec<String> = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<Result<_, _>>()
                .map_err(StoreError::from_sqlx)?;
            plans.push(lines.join("\n"));
        }
        Ok(plans)
    }

    /// The conditional UPDATE of a replace: changes the row only if it exists,
    /// matches `if_version` (when given) and its document differs; records
    /// `event` with it.
    pub async fn update_user_if_changed(
        &self,
        scope: TenantScope,
        id: Uuid,
        w: &UserWrite,
        if_version: Option<i64>,
        event: Option<UserEvent<'_>>,
    ) -> Result<Option<WrittenUser>> {
        macro_rules! update_user {
            () => {
                concat!(
                    "UPDATE users SET user_name = $3, user_name_lower = $4, external_id = $5, active = $6, \
                     display_name = $7, doc = $8, version = version + 1, modified_at = $9, \
                     display_name_lower = $11, email_keys = $12 \
                     WHERE tenant_id = $1 AND id = $2 AND ($10::bigint IS NULL OR version = $10) \
                     AND doc IS DISTINCT FROM $8 \
                     RETURNING id, version, created_at, modified_at, ",
                    groups_of!("users")
                )
            };
        }
        let sql = match event {
            None => update_user!(),
            Some(_) => concat!(
                "WITH u AS (",
                update_user!(),
                "), e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, resource_id, \
                 version, actor, changed, created_at, modified_at, data, groups) \
                 SELECT $1, $13, $14, $9, 'User', u.id, u.version, $15, $16, u.created_at, u.modified_at, \
                 $8, u.groups::jsonb FROM u) SELECT * FROM u"
            ),
        };
        let row = self
            .on(async |c| {
                let query = sqlx::query(sql)
                    .bind(scope.tenant_id())
                    .bind(id)
                    .bind(&w.user_name)
                    .bind(&w.user_name_lower)
                    .bind(&w.external_id)
                    .bind(w.active)
                    .bind(&w.display_name)
                    .bind(Json(&w.doc))
                    .bind(now())
                    .bind(if_version)
                    .bind(&w.display_name_lower)
                    .bind(email_keys(scope, w));
                match event {
                    None => query.fetch_optional(c).await,
                    Some(e) => {
                        query
                            .bind(Uuid::now_v7())
                            .bind(e.change.kind.as_str())
                            .bind(Json(e.actor.to_json()))
                            .bind(&e.change.changed)
                            .fetch_optional(c)
                            .await
                    }
                }
            })
            .await
            .map_err(|e| e.unique_on(USER_NAME_KEY, "userName"))?;
        if event.is_some() && row.is_some() {
            self.notify.notify_waiters();
        }
        row.as_ref().map(|row| user_with(row, ())).transpose()
    }

    /// Deletes the user if it exists and matches `if_version` (when given),
    /// recording its events when `actor` is given.
    pub async fn delete_user_if(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: Option<&Actor>,
    ) -> Result<bool> {
        match actor {
            None => self.delete_if(
                "DELETE FROM users WHERE tenant_id = $1 AND id = $2 AND ($3::bigint IS NULL OR version = $3)",
                scope,
                id,
                if_version,
                None,
            ),
            Some(actor) => self.delete_if(
                concat!(
                    "WITH a AS (SELECT set_config('scimd.actor', $4, true) AS actor), \
                     d AS (DELETE FROM users WHERE tenant_id = $1 AND id = $2 \
                     AND ($3::bigint IS NULL OR version = $3) AND age(xmin) >= 0 \
                     RETURNING id, version, created_at, modified_at, doc, ",
                    groups_of!("users"),
                    "), e AS (INSERT INTO events (tenant_id, id, type, occurred_at, resource_type, \
                     resource_id, version, actor, created_at, modified_at, data, groups) \
                     SELECT $1, $5, 'user.deleted', $6, 'User', d.id, d.version, a.actor::jsonb, \
                     d.created_at, d.modified_at, d.doc, d.groups::jsonb FROM d, a) \
                     SELECT count(*) FROM d"
                ),
                scope,
                id,
                if_version,
                Some(actor),
            ),
        }
        .await
    }

    /// Runs a version-checked `DELETE` of one resource (`$1` tenant, `$2`
    /// id, `$3` version or NULL); `true` when a row went. With `actor`, the
    /// statement records the events (`$4` the actor, `$5` an event id, `$6`
    /// the time) and answers the number of rows deleted.
    pub(super) async fn delete_if(
        &self,
        sql: &'static str,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: Option<&Actor>,
    ) -> Result<bool> {
        let deleted = self
            .on(async |c| {
                let query = sqlx::query(sql)
                    .bind(scope.tenant_id())
                    .bind(id)
                    .bind(if_version);
                match actor {
                    None => query.execute(c).await.map(|done| done.rows_affected()),
                    Some(actor) => query
                        .bind(actor.to_json().to_string())
                        .bind(Uuid::now_v7())
                        .bind(now())
                        .fetch_one(c)
                        .await
                        .and_then(|row| row.try_get::<i64, _>(0))
                        .map(|n| n as u64),
                }
            })
            .await?;
        if actor.is_some() && deleted == 1 {
            self.notify.notify_waiters();
        }
        Ok(deleted == 1)
    }
}
