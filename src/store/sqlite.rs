//! The SQLite backend: the embedded default. Ids are stored as UUID text,
//! timestamps as Unix epoch milliseconds, documents as JSON text (serialised
//! with sorted keys, so equal documents have equal text).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

use super::query::{Bind, Dialect, ListQuery, list_sql};
use super::sqlite_commit::{BatchError, Turn, WRITER_CHECKPOINT_PAGES, Writers};
use super::sqlite_events::{PendingEvent, PendingSnapshot};
use crate::scim::schema::USER_RESOURCE;
use sqlx::AssertSqlSafe;

use super::events::UserEvent;
use crate::events::{Actor, EventType};

use super::{
    GroupRef, KeyInfo, KeyRecord, NewKey, PROJECT_KEY, PoolConfig, Project, Result, StoreError,
    StoredUser, StoredUserText, TENANT_NAME_KEY, Tenant, TenantScope, USER_NAME_KEY, UserWrite,
    WrittenUser, now,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The one connection this process writes on (in its turn, see
    /// `write_lock`). SQLite drops a connection's page cache whenever
    /// another connection has written, so writes spread over the pool
    /// each began cold and read every page they touched from the file
    /// (39–53 `pread` calls per PATCH); on one connection they find the
    /// pages the previous write left.
    writes: SqlitePool,
    /// SQLite has one writer at a time. Writers of this process queue here
    /// (first come, first served) instead of spinning on SQLITE_BUSY, whose
    /// back-off makes tail latency explode under concurrent writes, and
    /// share transactions where they can (`sqlite_commit.rs`). Other
    /// processes still meet the busy timeout.
    pub(super) writers: Writers,
}

pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) fn from_millis(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms}")))
}

fn opt_from_millis(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(from_millis).transpose()
}

pub(super) fn parse_uuid(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| StoreError::Corrupt(format!("uuid {s:?}: {e}")))
}

pub(super) fn get<'r, T>(row: &'r SqliteRow, col: &str) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(col).map_err(StoreError::from_sqlx)
}

pub(super) fn doc_text(doc: &Map<String, Value>) -> String {
    // A map of JSON values always serialises.
    serde_json::to_string(doc).unwrap_or_else(|_| "{}".to_owned())
}

pub(super) fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s.as_str()),
            Bind::Bool(v) => query.bind(*v),
            Bind::Time(t) => query.bind(millis(*t)),
            Bind::Uuid(u) => query.bind(u.to_string()),
            Bind::TextArray(a) => query.bind(serde_json::to_string(a).unwrap_or_default()),
        };
    }
    query
}

/// The `groups` column of user queries: the user's direct memberships as
/// `[[group id, display name], …]`, read with the user in one round trip.
macro_rules! groups_of {
    ($t:literal) => {
        concat!(
            "COALESCE((SELECT json_group_array(json_array(x.group_id, x.display_name)) FROM \
             (SELECT m.group_id, g.display_name FROM group_members m \
             JOIN groups g ON g.tenant_id = m.tenant_id AND g.id = m.group_id \
             WHERE m.tenant_id = ",
            $t,
            ".tenant_id AND m.member_id = ",
            $t,
            ".id \
             ORDER BY g.display_name_lower, m.group_id) x), '[]') AS groups"
        )
    };
}
pub(super) use groups_of;

/// A user write's event as the statement that records it binds it: its
/// id, type, actor and (for the types that have them) changed attributes,
/// as JSON text.
struct EventBinds {
    id: String,
    kind: &'static str,
    actor: String,
    changed: Option<String>,
}

impl EventBinds {
    fn new(kind: EventType, actor: &Actor, changed: &[String]) -> EventBinds {
        EventBinds {
            id: Uuid::now_v7().to_string(),
            kind: kind.as_str(),
            actor: actor.to_json().to_string(),
            changed: kind.has_changes().then(|| Value::from(changed).to_string()),
        }
    }

    /// The event of user `id` of `tenant`, written as `snapshot` at
    /// `version`, for its batch to insert: it occurred when the user was
    /// modified.
    fn pending(
        self,
        tenant: String,
        id: String,
        version: i64,
        snapshot: PendingSnapshot,
    ) -> PendingEvent {
        PendingEvent {
            tenant_id: tenant,
            id: self.id,
            kind: self.kind,
            occurred_at: snapshot.modified_at,
            resource_type: "User",
            resource_id: id,
            version,
            actor: self.actor,
            changed: self.changed,
            snapshot: Some(snapshot),
            member: None,
        }
    }

    /// The event of the user written as `row` (its id, version, times and
    /// groups) with `data`.
    fn pending_row(
        self,
        scope: TenantScope,
        row: &SqliteRow,
        data: String,
    ) -> Result<PendingEvent> {
        let snapshot = PendingSnapshot {
            created_at: get(row, "created_at")?,
            modified_at: get(row, "modified_at")?,
            data,
            groups: get(row, "groups")?,
        };
        Ok(self.pending(
            scope.tenant_id().to_string(),
            get(row, "id")?,
            get(row, "version")?,
            snapshot,
        ))
    }
}

fn user_from_row(row: &SqliteRow) -> Result<StoredUser> {
    let doc: String = get(row, "doc")?;
    let doc = serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    user_with(row, doc)
}

fn user_text_from_row(row: &SqliteRow) -> Result<StoredUserText> {
    user_with(row, get(row, "doc")?)
}

/// A user row's columns but the document, with `doc`.
fn user_with<D>(row: &SqliteRow, doc: D) -> Result<StoredUser<D>> {
    Ok(StoredUser {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        version: get(row, "version")?,
        created: from_millis(get(row, "created_at")?)?,
        modified: from_millis(get(row, "modified_at")?)?,
        doc,
        groups: GroupRef::parse_list(&get::<String>(row, "groups")?)?,
    })
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        project_id: get(row, "project_id")?,
        name: get(row, "name")?,
    })
}

/// SQLite virtual machine instructions between two calls of the progress
/// handler (a call costs one clock read).
const PROGRESS_EVERY: i32 = 10_000;
/// A pause this long between two calls of the progress handler ends a run
/// of work: what comes after is a new statement.
const NEW_STATEMENT_AFTER: Duration = Duration::from_millis(100);

/// The statement timeout on SQLite: the connection's progress handler
/// interrupts a statement (`SQLITE_INTERRUPT`, then `StoreError::TimedOut`)
/// once it has run for `limit`. The handler is only called while a statement
/// runs, and knows no statement boundaries: a pause of
/// [`NEW_STATEMENT_AFTER`] starts the clock anew, so statements that follow
/// each other without a pause count as one. Installed once per connection,
/// it costs nothing per statement beyond the calls themselves.
///
/// The writer connection runs writes back to back under load, many in one
/// transaction (`sqlite_commit.rs`), with no such pause between them: its
/// watch also starts the clock anew when a write begins ([`WriteClock`]).
struct StatementWatch {
    limit: Duration,
    started: std::time::Instant,
    last: std::time::Instant,
    clock: Option<WriteClock>,
}

impl StatementWatch {
    fn new(limit: Duration, clock: Option<WriteClock>) -> StatementWatch {
        let now = std::time::Instant::now();
        StatementWatch {
            limit,
            started: now,
            last: now,
            clock,
        }
    }

    /// Whether the running statement may go on.
    fn may_go_on(&mut self) -> bool {
        let now = std::time::Instant::now();
        if now.duration_since(self.last) >= NEW_STATEMENT_AFTER {
            self.started = now;
        }
        if let Some(began) = self.clock.as_ref().map(WriteClock::began) {
            self.started = self.started.max(began);
        }
        self.last = now;
        now.duration_since(self.started) < self.limit
    }
}

/// When the writer connection's current write began (set by the writer in
/// its turn, read by the connection's [`StatementWatch`]).
#[derive(Clone, Debug)]
pub(super) struct WriteClock {
    base: std::time::Instant,
    began_us: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for WriteClock {
    fn default() -> WriteClock {
        WriteClock {
            base: std::time::Instant::now(),
            began_us: Default::default(),
        }
    }
}

impl WriteClock {
    /// A write begins now.
    pub(super) fn start(&self) {
        let us = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.began_us
            .store(us, std::sync::atomic::Ordering::Relaxed);
    }

    fn began(&self) -> std::time::Instant {
        self.base + Duration::from_micros(self.began_us.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Takes scimd's own `synchronous=full|normal` out of a SQLite URL (sqlx
/// knows no such parameter). `full`, the default, makes an acknowledged
/// write survive a power loss: every commit waits for an fsync. `normal`
/// (in WAL mode) survives a crash of scimd or of the machine's software,
/// but a power loss may take the last commits with it; commits then wait
/// for no fsync.
fn take_synchronous(url: &str) -> Result<(String, SqliteSynchronous)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), SqliteSynchronous::Full));
    };
    let mut mode = SqliteSynchronous::Full;
    let mut rest = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("synchronous", value)) => {
                mode = match value.to_ascii_lowercase().as_str() {
                    "full" => SqliteSynchronous::Full,
                    "normal" => SqliteSynchronous::Normal,
                    _ => {
                        return Err(StoreError::Unavailable(format!(
                            "DATABASE_URL: synchronous must be full or normal, not '{value}'"
                        )));
                    }
                }
            }
            _ => rest.push(pair),
        }
    }
    Ok(match rest.is_empty() {
        true => (base.to_owned(), mode),
        false => (format!("{base}?{}", rest.join("&")), mode),
    })
}

/// What SQLite may cache in memory, over the read pool's connections
/// together (the writer's cache is a share of it for a pool of two, besides).
/// Each connection has page caches of its own (one for the database, one
/// for the temporary tables a query builds), 2 MiB each by SQLite's
/// default: with a pool of 16 a million users' scans grew scimd past 110
/// MiB. Pages not cached come from the operating system's file cache.
const CACHE_BUDGET_KIB: u32 = 16 * 1024;

/// `PRAGMA cache_size` for one connection of a pool of `connections`: its
/// share of the budget, split between its two caches, at least 256 KiB
/// each (negative: in KiB).
fn cache_size(connections: u32) -> String {
    let kib = (CACHE_BUDGET_KIB / connections.max(1) / 2).max(256);
    format!("-{kib}")
}

impl SqliteStore {
    pub async fn connect(url: &str, cfg: &PoolConfig) -> Result<SqliteStore> {
        let (url, synchronous) = take_synchronous(url)?;
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(StoreError::from_sqlx)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("cache_size", cache_size(cfg.max_connections))
            .pragma("temp.cache_size", cache_size(cfg.max_connections));
        // An embedded database is brought to this binary's schema on a
        // connection of its own before the pools open any. It stays open
        // until they have (an in-memory database lasts as long as one of
        // its connections does).
        let mut first = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
            .await
            .map_err(StoreError::from_sqlx)?;
        MIGRATOR.run(&mut first).await?;
        let statement_timeout = cfg.statement_timeout;
        let pool_of = |connections: u32,
                       options: SqliteConnectOptions,
                       clock: Option<WriteClock>| {
            SqlitePoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(cfg.acquire_timeout)
                .after_connect(move |conn, _| {
                    let clock = clock.clone();
                    Box::pin(async move {
                        if let Some(limit) = statement_timeout {
                            let mut watch = StatementWatch::new(limit, clock);
                            conn.lock_handle()
                                .await?
                                .set_progress_handler(PROGRESS_EVERY, move || watch.may_go_on());
                        }
                        Ok(())
                    })
                })
                .connect_with(options)
        };
        // The writer's cache is the budget's share of a pool of two.
        let clock = WriteClock::default();
        let writes = pool_of(
            1,
            options
                .clone()
                .pragma("cache_size", cache_size(2))
                .pragma("wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
                // Room for a statement of each size a batch's events take
                // (`sqlite_events.rs`), besides sqlx's default 100.
                .statement_cache_capacity(100 + super::sqlite_events::PENDING_ROWS),
            Some(clock.clone()),
        )
        .await
        .map_err(StoreError::from_sqlx)?;
        let pool = pool_of(cfg.max_connections, options, None)
            .await
            .map_err(StoreError::from_sqlx)?;
        sqlx::Connection::close(first)
            .await
            .map_err(StoreError::from_sqlx)?;
        let writers = Writers::new(pool.clone(), clock);
        Ok(SqliteStore {
            pool,
            writes,
            writers,
        })
    }

    pub fn pool_stats(&self) -> super::PoolStats {
        let (size, idle) = (self.pool.size(), self.pool.num_idle() as u32);
        super::PoolStats {
            in_use: size.saturating_sub(idle),
            idle,
            max: self.pool.options().get_max_connections(),
        }
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Waits for this process's turn to write alone (after the writes
    /// before it have committed).
    pub(super) async fn writer(&self) -> Turn {
        self.writers.alone().await
    }

    /// The connection to write on, in this process's turn ([`Self::writer`]);
    /// public for tests that look at it.
    pub fn writes(&self) -> &SqlitePool {
        &self.writes
    }

    /// Nothing left to do: [`Self::connect`] brought the database to this
    /// binary's schema before its pools opened.
    pub async fn migrate(&self) -> Result<()> {
        Ok(())
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn close(&self) {
        self.writes.close().await;
        self.pool.close().await
    }

    /// The secret named `name`, stored as `fresh` if there is none yet.
    pub async fn deployment_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>> {
        let _turn = self.writer().await;
        sqlx::query(
            "INSERT INTO deployment_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(millis(now()))
        .execute(self.writes())
        .await
        .map_err(StoreError::from_sqlx)?;
        sqlx::query_scalar("SELECT secret FROM deployment_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(self.writes())
            .await
            .map_err(StoreError::from_sqlx)
    }

    pub async fn has_projects(&self) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects)")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)
    }

    pub async fn create_project(&self, id: &str, name: &str) -> Result<Project> {
        let created_at = now();
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(millis(created_at))
            .execute(&self.pool)
            .await
            .map_err(|e| StoreError::from_sqlx(e).unique_on(PROJECT_KEY, "project id"))?;
        Ok(Project {
            id: id.to_owned(),
            name: name.to_owned(),
            created_at,
        })
    }

    pub async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT id, name, created_at FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        row.map(|r| {
            Ok(Project {
                id: get(&r, "id")?,
                name: get(&r, "name")?,
                created_at: from_millis(get(&r, "created_at")?)?,
            })
        })
        .transpose()
    }

    pub async fn create_tenant(&self, project_id: &str, name: &str) -> Result<Tenant> {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO tenants (id, project_id, name, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.to_string())
        .bind(project_id)
        .bind(name)
        .bind(millis(now()))
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::from_sqlx(e).unique_on(TENANT_NAME_KEY, "tenant name"))?;
        Ok(Tenant {
            id,
            project_id: project_id.to_owned(),
            name: name.to_owned(),
        })
    }

    pub async fn find_tenant(&self, project_id: &str, id_or_name: &str) -> Result<Option<Tenant>> {
        let id = Uuid::parse_str(id_or_name).ok().map(|u| u.to_string());
        let row = sqlx::query(
            "SELECT id, project_id, name FROM tenants \
             WHERE project_id = $1 AND (id = $2 OR name = $3) ORDER BY (id = $2) DESC LIMIT 1",
        )
        .bind(project_id)
        .bind(id)
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    pub async fn create_key(&self, key: &NewKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO access_keys (id, project_id, tenant_id, role, name, hash_prefix, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&key.id)
        .bind(&key.project_id)
        .bind(key.tenant_id.to_string())
        .bind(&key.role)
        .bind(&key.name)
        .bind(&key.secret_hash[..8])
        .bind(&key.secret_hash[..])
        .bind(millis(now()))
        .bind(key.expires_at.map(millis))
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn find_keys(&self, project_id: &str, hash_prefix: &[u8]) -> Result<Vec<KeyRecord>> {
        let rows = sqlx::query(
            "SELECT k.id, k.project_id, k.tenant_id, k.role, k.secret_hash, k.expires_at, k.revoked_at, \
             k.last_used_at, t.delete_mode, t.deletion_limit, t.deletion_window_secs, t.paused, t.held_since \
             FROM access_keys k JOIN tenants t ON t.id = k.tenant_id \
             WHERE k.project_id = $1 AND k.hash_prefix = $2",
        )
        .bind(project_id)
        .bind(hash_prefix)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                Ok(KeyRecord {
                    id: get(r, "id")?,
                    project_id: get(r, "project_id")?,
                    tenant_id: parse_uuid(&get::<String>(r, "tenant_id")?)?,
                    role: get(r, "role")?,
                    secret_hash: get(r, "secret_hash")?,
                    expires_at: opt_from_millis(get(r, "expires_at")?)?,
                    revoked_at: opt_from_millis(get(r, "revoked_at")?)?,
                    last_used_at: opt_from_millis(get(r, "last_used_at")?)?,
                    policy: super::sqlite_policy::policy_from_row(r)?,
                })
            })
            .collect()
    }

    pub async fn key_exists_with_hash(&self, secret_hash: &[u8]) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM access_keys WHERE secret_hash = $1)")
            .bind(secret_hash)
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)
    }

    pub async fn touch_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE access_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(millis(at))
            .execute(&self.pool)
            .await
            .map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    pub async fn list_keys(&self, project_id: Option<&str>) -> Result<Vec<KeyInfo>> {
        let rows = sqlx::query(
            "SELECT id, project_id, tenant_id, role, name, created_at, expires_at, revoked_at, last_used_at \
             FROM access_keys WHERE $1 IS NULL OR project_id = $1 ORDER BY created_at, id",
        )
        .bind(project_id)
        .fetch_all(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
        rows.iter()
            .map(|r| {
                Ok(KeyInfo {
                    id: get(r, "id")?,
                    project_id: get(r, "project_id")?,
                    tenant_id: parse_uuid(&get::<String>(r, "tenant_id")?)?,
                    role: get(r, "role")?,
                    name: get(r, "name")?,
                    created_at: from_millis(get(r, "created_at")?)?,
                    expires_at: opt_from_millis(get(r, "expires_at")?)?,
                    revoked_at: opt_from_millis(get(r, "revoked_at")?)?,
                    last_used_at: opt_from_millis(get(r, "last_used_at")?)?,
                })
            })
            .collect()
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE access_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
        )
        .bind(key_id)
        .bind(millis(now()))
        .execute(&self.pool)
        .await
        .map_err(StoreError::from_sqlx)?;
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
        let user = StoredUser {
            id,
            version: 1,
            created: at,
            modified: at,
            doc: w.doc.clone(),
            groups: Vec::new(),
        };
        let event = actor.map(|a| EventBinds::new(EventType::UserCreated, a, &[]));
        let (tenant, id_text, doc) = (
            scope.tenant_id().to_string(),
            id.to_string(),
            doc_text(&w.doc),
        );
        self.write_statement(async move |c| {
            sqlx::query(
                "INSERT INTO users (tenant_id, id, user_name, user_name_lower, external_id, active, display_name, version, created_at, modified_at, doc, display_name_lower) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8, $9, $10)",
            )
            .bind(&tenant)
            .bind(&id_text)
            .bind(&w.user_name)
            .bind(&w.user_name_lower)
            .bind(&w.external_id)
            .bind(w.active)
            .bind(&w.display_name)
            .bind(millis(at))
            .bind(&doc)
            .bind(&w.display_name_lower)
            .execute(&mut *c)
            .await
            .map_err(|e| StoreError::from_sqlx(e).unique_on(USER_NAME_KEY, "userName"))?;
            // Its event: a new user has no groups.
            let event = event.map(|e| {
                let snapshot = PendingSnapshot {
                    created_at: millis(at),
                    modified_at: millis(at),
                    data: doc,
                    groups: "[]".into(),
                };
                e.pending(tenant, id_text, 1, snapshot)
            });
            Ok(((), event))
        })
        .await?;
        Ok(user)
    }

    /// Runs a user's create or update (one statement) in this process's
    /// turn, in the batch it shares with the writes queued beside it
    /// ([`Self::batched`]); `work` returns its result and the event it
    /// records, if any, which the batch inserts with the others of its
    /// writes.
    pub(super) async fn write_statement<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> Result<(T, Option<PendingEvent>)>,
    ) -> Result<T> {
        self.batched(async |c| {
            let (out, event) = work(c).await?;
            Ok((out, event.into_iter().collect()))
        })
        .await
    }

    /// Runs a write of several statements in this process's turn, in a
    /// savepoint of the batch ([`Self::savepoint`]); `work` returns its
    /// result and the events it records.
    pub(super) async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> Result<(T, Vec<PendingEvent>)>,
    ) -> Result<T> {
        self.savepoint(async |c| {
            let (out, events) = work(c).await?;
            Ok((out, Some(events)))
        })
        .await
    }

    /// Runs `work` in this process's turn on the connection of the batch
    /// it shares with the writes queued beside it (group commit,
    /// `sqlite_commit.rs`), and answers once that batch has committed.
    /// `work` returns its result and the events it records, which the
    /// batch inserts with those of its other writes.
    pub(super) async fn batched<T, E: BatchError>(
        &self,
        work: impl AsyncFnOnce(
            &mut sqlx::SqliteConnection,
        ) -> std::result::Result<(T, Vec<PendingEvent>), E>,
    ) -> std::result::Result<T, E> {
        let start = std::time::Instant::now();
        let mut turn = self.writers.in_batch().await;
        let out = async {
            let conn = turn.connection(&self.writes).await?;
            if let Some(m) = crate::metrics::get() {
                m.db_acquired(start.elapsed());
            }
            work(conn).await
        }
        .await;
        let (out, events) = match out {
            Ok((out, events)) => (Ok(out), events),
            Err(e) => (Err(e), Vec::new()),
        };
        let failed = out.as_ref().err().and_then(BatchError::store_error);
        let outcome = turn.join(failed, events);
        drop(turn);
        if let Some(outcome) = outcome {
            outcome.committed().await?;
        }
        out
    }

    /// Runs a write of several statements in a savepoint of the batch
    /// ([`Self::batched`]): `work` returns its result and, if it changed
    /// anything, the events it records; what changed nothing, or failed,
    /// is rolled back.
    pub(super) async fn savepoint<T, E: BatchError>(
        &self,
        work: impl AsyncFnOnce(
            &mut sqlx::SqliteConnection,
        ) -> std::result::Result<(T, Option<Vec<PendingEvent>>), E>,
    ) -> std::result::Result<T, E> {
        self.batched(async |conn| {
            let mut tx = sqlx::Connection::begin(conn)
                .await
                .map_err(StoreError::from_sqlx)?;
            match work(&mut tx).await {
                Ok((out, kept)) => {
                    match kept {
                        Some(_) => tx.commit().await,
                        None => tx.rollback().await,
                    }
                    .map_err(StoreError::from_sqlx)?;
                    Ok((out, kept.unwrap_or_default()))
                }
                Err(e) => {
                    if let Err(undo) = tx.rollback().await {
                        tracing::warn!(error = %undo, "could not roll back a failed write");
                    }
                    Err(e)
                }
            }
        })
        .await
    }

    /// The user, with its groups, read on `conn` (also inside a transaction).
    pub(super) async fn user_in(
        conn: &mut sqlx::SqliteConnection,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<Option<StoredUser>> {
        Self::user_as(conn, scope, id, user_from_row).await
    }

    async fn user_as<D>(
        conn: &mut sqlx::SqliteConnection,
        scope: TenantScope,
        id: Uuid,
        from_row: fn(&SqliteRow) -> Result<StoredUser<D>>,
    ) -> Result<Option<StoredUser<D>>> {
        let row = sqlx::query(concat!(
            "SELECT id, version, created_at, modified_at, doc, ",
            groups_of!("users"),
            " FROM users WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .fetch_optional(conn)
        .await
        .map_err(StoreError::from_sqlx)?;
        row.as_ref().map(from_row).transpose()
    }

    pub async fn get_user(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredUser>> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
        Self::user_in(&mut conn, scope, id).await
    }

    pub async fn get_user_text(
        &self,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<Option<StoredUserText>> {
        let mut conn = self.pool.acquire().await.map_err(StoreError::from_sqlx)?;
        Self::user_as(&mut conn, scope, id, user_text_from_row).await
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
        from_row: fn(&sqlx::sqlite::SqliteRow) -> Result<T>,
    ) -> Result<(Option<u64>, Vec<T>)> {
        let sql =
            list_sql(Dialect::Sqlite, rt, scope, q).map_err(|e| StoreError::InvalidQuery(e.0))?;
        let count = async {
            let n: i64 = bind_all(
                sqlx::query(AssertSqlSafe(sql.count.text.clone())),
                &sql.count.binds,
            )
            .fetch_one(self.pool())
            .await
            .and_then(|row| row.try_get(0))
            .map_err(StoreError::from_sqlx)?;
            Ok(n as u64)
        };
        let page = async {
            bind_all(
                sqlx::query(AssertSqlSafe(sql.page.text.clone())).persistent(sql.page_persistent),
                &sql.page.binds,
            )
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::from_sqlx)
        };
        super::list_page(q, count, page, from_row).await
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
        let doc = doc_text(&w.doc);
        let event = event.map(|e| EventBinds::new(e.change.kind, e.actor, &e.change.changed));
        self.write_statement(async move |c| {
            let row = sqlx::query(concat!(
                "UPDATE users SET user_name = $3, user_name_lower = $4, external_id = $5, active = $6, \
                 display_name = $7, doc = $8, version = version + 1, modified_at = $9, display_name_lower = $11 \
                 WHERE tenant_id = $1 AND id = $2 AND ($10 IS NULL OR version = $10) AND doc IS NOT $8 \
                 RETURNING id, version, created_at, modified_at, ",
                groups_of!("users")
            ))
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .bind(&w.user_name)
            .bind(&w.user_name_lower)
            .bind(&w.external_id)
            .bind(w.active)
            .bind(&w.display_name)
            .bind(&doc)
            .bind(millis(now()))
            .bind(if_version)
            .bind(&w.display_name_lower)
            .fetch_optional(&mut *c)
            .await
            .map_err(|e| StoreError::from_sqlx(e).unique_on(USER_NAME_KEY, "userName"))?;
            // None on a version mismatch or an unchanged document: no event.
            let Some(row) = row else {
                return Ok((None, None));
            };
            // The event holds the row as written: its version, times and
            // groups.
            let event = event.map(|e| e.pending_row(scope, &row, doc)).transpose()?;
            Ok((Some(user_with(&row, ())?), event))
        })
        .await
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
        if let Some(actor) = actor {
            return self
                .delete_user_recorded(scope, id, if_version, actor)
                .await;
        }
        let _turn = self.writer().await;
        let done = sqlx::query(
            "DELETE FROM users WHERE tenant_id = $1 AND id = $2 AND ($3 IS NULL OR version = $3)",
        )
        .bind(scope.tenant_id().to_string())
        .bind(id.to_string())
        .bind(if_version)
        .execute(self.writes())
        .await
        .map_err(StoreError::from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }
}
