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
    /// For a `429`: seconds until the client may try again.
    pub retry_after: Option<u64>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            retry_after: None,
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
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
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
            AuthError::RateLimited(wait) => {
                let secs = super::error::retry_after_secs(wait);
                Problem {
                    retry_after: Some(secs),
                    ..Problem::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("Too many requests with this access key; retry after {secs} s"),
                    )
                }
            }
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

/// A JSON answer of scimd's own API.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A JSON object body (read strictly, as SCIM bodies are); an empty body
/// is an empty object.
pub fn object(body: &[u8]) -> Result<serde_json::Map<String, serde_json::Value>, Problem> {
    if body.is_empty() {
        return Ok(serde_json::Map::new());
    }
    match crate::scim::json::parse(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(Problem::bad_request("the body must be a JSON object")),
        Err(e) => Err(Problem::bad_request(e.detail)),
    }
}

/// A verified `tenant-admin` key, for the parts of scimd's own API whose
/// changes are recorded as events: its tenant and who it is.
pub struct AdminActor(pub TenantScope, pub crate::events::Actor);

impl FromRequestParts<AppState> for AdminActor {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let principal = super::extract::authenticate(parts, state).await?;
        if principal.role != auth::TENANT_ADMIN {
            return Err(AuthError::Forbidden.into());
        }
        Ok(AdminActor(
            principal.scope,
            super::extract::actor_of(parts, principal.key_id),
        ))
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
