//! Errors of scimd's own API (`/api/v1`): RFC 9457 problem details
//! (`application/problem+json`), where SCIM's routes answer SCIM errors.

use axum::extract::FromRequestParts;
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::auth::{self, AuthError};
use crate::store::{StoreError, TenantScope};

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
        let mut resp = (self.status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"scimd\""),
                );
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        // The same judgement as the SCIM edge: what a client may see, what
        // is logged.
        let scim = super::error::ApiError::from(e).0;
        Problem::new(
            StatusCode::from_u16(scim.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            scim.detail,
        )
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => Problem::new(
                StatusCode::UNAUTHORIZED,
                "Authentication failed: a valid bearer token is required",
            ),
            AuthError::Forbidden => Problem::new(
                StatusCode::FORBIDDEN,
                "The access key's role does not allow this operation",
            ),
            AuthError::Store(s) => s.into(),
        }
    }
}

/// The tenant of a verified access key whose role may read change events
/// (`tenant-admin` or `events-reader`).
pub struct EventsReader(pub TenantScope);

impl FromRequestParts<AppState> for EventsReader {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let scope = scope_of(parts, state, &[auth::TENANT_ADMIN, auth::EVENTS_READER]).await?;
        Ok(EventsReader(scope))
    }
}

/// The tenant of a verified `tenant-admin` key, for scimd's own API.
pub struct AdminApi(pub TenantScope);

impl FromRequestParts<AppState> for AdminApi {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        Ok(AdminApi(
            scope_of(parts, state, &[auth::TENANT_ADMIN]).await?,
        ))
    }
}

/// The tenant of the request's verified key, if its role is one of `roles`.
async fn scope_of(parts: &Parts, state: &AppState, roles: &[&str]) -> Result<TenantScope, Problem> {
    let principal = super::extract::authenticate(parts, state).await?;
    match roles.contains(&principal.role.as_str()) {
        true => Ok(principal.scope),
        false => Err(AuthError::Forbidden.into()),
    }
}

/// The answer to a path or method `/api/v1` does not have.
pub async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "No such endpoint")
}

/// The answer to a method an `/api/v1` path does not have.
pub async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed on this endpoint",
    )
}
