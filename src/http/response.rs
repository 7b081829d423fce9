//! Building SCIM responses: `application/scim+json` bodies, `ETag`, `Location`.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub const SCIM_JSON: &str = "application/scim+json";

/// A JSON body with `Content-Type: application/scim+json`.
pub fn scim_response(status: StatusCode, body: &Value) -> Response {
    // Serialising a `Value` cannot fail.
    scim_bytes_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// [`scim_response`] for a body already serialised.
pub fn scim_bytes_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/scim+json; charset=utf-8"),
    );
    resp
}

/// A resource response with its `ETag` (and `Location`, for creates).
pub fn resource_response(
    status: StatusCode,
    body: &Value,
    etag: &str,
    location: Option<&str>,
) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    resource_bytes_response(status, bytes, etag, location)
}

/// [`resource_response`] for a body already serialised.
pub fn resource_bytes_response(
    status: StatusCode,
    bytes: Vec<u8>,
    etag: &str,
    location: Option<&str>,
) -> Response {
    let mut resp = scim_bytes_response(status, bytes);
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, v);
    }
    if let Some(Ok(v)) = location.map(HeaderValue::from_str) {
        headers.insert(header::LOCATION, v);
    }
    resp
}

/// A response without a body that carries the resource's `ETag` (`204`
/// after a PATCH, `304 Not Modified`).
pub fn empty_response(status: StatusCode, etag: &str) -> Response {
    let mut resp = status.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}
