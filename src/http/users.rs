//! `/Users` (RFC 7644 §3.3, §3.4.1, §3.4.2, §3.5.1, §3.6).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::AppState;
use super::error::ApiError;
use super::etag::IfMatch;
use super::extract::{BaseUrl, QueryParams, ScimJson, TenantAdmin};
use super::response::{resource_response, scim_response};
use crate::scim::compat::Quirks;
use crate::scim::filter;
use crate::scim::list::{Page, list_response};
use crate::scim::patch;
use crate::scim::projection::Projection;
use crate::scim::resource::{self, Meta, etag};
use crate::scim::schema::USER_RESOURCE;
use crate::scim::{ScimError, ScimType};
use crate::store::query::{Sort, UserQuery};
use crate::store::{ModifyError, StoreError, StoredUser, UserWrite};

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

fn render(base: &BaseUrl, user: &StoredUser, projection: &Projection) -> serde_json::Value {
    let meta = Meta {
        resource_type: USER_RESOURCE.name,
        created: user.created,
        last_modified: user.modified,
        location: location(base, user.id),
        version: user.version,
    };
    let mut rendered = resource::render(&USER_RESOURCE, &user.doc, &user.id.to_string(), &meta);
    if let serde_json::Value::Object(map) = &mut rendered {
        projection.apply(&USER_RESOURCE, map);
    }
    rendered
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
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
    ScimJson(body): ScimJson,
) -> Result<Response, ApiError> {
    let mut quirks = Quirks::default();
    let doc = resource::normalize_with(&USER_RESOURCE, body, &mut quirks);
    super::record_quirks(&quirks);
    let doc = doc?;
    let user = state
        .store()
        .create_user(scope, &UserWrite::from_doc(doc))
        .await?;
    let body = render(&base, &user, &projection(&params));
    Ok(resource_response(
        StatusCode::CREATED,
        &body,
        &etag(user.version),
        Some(&location(&base, user.id)),
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
    let user = state
        .store()
        .get_user(scope, uuid)
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, &user, &projection(&params)),
        &etag(user.version),
        None,
    ))
}

/// A list request: from the query string (`GET /Users`) or from a
/// SearchRequest body (`POST /Users/.search`, RFC 7644 §3.4.3).
#[derive(Debug, Default)]
struct ListRequest {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    excluded_attributes: Option<String>,
}

impl ListRequest {
    fn from_query(params: &QueryParams) -> Result<ListRequest, ScimError> {
        let text = |k: &str| params.get(k).map(str::to_owned);
        Ok(ListRequest {
            filter: text("filter"),
            sort_by: text("sortBy"),
            sort_order: text("sortOrder"),
            start_index: params.get_i64("startIndex")?,
            count: params.get_i64("count")?,
            attributes: text("attributes"),
            excluded_attributes: text("excludedAttributes"),
        })
    }

    fn from_search(body: serde_json::Value) -> Result<ListRequest, ScimError> {
        let serde_json::Value::Object(body) = body else {
            return Err(ScimError::invalid_syntax(
                "a SearchRequest must be a JSON object",
            ));
        };
        let get = |k: &str| {
            body.iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(k))
                .map(|(_, v)| v)
        };
        let text = |k: &str| -> Result<Option<String>, ScimError> {
            match get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                // attributes and excludedAttributes are arrays of paths.
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .map(|i| i.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| Some(v.join(",")))
                    .ok_or_else(|| ScimError::invalid_value(format!("'{k}' must hold strings"))),
                Some(_) => Err(ScimError::invalid_value(format!("'{k}' must be a string"))),
            }
        };
        let int = |k: &str| -> Result<Option<i64>, ScimError> {
            match get(k) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                    .map(Some)
                    .ok_or_else(|| ScimError::invalid_value(format!("'{k}' must be an integer"))),
            }
        };
        Ok(ListRequest {
            filter: text("filter")?,
            sort_by: text("sortBy")?,
            sort_order: text("sortOrder")?,
            start_index: int("startIndex")?,
            count: int("count")?,
            attributes: text("attributes")?,
            excluded_attributes: text("excludedAttributes")?,
        })
    }
}

async fn run_list(
    state: &AppState,
    scope: crate::store::TenantScope,
    base: &BaseUrl,
    req: ListRequest,
) -> Result<Response, ApiError> {
    let filter = match req
        .filter
        .as_deref()
        .map(str::trim)
        .filter(|f| !f.is_empty())
    {
        None => None,
        Some(text) => {
            let f = filter::parse_filter(text).map_err(|e| {
                ScimError::bad_request(ScimType::InvalidFilter, format!("invalid filter: {e}"))
            })?;
            filter::validate(&f, filter::Scope::Resource(&USER_RESOURCE))?;
            Some(f)
        }
    };
    let sort = match req
        .sort_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => {
            let by = filter::parse_path(text)
                .ok()
                .filter(|p| p.filter.is_none())
                .map(|p| p.attr)
                .ok_or_else(|| ScimError::invalid_value(format!("invalid sortBy '{text}'")))?;
            if crate::scim::path::resolve(&USER_RESOURCE, &by).is_err() {
                return Err(ScimError::invalid_value(format!(
                    "sortBy '{text}' is not an attribute of User"
                ))
                .into());
            }
            let descending = match req.sort_order.as_deref().map(str::trim) {
                None | Some("") => false,
                Some(o) if o.eq_ignore_ascii_case("ascending") => false,
                Some(o) if o.eq_ignore_ascii_case("descending") => true,
                Some(o) => {
                    return Err(ScimError::invalid_value(format!(
                        "sortOrder must be 'ascending' or 'descending', not '{o}'"
                    ))
                    .into());
                }
            };
            Some(Sort { by, descending })
        }
    };
    let settings = state.settings();
    let page = Page::new(
        req.start_index,
        req.count,
        settings.default_page_size,
        settings.max_results,
    );
    let query = UserQuery {
        filter,
        sort,
        offset: page.offset(),
        limit: page.count,
    };
    let (total, users) = state
        .store()
        .query_users(scope, &query)
        .await
        .map_err(|e| match e {
            StoreError::InvalidQuery(why) => {
                ApiError(ScimError::bad_request(ScimType::InvalidFilter, why))
            }
            other => other.into(),
        })?;
    let projection = Projection::new(
        &USER_RESOURCE,
        req.attributes.as_deref(),
        req.excluded_attributes.as_deref(),
    );
    let resources = users.iter().map(|u| render(base, u, &projection)).collect();
    Ok(scim_response(
        StatusCode::OK,
        &list_response(total, page, resources),
    ))
}

/// `GET /Users` with `filter`, `sortBy`, `sortOrder`, `startIndex`, `count`,
/// `attributes`, `excludedAttributes`.
pub async fn list(
    State(state): State<AppState>,
    TenantAdmin(scope): TenantAdmin,
    base: BaseUrl,
    params: QueryParams,
) -> Result<Response, ApiError> {
    run_list(&state, scope, &base, ListRequest::from_query(&params)?).await
}

/// `POST /Users/.search` (RFC 7644 §3.4.3).
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
    let doc = resource::normalize_with(&USER_RESOURCE, body, &mut quirks);
    super::record_quirks(&quirks);
    let doc = doc?;
    let replaced = state
        .store()
        .replace_user(
            scope,
            uuid,
            &UserWrite::from_doc(doc),
            if_match.required_version(),
        )
        .await
        .map_err(named(&id))?;
    let user = replaced.user;
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, &user, &projection(&params)),
        &etag(user.version),
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
        .delete_user(scope, uuid, if_match.required_version())
        .await
        .map_err(named(&id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PATCH /Users/{id}` (RFC 7644 §3.5.2): all operations or none.
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
    let ops = patch::parse_request(body, &mut quirks)?;
    let canonical_id = uuid.to_string();
    let result = state
        .store()
        .modify_user(scope, uuid, if_match.required_version(), |current| {
            patch::apply(
                &USER_RESOURCE,
                &canonical_id,
                &current.doc,
                &ops,
                &mut quirks,
            )
        })
        .await;
    super::record_quirks(&quirks);
    let user = match result {
        Ok(replaced) => replaced.user,
        Err(ModifyError::Store(e)) => return Err(named(&id)(e)),
        Err(ModifyError::Change(e)) => return Err(e.into()),
    };
    Ok(resource_response(
        StatusCode::OK,
        &render(&base, &user, &projection(&params)),
        &etag(user.version),
        None,
    ))
}
