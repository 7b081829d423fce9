//! `/Groups` (RFC 7644 §3.3–§3.6; RFC 7643 §4.2). Members are rows: a
//! PATCH that adds one member inserts one row, and never loads the others.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::etag::IfMatch;
use super::extract::{BaseUrl, QueryParams, ScimJson, TenantAdmin};
use super::list::{self, ListRequest};
use super::response::{resource_response, scim_response};
use crate::scim::compat::Quirks;
use crate::scim::patch::{self, MemberChange, NewMember};
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, etag};
use crate::scim::schema::GROUP_RESOURCE;
use crate::scim::{ScimError, ScimType};
use crate::store::{GroupWrite, Member, ModifyError, StoreError, StoredGroup, TenantScope};

const MEMBERS: &str = "members";

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

fn members_attr() -> &'static crate::scim::schema::Attribute {
    GROUP_RESOURCE
        .schema
        .attribute(MEMBERS)
        .expect("Group has members")
}

/// A group's members, when the response shows them; bounded.
async fn load_members(
    state: &AppState,
    scope: TenantScope,
    group: &StoredGroup,
    projection: &Projection,
) -> Result<Option<Vec<Member>>, ApiError> {
    if !projection.includes(members_attr()) {
        return Ok(None);
    }
    let limit = state.settings().max_group_members;
    let (total, members) = state.store().group_members(scope, group.id, limit).await?;
    if total > limit {
        return Err(ScimError::bad_request(
            ScimType::TooMany,
            format!(
                "group {} has {total} members, more than the {limit} a response lists; ask with \
                 excludedAttributes=members and find members with /Users?filter=groups[value eq \"{}\"]",
                group.id, group.id
            ),
        )
        .into());
    }
    Ok(Some(members))
}

fn render(
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
        map.insert(MEMBERS.to_owned(), Value::Array(values));
    }
    if let Value::Object(map) = &mut rendered {
        projection.apply(&GROUP_RESOURCE, map);
    }
    rendered
}

async fn render_one(
    state: &AppState,
    scope: TenantScope,
    base: &BaseUrl,
    group: &StoredGroup,
    projection: &Projection,
) -> Result<Value, ApiError> {
    let members = load_members(state, scope, group, projection).await?;
    Ok(render(base, group, members.as_deref(), projection))
}

/// Validates a POST/PUT body; returns the document and the members.
fn document_and_members(
    body: Value,
    quirks: &mut Quirks,
) -> Result<(Map<String, Value>, Vec<NewMember>), ApiError> {
    let mut doc = resource::normalize_with(&GROUP_RESOURCE, body, quirks)?;
    let members = patch::new_members(doc.remove(MEMBERS).as_ref(), MEMBERS)?;
    Ok((doc, members))
}

pub async fn create(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let mut quirks = Quirks::default();
    let parsed = document_and_members(body, &mut quirks);
    super::record_quirks(&quirks);
    let (doc, members) = parsed?;
    let group = state
        .store()
        .create_group(scope, GroupWrite::from_doc(doc), members)
        .await?;
    let body = render_one(&state, scope, &base, &group, &projection(&params)).await?;
    Ok(resource_response(
        StatusCode::CREATED,
        &body,
        &etag(group.version),
        Some(&location(&base, group.id)),
    ))
}

pub async fn get(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let group = state
        .store()
        .get_group(scope, uuid)
        .await?
        .ok_or_else(|| not_found(&id))?;
    let body = render_one(&state, scope, &base, &group, &projection(&params)).await?;
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
    let plan = req.plan(&GROUP_RESOURCE, state.settings())?;
    let (total, groups) = state
        .store()
        .query_groups(scope, &plan.query)
        .await
        .map_err(list::store_error)?;
    let (groups, next, previous) = match plan.cursor {
        Some(_) => list::cursor_page(&plan, groups, |g| g.id),
        None => (groups, None, None),
    };
    let mut resources = Vec::with_capacity(groups.len());
    for g in &groups {
        resources.push(render_one(state, scope, base, g, &plan.projection).await?);
    }
    Ok(scim_response(
        StatusCode::OK,
        &list::response_body(&plan, total, resources, next, previous),
    ))
}

pub async fn list(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_query(&params)?).await
}

pub async fn search(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_search(body)?).await
}

pub async fn replace(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
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
    let change = if members.is_empty() {
        MemberChange::RemoveAll
    } else {
        MemberChange::ReplaceAll(members)
    };
    let written = state
        .store()
        .modify_group(
            scope,
            uuid,
            if_match.required_version(),
            move |_| Ok::<_, ScimError>(doc),
            vec![change],
        )
        .await
        .map_err(|e| modify_error(&id, e))?;
    let body = render_one(&state, scope, &base, &written.group, &projection(&params)).await?;
    Ok(resource_response(
        StatusCode::OK,
        &body,
        &etag(written.group.version),
        None,
    ))
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
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    Path(id): Path<String>,
    params: QueryParams,
    headers: HeaderMap,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    let mut quirks = Quirks::default();
    let split = patch::parse_request(body, &mut quirks)
        .and_then(|ops| patch::split_row_attribute(&GROUP_RESOURCE, MEMBERS, ops, &mut quirks));
    let (doc_ops, member_changes) = match split {
        Ok(s) => s,
        Err(e) => {
            super::record_quirks(&quirks);
            return Err(e.into());
        }
    };
    let canonical_id = uuid.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = state
        .store()
        .modify_group(
            scope,
            uuid,
            if_match.required_version(),
            move |doc| {
                let mut q = Quirks::default();
                let out = if doc_ops.is_empty() {
                    Ok(doc.clone())
                } else {
                    patch::apply(&GROUP_RESOURCE, &canonical_id, doc, &doc_ops, &mut q)
                };
                let _ = tx.send(q);
                out
            },
            member_changes,
        )
        .await;
    for q in rx.try_iter() {
        for name in q.names() {
            quirks.fire(name);
        }
    }
    super::record_quirks(&quirks);
    let written = result.map_err(|e| modify_error(&id, e))?;
    let asked = params.get("attributes").is_some() || params.get("excludedAttributes").is_some();
    if !asked {
        let mut resp = StatusCode::NO_CONTENT.into_response();
        if let Ok(v) = etag(written.group.version).parse() {
            resp.headers_mut().insert(axum::http::header::ETAG, v);
        }
        return Ok(resp);
    }
    let body = render_one(&state, scope, &base, &written.group, &projection(&params)).await?;
    Ok(resource_response(
        StatusCode::OK,
        &body,
        &etag(written.group.version),
        None,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let uuid = parse_id(&id)?;
    let if_match = IfMatch::from_headers(&headers)?;
    state
        .store()
        .delete_group(scope, uuid, if_match.required_version())
        .await
        .map_err(named(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
