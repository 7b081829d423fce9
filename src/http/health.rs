//! Liveness and readiness probes (no authentication).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::AppState;
use super::response::scim_response;

/// `GET /healthz`: the process is up and serving.
pub async fn healthz() -> Response {
    scim_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.store().ping().await {
        Ok(()) => scim_response(
            StatusCode::OK,
            &json!({"status": "ready", "database": state.store().backend()}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            let mut resp = scim_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "unavailable", "database": state.store().backend()}),
            );
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            resp
        }
    }
}
