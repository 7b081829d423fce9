//! `scimd serve`: connect, migrate, bootstrap, serve until SIGTERM/SIGINT.

use tokio::net::TcpListener;

use crate::admin::{self, Bootstrap};
use crate::config::Config;
use crate::http::{AppState, app};
use crate::store::Store;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connects to the configured database and applies pending migrations.
pub async fn open_store(config: &Config) -> Result<Store, BoxError> {
    let store = Store::connect(&config.database_url, &config.pool())
        .await
        .map_err(|e| format!("cannot open the database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot migrate the database: {e}"))?;
    Ok(store)
}

/// The URL a person on this machine would use to reach the server.
pub fn local_url(config: &Config) -> String {
    url_at(config, config.bind)
}

/// [`local_url`] for a server listening at `addr` (where `SCIMD_BIND`
/// names port 0, the port the system chose).
fn url_at(config: &Config, mut addr: std::net::SocketAddr) -> String {
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_owned();
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}")
}

pub async fn serve(config: Config) -> Result<(), BoxError> {
    let store = open_store(&config).await?;
    // Bound before the first start's key is made: a port in use must not
    // cost the only printing of its token. Connections wait in the backlog
    // until serving starts below.
    let listener = TcpListener::bind(config.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
    let bound = listener.local_addr()?;
    let url = url_at(&config, bound);
    match admin::bootstrap(&store, config.bootstrap_token.as_deref()).await? {
        Bootstrap::Existing => {}
        Bootstrap::Provisioned {
            project_id,
            created,
        } => {
            tracing::info!(%project_id, created, "bootstrap token provisioned");
        }
        Bootstrap::FirstStart(key) => {
            // Printed, not logged: the secret must not end up in log storage.
            println!(
                "scimd: first start. Created project {} with tenant '{}' ({}) and a tenant-admin access key.\n\
                 The token is shown only this once; keep it somewhere safe:\n\n  \
                 curl -H 'Authorization: Bearer {}' {}/scim/v2/Users\n",
                key.project_id, key.tenant.name, key.tenant.id, key.token, url
            );
        }
    }

    if config.public_url.is_none() && !config.bind.ip().is_loopback() {
        tracing::warn!(
            bind = %config.bind,
            "SCIMD_PUBLIC_URL is not set: Location and meta.location are built from each \
             request's Host header; set it to the URL clients use"
        );
    }
    let state = AppState::open(store.clone(), config.http(), config.auth_cache_ttl)
        .await
        .map_err(|e| format!("cannot read the deployment's secrets: {e}"))?;
    let retention = tokio::spawn(purge_expired(
        store.clone(),
        Retention {
            events: config.event_retention,
            requests: config.request_log_retention,
            tombstones: config.tombstone_retention,
        },
        config.events,
    ));
    let deliverer = crate::webhooks::Deliverer::new(
        store.clone(),
        state.cursor_key().clone(),
        &url,
        config.webhooks(),
    )
    .map_err(|e| format!("cannot start webhook delivery: {e}"))?;
    let delivery = tokio::spawn(deliverer.run());
    let metrics = match config.metrics_bind {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen for metrics on {addr}: {e}"))?;
            let addr = listener.local_addr()?;
            tracing::info!(bind = %addr, "metrics listening");
            let router = crate::http::metrics::router(store.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::warn!(error = %e, "metrics listener stopped");
                }
            }))
        }
        None => None,
    };
    tracing::info!(bind = %bound, database = store.backend(), "scimd listening");
    let request_log = state.request_log().clone();
    crate::http::listener::serve(
        listener,
        app(state),
        config.connections(),
        shutdown_signal(),
    )
    .await;
    // The last requests' log records, before the store closes.
    request_log.close(std::time::Duration::from_secs(5)).await;
    retention.abort();
    delivery.abort();
    if let Some(m) = metrics {
        m.abort();
    }
    store.close().await;
    tracing::info!("scimd stopped");
    Ok(())
}

/// How long each kind of record is kept.
struct Retention {
    events: std::time::Duration,
    requests: std::time::Duration,
    tombstones: std::time::Duration,
}

/// Removes change events, provisioning log records and tombstones past
/// their retention, now and then: every quarter of the shortest retention,
/// between a second and ten minutes. Purged tombstones are recorded as
/// events when `record` (events are on).
async fn purge_expired(store: Store, keep: Retention, record: bool) {
    let Retention {
        events,
        requests,
        tombstones,
    } = keep;
    let every = (events.min(requests).min(tombstones) / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(600),
    );
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let before = |age: std::time::Duration| {
        chrono::TimeDelta::from_std(age)
            .ok()
            .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
    };
    loop {
        ticks.tick().await;
        if let Some(cutoff) = before(events) {
            match store.purge_events(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "change events past their retention removed"),
                Err(e) => tracing::warn!(error = %e, "could not remove old change events"),
            }
        }
        if let Some(cutoff) = before(tombstones) {
            match store.purge_tombstones(cutoff, record).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "tombstones past their retention purged"),
                Err(e) => tracing::warn!(error = %e, "could not purge old tombstones"),
            }
        }
        if let Some(cutoff) = before(requests) {
            match store.purge_requests(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    removed = n,
                    "provisioning log records past their retention removed"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "could not remove old provisioning log records")
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM; in-flight requests then finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
