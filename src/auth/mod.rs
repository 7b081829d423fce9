//! Authentication and authorisation: parse the bearer token, verify the
//! access key, and yield the [`TenantScope`](crate::store::TenantScope) every
//! store call takes.

pub mod rate;
pub mod token;
pub mod verifier;

pub use rate::{RateLimit, RateLimiter};
pub use token::{Credentials, parse_authorization};
pub use verifier::{AuthError, KeyVerifier, Principal};

/// The only role that may use the SCIM API.
pub const TENANT_ADMIN: &str = "tenant-admin";

/// A role that may read change events (`/api/v1/events`) and nothing else:
/// the key an application gets.
pub const EVENTS_READER: &str = "events-reader";

/// Roles are lower-case identifiers (`[a-z0-9-]`, 1–64 characters); other
/// services of a project may define their own, but only [`TENANT_ADMIN`]
/// reaches SCIM.
pub fn is_valid_role(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
