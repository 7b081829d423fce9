//! The one error type handlers return, and its mapping to SCIM Error
//! responses. Internal failures are logged here and never shown to clients.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthError;
use crate::scim::ScimError;
use crate::store::StoreError;

use super::response::scim_response;

/// Seconds a client is asked to wait after a `503`.
const RETRY_AFTER_SECS: &str = "1";

/// A SCIM error, and for a `429` how many seconds until the client may
/// try again (`Retry-After`).
#[derive(Debug)]
pub struct ApiError(pub ScimError, pub Option<u64>);

impl From<ScimError> for ApiError {
    fn from(e: ScimError) -> Self {
        ApiError(e, None)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(match e {
            StoreError::NotFound => ScimError::not_found("Resource not found"),
            StoreError::Conflict(field) => {
                ScimError::uniqueness(format!("{field} is already in use in this tenant"))
            }
            StoreError::UnknownMember(id) => {
                ScimError::invalid_value(format!("member {id} does not exist in this tenant"))
            }
            StoreError::NoTarget(why) => {
                ScimError::bad_request(crate::scim::ScimType::NoTarget, why)
            }
            StoreError::VersionMismatch => ScimError::precondition_failed(
                "The resource has changed: its version no longer matches If-Match",
            ),
            StoreError::TimedOut => ScimError::new(
                503,
                None,
                "The request took too long and was stopped; retry later, or narrow the filter",
            ),
            StoreError::Contention => ScimError::new(
                503,
                None,
                "Concurrent changes to the same resources kept conflicting; retry",
            ),
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                ScimError::new(
                    503,
                    None,
                    "The service is temporarily unavailable; retry later",
                )
            }
            other => {
                tracing::error!(error = %other, "internal error");
                ScimError::new(500, None, "Internal server error")
            }
        })
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => ApiError::from(ScimError::new(
                401,
                None,
                "Authentication failed: a valid bearer token is required",
            )),
            AuthError::Forbidden => ApiError::from(ScimError::new(
                403,
                None,
                "The access key is not allowed to use the SCIM API (tenant-admin role required)",
            )),
            AuthError::RateLimited(wait) => {
                let secs = retry_after_secs(wait);
                ApiError(
                    ScimError::new(
                        429,
                        None,
                        format!("Too many requests with this access key; retry after {secs} s"),
                    ),
                    Some(secs),
                )
            }
            AuthError::Store(s) => s.into(),
        }
    }
}

/// Whole seconds a client waits before it may try again: at least one.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = error_response(&self.0);
        if let Some(secs) = self.1 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Renders a SCIM error with the headers its status calls for.
pub fn error_response(err: &ScimError) -> Response {
    let status = StatusCode::from_u16(err.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = scim_response(status, &err.to_body());
    if let Some(t) = err.scim_type {
        resp.extensions_mut()
            .insert(super::observe::ScimTypeOf(t.as_str()));
    }
    let headers = resp.headers_mut();
    match status {
        StatusCode::UNAUTHORIZED => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scimd\""),
            );
        }
        StatusCode::SERVICE_UNAVAILABLE => {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        _ => {}
    }
    resp
}

/// Safety net for responses produced outside the handlers (routing 404/405,
/// timeouts, framework rejections, caught panics): any error response that is
/// not already a SCIM error becomes one, keeping its status and headers.
pub fn scimify_errors<B>(resp: axum::http::Response<B>) -> Response
where
    B: axum::body::HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let status = resp.status();
    let is_scim = resp.headers().get(header::CONTENT_TYPE).is_some_and(|ct| {
        let ct = ct.as_bytes();
        ct.starts_with(super::response::SCIM_JSON.as_bytes())
            || ct.starts_with(super::problem::PROBLEM_JSON.as_bytes())
    });
    if !(status.is_client_error() || status.is_server_error()) || is_scim {
        return resp.map(Body::new);
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "No such endpoint".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "Method not allowed on this endpoint".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large".to_owned(),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            "The request did not complete in time; retry later".to_owned()
        }
        StatusCode::INTERNAL_SERVER_ERROR => "Internal server error".to_owned(),
        _ => status.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let (mut parts, _) = resp.into_parts();
    let fresh = error_response(&ScimError::new(status.as_u16(), None, detail));
    let (fresh_parts, body) = fresh.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in fresh_parts.headers.iter() {
        parts.headers.insert(name.clone(), value.clone());
    }
    Response::from_parts(parts, Body::new(body))
}
