//! What each request did, for metrics and the provisioning log: its route
//! template, status, duration, client family, the key and tenant that made
//! it, its body, and the compatibility rules that fired while it ran.
//! Handlers note what only they know into a task-local ([`note_quirks`],
//! [`note_key`], [`note_body`]); nothing is noted or counted unless metrics
//! or the log are on.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

use super::AppState;
use crate::metrics::{self, RouteLabels};
use crate::requestlog::{self, Count, Entry, Mode, Record};
use crate::scim::compat::{self, Quirks};

/// What the handlers of one request noted.
#[derive(Default)]
struct Seen {
    quirks: Vec<&'static str>,
    key: Option<(Uuid, String)>,
    body: Option<Bytes>,
}

tokio::task_local! {
    static SEEN: RefCell<Seen>;
}

/// Notes the rules that fired for the request being served (a no-op
/// outside an observed request).
pub(crate) fn note_quirks(quirks: &Quirks) {
    let _ = SEEN.try_with(|s| s.borrow_mut().quirks.extend_from_slice(quirks.names()));
}

/// Notes the tenant and key the request was authenticated as.
pub(crate) fn note_key(tenant: Uuid, key_id: &str) {
    let _ = SEEN.try_with(|s| s.borrow_mut().key = Some((tenant, key_id.to_owned())));
}

/// Notes the request's body (shared, not copied).
pub(crate) fn note_body(body: &Bytes) {
    let _ = SEEN.try_with(|s| s.borrow_mut().body = Some(body.clone()));
}

/// The `scimType` of an error response, for the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScimTypeOf(pub &'static str);

/// Route templates as `'static` label values: there are as many as routes.
fn intern(route: &str) -> &'static str {
    static ROUTES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut set = ROUTES.lock().unwrap_or_else(|e| e.into_inner());
    let set = set.get_or_insert_with(HashSet::new);
    if let Some(r) = set.get(route) {
        return r;
    }
    let leaked: &'static str = Box::leak(route.to_owned().into_boxed_str());
    set.insert(leaked);
    leaked
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `{id}` of `path` where `template` has one.
fn resource_id(template: &str, path: &str) -> Option<String> {
    template
        .split('/')
        .zip(path.split('/'))
        .find(|(t, _)| *t == "{id}")
        .map(|(_, p)| p.to_owned())
}

/// Whether anything observes requests: metrics, or a provisioning log
/// that is on.
fn observed(state: &AppState) -> bool {
    metrics::get().is_some() || state.request_log().mode() != Mode::Off
}

/// Inside routing: hands the matched route template out with the response.
pub(super) async fn keep_route(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if !observed(&state) {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(route) = route {
        resp.extensions_mut().insert(route);
    }
    resp
}

/// Around everything: counts the request and logs it once its response is
/// final.
pub(super) async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !observed(&state) {
        return next.run(req).await;
    }
    let metrics = metrics::get();
    let log = state.request_log();
    let start = Instant::now();
    let at = chrono::Utc::now();
    let method = method_label(req.method());
    // Shared, not copied: most requests are not logged.
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let request_id = req.headers().get("x-request-id").cloned();
    let uri = req.uri().clone();
    let text = |v: &Option<header::HeaderValue>| {
        v.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned)
    };
    let client = compat::client_family(user_agent.as_ref().and_then(|v| v.to_str().ok()));
    let (resp, seen) = SEEN
        .scope(RefCell::new(Seen::default()), async {
            let resp = next.run(req).await;
            (resp, SEEN.with(|s| s.take()))
        })
        .await;
    let took = start.elapsed();
    let status = resp.status().as_u16();
    let template = resp.extensions().get::<MatchedPath>().map(|p| p.as_str());
    if let Some(m) = metrics {
        let route = template.map_or("unmatched", intern);
        m.request(RouteLabels { route, method }, status, took);
        for rule in &seen.quirks {
            m.quirk(rule, client);
        }
    }
    // The log: SCIM requests of an authenticated key.
    let Some((tenant_id, key_id)) = seen.key else {
        return resp;
    };
    let path = uri.path();
    if log.mode() == Mode::Off || !path.starts_with(super::SCIM_PREFIX) {
        return resp;
    }
    let failed = status >= 400;
    let count = Count {
        tenant_id,
        day: at.date_naive(),
        client,
        failed,
        quirks: seen.quirks.clone(),
    };
    if !log.mode().keeps(status) {
        log.keep(Entry {
            count,
            record: None,
        });
        return resp;
    }
    let body = match (&seen.body, failed) {
        (Some(bytes), true) => Some(
            serde_json::from_slice(bytes)
                .map(|v| requestlog::mask(&v))
                .unwrap_or_else(|_| serde_json::Value::String("(not JSON)".into())),
        ),
        _ => None,
    };
    let record = Record {
        tenant_id,
        at,
        key_id,
        user_agent: text(&user_agent),
        client,
        method: method.to_owned(),
        resource_id: template.and_then(|t| resource_id(t, path)),
        path: template.unwrap_or(path).to_owned(),
        status,
        scim_type: resp
            .extensions()
            .get::<ScimTypeOf>()
            .map(|t| t.0.to_owned()),
        duration_ms: took.as_secs_f64() * 1000.0,
        request_id: text(&request_id),
        quirks: seen.quirks.iter().map(|q| (*q).to_owned()).collect(),
        body,
    };
    log.keep(Entry {
        count,
        record: Some(record),
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resource_id_is_the_path_segment_the_template_names() {
        assert_eq!(
            resource_id("/scim/v2/Users/{id}", "/scim/v2/Users/0192"),
            Some("0192".to_owned())
        );
        assert_eq!(resource_id("/scim/v2/Users", "/scim/v2/Users"), None);
    }
}
