//! Change events: what a committed write of a User or Group tells the
//! application behind scimd. Pure: which event a change is, which attributes
//! it changed, and who made it. The store records events in the write's own
//! transaction; `src/http/events.rs` serves them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    UserCreated,
    UserUpdated,
    UserDeactivated,
    UserReactivated,
    UserDeleted,
    /// A create brought a soft-deleted user back (same id).
    UserRevived,
    /// Retention removed a soft-deleted user's tombstone: it cannot come back.
    UserPurged,
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupRevived,
    GroupPurged,
    /// The tenant's deprovisioning policy changed (`changedAttributes`).
    TenantUpdated,
    /// The deletion circuit breaker tripped: deletes and deactivations wait.
    TenantDeletionsHeld,
    /// An admin released the held deletions.
    TenantDeletionsReleased,
}

impl EventType {
    pub const ALL: [EventType; 17] = [
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserDeactivated,
        EventType::UserReactivated,
        EventType::UserDeleted,
        EventType::UserRevived,
        EventType::UserPurged,
        EventType::GroupCreated,
        EventType::GroupUpdated,
        EventType::GroupDeleted,
        EventType::GroupMemberAdded,
        EventType::GroupMemberRemoved,
        EventType::GroupRevived,
        EventType::GroupPurged,
        EventType::TenantUpdated,
        EventType::TenantDeletionsHeld,
        EventType::TenantDeletionsReleased,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserDeactivated => "user.deactivated",
            EventType::UserReactivated => "user.reactivated",
            EventType::UserDeleted => "user.deleted",
            EventType::UserRevived => "user.revived",
            EventType::UserPurged => "user.purged",
            EventType::GroupCreated => "group.created",
            EventType::GroupUpdated => "group.updated",
            EventType::GroupDeleted => "group.deleted",
            EventType::GroupMemberAdded => "group.member_added",
            EventType::GroupMemberRemoved => "group.member_removed",
            EventType::GroupRevived => "group.revived",
            EventType::GroupPurged => "group.purged",
            EventType::TenantUpdated => "tenant.updated",
            EventType::TenantDeletionsHeld => "tenant.deletions_held",
            EventType::TenantDeletionsReleased => "tenant.deletions_released",
        }
    }

    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether events of this type carry `changedAttributes`.
    pub fn has_changes(self) -> bool {
        matches!(
            self,
            EventType::UserUpdated
                | EventType::UserDeactivated
                | EventType::UserReactivated
                | EventType::GroupUpdated
                | EventType::TenantUpdated
        )
    }

    /// Whether events of this type name a member (and carry no `data`).
    pub fn is_member_event(self) -> bool {
        matches!(
            self,
            EventType::GroupMemberAdded | EventType::GroupMemberRemoved
        )
    }
}

/// Who made a change: the access key, the request and the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    pub key_id: String,
    pub request_id: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The event's `actor` object.
    pub fn to_json(&self) -> Value {
        let mut actor = Map::new();
        actor.insert("keyId".into(), Value::String(self.key_id.clone()));
        if let Some(id) = &self.request_id {
            actor.insert("requestId".into(), Value::String(id.clone()));
        }
        if let Some(agent) = &self.user_agent {
            actor.insert("userAgent".into(), Value::String(agent.clone()));
        }
        Value::Object(actor)
    }
}

/// Whether a User document is deactivated (`active` false; unset is active).
pub fn inactive(doc: &Map<String, Value>) -> bool {
    doc.get("active") == Some(&Value::Bool(false))
}

/// Whether a change of a User deactivates it.
pub fn deactivates(old: &Map<String, Value>, new: &Map<String, Value>) -> bool {
    !inactive(old) && inactive(new)
}

/// A changed User's event: deactivated or reactivated when `active` went
/// from true (or unset) to false or back, else updated; with the attributes
/// it changed. `None` when the documents are equal.
pub fn user_update(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Change> {
    let changed = changed_attributes(old, new);
    if changed.is_empty() {
        return None;
    }
    let kind = match (inactive(old), inactive(new)) {
        (false, true) => EventType::UserDeactivated,
        (true, false) => EventType::UserReactivated,
        _ => EventType::UserUpdated,
    };
    Some(Change { kind, changed })
}

/// A changed Group's event (its document, without members); `None` when
/// the documents are equal.
pub fn group_update(old: &Map<String, Value>, new: &Map<String, Value>) -> Option<Change> {
    let changed = changed_attributes(old, new);
    (!changed.is_empty()).then_some(Change {
        kind: EventType::GroupUpdated,
        changed,
    })
}

/// An update's type and the attributes it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: EventType,
    pub changed: Vec<String>,
}

/// The attributes that differ between two documents, as SCIM paths, sorted:
/// a sub-attribute of a complex attribute as `name.givenName`, one of an
/// extension as `urn:…:User:department`, anything else (multi-valued
/// attributes among them) by its name.
pub fn changed_attributes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<String> {
    let mut out = BTreeSet::new();
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        let separator = if key.starts_with("urn:") { ':' } else { '.' };
        match (a, b) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => {
                let subs: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for sub in subs.into_iter().filter(|s| a.get(*s) != b.get(*s)) {
                    match (a.get(sub), b.get(sub)) {
                        // An extension's complex attribute: one level more.
                        (Some(Value::Object(x)), Some(Value::Object(y))) if separator == ':' => {
                            let leaves: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                            for leaf in leaves.into_iter().filter(|l| x.get(*l) != y.get(*l)) {
                                out.insert(format!("{key}:{sub}.{leaf}"));
                            }
                        }
                        _ => {
                            out.insert(format!("{key}{separator}{sub}"));
                        }
                    }
                }
            }
            _ => {
                out.insert(key.clone());
            }
        }
    }
    out.into_iter().collect()
}

/// The `member` object of a member event.
pub fn member_json(id: &str, kind: &str) -> Value {
    json!({"value": id, "type": kind})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn changed_attributes_name_sub_attributes_and_extensions() {
        let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let old = doc(json!({
            "userName": "a", "active": true,
            "name": {"givenName": "A", "familyName": "B"},
            "emails": [{"value": "a@x"}],
            ent: {"department": "x", "manager": {"value": "m1"}}
        }));
        let new = doc(json!({
            "userName": "a", "active": false, "title": "t",
            "name": {"givenName": "Z", "familyName": "B"},
            "emails": [{"value": "b@x"}],
            ent: {"department": "y", "manager": {"value": "m2"}}
        }));
        assert_eq!(
            changed_attributes(&old, &new),
            vec![
                "active".to_owned(),
                "emails".into(),
                "name.givenName".into(),
                "title".into(),
                format!("{ent}:department"),
                format!("{ent}:manager.value"),
            ]
        );
        assert!(changed_attributes(&old, &old).is_empty());
    }

    #[test]
    fn active_decides_the_user_event() {
        let on = doc(json!({"userName": "a", "active": true}));
        let off = doc(json!({"userName": "a", "active": false}));
        let unset = doc(json!({"userName": "a"}));
        let kind = |a, b| user_update(a, b).map(|c| c.kind);
        assert_eq!(kind(&on, &off), Some(EventType::UserDeactivated));
        assert_eq!(kind(&unset, &off), Some(EventType::UserDeactivated));
        assert_eq!(kind(&off, &on), Some(EventType::UserReactivated));
        assert_eq!(kind(&on, &unset), Some(EventType::UserUpdated));
        assert_eq!(kind(&on, &on), None);
        let renamed = doc(json!({"userName": "b", "active": false}));
        assert_eq!(
            user_update(&on, &renamed),
            Some(Change {
                kind: EventType::UserDeactivated,
                changed: vec!["active".into(), "userName".into()]
            })
        );
    }

    #[test]
    fn types_round_trip() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("user.exploded"), None);
    }
}
