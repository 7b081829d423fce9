//! Black-box tests over real HTTP against real databases. All modules are in
//! one binary so that the suite links once.

mod helpers;

mod auth;
mod cli;
mod cursor;
mod discovery;
mod errors;
mod events;
mod faults;
mod groups;
mod hardening;
mod patch;
mod properties;
mod query;
mod users;
mod webhooks;
