//! The HTTP edge: routing, middleware and thin handlers that extract,
//! authorise, call the SCIM core and the store, and render.

pub mod cursor;
mod discovery;
pub mod error;
pub mod etag;
pub mod events;
pub mod extract;
mod groups;
mod health;
pub mod limits;
mod list;
pub mod listener;
pub mod metrics;
mod observe;
mod policy;
pub mod problem;
pub mod requests;
pub mod response;
mod users;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Level;

use crate::auth::{KeyVerifier, RateLimit, RateLimiter};
use crate::requestlog::RequestLog;
use crate::store::Store;
use cursor::CursorKey;

/// Where the SCIM API is mounted.
pub const SCIM_PREFIX: &str = "/scim/v2";
/// Where scimd's own API (change events) is mounted.
pub const API_PREFIX: &str = "/api/v1";

/// Settings the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Public origin (and optional path prefix) clients reach scimd at.
    pub public_url: Option<String>,
    pub default_page_size: u64,
    pub max_results: u64,
    pub body_limit: usize,
    /// Most members a group response lists (larger groups: `400 tooMany`
    /// unless members are excluded).
    pub max_group_members: u64,
    pub request_timeout: Duration,
    /// Whether writes record change events (`SCIMD_EVENTS`).
    pub events: bool,
    /// Whether webhooks may go to loopback, private and link-local
    /// addresses (`SCIMD_WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// Requests per access key (`SCIMD_RATE_LIMIT`, `…_BURST`); none: no limit.
    pub rate_limit: Option<RateLimit>,
    /// Which SCIM requests the provisioning log keeps (`SCIMD_REQUEST_LOG`).
    pub request_log: crate::requestlog::Mode,
    /// How long a soft-deleted resource stays revivable
    /// (`SCIMD_TOMBSTONE_RETENTION`).
    pub tombstone_retention: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            public_url: None,
            default_page_size: 100,
            max_results: 1000,
            body_limit: 1024 * 1024,
            max_group_members: 10_000,
            request_timeout: Duration::from_secs(30),
            events: true,
            webhook_allow_private: false,
            rate_limit: None,
            request_log: crate::requestlog::Mode::Errors,
            tombstone_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Shared, cheap-to-clone application state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    store: Store,
    verifier: KeyVerifier,
    settings: HttpSettings,
    cursor_key: CursorKey,
    rate_limiter: Option<RateLimiter>,
    request_log: RequestLog,
}

impl AppState {
    /// The state over an open, migrated store: reads (or, on a new
    /// database, creates) the deployment's cursor secret.
    /// `auth_cache_ttl` bounds how long a revoked key keeps working.
    pub async fn open(
        store: Store,
        settings: HttpSettings,
        auth_cache_ttl: Duration,
    ) -> Result<Self, crate::store::StoreError> {
        let secret = store.deployment_secret(cursor::SECRET_NAME).await?;
        let verifier = KeyVerifier::new(store.clone(), auth_cache_ttl);
        let request_log = RequestLog::start(store.clone(), settings.request_log);
        Ok(AppState(Arc::new(Inner {
            store,
            verifier,
            rate_limiter: settings.rate_limit.map(RateLimiter::new),
            request_log,
            settings,
            cursor_key: CursorKey::new(&secret),
        })))
    }
    pub fn store(&self) -> &Store {
        &self.0.store
    }
    pub fn verifier(&self) -> &KeyVerifier {
        &self.0.verifier
    }
    pub fn settings(&self) -> &HttpSettings {
        &self.0.settings
    }
    pub fn cursor_key(&self) -> &CursorKey {
        &self.0.cursor_key
    }
    pub fn rate_limiter(&self) -> Option<&RateLimiter> {
        self.0.rate_limiter.as_ref()
    }
    pub fn request_log(&self) -> &RequestLog {
        &self.0.request_log
    }
}

fn request_span<B>(req: &Request<B>) -> tracing::Span {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    // Path only: query strings carry filters, and filters carry personal data.
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id = %request_id,
        key_id = tracing::field::Empty,
        quirks = tracing::field::Empty,
    )
}

/// PATCHes carrying more values than this run the document engine off the
/// async worker (see [`cpu_bound`]).
const HEAVY_PATCH: usize = 256;

/// Runs CPU-heavy work (a PATCH of thousands of values) without stalling
/// the other requests on its async worker: with `heavy`, the worker's other
/// tasks move to another thread while it runs. Light work runs inline, as
/// the hand-off costs more than it saves there.
pub(crate) fn cpu_bound<T>(heavy: bool, work: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if heavy && multi_thread {
        tokio::task::block_in_place(work)
    } else {
        work()
    }
}

/// Names, on the request's span (its log line at `debug`, and any warning
/// it logs) and in its record (metrics, the provisioning log), the
/// compatibility rules that changed how the request was read
/// (`quirks=entra.bool_string,…`).
pub(crate) fn record_quirks(quirks: &crate::scim::compat::Quirks) {
    if !quirks.is_empty() {
        tracing::Span::current().record("quirks", tracing::field::display(quirks));
        observe::note_quirks(quirks);
    }
}

/// The endpoint names under `/scim/v2`, for case-insensitive matching.
const ENDPOINTS: &[&str] = &[
    "Users",
    "Groups",
    "Schemas",
    "ResourceTypes",
    "ServiceProviderConfig",
];

/// Tolerant URLs: a trailing slash is ignored (`/Users/` is `/Users`) and
/// endpoint names match case-insensitively (`/users` is `/Users`), as many
/// SCIM clients and test suites expect; ids and URNs are left untouched.
fn normalise_path<B>(mut req: Request<B>) -> Request<B> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix(SCIM_PREFIX) else {
        return req;
    };
    let trimmed = rest.trim_end_matches('/');
    let mut segments = trimmed.splitn(3, '/').skip(1);
    let endpoint = segments.next().unwrap_or("");
    let canonical = ENDPOINTS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(endpoint))
        .copied();
    if trimmed.len() == rest.len() && canonical.is_none_or(|c| c == endpoint) {
        return req;
    }
    let tail = segments.next().map(|t| format!("/{t}")).unwrap_or_default();
    let new_path = format!("{SCIM_PREFIX}/{}{tail}", canonical.unwrap_or(endpoint));
    let path_and_query = match req.uri().query() {
        Some(q) => format!("{new_path}?{q}"),
        None => new_path,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// A router being mounted under `prefix`, and the paths of its routes.
struct Mounted {
    router: Router<AppState>,
    prefix: &'static str,
    paths: Vec<String>,
}

impl Mounted {
    fn new(prefix: &'static str) -> Mounted {
        Mounted {
            router: Router::new(),
            prefix,
            paths: Vec::new(),
        }
    }

    fn route(mut self, path: &str, handlers: axum::routing::MethodRouter<AppState>) -> Mounted {
        self.paths.push(format!("{}{path}", self.prefix));
        self.router = self.router.route(path, handlers);
        self
    }
}

/// The contract (`GET /openapi.json`): OpenAPI 3.1, written by hand (SCIM
/// bodies are open JSON objects keyed by URNs, which derived schemas
/// describe poorly); a test holds it to [`mounted_paths`].
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Every route, and the paths they are mounted at.
fn routes() -> (Router<AppState>, Vec<String>) {
    let scim = Mounted::new(SCIM_PREFIX)
        .route("/Users", get(users::list).post(users::create))
        .route("/Users/.search", axum::routing::post(users::search))
        .route("/.search", axum::routing::post(discovery::root_search))
        .route("/Groups", get(groups::list).post(groups::create))
        .route("/Groups/.search", axum::routing::post(groups::search))
        .route(
            "/Groups/{id}",
            get(groups::get)
                .put(groups::replace)
                .patch(groups::patch)
                .delete(groups::delete),
        )
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config),
        )
        .route("/Schemas", get(discovery::list_schemas))
        .route("/Schemas/{urn}", get(discovery::get_schema))
        .route("/ResourceTypes", get(discovery::list_resource_types))
        .route("/ResourceTypes/{name}", get(discovery::get_resource_type))
        .route(
            "/Users/{id}",
            get(users::get)
                .put(users::replace)
                .patch(users::patch)
                .delete(users::delete),
        );
    let api = Mounted::new(API_PREFIX)
        .route("/events", get(events::list))
        .route("/requests", get(requests::list))
        .route("/clients", get(requests::clients))
        .route("/tenant", get(policy::get).patch(policy::patch))
        .route("/tenant/release", axum::routing::post(policy::release))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get).delete(webhooks::delete),
        )
        .route(
            "/webhooks/{id}/redeliver",
            axum::routing::post(webhooks::redeliver),
        )
        .route(
            "/webhooks/{id}/enable",
            axum::routing::post(webhooks::enable),
        );
    let root = Mounted::new("")
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi));
    let paths = [&scim.paths, &api.paths, &root.paths]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let api = api
        .router
        .fallback(problem::not_found)
        .method_not_allowed_fallback(problem::method_not_allowed);
    let router = root
        .router
        .nest(SCIM_PREFIX, scim.router)
        .nest(API_PREFIX, api);
    (router, paths)
}

/// The paths of every route the application mounts (`/scim/v2/Users/{id}`).
pub fn mounted_paths() -> Vec<String> {
    routes().1
}

/// The whole application, as `scimd serve` runs it and as tests drive it.
pub fn app(state: AppState) -> Router {
    let settings = state.settings().clone();
    let routes = routes()
        .0
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            observe::keep_route,
        ))
        .with_state(state.clone());
    // URL normalisation runs before routing, so the routes sit behind it.
    let normalised = tower::ServiceBuilder::new()
        .map_request(normalise_path::<axum::body::Body>)
        .service(routes);
    Router::new().fallback_service(normalised).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(axum::middleware::from_fn_with_state(
                state,
                observe::observe,
            ))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_request(())
                    // A line per request at `debug` only: at the default
                    // level (`info`) it cost every request a formatted
                    // line and a write to stderr (BENCHMARKS.md). Failures
                    // (5xx) still log at `error`; the provisioning log
                    // (`SCIMD_REQUEST_LOG`) is the per-request record.
                    .on_response(
                        tower_http::trace::DefaultOnResponse::new()
                            .level(Level::DEBUG)
                            .latency_unit(tower_http::LatencyUnit::Micros),
                    ),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(tower::util::MapResponseLayer::new(error::scimify_errors))
            .layer(CatchPanicLayer::new())
            .layer(limits::RequestLimitsLayer {
                body_limit: settings.body_limit,
            })
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                settings.request_timeout,
            ))
            .layer(DefaultBodyLimit::max(settings.body_limit)),
    )
}
