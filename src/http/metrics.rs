//! The metrics listener (`SCIMD_METRICS_BIND`): `GET /metrics` in the
//! Prometheus text format, apart from the API so that it need not face the
//! clients the API faces.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::store::Store;

/// The router of the metrics listener; keeps metrics from now on.
pub fn router(store: Store) -> Router {
    crate::metrics::enable();
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(store)
}

async fn scrape(State(store): State<Store>) -> Response {
    let Some(m) = crate::metrics::get() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let backlog = store.webhook_backlog().await.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "could not count undelivered webhook events");
        Vec::new()
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        m.render(store.pool_stats(), &backlog),
    )
        .into_response()
}
