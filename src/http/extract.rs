//! Extractors whose rejections are SCIM errors: the JSON body, the
//! authenticated tenant, the public base URL and case-insensitive query
//! parameters.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, header, request::Parts};
use serde_json::Value;

use super::AppState;
use super::error::ApiError;
use crate::auth::{self, AuthError, Principal};
use crate::events::Actor;
use crate::scim::{ScimError, ScimType};
use crate::store::{TenantPolicy, TenantScope};

/// A JSON request body, read strictly ([`crate::scim::json`]: no member
/// named twice, no U+0000). `application/scim+json`, `application/json`,
/// `text/json` and a missing `Content-Type` are all read as JSON.
pub struct ScimJson(pub Value);

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(ct) = ct.to_str() else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((_, subtype)) = essence.split_once('/') else {
        return false;
    };
    subtype == "json" || subtype.ends_with("+json")
}

impl<S: Send + Sync> FromRequest<S> for ScimJson {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json_content_type(req.headers()) {
            let given = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?");
            return Err(ScimError::new(
                415,
                Some(ScimType::InvalidSyntax),
                format!(
                    "Unsupported Content-Type '{given}': send JSON with Content-Type: application/scim+json (or application/json)"
                ),
            )
            .into());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status().as_u16();
            if status == 413 {
                ScimError::new(413, None, "The request body is too large")
            } else {
                ScimError::invalid_syntax(format!("Could not read the request body: {rejection}"))
            }
        })?;
        super::observe::note_body(&bytes);
        Ok(ScimJson(crate::scim::json::parse(&bytes)?))
    }
}

/// The tenant of a verified `tenant-admin` access key, who is writing as
/// change events name them (when events are recorded), and the tenant's
/// deprovisioning policy. A paused tenant's writes stop here.
pub struct TenantAdmin(pub TenantScope, pub Option<Actor>, pub TenantPolicy);

impl FromRequestParts<AppState> for TenantAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = authenticate(parts, state).await?;
        if principal.role != auth::TENANT_ADMIN {
            return Err(AuthError::Forbidden.into());
        }
        if principal.policy.paused && is_write(parts) {
            return Err(super::policy::paused());
        }
        let actor = state
            .settings()
            .events
            .then(|| actor_of(parts, principal.key_id));
        Ok(TenantAdmin(principal.scope, actor, principal.policy))
    }
}

/// Whether the request changes resources: every SCIM request but reads
/// and searches (`POST …/.search` reads).
fn is_write(parts: &Parts) -> bool {
    use axum::http::Method;
    match parts.method {
        Method::GET | Method::HEAD | Method::OPTIONS => false,
        Method::POST => !parts.uri.path().ends_with("/.search"),
        _ => true,
    }
}

/// Who is writing, as change events name them: the key, the request id
/// and the client.
pub(super) fn actor_of(parts: &Parts, key_id: String) -> Actor {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    Actor {
        key_id,
        request_id: header("x-request-id"),
        user_agent: header("user-agent"),
    }
}

/// The verified key of the request's bearer token (named on its log line);
/// every route checks the role it needs itself.
pub(super) async fn authenticate(parts: &Parts, state: &AppState) -> Result<Principal, AuthError> {
    let creds = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::parse_authorization)
        .ok_or(AuthError::Unauthenticated)?;
    let principal = state.verifier().verify(&creds).await?;
    tracing::Span::current().record("key_id", principal.key_id.as_str());
    super::observe::note_key(principal.scope.tenant_id(), &principal.key_id);
    if let Some(limiter) = state.rate_limiter() {
        limiter.check(&principal.key_id).map_err(|wait| {
            if let Some(m) = crate::metrics::get() {
                m.rate_limited();
            }
            AuthError::RateLimited(wait)
        })?;
    }
    Ok(principal)
}

/// The base URL of the SCIM API as clients reach it (no trailing slash), for
/// `meta.location` and `Location`: `SCIMD_PUBLIC_URL` + `/scim/v2` when set,
/// else derived from the request's `Host` (and `X-Forwarded-Proto`).
pub struct BaseUrl(pub String);

impl FromRequestParts<AppState> for BaseUrl {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let origin = match state.settings().public_url.as_deref() {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let host = parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .or_else(|| parts.uri.authority().map(|a| a.as_str()))
                    .unwrap_or("localhost");
                if !is_host_and_port(host) {
                    return Err(ScimError::invalid_value(
                        "the Host header must be a host name or address with an optional port",
                    )
                    .into());
                }
                let proto = parts
                    .headers
                    .get("x-forwarded-proto")
                    .and_then(|h| h.to_str().ok())
                    .filter(|p| *p == "https" || *p == "http")
                    .unwrap_or("http");
                format!("{proto}://{host}")
            }
        };
        Ok(BaseUrl(format!("{origin}{}", super::SCIM_PREFIX)))
    }
}

/// `host[:port]`: a DNS name or IPv4 address (letters, digits, `-`, `.`) or
/// a bracketed IPv6 address, and a port of digits. Anything else (a path, a
/// query, user info) would flow into `Location` and `meta.location`.
fn is_host_and_port(text: &str) -> bool {
    let (host_ok, port) = match text.strip_prefix('[') {
        Some(v6) => {
            let Some((addr, rest)) = v6.split_once(']') else {
                return false;
            };
            let port = match rest {
                "" => None,
                _ => match rest.strip_prefix(':') {
                    Some(p) => Some(p),
                    None => return false,
                },
            };
            (addr.parse::<std::net::Ipv6Addr>().is_ok(), port)
        }
        None => {
            let (host, port) = match text.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            };
            let ok = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            (ok, port)
        }
    };
    host_ok
        && port.is_none_or(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        })
}

/// Query parameters with names matched case-insensitively (clients send
/// `startindex`, `Filter`, …). Unknown parameters are simply never asked for;
/// a value holding U+0000 (a filter literal, say) is `400 invalidValue`.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// An integer parameter; present but not an integer is a `400`.
    pub fn get_i64(&self, name: &str) -> Result<Option<i64>, ScimError> {
        self.get(name)
            .map(|v| {
                v.trim().parse::<i64>().map_err(|_| {
                    ScimError::invalid_value(format!("query parameter '{name}' must be an integer"))
                })
            })
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map_err(|e| ScimError::invalid_syntax(format!("malformed query string: {e}")))?;
        for (name, value) in &pairs {
            crate::scim::json::check_text(&format!("query parameter '{name}'"), value)?;
        }
        Ok(QueryParams(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "scim.example.com:8443",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(is_host_and_port(ok), "{ok}");
        }
        for bad in [
            "evil.example/phish?x=",
            "a@b",
            "",
            "h:99999",
            "h:8x",
            "[::1",
            "[zz]:1",
            "a b",
            "h:1:2",
        ] {
            assert!(!is_host_and_port(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        assert!(is_json_content_type(&h));
        for ok in [
            "application/scim+json",
            "application/json; charset=utf-8",
            "text/json",
            "Application/JSON",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ok));
            assert!(is_json_content_type(&h), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/xml",
            "application/x-www-form-urlencoded",
            "json",
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(bad));
            assert!(!is_json_content_type(&h), "{bad}");
        }
    }
}
