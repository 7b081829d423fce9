//! Persistence. One interface ([`Store`]), two backends: PostgreSQL for
//! production and SQLite as the embedded default. Every resource operation
//! takes a [`TenantScope`]: no method reads or writes users across tenants.

pub mod events;
mod groups;
mod pg_conns;
mod pg_url;
pub mod policy;
mod postgres;
mod postgres_events;
mod postgres_groups;
mod postgres_policy;
mod postgres_tombstones;
mod postgres_webhooks;
pub mod query;
pub mod requestlog;
mod sqlite;
mod sqlite_commit;
mod sqlite_events;
mod sqlite_groups;
mod sqlite_policy;
mod sqlite_tombstones;
mod sqlite_webhooks;
pub mod tombstones;
pub mod webhooks;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;

pub use events::{EventPage, EventQuery, EventResource, Position, Snapshot, StoredEvent};
pub use groups::{GroupWrite, GroupWritten, Member, MemberKind, MemberPage, StoredGroup};
pub use pg_conns::Lease;
pub use policy::{
    DeleteMode, Deletion, DeletionThreshold, PolicyChange, TenantPolicy, TenantState,
};

use crate::events::Actor;
use crate::scim::membership::{MemberChange, NewMember};
use crate::scim::resource::caseless;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// The tenant every resource operation is confined to. Only the auth layer
/// (from a verified access key) and the admin tooling construct one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantScope {
    tenant_id: Uuid,
}

impl TenantScope {
    pub fn new(tenant_id: Uuid) -> Self {
        TenantScope { tenant_id }
    }
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint was violated; the field names it.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// `If-Match` named a version the resource no longer has.
    #[error("version mismatch")]
    VersionMismatch,
    /// The database cannot be reached or no connection came free in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored document is corrupt: {0}")]
    Corrupt(String),
    /// A member id that names no user or group of the tenant.
    #[error("member {0} does not exist")]
    UnknownMember(String),
    /// A selection (`members[value eq …]`) that matched nothing.
    #[error("{0}")]
    NoTarget(String),
    /// Concurrent writes got in each other's way (a serialization failure,
    /// a deadlock, or a write whose events would read out of order) more
    /// often than a write starts over.
    #[error("concurrent writes of the same resources conflicted; try again")]
    Contention,
    /// The database stopped a statement that ran past the statement timeout.
    #[error("the statement ran too long and was stopped")]
    TimedOut,
    /// A valid filter or sort this store cannot run.
    #[error("{0}")]
    InvalidQuery(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Classifies a driver error: connection trouble becomes `Unavailable`,
    /// the rest stays a database error (a unique violation among them, until
    /// the call site names it with [`StoreError::unique_on`]).
    fn from_sqlx(err: sqlx::Error) -> StoreError {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
            // PostgreSQL's statement_timeout (57014, query_canceled) and
            // SQLite's interrupt from the progress handler (SQLITE_INTERRUPT).
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c == "57014" || c == "9") => {
                StoreError::TimedOut
            }
            // serialization_failure, deadlock_detected: the write may start over.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| c == "40001" || c == "40P01") =>
            {
                StoreError::Contention
            }
            // PostgreSQL going away: SQLSTATE class 08 (connection exception)
            // and 57 (operator intervention, e.g. admin shutdown).
            sqlx::Error::Database(db)
                if db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57")) =>
            {
                StoreError::Unavailable(err.to_string())
            }
            _ => StoreError::Database(err),
        }
    }

    /// At a call site whose statement a client can make violate exactly one
    /// unique constraint, `constraint`: that violation as a conflict on
    /// `field`. PostgreSQL names the violated constraint, and any other stays
    /// a database error; SQLite names none, and the other unique keys of
    /// these statements are ids scimd generates.
    fn unique_on(self, constraint: &str, field: &'static str) -> StoreError {
        match &self {
            StoreError::Database(sqlx::Error::Database(db))
                if db.is_unique_violation() && db.constraint().is_none_or(|c| c == constraint) =>
            {
                StoreError::Conflict(field)
            }
            _ => self,
        }
    }
}

/// The unique constraints a client can violate (migrations/*/…_init.sql).
const USER_NAME_KEY: &str = "users_user_name_lower_key";
const TENANT_NAME_KEY: &str = "tenants_project_name_key";
const PROJECT_KEY: &str = "projects_pkey";

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The current time at the precision every backend stores (milliseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// A user as stored: identity, version, timestamps and the document.
#[derive(Debug, Clone)]
pub struct StoredUser<D = Map<String, Value>> {
    pub id: Uuid,
    pub version: i64,
    pub created: DateTime<Utc>,
    pub modified: DateTime<Utc>,
    /// The document: parsed, or (`StoredUserText`) as the JSON text the
    /// database holds, for a read that renders it unchanged.
    pub doc: D,
    /// The groups the user belongs to directly (read in the same query).
    pub groups: Vec<GroupRef>,
}

/// A stored user whose document stays the JSON text the database returned.
pub type StoredUserText = StoredUser<String>;

/// A user row as a write returns it: everything but the document, which
/// the writer has (the database need not send it back).
pub type WrittenUser = StoredUser<()>;

impl WrittenUser {
    /// The stored user, with the document that was written.
    pub fn with_doc<D>(self, doc: D) -> StoredUser<D> {
        StoredUser {
            id: self.id,
            version: self.version,
            created: self.created,
            modified: self.modified,
            doc,
            groups: self.groups,
        }
    }
}

/// A group a user belongs to: the user's derived `groups` attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRef {
    pub id: Uuid,
    pub display: String,
}

impl GroupRef {
    /// Parses the `[[group id, display name], …]` JSON the user queries return.
    fn parse_list(text: &str) -> Result<Vec<GroupRef>> {
        let pairs: Vec<(String, String)> =
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("groups: {e}")))?;
        pairs
            .into_iter()
            .map(|(id, display)| {
                Ok(GroupRef {
                    id: Uuid::parse_str(&id)
                        .map_err(|e| StoreError::Corrupt(format!("group id: {e}")))?,
                    display,
                })
            })
            .collect()
    }
}

/// What a create or replace writes: the document and the columns derived from it.
#[derive(Debug, Clone)]
pub struct UserWrite {
    pub user_name: String,
    pub user_name_lower: String,
    pub external_id: Option<String>,
    pub active: Option<bool>,
    pub display_name: Option<String>,
    pub display_name_lower: Option<String>,
    /// Lower-cased `emails[].value`, for the `emails.value eq` index.
    pub emails_lower: Vec<String>,
    pub doc: Map<String, Value>,
}

impl UserWrite {
    /// Derives the indexed columns from a validated User document.
    pub fn from_doc(doc: Map<String, Value>) -> UserWrite {
        let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let user_name = text("userName").unwrap_or_default();
        let display_name = text("displayName");
        let emails_lower = doc
            .get("emails")
            .and_then(Value::as_array)
            .map(|emails| {
                emails
                    .iter()
                    .filter_map(|e| e.get("value").and_then(Value::as_str))
                    .map(caseless)
                    .collect()
            })
            .unwrap_or_default();
        UserWrite {
            user_name_lower: caseless(&user_name),
            user_name,
            external_id: text("externalId"),
            active: doc.get("active").and_then(Value::as_bool),
            display_name_lower: display_name.as_deref().map(caseless),
            display_name,
            emails_lower,
            doc,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub project_id: String,
    pub name: String,
}

/// An access key as the verifier needs it.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub id: String,
    pub project_id: String,
    pub tenant_id: Uuid,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// The policy of the key's tenant, read with it.
    pub policy: TenantPolicy,
}

/// A new access key; the secret itself is never stored.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub id: String,
    pub project_id: String,
    pub tenant_id: Uuid,
    pub role: String,
    pub name: Option<String>,
    pub secret_hash: [u8; 32],
    pub expires_at: Option<DateTime<Utc>>,
}

/// An access key as `scimd admin key list` shows it.
#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: String,
    pub project_id: String,
    pub tenant_id: Uuid,
    pub role: String,
    pub name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// How a store's connection pool is doing now (for metrics).
#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub in_use: u32,
    pub idle: u32,
    pub max: u32,
}

/// Pool settings shared by both backends.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long one statement may run before the database stops it (then
    /// `StoreError::TimedOut`); `None` for no bound.
    pub statement_timeout: Option<Duration>,
}

/// The store: an enum over the two backends, so that calls are static
/// dispatch and every method exists on both.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(PgStore),
    Sqlite(SqliteStore),
}

macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Postgres($s) => $call,
            Store::Sqlite($s) => $call,
        }
    };
}

impl Store {
    /// Connects to `url`: `postgres://…` / `postgresql://…` selects PostgreSQL,
    /// `sqlite:…` SQLite (the file is created if missing).
    pub async fn connect(url: &str, pool: &PoolConfig) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Store::Postgres(PgStore::connect(url, pool).await?))
        } else if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(SqliteStore::connect(url, pool).await?))
        } else {
            Err(StoreError::Unavailable(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite:".into(),
            ))
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Postgres(_) => "postgres",
            Store::Sqlite(_) => "sqlite",
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, s => s.migrate().await)
    }

    /// One round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, s => s.ping().await)
    }

    /// The connection pool now.
    pub fn pool_stats(&self) -> PoolStats {
        dispatch!(self, s => s.pool_stats())
    }

    /// Per enabled webhook subscription, how many events of its tenant lie
    /// past what it delivered (counted up to 100,000 each).
    pub async fn webhook_backlog(&self) -> Result<Vec<u64>> {
        dispatch!(self, s => s.webhook_backlog().await)
    }

    /// Writes a batch of provisioning log records.
    pub async fn insert_requests(&self, records: &[crate::requestlog::Record]) -> Result<()> {
        dispatch!(self, s => s.insert_requests(records).await)
    }

    /// The tenant's provisioning log records that `q` asks for, newest first.
    pub async fn read_requests(
        &self,
        scope: TenantScope,
        q: &crate::requestlog::Query,
    ) -> Result<Vec<crate::requestlog::Stored>> {
        dispatch!(self, s => s.read_requests(scope, q).await)
    }

    /// Adds request counts to the client report's per-day sums.
    pub async fn add_client_counts(&self, counts: &[crate::requestlog::ClientCount]) -> Result<()> {
        if counts.is_empty() {
            return Ok(());
        }
        dispatch!(self, s => s.add_client_counts(counts).await)
    }

    /// The tenant's request counts per client family and rule (`""`: all
    /// requests) since `since`: (client, rule, requests, errors).
    pub async fn client_report(
        &self,
        scope: TenantScope,
        since: chrono::NaiveDate,
    ) -> Result<Vec<(String, String, i64, i64)>> {
        dispatch!(self, s => s.client_report(scope, since).await)
    }

    /// Removes provisioning log records made before `cutoff`.
    pub async fn purge_requests(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        dispatch!(self, s => s.purge_requests(cutoff).await)
    }

    pub async fn close(&self) {
        dispatch!(self, s => s.close().await)
    }

    /// A secret every process of this deployment shares (32 random bytes,
    /// created by the first process that asks).
    pub async fn deployment_secret(&self, name: &str) -> Result<Vec<u8>> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh)
            .map_err(|e| StoreError::Unavailable(format!("no randomness for a secret: {e}")))?;
        dispatch!(self, s => s.deployment_secret(name, &fresh).await)
    }

    // --- projects, tenants, keys -------------------------------------------

    pub async fn has_projects(&self) -> Result<bool> {
        dispatch!(self, s => s.has_projects().await)
    }

    pub async fn create_project(&self, id: &str, name: &str) -> Result<Project> {
        dispatch!(self, s => s.create_project(id, name).await)
    }

    pub async fn get_project(&self, id: &str) -> Result<Option<Project>> {
        dispatch!(self, s => s.get_project(id).await)
    }

    pub async fn create_tenant(&self, project_id: &str, name: &str) -> Result<Tenant> {
        dispatch!(self, s => s.create_tenant(project_id, name).await)
    }

    /// The tenant of `project_id` whose id or name is `id_or_name`.
    pub async fn find_tenant(&self, project_id: &str, id_or_name: &str) -> Result<Option<Tenant>> {
        dispatch!(self, s => s.find_tenant(project_id, id_or_name).await)
    }

    pub async fn create_key(&self, key: &NewKey) -> Result<()> {
        dispatch!(self, s => s.create_key(key).await)
    }

    /// Keys of `project_id` whose hash starts with `hash_prefix`.
    pub async fn find_keys(&self, project_id: &str, hash_prefix: &[u8]) -> Result<Vec<KeyRecord>> {
        dispatch!(self, s => s.find_keys(project_id, hash_prefix).await)
    }

    pub async fn key_exists_with_hash(&self, secret_hash: &[u8]) -> Result<bool> {
        dispatch!(self, s => s.key_exists_with_hash(secret_hash).await)
    }

    pub async fn touch_key(&self, key_id: &str, at: DateTime<Utc>) -> Result<()> {
        dispatch!(self, s => s.touch_key(key_id, at).await)
    }

    pub async fn list_keys(&self, project_id: Option<&str>) -> Result<Vec<KeyInfo>> {
        dispatch!(self, s => s.list_keys(project_id).await)
    }

    /// Revokes a key; `false` when no such key exists.
    pub async fn revoke_key(&self, key_id: &str) -> Result<bool> {
        dispatch!(self, s => s.revoke_key(key_id).await)
    }

    // --- users ---------------------------------------------------------------

    /// Creates a user; with `actor`, records its `user.created` event.
    pub async fn create_user(
        &self,
        scope: TenantScope,
        write: &UserWrite,
        actor: Option<&Actor>,
    ) -> Result<StoredUser> {
        retrying(|| async move { dispatch!(self, s => s.create_user(scope, write, actor).await) })
            .await
    }

    pub async fn get_user(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredUser>> {
        dispatch!(self, s => s.get_user(scope, id).await)
    }

    /// [`Store::get_user`] with the document as the database's JSON text.
    pub async fn get_user_text(
        &self,
        scope: TenantScope,
        id: Uuid,
    ) -> Result<Option<StoredUserText>> {
        dispatch!(self, s => s.get_user_text(scope, id).await)
    }

    /// The users matching `q.filter`, sorted by `q.sort` and then by id (a
    /// stable total order; ids are UUIDv7, so unsorted listings come in
    /// creation order), one page of them, and how many match in all.
    pub async fn query_users(
        &self,
        scope: TenantScope,
        q: &query::ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredUser>)> {
        dispatch!(self, s => s.query_users(scope, q).await)
    }

    /// [`Store::query_users`] with the documents as the database's JSON text.
    pub async fn query_users_text(
        &self,
        scope: TenantScope,
        q: &query::ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredUserText>)> {
        dispatch!(self, s => s.query_users_text(scope, q).await)
    }

    /// Replaces a user's document. Without events, one conditional
    /// statement: the version bumps only if the document changed;
    /// `if_version` makes it conditional (`If-Match`). When the statement
    /// touches no row, the current row tells why: gone, stale version,
    /// unchanged, or a concurrent writer (retried). With events (`actor`),
    /// a read-modify-write ([`Store::modify_user`]), which knows what
    /// changed.
    pub async fn replace_user(
        &self,
        scope: TenantScope,
        id: Uuid,
        write: UserWrite,
        if_version: Option<i64>,
        actor: Option<&Actor>,
    ) -> Result<StoredUser> {
        if actor.is_some() {
            return self
                .modify_user(scope, id, if_version, actor, |_| {
                    Ok::<_, std::convert::Infallible>(write.doc.clone())
                })
                .await
                .map_err(|e| match e {
                    ModifyError::Store(e) => e,
                    ModifyError::Change(never) => match never {},
                });
        }
        for _ in 0..REPLACE_ATTEMPTS {
            let updated = retrying(|| async {
                dispatch!(self, s => s.update_user_if_changed(scope, id, &write, if_version, None).await)
            })
            .await?;
            if let Some(user) = updated {
                return Ok(user.with_doc(write.doc));
            }
            let Some(current) = self.get_user(scope, id).await? else {
                return Err(StoreError::NotFound);
            };
            if if_version.is_some_and(|v| v != current.version) {
                return Err(StoreError::VersionMismatch);
            }
            if current.doc == write.doc {
                return Ok(current);
            }
            // A concurrent writer changed the row in between: try again.
        }
        Err(StoreError::VersionMismatch)
    }

    /// Read-modify-write with optimistic concurrency: reads the user, asks
    /// `change` for the new document, and writes it only if the version is
    /// still the one read (recording its event, with `actor`). A concurrent
    /// writer makes it re-read and re-apply (bounded), so concurrent changes
    /// never overwrite each other; with `if_version` a moved version is a
    /// `VersionMismatch` instead. A document equal to the current one is not
    /// written (no new version, no event).
    pub async fn modify_user<E>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: Option<&Actor>,
        mut change: impl FnMut(&StoredUser) -> std::result::Result<Map<String, Value>, E>,
    ) -> std::result::Result<StoredUser, ModifyError<E>> {
        for attempt in 0..MODIFY_ATTEMPTS {
            let current = self
                .get_user(scope, id)
                .await?
                .ok_or(StoreError::NotFound)?;
            if if_version.is_some_and(|v| v != current.version) {
                return Err(StoreError::VersionMismatch.into());
            }
            let doc = change(&current).map_err(ModifyError::Change)?;
            if doc == current.doc {
                return Ok(current);
            }
            let event = actor.and_then(|a| {
                crate::events::user_update(&current.doc, &doc).map(|change| (a, change))
            });
            let event = event
                .as_ref()
                .map(|(actor, change)| events::UserEvent { actor, change });
            let write = UserWrite::from_doc(doc);
            let updated = retrying(|| async {
                dispatch!(self, s => s.update_user_if_changed(scope, id, &write, Some(current.version), event).await)
            })
            .await?;
            match updated {
                Some(user) => {
                    return Ok(user.with_doc(write.doc));
                }
                None if if_version.is_some() => return Err(StoreError::VersionMismatch.into()),
                // Lost the race: back off a little (growing) and re-apply.
                None => {
                    tokio::time::sleep(Duration::from_micros(200 * (attempt as u64 % 16 + 1))).await
                }
            }
        }
        Err(
            StoreError::Unavailable("too many concurrent modifications of one resource".into())
                .into(),
        )
    }

    // --- groups --------------------------------------------------------------

    /// Creates a group and its members in one transaction (see
    /// [`groups::create`]); the members must be users or groups of the
    /// tenant. With `actor`, records `group.created` and a
    /// `group.member_added` per member.
    pub async fn create_group(
        &self,
        scope: TenantScope,
        write: GroupWrite,
        members: Vec<NewMember>,
        actor: Option<Actor>,
    ) -> Result<GroupWritten> {
        // In a task of its own: a dropped request cannot leave it half-done.
        let store = self.clone();
        tokio::spawn(async move {
            let (store, actor) = (&store, actor.as_ref());
            retrying(|| {
                let (write, members) = (write.clone(), members.clone());
                async move { dispatch!(store, s => s.create_group(scope, write, members, actor).await) }
            })
            .await
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("group write task failed: {e}")))?
    }

    pub async fn get_group(&self, scope: TenantScope, id: Uuid) -> Result<Option<StoredGroup>> {
        dispatch!(self, s => s.get_group(scope, id).await)
    }

    /// For each of `groups`: how many members it has, and the first `limit`
    /// of them (at least one, so that a group over the limit shows it). One
    /// statement for a whole page of groups. Groups without members are not
    /// in the map.
    pub async fn members_of(
        &self,
        scope: TenantScope,
        groups: &[Uuid],
        limit: u64,
    ) -> Result<HashMap<Uuid, MemberPage>> {
        dispatch!(self, s => s.members_of(scope, groups, limit).await)
    }

    pub async fn query_groups(
        &self,
        scope: TenantScope,
        q: &query::ListQuery,
    ) -> Result<(Option<u64>, Vec<StoredGroup>)> {
        dispatch!(self, s => s.query_groups(scope, q).await)
    }

    /// Changes a group in one transaction (see [`groups::modify`]): the
    /// document through `change`, the members through `members` (row
    /// inserts and deletes), and, with `actor`, the events of what changed.
    /// The version moves only if something changed.
    ///
    /// `change` runs inside the transaction, in a task of its own, once per
    /// attempt (a write that conflicts starts over); what else it returns
    /// (`T`, for instance the compatibility rules it applied) comes back
    /// with the group.
    pub async fn modify_group<T: Send + 'static, E: Send + 'static>(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        change: impl Fn(&Map<String, Value>) -> std::result::Result<(Map<String, Value>, T), E>
        + Send
        + Sync
        + 'static,
        members: Vec<MemberChange>,
        actor: Option<Actor>,
    ) -> std::result::Result<(GroupWritten, T), ModifyError<E>> {
        // In a task of its own: a dropped request cannot leave it half-done.
        let store = self.clone();
        let task = tokio::spawn(async move {
            let (store, actor) = (&store, actor.as_ref());
            dispatch!(store, s => s.modify_group(scope, id, if_version, change, &members, actor).await)
        });
        task.await.map_err(|e| {
            ModifyError::Store(StoreError::Unavailable(format!(
                "group write task failed: {e}"
            )))
        })?
    }

    /// Deletes a group (with `actor`, recording `group.deleted` and its
    /// departures from other groups).
    pub async fn delete_group(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: Option<&Actor>,
    ) -> Result<()> {
        for n in 1..=WRITE_ATTEMPTS {
            match dispatch!(self, s => s.delete_group_if(scope, id, if_version, actor).await) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    let current = self.get_group(scope, id).await?.map(|g| g.version);
                    deleted_nothing(if_version, current)?;
                }
                Err(StoreError::Contention) => {}
                Err(e) => return Err(e),
            }
            back_off(n).await;
        }
        Err(StoreError::Contention)
    }

    /// Deletes a user (with `actor`, recording `user.deleted` and its
    /// departures from groups).
    pub async fn delete_user(
        &self,
        scope: TenantScope,
        id: Uuid,
        if_version: Option<i64>,
        actor: Option<&Actor>,
    ) -> Result<()> {
        for n in 1..=WRITE_ATTEMPTS {
            match dispatch!(self, s => s.delete_user_if(scope, id, if_version, actor).await) {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    let current = self.get_user(scope, id).await?.map(|u| u.version);
                    deleted_nothing(if_version, current)?;
                }
                Err(StoreError::Contention) => {}
                Err(e) => return Err(e),
            }
            back_off(n).await;
        }
        Err(StoreError::Contention)
    }

    // --- change events -------------------------------------------------------

    /// A page of the tenant's change events (see `events.rs` for the order).
    pub async fn read_events(&self, scope: TenantScope, q: &EventQuery) -> Result<EventPage> {
        dispatch!(self, s => s.read_events(scope, q).await)
    }

    /// The last event retention removed from the tenant's feed: a reader
    /// before it may have missed events.
    pub async fn event_horizon(&self, scope: TenantScope) -> Result<Position> {
        dispatch!(self, s => s.event_horizon(scope).await)
    }

    /// Removes the events that occurred before `cutoff`.
    pub async fn purge_events(&self, cutoff: DateTime<Utc>) -> Result<u64> {
        dispatch!(self, s => s.purge_events(cutoff).await)
    }

    /// Woken after every write of this process that recorded events.
    pub fn events_notify(&self) -> &tokio::sync::Notify {
        dispatch!(self, s => s.events_notify())
    }

    /// How many of the tenant's events after `q.after` match `q.types`.
    pub async fn count_events(&self, scope: TenantScope, q: &EventQuery) -> Result<u64> {
        dispatch!(self, s => s.count_events(scope, q).await)
    }

    // --- webhook subscriptions ---------------------------------------------

    pub async fn create_webhook(&self, w: &webhooks::Webhook) -> Result<()> {
        dispatch!(self, s => s.create_webhook(w).await)
    }

    /// The tenant's subscriptions (only `id`, when given).
    pub async fn webhooks(
        &self,
        scope: TenantScope,
        id: Option<Uuid>,
    ) -> Result<Vec<webhooks::Webhook>> {
        dispatch!(self, s => s.webhooks(scope, id).await)
    }

    pub async fn delete_webhook(&self, scope: TenantScope, id: Uuid) -> Result<bool> {
        dispatch!(self, s => s.delete_webhook(scope, id).await)
    }

    /// Enables a subscription (again) and delivers at once; from `from`
    /// (redelivery) when given.
    pub async fn restart_webhook(
        &self,
        scope: TenantScope,
        id: Uuid,
        from: Option<Position>,
    ) -> Result<bool> {
        dispatch!(self, s => s.restart_webhook(scope, id, from).await)
    }

    /// Leases up to `limit` due subscriptions of any tenant to `owner`
    /// until `until`: those nobody leases, whose lease ran out, or that
    /// `owner` leases already (its run ended without giving the lease
    /// back, after a store error; an owner runs a subscription once at a
    /// time, so taking its own lease again is safe).
    pub async fn claim_webhooks(
        &self,
        owner: Uuid,
        until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<webhooks::Webhook>> {
        dispatch!(self, s => s.claim_webhooks(owner, until, limit).await)
    }

    /// Records a delivery attempt; `false` when `owner` no longer holds the lease.
    pub async fn record_delivery(
        &self,
        w: &webhooks::Webhook,
        owner: Uuid,
        outcome: &webhooks::Delivery,
    ) -> Result<bool> {
        dispatch!(self, s => s.record_delivery(w, owner, outcome).await)
    }
}

/// Why a delete deleted nothing, from the resource's `current` version (if
/// it still exists): gone, or a stale `If-Match`, or else (`Ok`) the delete
/// stood back to keep the event order (see `events.rs`) and starts over.
fn deleted_nothing(if_version: Option<i64>, current: Option<i64>) -> Result<()> {
    match current {
        None => Err(StoreError::NotFound),
        Some(v) if if_version.is_some_and(|want| want != v) => Err(StoreError::VersionMismatch),
        Some(_) => Ok(()),
    }
}

/// How often a write starts over after a conflict before it gives up.
pub(super) const WRITE_ATTEMPTS: u32 = 8;

/// Waits a little before attempt `n + 1` of a write: growing, with jitter,
/// so that writers that conflicted do not meet again.
pub(super) async fn back_off(n: u32) {
    let mut noise = [0u8; 2];
    let _ = getrandom::fill(&mut noise);
    let base = 500u64 << n.min(6);
    let jitter = u64::from(u16::from_le_bytes(noise)) % base;
    tokio::time::sleep(Duration::from_micros(base + jitter)).await;
}

/// Runs a write, starting it over (bounded, with jitter) when it reports
/// `Contention`: a serialization failure or deadlock (SQLSTATE 40001,
/// 40P01, which a database whose default isolation is serializable answers
/// to writers of one row), or a write whose events would read out of order.
/// For writes that are one statement, or a transaction that rolled back.
pub(super) async fn retrying<T, F>(mut write: impl FnMut() -> F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let mut n = 0;
    loop {
        n += 1;
        match write().await {
            Err(StoreError::Contention) if n < WRITE_ATTEMPTS => back_off(n).await,
            done => return done,
        }
    }
}

/// How often a read-modify-write re-applies its change after losing a race.
const MODIFY_ATTEMPTS: usize = 100;

/// A failed [`Store::modify_user`]: the store, or the change itself.
#[derive(Debug)]
pub enum ModifyError<E> {
    Store(StoreError),
    Change(E),
}

impl<E> From<StoreError> for ModifyError<E> {
    fn from(e: StoreError) -> Self {
        ModifyError::Store(e)
    }
}

/// How often a replace re-runs when a concurrent writer changes the row
/// between its conditional UPDATE and its follow-up read.
const REPLACE_ATTEMPTS: usize = 8;

/// A listing's page and total, whatever the backend: `count` runs the
/// count statement, `page` the page statement; each future runs only if
/// needed. Cursor pages have no total, whose cost would grow with the
/// tenant. An index page that is not full is the last one, so its total is
/// its offset and its rows (what an IdP's `filter=userName eq …` always
/// gets: one statement); a full page, or an empty one past the start,
/// counts on its own. Rows of a backward cursor page come newest first and
/// are put back in order.
pub(super) async fn list_page<R, T>(
    q: &query::ListQuery,
    count: impl Future<Output = Result<u64>>,
    page: impl Future<Output = Result<Vec<R>>>,
    from_row: fn(&R) -> Result<T>,
) -> Result<(Option<u64>, Vec<T>)> {
    if q.limit == 0 {
        let total = match q.keyset {
            Some(_) => None,
            None => Some(count.await?),
        };
        return Ok((total, Vec::new()));
    }
    let rows = page.await?;
    let total = match (q.keyset, rows.len() as u64) {
        (Some(_), _) => None,
        (None, n) if n < q.limit && (n > 0 || q.offset == 0) => Some(q.offset + n),
        (None, _) => Some(count.await?),
    };
    let mut items: Vec<T> = rows.iter().map(from_row).collect::<Result<_>>()?;
    if matches!(q.keyset, Some(query::Keyset::Before(_))) {
        items.reverse();
    }
    Ok((total, items))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_that_conflicts_starts_over_a_bounded_number_of_times() {
        let calls = std::cell::Cell::new(0);
        let out = retrying(|| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                match n {
                    1..=2 => Err(StoreError::Contention),
                    _ => Ok(n),
                }
            }
        })
        .await;
        assert_eq!(out.ok(), Some(3), "two conflicts, then done");

        calls.set(0);
        let out: Result<()> = retrying(|| {
            calls.set(calls.get() + 1);
            async { Err(StoreError::Contention) }
        })
        .await;
        assert!(matches!(out, Err(StoreError::Contention)));
        assert_eq!(calls.get(), WRITE_ATTEMPTS, "gives up after WRITE_ATTEMPTS");

        calls.set(0);
        let out: Result<()> = retrying(|| {
            calls.set(calls.get() + 1);
            async { Err(StoreError::NotFound) }
        })
        .await;
        assert!(matches!(out, Err(StoreError::NotFound)));
        assert_eq!(calls.get(), 1, "other errors are not retried");
    }
}
