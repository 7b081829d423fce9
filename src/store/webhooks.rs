//! Webhook subscriptions as stored: where to deliver a tenant's events,
//! how far delivery got, and its state. The delivery worker
//! (`src/webhooks`) leases a subscription before delivering it, so that
//! with several processes each event goes to each subscription once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::TenantScope;
use super::events::Position;
use crate::events::EventType;

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub tenant: TenantScope,
    pub id: Uuid,
    pub url: String,
    /// Only these types (all when empty).
    pub types: Vec<EventType>,
    /// `whsec_…`: the signing key.
    pub secret: String,
    pub enabled: bool,
    pub created: DateTime<Utc>,
    /// Delivered up to here.
    pub position: Position,
    /// Failed attempts since the last success.
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
}

/// The outcome of a delivery attempt, as recorded.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// Delivered up to `position`, from `from` (where the subscription
    /// stood: if an admin moved it meanwhile, nothing is recorded); the
    /// lease runs on until `lease_until`.
    Progress {
        from: Position,
        position: Position,
        lease_until: DateTime<Utc>,
    },
    /// Failed: try again at `retry_at`; `disable` ends the subscription's
    /// deliveries until it is enabled again. The lease ends.
    Failed {
        error: String,
        retry_at: DateTime<Utc>,
        disable: bool,
    },
    /// Nothing more to deliver now: the lease ends.
    Idle,
}

pub(super) fn types_of(names: &[String]) -> Vec<EventType> {
    names.iter().filter_map(|n| EventType::parse(n)).collect()
}

pub(super) fn type_names(types: &[EventType]) -> Vec<&'static str> {
    types.iter().map(|t| t.as_str()).collect()
}

/// A lease owner id for this process.
pub fn new_owner() -> Uuid {
    Uuid::now_v7()
}
