//! `GET /api/v1/requests`: a tenant's provisioning log, newest first
//! (tenant-admin keys).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::AppState;
use super::cursor::CursorKey;
use super::extract::QueryParams;
use super::problem::{AdminApi, Problem};
use crate::requestlog::{Query, StatusFilter, Stored};
use crate::scim::resource::format_datetime;
use crate::store::TenantScope;

/// The cursor kind byte of provisioning log cursors (see `cursor.rs`).
const REQUEST_CURSOR: u8 = b'r';
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_LIMIT: u32 = 1000;

fn encode_cursor(key: &CursorKey, scope: TenantScope, id: i64) -> String {
    key.seal_for(REQUEST_CURSOR, scope, &id.to_be_bytes())
}

fn decode_cursor(key: &CursorKey, scope: TenantScope, text: &str) -> Option<i64> {
    let payload = key.open_for(REQUEST_CURSOR, scope, text)?;
    Some(i64::from_be_bytes(payload.try_into().ok()?))
}

/// A record as the API shows it.
pub fn render(s: &Stored) -> Value {
    let r = &s.record;
    let mut v = json!({
        "time": format_datetime(r.at),
        "keyId": r.key_id,
        "userAgent": r.user_agent,
        "client": r.client,
        "method": r.method,
        "path": r.path,
        "resourceId": r.resource_id,
        "status": r.status,
        "scimType": r.scim_type,
        "durationMs": (r.duration_ms * 1000.0).round() / 1000.0,
        "requestId": r.request_id,
        "quirks": r.quirks,
    });
    if let Some(body) = &r.body {
        v["body"] = body.clone();
    }
    v
}

/// `GET /api/v1/clients`: per client family seen in the last 30 days, its
/// requests, the share that failed, and how often each compatibility rule
/// fired for it.
pub async fn clients(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
) -> Result<Response, Problem> {
    let since = (Utc::now() - chrono::TimeDelta::days(30)).date_naive();
    let rows = state.store().client_report(scope, since).await?;
    let mut clients: Vec<Value> = Vec::new();
    for (client, rule, requests, errors) in rows {
        if clients
            .last()
            .is_none_or(|c| c["client"] != client.as_str())
        {
            clients.push(json!({"client": client, "requests": 0, "errorRate": 0.0, "quirks": {}}));
        }
        let Some(entry) = clients.last_mut() else {
            continue;
        };
        if rule.is_empty() {
            entry["requests"] = requests.into();
            let rate = if requests > 0 {
                errors as f64 / requests as f64
            } else {
                0.0
            };
            entry["errorRate"] = ((rate * 10_000.0).round() / 10_000.0).into();
        } else {
            entry["quirks"][rule] = requests.into();
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json!({"clients": clients}).to_string(),
    )
        .into_response())
}

pub async fn list(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    params: QueryParams,
) -> Result<Response, Problem> {
    let key = state.cursor_key();
    let status = match params.get("status") {
        Some(s) => Some(StatusFilter::parse(s).ok_or_else(|| {
            Problem::bad_request("status must be a status code (404) or a class (4xx, 5xx)")
        })?),
        None => None,
    };
    let since = match params.get("since") {
        Some(s) => Some(
            DateTime::parse_from_rfc3339(s.trim())
                .map_err(|_| {
                    Problem::bad_request(
                        "since must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                    )
                })?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let limit = match params.get("limit") {
        Some(l) => l
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| Problem::bad_request(format!("limit must be 1 to {MAX_LIMIT}")))?,
        None => DEFAULT_LIMIT,
    };
    let before = match params.get("after") {
        Some(c) => Some(decode_cursor(key, scope, c).ok_or_else(|| {
            Problem::bad_request("after is not a cursor this server issued for this tenant")
        })?),
        None => None,
    };
    let query = Query {
        status,
        since,
        before,
        newer_than: None,
        limit: limit + 1,
    };
    let mut rows = state.store().read_requests(scope, &query).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut body = json!({"requests": rows.iter().map(render).collect::<Vec<_>>()});
    if let (true, Some(last)) = (more, rows.last()) {
        body["nextCursor"] = Value::String(encode_cursor(key, scope, last.id));
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
