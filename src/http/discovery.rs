//! `/ServiceProviderConfig`, `/Schemas`, `/ResourceTypes` (RFC 7644 §4).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use super::extract::{BaseUrl, TenantAdmin};
use super::response::scim_response;
use crate::scim::ScimError;
use crate::scim::discovery::{self, Capabilities};
use crate::scim::list::{Page, list_response};
use crate::scim::schema::{ResourceType, Schema};

/// The resource types this server serves; discovery lists exactly these.
static SERVED: [&ResourceType; 2] = [
    &crate::scim::schema::USER_RESOURCE,
    &crate::scim::schema::GROUP_RESOURCE,
];

fn served() -> &'static [&'static ResourceType] {
    &SERVED
}

/// Every schema of a served resource type, core first, without repeats.
fn schemas() -> Vec<&'static Schema> {
    let mut out: Vec<&'static Schema> = Vec::new();
    for rt in served() {
        for s in std::iter::once(rt.schema).chain(rt.extensions.iter().map(|e| e.schema)) {
            if !out.iter().any(|o| o.id == s.id) {
                out.push(s);
            }
        }
    }
    out
}

fn list(resources: Vec<Value>) -> Response {
    let page = Page {
        start_index: 1,
        count: resources.len() as u64,
    };
    scim_response(
        StatusCode::OK,
        &list_response(resources.len() as u64, page, resources),
    )
}

pub async fn service_provider_config(
    State(state): State<AppState>,
    _: TenantAdmin,
    base: BaseUrl,
) -> Response {
    let caps = Capabilities {
        max_results: state.settings().max_results,
        default_page_size: state.settings().default_page_size,
        documentation_uri: None,
    };
    scim_response(
        StatusCode::OK,
        &discovery::service_provider_config(&caps, &base.0),
    )
}

pub async fn list_schemas(_: TenantAdmin, base: BaseUrl) -> Response {
    list(
        schemas()
            .into_iter()
            .map(|s| discovery::schema_json(s, &base.0))
            .collect(),
    )
}

pub async fn get_schema(
    _: TenantAdmin,
    base: BaseUrl,
    Path(urn): Path<String>,
) -> Result<Response, ApiError> {
    let schema = schemas()
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(&urn))
        .ok_or_else(|| ScimError::not_found(format!("Schema {urn} not found")))?;
    Ok(scim_response(
        StatusCode::OK,
        &discovery::schema_json(schema, &base.0),
    ))
}

pub async fn list_resource_types(_: TenantAdmin, base: BaseUrl) -> Response {
    list(
        served()
            .iter()
            .map(|rt| discovery::resource_type_json(rt, &base.0))
            .collect(),
    )
}

pub async fn get_resource_type(
    _: TenantAdmin,
    base: BaseUrl,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let rt = served()
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| ScimError::not_found(format!("ResourceType {name} not found")))?;
    Ok(scim_response(
        StatusCode::OK,
        &discovery::resource_type_json(rt, &base.0),
    ))
}

/// `POST /.search` across resource types (RFC 7644 §3.4.3): not offered;
/// `501` is the RFC's answer for an unsupported operation.
pub async fn root_search(_: TenantAdmin) -> ApiError {
    ApiError::from(ScimError::new(
        501,
        None,
        "Searching several resource types at once is not supported; use /Users/.search or /Groups/.search",
    ))
}
