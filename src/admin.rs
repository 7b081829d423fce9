//! Administration of projects, tenants and access keys, shared by the
//! `scimd admin` commands and the first-start bootstrap of `scimd serve`.

use chrono::{DateTime, Utc};
use std::time::Duration;

use crate::auth::token::{
    MIN_PROVISIONED_KEY_LEN, generate_access_key, generate_key_id, generate_project_id,
    hash_access_key, is_valid_project_id, parse_token,
};
use crate::auth::{TENANT_ADMIN, is_valid_role};
use crate::store::{
    KeyInfo, NewKey, PolicyChange, Project, Store, StoreError, Tenant, TenantState,
};

/// Name of the project and tenant that first start and bootstrap create.
pub const DEFAULT_NAME: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("project '{0}' does not exist")]
    ProjectNotFound(String),
    #[error("tenant '{0}' does not exist in this project")]
    TenantNotFound(String),
    #[error("invalid project id '{0}': use 1-64 characters from [A-Za-z0-9_-]")]
    InvalidProjectId(String),
    #[error("invalid role '{0}': use 1-64 characters from [a-z0-9-], e.g. tenant-admin")]
    InvalidRole(String),
    #[error("invalid name: it must not be empty")]
    EmptyName,
    #[error(
        "SCIMD_BOOTSTRAP_TOKEN must be <ProjectId>:<AccessKey> with an access key of at least {MIN_PROVISIONED_KEY_LEN} URL-safe characters ([A-Za-z0-9._~-])"
    )]
    InvalidBootstrapToken,
    #[error("expiry is out of range")]
    ExpiryOutOfRange,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T> = std::result::Result<T, AdminError>;

/// A freshly created access key. `token` is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedKey {
    pub key_id: String,
    pub project_id: String,
    pub tenant: Tenant,
    pub role: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// `<ProjectId>:<AccessKey>`, for `Authorization: Bearer …`.
    pub token: String,
}

fn non_empty(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        Err(AdminError::EmptyName)
    } else {
        Ok(name)
    }
}

/// Creates a project; `id` defaults to a generated one.
pub async fn create_project(store: &Store, id: Option<&str>, name: &str) -> Result<Project> {
    let id = match id {
        Some(id) if !is_valid_project_id(id) => {
            return Err(AdminError::InvalidProjectId(id.to_owned()));
        }
        Some(id) => id.to_owned(),
        None => generate_project_id(),
    };
    Ok(store.create_project(&id, non_empty(name)?).await?)
}

pub async fn create_tenant(store: &Store, project_id: &str, name: &str) -> Result<Tenant> {
    if store.get_project(project_id).await?.is_none() {
        return Err(AdminError::ProjectNotFound(project_id.to_owned()));
    }
    Ok(store.create_tenant(project_id, non_empty(name)?).await?)
}

/// Creates an access key for a tenant (given by id or name) of a project.
pub async fn create_key(
    store: &Store,
    project_id: &str,
    tenant: &str,
    role: &str,
    expires_in: Option<Duration>,
    name: Option<&str>,
) -> Result<IssuedKey> {
    if !is_valid_role(role) {
        return Err(AdminError::InvalidRole(role.to_owned()));
    }
    if store.get_project(project_id).await?.is_none() {
        return Err(AdminError::ProjectNotFound(project_id.to_owned()));
    }
    let tenant = tenant_named(store, project_id, tenant).await?;
    let expires_at = expires_in
        .map(|d| {
            chrono::TimeDelta::from_std(d)
                .ok()
                .and_then(|d| Utc::now().checked_add_signed(d))
                .ok_or(AdminError::ExpiryOutOfRange)
        })
        .transpose()?;
    let access_key = generate_access_key();
    let key = NewKey {
        id: generate_key_id(),
        project_id: project_id.to_owned(),
        tenant_id: tenant.id,
        role: role.to_owned(),
        name: name.map(str::to_owned),
        secret_hash: hash_access_key(&access_key),
        expires_at,
    };
    store.create_key(&key).await?;
    Ok(IssuedKey {
        key_id: key.id,
        project_id: key.project_id,
        tenant,
        role: key.role,
        expires_at,
        token: format!("{project_id}:{access_key}"),
    })
}

pub async fn list_keys(store: &Store, project_id: Option<&str>) -> Result<Vec<KeyInfo>> {
    Ok(store.list_keys(project_id).await?)
}

/// Revokes a key; `false` when there is no such key.
pub async fn revoke_key(store: &Store, key_id: &str) -> Result<bool> {
    Ok(store.revoke_key(key_id).await?)
}

/// What `scimd serve` did about credentials at start.
#[derive(Debug)]
pub enum Bootstrap {
    /// Projects exist and no bootstrap token was given: nothing to do.
    Existing,
    /// `SCIMD_BOOTSTRAP_TOKEN` is provisioned (created now, or already there).
    Provisioned { project_id: String, created: bool },
    /// The database was empty: a default project, tenant and key were created.
    FirstStart(IssuedKey),
}

/// Provisions `bootstrap_token` if given (idempotent: a key that already
/// exists, even revoked, is left as it is); otherwise, on an empty
/// database, creates a default project, tenant and tenant-admin key.
pub async fn bootstrap(store: &Store, bootstrap_token: Option<&str>) -> Result<Bootstrap> {
    if let Some(token) = bootstrap_token {
        let creds = parse_token(token.trim())
            .filter(|c| c.access_key.len() >= MIN_PROVISIONED_KEY_LEN)
            .ok_or(AdminError::InvalidBootstrapToken)?;
        let hash = hash_access_key(&creds.access_key);
        if store.key_exists_with_hash(&hash).await? {
            return Ok(Bootstrap::Provisioned {
                project_id: creds.project_id,
                created: false,
            });
        }
        if store.get_project(&creds.project_id).await?.is_none() {
            store
                .create_project(&creds.project_id, DEFAULT_NAME)
                .await?;
        }
        let tenant = match store.find_tenant(&creds.project_id, DEFAULT_NAME).await? {
            Some(t) => t,
            None => store.create_tenant(&creds.project_id, DEFAULT_NAME).await?,
        };
        store
            .create_key(&NewKey {
                id: generate_key_id(),
                project_id: creds.project_id.clone(),
                tenant_id: tenant.id,
                role: TENANT_ADMIN.to_owned(),
                name: Some("bootstrap".to_owned()),
                secret_hash: hash,
                expires_at: None,
            })
            .await?;
        return Ok(Bootstrap::Provisioned {
            project_id: creds.project_id,
            created: true,
        });
    }
    if store.has_projects().await? {
        return Ok(Bootstrap::Existing);
    }
    let project = create_project(store, None, DEFAULT_NAME).await?;
    create_tenant(store, &project.id, DEFAULT_NAME).await?;
    let key = create_key(
        store,
        &project.id,
        DEFAULT_NAME,
        TENANT_ADMIN,
        None,
        Some("first start"),
    )
    .await?;
    Ok(Bootstrap::FirstStart(key))
}

/// The project's tenant with this id or name.
async fn tenant_named(store: &Store, project_id: &str, tenant: &str) -> Result<Tenant> {
    store
        .find_tenant(project_id, tenant)
        .await?
        .ok_or_else(|| AdminError::TenantNotFound(tenant.to_owned()))
}

/// Who `scimd admin` changes are recorded as in change events.
fn cli_actor() -> serde_json::Value {
    serde_json::json!({"userAgent": "scimd admin"})
}

/// `scimd admin tenant show`: the tenant and its deprovisioning policy.
pub async fn tenant_state(store: &Store, project_id: &str, tenant: &str) -> Result<TenantState> {
    let t = tenant_named(store, project_id, tenant).await?;
    store
        .tenant_state(t.id)
        .await?
        .ok_or_else(|| AdminError::TenantNotFound(tenant.to_owned()))
}

/// `scimd admin tenant set`: changes the tenant's policy (recorded as a
/// `tenant.updated` event). Running servers apply it within their key
/// cache's lifetime (`SCIMD_AUTH_CACHE_TTL`).
pub async fn set_tenant_policy(
    store: &Store,
    project_id: &str,
    tenant: &str,
    change: &PolicyChange,
) -> Result<TenantState> {
    let t = tenant_named(store, project_id, tenant).await?;
    store
        .change_policy(t.id, change, Some(&cli_actor()))
        .await?
        .ok_or_else(|| AdminError::TenantNotFound(tenant.to_owned()))
}

/// `scimd admin tenant release`: lets the tenant's held deletions through.
pub async fn release_deletions(
    store: &Store,
    project_id: &str,
    tenant: &str,
) -> Result<TenantState> {
    let t = tenant_named(store, project_id, tenant).await?;
    store
        .release_deletions(t.id, Some(&cli_actor()))
        .await?
        .ok_or_else(|| AdminError::TenantNotFound(tenant.to_owned()))
}

/// `scimd requests tail`: prints the tenant's last `last` provisioning log
/// records (those `status` names, when given) as JSON lines, oldest first,
/// as `GET /api/v1/requests` shows them; with `follow`, keeps printing new
/// ones until interrupted.
pub async fn tail_requests(
    store: &Store,
    project_id: &str,
    tenant: &str,
    status: Option<&str>,
    last: u32,
    follow: bool,
    out: &mut impl std::io::Write,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use crate::requestlog::{Query, StatusFilter};
    let tenant = tenant_named(store, project_id, tenant).await?;
    let scope = crate::store::TenantScope::new(tenant.id);
    let status = match status {
        Some(s) => Some(
            StatusFilter::parse(s)
                .ok_or_else(|| format!("'{s}' is not a status code or class (4xx)"))?,
        ),
        None => None,
    };
    let mut query = Query {
        status,
        limit: last.clamp(1, crate::http::requests::MAX_LIMIT),
        ..Query::default()
    };
    loop {
        let page = store.read_requests(scope, &query).await?;
        for record in page.iter().rev() {
            writeln!(out, "{}", crate::http::requests::render(record))?;
        }
        out.flush()?;
        if let Some(newest) = page.first() {
            query.newer_than = Some(newest.id);
        }
        if !follow {
            return Ok(());
        }
        query.limit = crate::http::requests::MAX_LIMIT;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `scimd events tail`: prints the tenant's change events after `after` (a
/// cursor; from the oldest retained event without one) as JSON lines, as
/// `GET /api/v1/events` shows them; with `follow`, keeps printing new ones
/// until interrupted. `base_url` is the public SCIM base URL for `data`.
pub async fn tail_events(
    store: &Store,
    project_id: &str,
    tenant: &str,
    after: Option<&str>,
    follow: bool,
    base_url: &str,
    out: &mut impl std::io::Write,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>> {
    use crate::http::events::{decode_cursor, render_event};
    let tenant = tenant_named(store, project_id, tenant).await?;
    let scope = crate::store::TenantScope::new(tenant.id);
    let key = crate::http::cursor::CursorKey::new(
        &store
            .deployment_secret(crate::http::cursor::SECRET_NAME)
            .await?,
    );
    let start = match after {
        None => crate::store::Position::START,
        Some(text) => decode_cursor(&key, scope, text)
            .ok_or_else(|| format!("'{text}' is not an event cursor of this tenant"))?,
    };
    if after.is_some() && start < store.event_horizon(scope).await? {
        return Err("the cursor is older than the retained events (SCIMD_EVENT_RETENTION)".into());
    }
    let base = crate::http::extract::BaseUrl(format!(
        "{}{}",
        base_url.trim_end_matches('/'),
        crate::http::SCIM_PREFIX
    ));
    let mut query = crate::store::EventQuery {
        after: start,
        limit: crate::http::events::MAX_LIMIT,
        types: Vec::new(),
        resource_id: None,
        settle: true,
    };
    loop {
        let page = store.read_events(scope, &query).await?;
        for event in &page.events {
            writeln!(out, "{}", render_event(&key, scope, &base, event))?;
        }
        out.flush()?;
        query.after = page.next;
        if page.has_more {
            continue;
        }
        if !follow {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
