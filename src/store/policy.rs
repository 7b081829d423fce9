//! A tenant's deprovisioning policy: what `DELETE` does (`delete_mode`),
//! the deletion circuit breaker (`deletion_threshold`, held deletions) and
//! the pause switch. Read with the access key (so a request costs no extra
//! round trip; a change made by another process applies within the key
//! cache's lifetime), changed and counted here, in one transaction each.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Result, Store, Tenant};

/// What `DELETE` does to a resource.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeleteMode {
    /// Gone for good (the default).
    #[default]
    Hard,
    /// Gone to SCIM, kept as a tombstone that a later create can revive.
    Soft,
}

impl DeleteMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeleteMode::Hard => "hard",
            DeleteMode::Soft => "soft",
        }
    }

    pub fn parse(text: &str) -> std::result::Result<DeleteMode, String> {
        match text {
            "hard" => Ok(DeleteMode::Hard),
            "soft" => Ok(DeleteMode::Soft),
            other => Err(format!(
                "delete mode '{other}' is neither 'hard' nor 'soft'"
            )),
        }
    }
}

/// At most `limit` deletes and deactivations within `window_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionThreshold {
    pub limit: u32,
    pub window_secs: i64,
}

const UNITS: [(char, i64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl DeletionThreshold {
    /// `N/WINDOW`: `50/1h`, `10/30m`, `200/1d`, `5/90s`.
    pub fn parse(text: &str) -> std::result::Result<DeletionThreshold, String> {
        let bad = || {
            format!(
                "deletion threshold '{text}' is not N/WINDOW (for example 50/1h; window units s, m, h, d)"
            )
        };
        let (n, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = n.trim().parse().map_err(|_| bad())?;
        let window = window.trim();
        let unit = window.chars().last().ok_or_else(bad)?;
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(bad)?;
        let count: i64 = window[..window.len() - 1].parse().map_err(|_| bad())?;
        let window_secs = count.checked_mul(scale).ok_or_else(bad)?;
        if limit == 0 || window_secs <= 0 || window_secs > 366 * 86_400 {
            return Err(format!(
                "deletion threshold '{text}' needs N ≥ 1 and a window between 1s and 366d"
            ));
        }
        Ok(DeletionThreshold { limit, window_secs })
    }
}

impl std::fmt::Display for DeletionThreshold {
    /// In the largest unit that divides the window: `50/1h`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, s)| self.window_secs % s == 0)
            .copied()
            .unwrap_or(('s', 1));
        write!(f, "{}/{}{unit}", self.limit, self.window_secs / scale)
    }
}

/// What every request of a tenant's keys needs to know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantPolicy {
    pub delete_mode: DeleteMode,
    pub deletion_threshold: Option<DeletionThreshold>,
    pub paused: bool,
    /// When the breaker tripped; deletes and deactivations wait until an
    /// admin releases them.
    pub held_since: Option<DateTime<Utc>>,
}

/// A tenant with its policy, as `GET /api/v1/tenant` and `scimd admin
/// tenant show` present it.
#[derive(Debug, Clone)]
pub struct TenantState {
    pub tenant: Tenant,
    pub policy: TenantPolicy,
    /// Deletes and deactivations refused since the breaker tripped.
    pub deletions_held: i64,
    pub version: i64,
}

impl TenantState {
    pub fn to_json(&self) -> Value {
        let p = &self.policy;
        let mut out = Map::new();
        out.insert("id".into(), self.tenant.id.to_string().into());
        out.insert("name".into(), self.tenant.name.clone().into());
        out.insert("deleteMode".into(), p.delete_mode.as_str().into());
        out.insert(
            "deletionThreshold".into(),
            p.deletion_threshold
                .map_or(Value::Null, |t| t.to_string().into()),
        );
        out.insert("paused".into(), p.paused.into());
        out.insert("deletionsHeld".into(), self.deletions_held.into());
        out.insert(
            "heldSince".into(),
            p.held_since.map_or(Value::Null, |t| {
                crate::scim::resource::format_datetime(t).into()
            }),
        );
        Value::Object(out)
    }
}

/// A change of a tenant's policy: each field given is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyChange {
    pub delete_mode: Option<DeleteMode>,
    pub deletion_threshold: Option<Option<DeletionThreshold>>,
    pub paused: Option<bool>,
}

impl PolicyChange {
    /// The policy after the change.
    pub fn applied_to(&self, p: &TenantPolicy) -> TenantPolicy {
        TenantPolicy {
            delete_mode: self.delete_mode.unwrap_or(p.delete_mode),
            deletion_threshold: self.deletion_threshold.unwrap_or(p.deletion_threshold),
            paused: self.paused.unwrap_or(p.paused),
            held_since: p.held_since,
        }
    }

    /// The attributes (as the API names them) the change moves.
    pub fn changed(&self, p: &TenantPolicy) -> Vec<String> {
        let after = self.applied_to(p);
        let mut out = Vec::new();
        if after.delete_mode != p.delete_mode {
            out.push("deleteMode".to_owned());
        }
        if after.deletion_threshold != p.deletion_threshold {
            out.push("deletionThreshold".to_owned());
        }
        if after.paused != p.paused {
            out.push("paused".to_owned());
        }
        out
    }
}

/// What the breaker says to one delete or deactivation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Counted; go ahead.
    Allowed,
    /// Refused: the threshold tripped, now (`tripped`) or before.
    Held { tripped: bool },
}

/// What one delete or deactivation does to the breaker, given the policy
/// (read under the tenant's lock) and how many it let through within the
/// window: the same decision on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// No threshold: nothing to count.
    Uncounted,
    /// Under the threshold: count it and go ahead.
    Count,
    /// This one is past the threshold: trip.
    Trip,
    /// Tripped before: held, and counted as held.
    StillHeld,
}

impl Verdict {
    pub(super) fn of(policy: &TenantPolicy, counted: i64) -> Verdict {
        match (policy.held_since, policy.deletion_threshold) {
            (Some(_), _) => Verdict::StillHeld,
            (None, None) => Verdict::Uncounted,
            (None, Some(t)) if counted >= i64::from(t.limit) => Verdict::Trip,
            (None, Some(_)) => Verdict::Count,
        }
    }

    pub(super) fn deletion(self) -> Deletion {
        match self {
            Verdict::Uncounted | Verdict::Count => Deletion::Allowed,
            Verdict::Trip => Deletion::Held { tripped: true },
            Verdict::StillHeld => Deletion::Held { tripped: false },
        }
    }
}

impl Store {
    /// The tenant and its policy.
    pub async fn tenant_state(&self, tenant: Uuid) -> Result<Option<TenantState>> {
        match self {
            Store::Postgres(s) => s.tenant_state(tenant).await,
            Store::Sqlite(s) => s.tenant_state(tenant).await,
        }
    }

    /// Changes the tenant's policy; when something changed, its version
    /// moves and a `tenant.updated` event records it (`actor`: who).
    pub async fn change_policy(
        &self,
        tenant: Uuid,
        change: &PolicyChange,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        match self {
            Store::Postgres(s) => s.change_policy(tenant, change, actor).await,
            Store::Sqlite(s) => s.change_policy(tenant, change, actor).await,
        }
    }

    /// Releases the held deletions: the breaker closes and counts afresh
    /// (`tenant.deletions_released`, when it was held).
    pub async fn release_deletions(
        &self,
        tenant: Uuid,
        actor: Option<&Value>,
    ) -> Result<Option<TenantState>> {
        match self {
            Store::Postgres(s) => s.release_deletions(tenant, actor).await,
            Store::Sqlite(s) => s.release_deletions(tenant, actor).await,
        }
    }

    /// Counts one delete or deactivation against the tenant's threshold as
    /// the database has it now, in one transaction that serialises the
    /// tenant's deletions: past the threshold the breaker trips (once: a
    /// `tenant.deletions_held` event) and this and every later one is held.
    /// With `actor` (events on), records the tenant's events.
    pub async fn count_deletion(&self, tenant: Uuid, actor: Option<&Value>) -> Result<Deletion> {
        super::retrying(|| async move {
            match self {
                Store::Postgres(s) => s.count_deletion(tenant, actor).await,
                Store::Sqlite(s) => s.count_deletion(tenant, actor).await,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_and_print_as_n_per_window() {
        let t = DeletionThreshold::parse("50/1h").unwrap();
        assert_eq!(
            t,
            DeletionThreshold {
                limit: 50,
                window_secs: 3600
            }
        );
        assert_eq!(t.to_string(), "50/1h");
        assert_eq!(
            DeletionThreshold::parse("5/90s").unwrap().to_string(),
            "5/90s"
        );
        assert_eq!(
            DeletionThreshold::parse("5/120m").unwrap().to_string(),
            "5/2h"
        );
        assert_eq!(
            DeletionThreshold::parse("1/1d").unwrap().window_secs,
            86_400
        );
        for bad in [
            "", "50", "0/1h", "50/0h", "50/1w", "x/1h", "50/h", "-1/1h", "5/999d",
        ] {
            assert!(DeletionThreshold::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_change_names_what_it_moves() {
        let p = TenantPolicy::default();
        let change = PolicyChange {
            delete_mode: Some(DeleteMode::Soft),
            deletion_threshold: Some(None),
            paused: Some(true),
        };
        assert_eq!(change.changed(&p), ["deleteMode", "paused"]);
        assert!(PolicyChange::default().changed(&p).is_empty());
    }
}
