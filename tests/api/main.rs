//! Black-box tests over real HTTP against real databases. All modules are in
//! one binary so that the suite links once.

mod helpers;

mod auth;
mod cli;
mod contract;
mod cursor;
mod discovery;
mod errors;
mod events;
mod faults;
mod groups;
mod hardening;
mod metrics;
mod patch;
mod pg_tls;
mod policy;
mod properties;
mod query;
mod requestlog;
mod users;
mod webhooks;
