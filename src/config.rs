//! Configuration: every setting is a flag and an environment variable (a
//! `.env` file is read first when present). `.env.example` and README list them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::auth::RateLimit;
use crate::http::HttpSettings;
use crate::http::listener::ConnectionLimits;
use crate::store::PoolConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Settings shared by every subcommand.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: `sqlite://FILE` (created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://scimd.db",
        global = true,
        hide_env_values = true
    )]
    pub database_url: String,

    /// Address to listen on.
    #[arg(
        long,
        env = "SCIMD_BIND",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub bind: SocketAddr,

    /// Public base URL (origin, optionally with a path prefix) used in
    /// `meta.location`; derived from the request's Host header when unset.
    #[arg(long, env = "SCIMD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,

    /// Log format; the level comes from RUST_LOG (default `info`).
    #[arg(
        long,
        env = "SCIMD_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// Maximum number of database connections.
    #[arg(long, env = "SCIMD_DB_POOL_SIZE", default_value_t = 10, global = true)]
    pub db_pool_size: u32,

    /// How long a request waits for a free database connection before `503`.
    #[arg(long, env = "SCIMD_DB_ACQUIRE_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub db_acquire_timeout: Duration,

    /// Largest accepted request body, in bytes (larger: `413`).
    #[arg(long, env = "SCIMD_BODY_LIMIT", default_value_t = 1024 * 1024, global = true)]
    pub body_limit: usize,

    /// How long a connection may take to send a complete request head,
    /// counted from when scimd starts waiting for one: when it opens, and
    /// after each response on a kept-alive connection (so this is also the
    /// keep-alive idle timeout). Past it the connection is closed.
    #[arg(long, env = "SCIMD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration, global = true)]
    pub header_read_timeout: Duration,

    /// Most client connections served at once; more wait in the listen
    /// backlog until one closes.
    #[arg(
        long,
        env = "SCIMD_MAX_CONNECTIONS",
        default_value_t = 1024,
        global = true
    )]
    pub max_connections: usize,

    /// Time limit for one request (past it: `503`).
    #[arg(long, env = "SCIMD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,

    /// Page size of list responses when the client gives no `count`.
    #[arg(long, env = "SCIMD_PAGE_SIZE", default_value_t = 100, global = true)]
    pub page_size: u64,

    /// Largest page a client may ask for (`count` is clamped to it).
    #[arg(long, env = "SCIMD_MAX_RESULTS", default_value_t = 1000, global = true)]
    pub max_results: u64,

    /// Most members a group response lists; a larger group is answered with
    /// `400 tooMany` unless `excludedAttributes=members` is given.
    #[arg(
        long,
        env = "SCIMD_MAX_GROUP_MEMBERS",
        default_value_t = 10_000,
        global = true
    )]
    pub max_group_members: u64,

    /// How long a verified access key is trusted without asking the
    /// database again: a revoked key stops working within this time.
    #[arg(long, env = "SCIMD_AUTH_CACHE_TTL", default_value = "5s", value_parser = parse_duration, global = true)]
    pub auth_cache_ttl: Duration,

    /// Record a change event with every write of a User or Group
    /// (`/api/v1/events`). Off only to measure what events cost.
    #[arg(long, env = "SCIMD_EVENTS", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub events: bool,

    /// How long change events are kept; a cursor older than that is `410 Gone`.
    #[arg(long, env = "SCIMD_EVENT_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub event_retention: Duration,

    /// Let webhooks go to loopback, private and link-local addresses
    /// (refused by default: a bearer key must not open the operator's network).
    #[arg(long, env = "SCIMD_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub webhook_allow_private: bool,

    /// A webhook subscription failing continuously this long is disabled.
    #[arg(long, env = "SCIMD_WEBHOOK_DISABLE_AFTER", default_value = "3d", value_parser = parse_duration, global = true)]
    pub webhook_disable_after: Duration,

    /// How long a process may hold a webhook subscription without
    /// reporting progress; when it dies, another takes over after this.
    #[arg(long, env = "SCIMD_WEBHOOK_LEASE", default_value = "30s", value_parser = parse_duration, global = true)]
    pub webhook_lease: Duration,

    /// Which SCIM requests the provisioning log keeps: `off`, `errors`
    /// (answered 4xx/5xx) or `all`.
    #[arg(
        long,
        env = "SCIMD_REQUEST_LOG",
        value_enum,
        default_value = "errors",
        global = true
    )]
    pub request_log: crate::requestlog::Mode,

    /// How long provisioning log records are kept.
    #[arg(long, env = "SCIMD_REQUEST_LOG_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub request_log_retention: Duration,

    /// How long a soft-deleted user or group stays revivable before its
    /// tombstone is purged.
    #[arg(long, env = "SCIMD_TOMBSTONE_RETENTION", default_value = "30d", value_parser = parse_duration, global = true)]
    pub tombstone_retention: Duration,

    /// Address of the metrics listener (`GET /metrics`, Prometheus text
    /// format); off when unset.
    #[arg(long, env = "SCIMD_METRICS_BIND", global = true)]
    pub metrics_bind: Option<SocketAddr>,

    /// Requests per second each access key may make (a token bucket; off
    /// when unset). Off by default: Entra ID quarantines a provisioning job
    /// that sees many `429`s.
    #[arg(long, env = "SCIMD_RATE_LIMIT", value_parser = parse_rate, global = true)]
    pub rate_limit: Option<f64>,

    /// How many requests an access key may make at once before the rate
    /// applies (default: one second's worth, at least 1).
    #[arg(long, env = "SCIMD_RATE_LIMIT_BURST", value_parser = clap::value_parser!(u32).range(1..), global = true)]
    pub rate_limit_burst: Option<u32>,

    /// `<ProjectId>:<AccessKey>` to provision at start (containers, automation).
    #[arg(
        long,
        env = "SCIMD_BOOTSTRAP_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub bootstrap_token: Option<String>,
}

impl Config {
    pub fn pool(&self) -> PoolConfig {
        PoolConfig {
            max_connections: self.db_pool_size.max(1),
            acquire_timeout: self.db_acquire_timeout,
            // Within the request timeout, so that a request that times out
            // leaves no statement running behind it.
            statement_timeout: Some(self.request_timeout.mul_f64(0.9)),
        }
    }

    pub fn connections(&self) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections.max(1),
        }
    }

    pub fn webhooks(&self) -> crate::webhooks::WebhookSettings {
        crate::webhooks::WebhookSettings {
            allow_private: self.webhook_allow_private,
            disable_after: self.webhook_disable_after,
            lease: self.webhook_lease.max(Duration::from_secs(1)),
            ..Default::default()
        }
    }

    pub fn http(&self) -> HttpSettings {
        HttpSettings {
            public_url: self.public_url.clone(),
            default_page_size: self.page_size,
            max_results: self.max_results.max(1),
            body_limit: self.body_limit,
            max_group_members: self.max_group_members,
            request_timeout: self.request_timeout,
            events: self.events,
            webhook_allow_private: self.webhook_allow_private,
            request_log: self.request_log,
            tombstone_retention: self.tombstone_retention,
            rate_limit: self.rate_limit.map(|per_second| RateLimit {
                per_second,
                burst: self
                    .rate_limit_burst
                    .unwrap_or(per_second.ceil().clamp(1.0, f64::from(u32::MAX)) as u32),
            }),
        }
    }
}

/// Parses a rate in requests per second: a positive number.
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "'{text}' is not a rate (requests per second, e.g. 50 or 0.5)"
        )),
    }
}

/// Parses a duration such as `90d`, `12h`, `30m`, `45s` or `250ms` (a bare
/// number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (examples: 90d, 12h, 30m, 45s, 250ms)"))?;
    let secs = |mult: u64| {
        n.checked_mul(mult)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("'{text}' is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(format!(
            "'{text}': unknown unit '{unit}' (use d, h, m, s or ms)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("90d").unwrap(),
            Duration::from_secs(90 * 86_400)
        );
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("d").is_err());
        assert!(parse_duration("5w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
