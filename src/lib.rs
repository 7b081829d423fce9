//! scimd: a SCIM 2.0 service provider (RFC 7643 / RFC 7644).
//!
//! ```text
//! HTTP (axum) ──> auth ──> handler ──> scim core (pure) ──> store (sqlx)
//!    src/http        src/auth            src/scim            src/store
//! ```

pub mod admin;
pub mod auth;
pub mod config;
pub mod events;
pub mod http;
pub mod metrics;
pub mod requestlog;
pub mod scim;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod webhooks;

pub use http::listener::{ConnectionLimits, serve};
pub use http::{AppState, HttpSettings, app};
