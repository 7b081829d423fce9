//! `/api/v1/webhooks`: a tenant's webhook subscriptions (tenant-admin keys).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::events::decode_cursor;
use super::problem::{AdminApi, Problem, json_response, object};
use crate::events::EventType;
use crate::scim::resource::format_datetime;
use crate::store::webhooks::Webhook;
use crate::store::{EventQuery, Position, TenantScope};
use crate::webhooks::{address, sign};

fn not_found(id: &str) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        format!("no webhook subscription {id}"),
    )
}

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

/// A subscription as the API shows it (never its secret).
fn view(w: &Webhook) -> Map<String, Value> {
    let time =
        |t: Option<chrono::DateTime<Utc>>| t.map_or(Value::Null, |t| format_datetime(t).into());
    let mut out = Map::new();
    out.insert("id".into(), w.id.to_string().into());
    out.insert("url".into(), w.url.clone().into());
    out.insert(
        "types".into(),
        w.types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .into(),
    );
    out.insert(
        "status".into(),
        if w.enabled { "enabled" } else { "disabled" }.into(),
    );
    out.insert("createdAt".into(), format_datetime(w.created).into());
    out.insert("lastSuccessAt".into(), time(w.last_success_at));
    out.insert(
        "lastError".into(),
        w.last_error.clone().map_or(Value::Null, Value::from),
    );
    out.insert("lastErrorAt".into(), time(w.last_error_at));
    out.insert("failingSince".into(), time(w.failing_since));
    out
}

/// The view with the delivery state that costs a query: events pending.
async fn detailed(state: &AppState, w: &Webhook) -> Result<Value, Problem> {
    let pending = state
        .store()
        .count_events(
            w.tenant,
            &EventQuery {
                after: w.position,
                limit: 0,
                types: w.types.clone(),
                resource_id: None,
                settle: false,
            },
        )
        .await?;
    let mut out = view(w);
    out.insert("eventsPending".into(), pending.into());
    if w.enabled && w.attempts > 0 {
        out.insert(
            "nextAttemptAt".into(),
            format_datetime(w.next_attempt_at).into(),
        );
    }
    Ok(Value::Object(out))
}

async fn one(state: &AppState, scope: TenantScope, id: &str) -> Result<Webhook, Problem> {
    let uuid = parse_id(id)?;
    state
        .store()
        .webhooks(scope, Some(uuid))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(id))
}

/// `POST /api/v1/webhooks {"url": "https://…", "types": [...]}`: `201` with
/// the subscription and, only here, its `secret`. Deliveries start with
/// the events after this moment.
pub async fn create(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object(&body)?;
    let url = body.get("url").and_then(Value::as_str).ok_or_else(|| {
        Problem::bad_request("url is required: the https:// address to deliver to")
    })?;
    let url = address::check_url(url, state.settings().webhook_allow_private)
        .await
        .map_err(|e| Problem::bad_request(e.to_string()))?;
    let mut types = Vec::new();
    match body.get("types") {
        None | Some(Value::Null) => {}
        Some(Value::Array(names)) => {
            for name in names {
                let kind = name
                    .as_str()
                    .and_then(EventType::parse)
                    .ok_or_else(|| Problem::bad_request(format!("unknown event type {name}")))?;
                types.push(kind);
            }
        }
        Some(_) => return Err(Problem::bad_request("types must be a list of event types")),
    }
    let head = state
        .store()
        .read_events(
            scope,
            &EventQuery {
                after: Position::START,
                limit: 0,
                types: Vec::new(),
                resource_id: None,
                settle: true,
            },
        )
        .await?
        .next;
    let secret = sign::new_secret().map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no randomness: {e}"),
        )
    })?;
    let now = crate::store::now();
    let hook = Webhook {
        tenant: scope,
        id: Uuid::now_v7(),
        url: url.to_string(),
        types,
        secret: secret.clone(),
        enabled: true,
        created: now,
        position: head,
        attempts: 0,
        next_attempt_at: now,
        last_success_at: None,
        last_error: None,
        last_error_at: None,
        failing_since: None,
    };
    state.store().create_webhook(&hook).await?;
    let mut out = view(&hook);
    out.insert("secret".into(), secret.into());
    let mut resp = json_response(StatusCode::CREATED, &Value::Object(out));
    if let Ok(location) = format!("{}/webhooks/{}", super::API_PREFIX, hook.id).parse() {
        resp.headers_mut().insert(header::LOCATION, location);
    }
    Ok(resp)
}

/// `GET /api/v1/webhooks`.
pub async fn list(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
) -> Result<Response, Problem> {
    let hooks = state.store().webhooks(scope, None).await?;
    let views: Vec<Value> = hooks.iter().map(|w| Value::Object(view(w))).collect();
    Ok(json_response(StatusCode::OK, &json!({ "webhooks": views })))
}

/// `GET /api/v1/webhooks/{id}`: with its delivery state.
pub async fn get(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let hook = one(&state, scope, &id).await?;
    Ok(json_response(
        StatusCode::OK,
        &detailed(&state, &hook).await?,
    ))
}

/// `DELETE /api/v1/webhooks/{id}`.
pub async fn delete(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    match state.store().delete_webhook(scope, parse_id(&id)?).await? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(not_found(&id)),
    }
}

/// `POST /api/v1/webhooks/{id}/redeliver {"after": "<cursor>"}`: delivers
/// again every event after the cursor (and enables the subscription).
pub async fn redeliver(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = object(&body)?;
    let after = body
        .get("after")
        .and_then(Value::as_str)
        .ok_or_else(|| Problem::bad_request("after is required: an event cursor"))?;
    let from = decode_cursor(state.cursor_key(), scope, after).ok_or_else(|| {
        Problem::bad_request(format!(
            "'{after}' is not an event cursor this server issued for this tenant"
        ))
    })?;
    if from < state.store().event_horizon(scope).await? {
        return Err(Problem::new(
            StatusCode::GONE,
            "The cursor is older than the events this server keeps (SCIMD_EVENT_RETENTION)",
        ));
    }
    restart(&state, scope, &id, Some(from)).await
}

/// `POST /api/v1/webhooks/{id}/enable`: delivers again, from where it stopped.
pub async fn enable(
    State(state): State<AppState>,
    AdminApi(scope): AdminApi,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    restart(&state, scope, &id, None).await
}

async fn restart(
    state: &AppState,
    scope: TenantScope,
    id: &str,
    from: Option<Position>,
) -> Result<Response, Problem> {
    if !state
        .store()
        .restart_webhook(scope, parse_id(id)?, from)
        .await?
    {
        return Err(not_found(id));
    }
    let hook = one(state, scope, id).await?;
    Ok(json_response(
        StatusCode::OK,
        &detailed(state, &hook).await?,
    ))
}
