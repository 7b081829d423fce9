//! `/Groups` (RFC 7644 §3.3–§3.6; RFC 7643 §4.2). Members are rows: a
//! PATCH that adds one member inserts one row, and never loads the others.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::etag::{IfMatch, IfNoneMatch};
use super::extract::{BaseUrl, QueryParams, ScimJson, TenantAdmin};
use super::list::{self, ListRequest};
use super::response::{empty_response, resource_response, scim_response};
use crate::scim::compat::Quirks;
use crate::scim::membership::{self, MemberChange, NewMember};
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, etag};
use crate::scim::schema::{Attribute, GROUP_RESOURCE};
use crate::scim::{ScimError, ScimType};
use crate::store::{
    GroupWrite, GroupWritten, Member, MemberPage, ModifyError, StoreError, StoredGroup, TenantScope,
};

fn location(base: &BaseUrl, id: Uuid) -> String {
    format!("{}/Groups/{id}", base.0)
}

fn not_found(id: &str) -> ApiError {
    ScimError::not_found(format!("Group {id} not found")).into()
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

fn named(id: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => not_found(id),
        other => other.into(),
    }
}

fn projection(params: &QueryParams) -> Projection {
    Projection::new(
        &GROUP_RESOURCE,
        params.get("attributes"),
        params.get("excludedAttributes"),
    )
}

fn members_attr() -> &'static Attribute {
    GROUP_RESOURCE
        .schema
        .attribute("members")
        .expect("Group has members")
}

/// A response may list at most `limit` members of a group.
fn too_many(group: Option<Uuid>, total: u64, limit: u64) -> ApiError {
    let (which, find) = match group {
        Some(id) => (
            format!("group {id} has"),
            format!("/Users?filter=groups[value eq \"{id}\"]"),
        ),
        None => (
            "the request lists".to_owned(),
            "/Users?filter=groups[value eq \"<group id>\"]".to_owned(),
        ),
    };
    ScimError::bad_request(
        ScimType::TooMany,
        format!(
            "{which} {total} members, more than the {limit} a response lists; ask with \
             excludedAttributes=members and find members with {find}"
        ),
    )
    .into()
}

/// Refuses, before anything is stored, a write whose response would list
/// more members than a response may.
fn check_listable(
    state: &AppState,
    projection: &Projection,
    members: &[NewMember],
) -> Result<(), ApiError> {
    let limit = state.settings().max_group_members;
    if projection.includes(members_attr()) && members.len() as u64 > limit {
        return Err(too_many(None, members.len() as u64, limit));
    }
    Ok(())
}

/// The members of `groups` that responses show, read in one statement;
/// `None` when the projection leaves members out.
async fn load_members(
    state: &AppState,
    scope: TenantScope,
    groups: &[&StoredGroup],
    projection: &Projection,
) -> Result<Option<HashMap<Uuid, MemberPage>>, ApiError> {
    if !projection.includes(members_attr()) {
        return Ok(None);
    }
    let limit = state.settings().max_group_members;
    let ids: Vec<Uuid> = groups.iter().map(|g| g.id).collect();
    let pages = state.store().members_of(scope, &ids, limit).await?;
    if let Some((id, page)) = pages.iter().find(|(_, p)| p.total > limit) {
        return Err(too_many(Some(*id), page.total, limit));
    }
    Ok(Some(pages))
}

pub(super) fn render(
    base: &BaseUrl,
    group: &StoredGroup,
    members: Option<&[Member]>,
    projection: &Projection,
) -> Value {
    let meta = Meta {
        resource_type: GROUP_RESOURCE.name,
        created: group.created,
        last_modified: group.modified,
        location: location(base, group.id),
        version: group.version,
    };
    let mut rendered = resource::render(
        &GROUP_RESOURCE,
        group.doc.clone(),
        &group.id.to_string(),
        &meta,
    );
    if let (Value::Object(map), Some(members)) = (&mut rendered, members)
        && !members.is_empty()
    {
        let values = members
            .iter()
            .map(|m| {
                let mut v = Map::new();
                v.insert("value".into(), Value::from(m.id.to_string()));
                v.insert(
                    "$ref".into(),
                    Value::from(format!("{}/{}s/{}", base.0, m.kind.as_str(), m.id)),
                );
                if let Some(d) = &m.display {
                    v.insert("display".into(), Value::from(d.as_str()));
                }
                v.insert("type".into(), Value::from(m.kind.as_str()));
                Value::Object(v)
            })
            .collect();
        map.insert(members_attr().name.to_owned(), Value::Array(values));
    }
    if let Value::Object(map) = &mut rendered {
        projection.apply(&GROUP_RESOURCE, map);
    }
    rendered
}

/// One group as a response shows it, with `known` members (from a write
/// that set them all) or, when the response shows members, the store's.
async fn render_one(
    state: &AppState,
    scope: TenantScope,
    base: &BaseUrl,
    group: &StoredGroup,
    known: Option<&[Member]>,
    projection: &Projection,
) -> Result<Value, ApiError> {
    if known.is_some() || !projection.includes(members_attr()) {
        return Ok(render(base, group, known, projection));
    }
    let page = load_members(state, scope, &[group], projection)
        .await?
        .and_then(|mut pages| pages.remove(&group.id))
        .unwrap_or_default();
    Ok(render(base, group, Some(&page.members), projection))
}

/// The response to a write: the group as `projection` shows it, its ETag,
/// and for a create its `Location`.
async fn written_response(
    state: &AppState,
    scope: TenantScope,
    base: &BaseUrl,
    written: &GroupWritten,
    projection: &Projection,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let group = &written.group;
    let known = written.members.as_deref();
    let body = render_one(state, scope, base, group, known, projection).await?;
    let location = (status == StatusCode::CREATED).then(|| location(base, group.id));
    Ok(resource_response(
        status,
        &body,
        &etag(group.version),
        location.as_deref(),
    ))
}

/// Validates a POST/PUT body; returns the document and the members.
fn document_and_members(
    body: Value,
    quirks: &mut Quirks,
) -> Result<(Map<String, Value>, Vec<NewMember>), ApiError> {
    let mut body = body;
    let members = membership::take_members(&mut body, members_attr())?;
    let doc = resource::normalize_with(&GROUP_RESOURCE, body, quirks)?;
    Ok((doc, members))
}

pub async fn create(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let mut quirks = Quirks::default();
    let parsed = document_and_members(body, &mut quirks);
    super::record_quirks(&quirks);
    let (doc, members) = parsed?;
    let projection = projection(&params);
    check_listable(&state, &projection, &members)?;
    let write = GroupWrite::from_doc(doc);
    // Soft delete: a create that matches a tombstone brings it back.
    let revived = match super::policy::revivable_since(&state, &policy) {
        Some(since) => {
            state
                .store()
                .revive_group(scope, &write, members.clone(), actor.as_ref(), since)
                .await?
        }
        None => None,
    };
    let written = match revived {
        Some(written) => written,
        None => {
            state
                .store()
                .create_group(scope, write, members, actor)
                .await?
        }
    };
    written_response(
        &state,
        scope,
        &base,
        &written,
        &projection,
        StatusCode::CREATED,
    )
    .await
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
    let group = state
        .store()
        .get_group(scope, uuid)
        .await?
        .ok_or_else(|| not_found(&id))?;
    if if_none_match.not_modified(group.version)? {
        return Ok(empty_response(
            StatusCode::NOT_MODIFIED,
            &etag(group.version),
        ));
    }
    let body = render_one(&state, scope, &base, &group, None, &projection(&params)).await?;
    Ok(resource_response(
        StatusCode::OK,
        &body,
        &etag(group.version),
        None,
    ))
}

async fn run_list(
    state: &AppState,
    scope: TenantScope,
    base: &BaseUrl,
    req: ListRequest,
) -> Result<Response, ApiError> {
    let plan = req.plan(&GROUP_RESOURCE, state.settings(), state.cursor_key())?;
    let (total, groups) = state
        .store()
        .query_groups(scope, &plan.query)
        .await
        .map_err(list::store_error)?;
    let (groups, next, previous) = list::cursor_page(&plan, state.cursor_key(), groups, |g| g.id);
    let refs: Vec<&StoredGroup> = groups.iter().collect();
    let mut pages = load_members(state, scope, &refs, &plan.projection).await?;
    let resources = groups
        .iter()
        .map(|g| {
            let members = pages.as_mut().map(|p| p.remove(&g.id).unwrap_or_default());
            render(
                base,
                g,
                members.as_ref().map(|m| &m.members[..]),
                &plan.projection,
            )
        })
        .collect();
    Ok(scim_response(
        StatusCode::OK,
        &list::response_body(&plan, total, resources, next, previous),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    TenantAdmin(scope, _, _): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_query(&params)?).await
}

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
    TenantAdmin(scope, actor, _): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut quirks = Quirks::default();
    let parsed = document_and_members(body, &mut quirks);
    super::record_quirks(&quirks);
    let (doc, members) = parsed?;
    let projection = projection(&params);
    check_listable(&state, &projection, &members)?;
    let changes = vec![MemberChange::ReplaceAll(members)];
    membership::check_not_self(uuid, &changes)?;
    let (written, ()) = state
        .store()
        .modify_group(
            scope,
            uuid,
            if_match.required_version(),
            move |_| Ok::<_, ScimError>((doc.clone(), ())),
            changes,
            actor,
        )
        .await
        .map_err(|e| modify_error(&id, e))?;
    written_response(&state, scope, &base, &written, &projection, StatusCode::OK).await
}

fn modify_error(id: &str, e: ModifyError<ScimError>) -> ApiError {
    match e {
        ModifyError::Store(e) => named(id)(e),
        ModifyError::Change(e) => e.into(),
    }
}

/// `PATCH /Groups/{id}`: `204`, or `200` with the attributes asked for.
pub async fn patch(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, _): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut quirks = Quirks::default();
    let split = patch::parse_request(body, &mut quirks).and_then(|ops| {
        membership::split_members(&GROUP_RESOURCE, members_attr(), ops, &mut quirks)
    });
    let (doc_ops, changes) = match split.and_then(|s| {
        membership::check_not_self(uuid, &s.1)?;
        Ok(s)
    }) {
        Ok(s) => s,
        Err(e) => {
            super::record_quirks(&quirks);
            return Err(e.into());
        }
    };
    let canonical_id = uuid.to_string();
    let heavy = patch::weight(&doc_ops) > super::HEAVY_PATCH;
    // The document engine runs inside the store's transaction task; the
    // rules it applied come back with its result, success or failure.
    let result = state
        .store()
        .modify_group(
            scope,
            uuid,
            if_match.required_version(),
            move |doc| {
                let mut q = Quirks::default();
                let patched = match doc_ops.is_empty() {
                    true => Ok(doc.clone()),
                    false => super::cpu_bound(heavy, || {
                        patch::apply(&GROUP_RESOURCE, &canonical_id, doc, &doc_ops, &mut q)
                    }),
                };
                match patched {
                    Ok(d) => Ok((d, q)),
                    Err(e) => Err((e, q)),
                }
            },
            changes,
            actor,
        )
        .await;
    let written = match result {
        Ok((written, q)) => {
            quirks.extend(&q);
            super::record_quirks(&quirks);
            written
        }
        Err(ModifyError::Change((e, q))) => {
            quirks.extend(&q);
            super::record_quirks(&quirks);
            return Err(e.into());
        }
        Err(ModifyError::Store(e)) => {
            super::record_quirks(&quirks);
            return Err(named(&id)(e));
        }
    };
    let asked = params.get("attributes").is_some() || params.get("excludedAttributes").is_some();
    if !asked {
        return Ok(empty_response(
            StatusCode::NO_CONTENT,
            &etag(written.group.version),
        ));
    }
    let projection = projection(&params);
    written_response(&state, scope, &base, &written, &projection, StatusCode::OK).await
}

pub async fn delete(
    State(state): State<AppState>,
    TenantAdmin(scope, actor, policy): TenantAdmin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    if super::policy::guards_deletions(&policy) {
        // Only a delete that can happen counts against the breaker.
        if state.store().get_group(scope, uuid).await?.is_none() {
            return Err(not_found(&id));
        }
        super::policy::allow_deletion(&state, &policy, scope, actor.as_ref()).await?;
    }
    state
        .store()
        .delete_group(scope, uuid, if_match.required_version(), actor.as_ref())
        .await
        .map_err(named(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
