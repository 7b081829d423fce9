//! Prometheus metrics (`/metrics` on `SCIMD_METRICS_BIND`, off by default).
//! Counted only when that listener is on: [`get`] is `None` otherwise, and
//! every place that counts does nothing. Label values are bounded sets
//! (route templates, methods, statuses, rule names, client families): never
//! an id, a tenant or a key.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/scim/v2/Users/{id}`), or `unmatched`.
    pub route: &'static str,
    pub method: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: &'static str,
    pub method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QuirkLabels {
    pub rule: &'static str,
    pub client: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    auth_cache: Family<ResultLabels, Counter>,
    quirks: Family<QuirkLabels, Counter>,
    rate_limited: Counter,
    db_acquire: Histogram,
    db_in_use: Gauge,
    db_idle: Gauge,
    db_max: Gauge,
    webhooks_pending: Gauge,
    webhooks_pending_max: Gauge,
    request_log_dropped: Counter,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// The metrics, when they are kept (the metrics listener is on).
pub fn get() -> Option<&'static Metrics> {
    METRICS.get()
}

/// Starts keeping metrics (once per process).
pub fn enable() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

fn latency_histogram() -> Histogram {
    // 0.5 ms … ~8 s
    Histogram::new(exponential_buckets(0.0005, 2.0, 15))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scimd");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response, by route template and method",
            latency.clone(),
        );
        let auth_cache = Family::<ResultLabels, Counter>::default();
        registry.register(
            "auth_cache_lookups",
            "Access key verifications, by whether the verified-key cache answered (hit) or the database (miss)",
            auth_cache.clone(),
        );
        let quirks = Family::<QuirkLabels, Counter>::default();
        registry.register(
            "compat_rules_fired",
            "Requests a compatibility rule changed the reading of, by rule and client family",
            quirks.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "rate_limited_requests",
            "Requests answered 429 because their access key was over its rate limit",
            rate_limited.clone(),
        );
        let db_acquire = Histogram::new(exponential_buckets(0.0001, 4.0, 10));
        registry.register(
            "db_acquire_wait_seconds",
            "Time a request waited for a database connection",
            db_acquire.clone(),
        );
        let db_in_use = Gauge::default();
        registry.register(
            "db_connections_in_use",
            "Database connections in use",
            db_in_use.clone(),
        );
        let db_idle = Gauge::default();
        registry.register(
            "db_connections_idle",
            "Open database connections not in use",
            db_idle.clone(),
        );
        let db_max = Gauge::default();
        registry.register(
            "db_connections_max",
            "Most database connections the pool opens (SCIMD_DB_POOL_SIZE)",
            db_max.clone(),
        );
        let webhooks_pending = Gauge::default();
        registry.register(
            "webhook_events_pending",
            "Change events not yet delivered, summed over enabled webhook subscriptions (each counted up to 100000)",
            webhooks_pending.clone(),
        );
        let webhooks_pending_max = Gauge::default();
        registry.register(
            "webhook_events_pending_max",
            "Change events not yet delivered to the enabled webhook subscription furthest behind (up to 100000)",
            webhooks_pending_max.clone(),
        );
        let request_log_dropped = Counter::default();
        registry.register(
            "request_log_dropped",
            "Provisioning log records dropped because the log's queue was full",
            request_log_dropped.clone(),
        );
        Metrics {
            request_log_dropped,
            registry,
            requests,
            latency,
            auth_cache,
            quirks,
            rate_limited,
            db_acquire,
            db_in_use,
            db_idle,
            db_max,
            webhooks_pending,
            webhooks_pending_max,
        }
    }

    pub fn request(&self, route: RouteLabels, status: u16, took: Duration) {
        self.latency
            .get_or_create(&route)
            .observe(took.as_secs_f64());
        let labels = RequestLabels {
            route: route.route,
            method: route.method,
            status,
        };
        self.requests.get_or_create(&labels).inc();
    }

    pub fn auth_cache(&self, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.auth_cache
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    pub fn quirk(&self, rule: &'static str, client: &'static str) {
        self.quirks
            .get_or_create(&QuirkLabels { rule, client })
            .inc();
    }

    pub fn request_log_dropped(&self) {
        self.request_log_dropped.inc();
    }

    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    pub fn db_acquired(&self, waited: Duration) {
        self.db_acquire.observe(waited.as_secs_f64());
    }

    /// The text exposition, with the database pool and webhook backlog as
    /// they are now.
    pub fn render(&self, pool: crate::store::PoolStats, pending: &[u64]) -> String {
        self.db_in_use.set(i64::from(pool.in_use));
        self.db_idle.set(i64::from(pool.idle));
        self.db_max.set(i64::from(pool.max));
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.webhooks_pending
            .set(clamp(pending.iter().sum::<u64>()));
        self.webhooks_pending_max
            .set(clamp(pending.iter().copied().max().unwrap_or(0)));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
