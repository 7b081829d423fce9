//! `GET /api/v1/events`: a tenant's change events after a cursor, in commit
//! order, optionally held open until one arrives (long polling).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::AppState;
use super::cursor::CursorKey;
use super::extract::{BaseUrl, QueryParams};
use super::problem::{EventsReader, Problem};
use crate::events::EventType;
use crate::scim::projection::Projection;
use crate::scim::resource::{etag, format_datetime};
use crate::scim::schema::{GROUP_RESOURCE, USER_RESOURCE};
use crate::store::{
    EventQuery, EventResource, Position, StoredEvent, StoredGroup, StoredUser, TenantScope,
};

/// The cursor kind byte of event cursors (see `cursor.rs`).
const EVENT_CURSOR: u8 = b'e';
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 1000;
pub const MAX_WAIT: Duration = Duration::from_secs(30);
/// How often a waiting reader looks again for events of other processes
/// (its own process wakes it at once).
const POLL_EVERY: Duration = Duration::from_millis(200);

/// An event cursor: the tenant and the position, signed.
pub fn encode_cursor(key: &CursorKey, scope: TenantScope, at: Position) -> String {
    let mut payload = Vec::with_capacity(16);
    payload.extend_from_slice(&at.xid.to_be_bytes());
    payload.extend_from_slice(&at.seq.to_be_bytes());
    key.seal_for(EVENT_CURSOR, scope, &payload)
}

/// The position of a cursor scimd issued for this tenant; `None` otherwise.
pub fn decode_cursor(key: &CursorKey, scope: TenantScope, text: &str) -> Option<Position> {
    let payload = key.open_for(EVENT_CURSOR, scope, text)?;
    if payload.len() != 16 {
        return None;
    }
    let number = |at: usize| i64::from_be_bytes(payload[at..at + 8].try_into().unwrap_or_default());
    Some(Position {
        xid: number(0),
        seq: number(8),
    })
}

/// An event as the API shows it. `base` is the SCIM base URL, for the
/// `meta.location` and `$ref`s of `data`.
pub fn render_event(
    key: &CursorKey,
    scope: TenantScope,
    base: &BaseUrl,
    event: &StoredEvent,
) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), event.id.to_string().into());
    out.insert(
        "cursor".into(),
        encode_cursor(key, scope, event.position).into(),
    );
    out.insert("type".into(), event.kind.as_str().into());
    out.insert(
        "occurredAt".into(),
        format_datetime(event.occurred_at).into(),
    );
    out.insert("tenantId".into(), scope.tenant_id().to_string().into());
    out.insert("resourceType".into(), event.resource.as_str().into());
    out.insert("resourceId".into(), event.resource_id.to_string().into());
    out.insert("version".into(), etag(event.version).into());
    out.insert("actor".into(), event.actor.clone());
    if event.kind.has_changes() {
        out.insert("changedAttributes".into(), event.changed.clone().into());
    }
    if let Some(s) = &event.snapshot {
        let data = match event.resource {
            EventResource::Tenant => Value::Null,
            EventResource::User => super::users::render(
                base,
                StoredUser {
                    id: event.resource_id,
                    version: event.version,
                    created: s.created,
                    modified: s.modified,
                    doc: s.doc.clone(),
                    groups: s.groups.clone(),
                },
                &Projection::new(&USER_RESOURCE, None, None),
            ),
            EventResource::Group => super::groups::render(
                base,
                &StoredGroup {
                    id: event.resource_id,
                    version: event.version,
                    created: s.created,
                    modified: s.modified,
                    doc: s.doc.clone(),
                },
                None,
                &Projection::new(&GROUP_RESOURCE, None, None),
            ),
        };
        out.insert("data".into(), data);
    }
    if let Some((id, kind)) = event.member {
        out.insert(
            "member".into(),
            json!({"value": id.to_string(), "type": kind.as_str()}),
        );
    }
    Value::Object(out)
}

/// What a request asks for, read from its query.
struct EventsRequest {
    after: Option<Position>,
    limit: u64,
    types: Vec<EventType>,
    resource_id: Option<Uuid>,
    wait: Duration,
}

fn number(params: &QueryParams, name: &str, max: u64) -> Result<Option<u64>, Problem> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(Problem::bad_request(format!(
            "{name} must be a whole number from 0 to {max}, not '{text}'"
        ))),
    }
}

impl EventsRequest {
    fn parse(params: &QueryParams, key: &CursorKey, scope: TenantScope) -> Result<Self, Problem> {
        let after = match params.get("after") {
            None => None,
            Some(text) => Some(decode_cursor(key, scope, text).ok_or_else(|| {
                Problem::bad_request(format!(
                    "'{text}' is not an event cursor this server issued for this tenant"
                ))
            })?),
        };
        let mut types = Vec::new();
        for name in params.get("types").unwrap_or("").split(',') {
            let name = name.trim();
            if name.is_empty() {
                continue;
            }
            let kind = EventType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
                Problem::bad_request(format!(
                    "unknown event type '{name}' (known: {})",
                    known.join(", ")
                ))
            })?;
            types.push(kind);
        }
        let resource_id = match params.get("resourceId") {
            None => None,
            Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
                Problem::bad_request(format!("resourceId '{text}' is not a resource id"))
            })?),
        };
        Ok(EventsRequest {
            after,
            limit: number(params, "limit", MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT),
            types,
            resource_id,
            wait: Duration::from_secs(number(params, "wait", MAX_WAIT.as_secs())?.unwrap_or(0)),
        })
    }
}

/// `GET /api/v1/events?after=&limit=&types=&resourceId=&wait=`.
pub async fn list(
    State(state): State<AppState>,
    EventsReader(scope): EventsReader,
    base: BaseUrl,
    params: QueryParams,
) -> Result<Response, Problem> {
    let key = state.cursor_key();
    let req = EventsRequest::parse(&params, key, scope)?;
    let mut query = EventQuery {
        after: req.after.unwrap_or(Position::START),
        limit: req.limit,
        types: req.types,
        resource_id: req.resource_id,
        settle: true,
    };
    let store = state.store();
    // Answer before the request timeout would.
    let wait = req.wait.min(
        state
            .settings()
            .request_timeout
            .saturating_sub(Duration::from_secs(1)),
    );
    let deadline = tokio::time::Instant::now() + wait;
    let page = loop {
        // Listen before reading, so that a write between the read and the
        // wait still wakes this reader.
        let woken = store.events_notify().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let page = store.read_events(scope, &query).await?;
        let now = tokio::time::Instant::now();
        if !page.events.is_empty() || query.limit == 0 || now >= deadline {
            break page;
        }
        // The first read saw what committed before the request; a later
        // one that misses a commit still running sees it on the next.
        query.settle = false;
        let nap = POLL_EVERY.min(deadline - now);
        let _ = tokio::time::timeout(nap, woken).await;
    };
    if let Some(after) = req.after {
        let horizon = store.event_horizon(scope).await?;
        if after < horizon {
            return Err(Problem::new(
                StatusCode::GONE,
                "The cursor is older than the events this server keeps \
                 (SCIMD_EVENT_RETENTION): re-list the resources, then follow events \
                 from a cursor taken with limit=0",
            ));
        }
    }
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| render_event(key, scope, &base, e))
        .collect();
    let body = json!({
        "events": events,
        "nextCursor": encode_cursor(key, scope, page.next),
        "hasMore": page.has_more,
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_cursors_are_bound_to_their_tenant() {
        let key = CursorKey::new(b"secret");
        let (a, b) = (
            TenantScope::new(Uuid::now_v7()),
            TenantScope::new(Uuid::now_v7()),
        );
        let at = Position { xid: 1234, seq: 99 };
        let cursor = encode_cursor(&key, a, at);
        assert_eq!(decode_cursor(&key, a, &cursor), Some(at));
        assert_eq!(decode_cursor(&key, b, &cursor), None);
        let scim = key.encode(crate::store::query::Keyset::After(Uuid::now_v7()));
        assert_eq!(decode_cursor(&key, a, &scim), None, "a SCIM cursor");
    }
}
