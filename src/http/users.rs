//! `/Users` (RFC 7644 §3.3, §3.4.1, §3.4.2, §3.5.1, §3.6).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::etag::{IfMatch, IfNoneMatch};
use super::extract::{BaseUrl, QueryParams, ScimJson, TenantAdmin};
use super::list::{self, ListRequest};
use super::policy;
use super::response::{
    empty_response, resource_bytes_response, resource_response, scim_bytes_response, scim_response,
};
use crate::events;
use crate::scim::ScimError;
use crate::scim::compat::Quirks;
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, etag};
use crate::scim::schema::USER_RESOURCE;
use crate::store::{
    GroupRef, ModifyError, StoreError, StoredUser, StoredUserText, TenantScope, UserWrite,
};

fn location(base: &BaseUrl, id: Uuid) -> String {
    format!("{}/Users/{id}", base.0)
}

/// The projection the request asks for (`attributes`, `excludedAttributes`).
fn projection(params: &QueryParams) -> Projection {
    Projection::new(
        &USER_RESOURCE,
        params.get("attributes"),
        params.get("excludedAttributes"),
    )
}

/// A user's derived, read-only `groups` (direct memberships).
fn groups_value(base: &BaseUrl, groups: &[GroupRef]) -> serde_json::Value {
    groups
        .iter()
        .map(|g| {
            serde_json::json!({
                "value": g.id.to_string(),
                "$ref": format!("{}/Groups/{}", base.0, g.id),
                "display": g.display,
                "type": "direct",
            })
        })
        .collect()
}

/// The response form of a stored user (consumed: its document becomes the
/// body without a copy).
pub(super) fn render(
    base: &BaseUrl,
    user: StoredUser,
    projection: &Projection,
) -> serde_json::Value {
    let meta = Meta {
        resource_type: USER_RESOURCE.name,
        created: user.created,
        last_modified: user.modified,
        location: location(base, user.id),
        version: user.version,
    };
    let mut rendered = resource::render(&USER_RESOURCE, user.doc, &user.id.to_string(), &meta);
    if let serde_json::Value::Object(map) = &mut rendered {
        // The derived, read-only `groups` (direct memberships).
        if !user.groups.is_empty() {
            map.insert("groups".to_owned(), groups_value(base, &user.groups));
        }
        projection.apply(&USER_RESOURCE, map);
    }
    rendered
}

/// [`render`] with the default projection, for a user whose document is
/// the database's JSON text: written around that text, never parsed
/// (`resource::render_text`).
fn render_text(base: &BaseUrl, user: &StoredUserText) -> Result<Vec<u8>, ApiError> {
    let meta = Meta {
        resource_type: USER_RESOURCE.name,
        created: user.created,
        last_modified: user.modified,
        location: location(base, user.id),
        version: user.version,
    };
    let groups = (!user.groups.is_empty()).then(|| ("groups", groups_value(base, &user.groups)));
    resource::render_text(&user.doc, &user.id.to_string(), &meta, groups.as_slice()).ok_or_else(
        || {
            StoreError::Corrupt(format!(
                "user {}: the stored document is not an object",
                user.id
            ))
            .into()
        },
    )
}

/// Why a PATCH's change stopped before its write.
enum Stop {
    Invalid(ScimError),
    /// It deactivates the user, and the breaker has not counted it yet.
    Deactivates,
}

fn not_found(id: &str) -> ApiError {
    ScimError::not_found(format!("User {id} not found")).into()
}

/// Resource ids are UUIDs; anything else names no resource.
fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

/// Maps "no such row" to a 404 that names the user.
fn named(id: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => not_found(id),
        other => other.into(),
    }
}

pub async fn create(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let mut quirks = Quirks::default();
    let doc = resource::normalize_with(&USER_RESOURCE, body, &mut quirks);
    super::record_quirks(&quirks);
    let write = UserWrite::from_doc(doc?);
    // Soft delete: a create that matches a tombstone brings it back.
    let revived = match policy::revivable_since(&state, &policy) {
        Some(since) => {
            state
                .store()
                .revive_user(scope, &write, actor.as_ref(), since)
                .await?
        }
        None => None,
    };
    let user = match revived {
        Some(user) => user,
        None => {
            state
                .store()
                .create_user(scope, &write, actor.as_ref())
                .await?
        }
    };
    let (version, loc) = (user.version, location(&base, user.id));
    let body = render(&base, user, &projection(&params));
    Ok(resource_response(
        StatusCode::CREATED,
        &body,
        &etag(version),
        Some(&loc),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    TenantAdmin(scope, _, _): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let projection = projection(&params);
    if matches!(projection, Projection::Default) {
        let user = state
            .store()
            .get_user_text(scope, uuid)
            .await?
            .ok_or_else(|| not_found(&id))?;
        if if_none_match.not_modified(user.version)? {
            return Ok(empty_response(
                StatusCode::NOT_MODIFIED,
                &etag(user.version),
            ));
        }
        let body = render_text(&base, &user)?;
        return Ok(resource_bytes_response(
            StatusCode::OK,
            body,
            &etag(user.version),
            None,
        ));
    }
    let user = state
        .store()
        .get_user(scope, uuid)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let version = user.version;
    if if_none_match.not_modified(version)? {
        return Ok(empty_response(StatusCode::NOT_MODIFIED, &etag(version)));
    }
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, user, &projection),
        &etag(version),
        None,
    ))
}

/// A listing's users trimmed to the page: its total, users and cursors.
type Paged<D> = (
    Option<u64>,
    Vec<StoredUser<D>>,
    Option<String>,
    Option<String>,
);

fn paged<D>(
    plan: &list::ListPlan,
    state: &AppState,
    found: Result<(Option<u64>, Vec<StoredUser<D>>), StoreError>,
) -> Result<Paged<D>, ApiError> {
    let (total, users) = found.map_err(list::store_error)?;
    let (users, next, previous) = list::cursor_page(plan, state.cursor_key(), users, |u| u.id);
    Ok((total, users, next, previous))
}

async fn run_list(
    state: &AppState,
    scope: TenantScope,
    base: &BaseUrl,
    req: ListRequest,
) -> Result<Response, ApiError> {
    let plan = req.plan(&USER_RESOURCE, state.settings(), state.cursor_key())?;
    if matches!(plan.projection, Projection::Default) {
        let (total, users, next, previous) = paged(
            &plan,
            state,
            state.store().query_users_text(scope, &plan.query).await,
        )?;
        let resources = users
            .iter()
            .map(|u| render_text(base, u))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(scim_bytes_response(
            StatusCode::OK,
            list::response_text(&plan, total, &resources, next, previous),
        ));
    }
    let (total, users, next, previous) = paged(
        &plan,
        state,
        state.store().query_users(scope, &plan.query).await,
    )?;
    let resources = users
        .into_iter()
        .map(|u| render(base, u, &plan.projection))
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list::response_body(&plan, total, resources, next, previous),
    ))
}

/// `GET /Users` with `filter`, `sortBy`, `sortOrder`, `startIndex`, `count`,
/// `attributes`, `excludedAttributes`.
pub async fn list(
    State(state): State<AppState>,
    TenantAdmin(scope, _, _): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_query(&params)?).await
}

/// `POST /Users/.search` (RFC 7644 §3.4.3).
pub async fn search(
    State(state): State<AppState>,
    TenantAdmin(scope, _, _): TenantAdmin,
    base: BaseUrl,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_search(body)?).await
}

pub async fn replace(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut quirks = Quirks::default();
    let doc = resource::normalize_with(&USER_RESOURCE, body, &mut quirks);
    super::record_quirks(&quirks);
    let doc = doc?;
    if policy::guards_deletions(&policy) && events::inactive(&doc) {
        // A deactivation (the user is active now) counts against the breaker.
        let current = state.store().get_user(scope, uuid).await?;
        if current.is_some_and(|u| !events::inactive(&u.doc)) {
            policy::allow_deletion(&state, &policy, scope, actor.as_ref()).await?;
        }
    }
    let user = state
        .store()
        .replace_user(
            scope,
            uuid,
            UserWrite::from_doc(doc),
            if_match.required_version(),
            actor.as_ref(),
        )
        .await
        .map_err(named(&id))?;
    let version = user.version;
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, user, &projection(&params)),
        &etag(version),
        None,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    if policy::guards_deletions(&policy) {
        // Only a delete that can happen counts against the breaker.
        if state.store().get_user(scope, uuid).await?.is_none() {
            return Err(not_found(&id));
        }
        policy::allow_deletion(&state, &policy, scope, actor.as_ref()).await?;
    }
    state
        .store()
        .delete_user(scope, uuid, if_match.required_version(), actor.as_ref())
        .await
        .map_err(named(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /Users/{id}` (RFC 7644 §3.5.2): all operations or none.
pub async fn patch(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut quirks = Quirks::default();
    let ops = patch::parse_request(body, &mut quirks)?;
    let canonical_id = uuid.to_string();
    let heavy = patch::weight(&ops) > super::HEAVY_PATCH;
    // A deactivation must pass the tenant's breaker first: the patch says
    // so when applied, and is applied again once it passed.
    let mut counted = !policy::guards_deletions(&policy);
    let user = loop {
        let result = state
            .store()
            .modify_user(
                scope,
                uuid,
                if_match.required_version(),
                actor.as_ref(),
                |current| {
                    let doc = super::cpu_bound(heavy, || {
                        patch::apply(
                            &USER_RESOURCE,
                            &canonical_id,
                            &current.doc,
                            &ops,
                            &mut quirks,
                        )
                    })
                    .map_err(Stop::Invalid)?;
                    match !counted && events::deactivates(&current.doc, &doc) {
                        true => Err(Stop::Deactivates),
                        false => Ok(doc),
                    }
                },
            )
            .await;
        match result {
            Ok(user) => break user,
            Err(ModifyError::Change(Stop::Deactivates)) => {
                policy::allow_deletion(&state, &policy, scope, actor.as_ref()).await?;
                counted = true;
                quirks = Quirks::default();
            }
            Err(ModifyError::Store(e)) => {
                super::record_quirks(&quirks);
                return Err(named(&id)(e));
            }
            Err(ModifyError::Change(Stop::Invalid(e))) => {
                super::record_quirks(&quirks);
                return Err(e.into());
            }
        }
    };
    super::record_quirks(&quirks);
    let version = user.version;
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, user, &projection(&params)),
        &etag(version),
        None,
    ))
}
