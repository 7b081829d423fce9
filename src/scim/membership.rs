//! What an operation on the values of a multi-valued attribute means, decided
//! once: the PATCH engine asks here for every multi-valued attribute it keeps
//! in the document (`emails`, `roles`, …), and a group's `members`, which the
//! store keeps as rows, are turned here into [`MemberChange`]s that the store
//! executes without loading the member list.
//!
//! The shared rule for removal: `remove` without a value removes the whole
//! attribute (RFC 7644 §3.5.2.2); a `remove` that carries values
//! ([`compat::REMOVE_BY_VALUE_LIST`], Entra's request) removes exactly the
//! values that match, by their `value` sub-attribute where the attribute has
//! one and by equality otherwise. A listed value that matches nothing changes
//! nothing, and so does an empty list.

use serde_json::Value;
use uuid::Uuid;

use super::compat::{self, Quirks};
use super::error::{ScimError, ScimType};
use super::filter::PatchPath;
use super::patch::{OpKind, Operation};
use super::path::{self, Target};
use super::resource::field;
use super::schema::{Attribute, ResourceType};

/// What a `remove` of a multi-valued attribute removes.
#[derive(Debug, Clone, PartialEq)]
pub enum Removal {
    /// No value: the attribute, all of its values.
    All,
    /// The values that match these (possibly none).
    Listed(Vec<Value>),
}

impl Removal {
    /// Reads the `value` of a `remove` operation.
    pub fn of(value: Option<&Value>, quirks: &mut Quirks) -> Removal {
        match value {
            None | Some(Value::Null) => Removal::All,
            Some(v) => {
                quirks.fire(compat::REMOVE_BY_VALUE_LIST);
                match v {
                    Value::Array(list) => Removal::Listed(list.clone()),
                    single => Removal::Listed(vec![single.clone()]),
                }
            }
        }
    }
}

/// What a listed value of a removal is matched on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RemovalKey {
    /// The `value` sub-attribute, folded per its `caseExact`.
    Value(String),
    /// The whole value (attributes without a `value` sub-attribute), as
    /// canonical JSON text of its normalised form.
    Whole(String),
}

/// The key `item` (a listed value, or a stored one) is matched on when values
/// of `attr` are removed. A listed value is an object, or for attributes with
/// a `value` sub-attribute that value alone (`"value": "a@example.com"`).
/// Attributes without one are matched whole: the caller passes the
/// normalised value, so that `{"Type": "work"}` matches `{"type": "work"}`.
pub fn removal_key(attr: &Attribute, item: &Value) -> Result<RemovalKey, ScimError> {
    let Some(value_attr) = attr.sub_attribute("value") else {
        return Ok(RemovalKey::Whole(item.to_string()));
    };
    let text = match item {
        Value::Object(obj) => field(obj, "value"),
        other => Some(other),
    };
    match text {
        Some(Value::String(s)) if value_attr.case_exact => Ok(RemovalKey::Value(s.clone())),
        Some(Value::String(s)) => Ok(RemovalKey::Value(s.to_lowercase())),
        _ => Err(ScimError::invalid_value(format!(
            "removing values of '{}' by value needs each listed value's string 'value'",
            attr.name
        ))),
    }
}

/// A member to add: its id and, if the client gave one, its display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub id: Uuid,
    pub display: Option<String>,
}

/// A change to a membership that is stored as rows (a group's `members`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add these; members already present stay as they are (no error).
    Add(Vec<NewMember>),
    /// Remove these where present; absent ones are no-ops.
    Remove(Vec<Uuid>),
    /// `members[value eq "…"]`: remove these; if none of them is a member,
    /// the request fails with `noTarget` (RFC 7644 §3.5.2.2).
    RemoveMatching(Vec<String>),
    RemoveAll,
    /// Replace the whole set (an empty set removes every member).
    ReplaceAll(Vec<NewMember>),
}

impl MemberChange {
    /// The members this change adds or keeps, which must exist.
    pub fn joining(&self) -> &[NewMember] {
        match self {
            MemberChange::Add(m) | MemberChange::ReplaceAll(m) => m,
            _ => &[],
        }
    }
}

/// A member id that names no user or group of the tenant.
fn unknown_member(id: &str) -> ScimError {
    ScimError::invalid_value(format!("member {id} does not exist in this tenant"))
}

/// Checks that no change makes `group` a member of itself.
pub fn check_not_self(group: Uuid, changes: &[MemberChange]) -> Result<(), ScimError> {
    match changes
        .iter()
        .flat_map(MemberChange::joining)
        .find(|m| m.id == group)
    {
        Some(m) => Err(unknown_member(&format!(
            "{} (a group cannot be its own member)",
            m.id
        ))),
        None => Ok(()),
    }
}

/// The members of a `members` value: objects with a string `value` (the
/// member's id) and maybe a `display`. A member listed twice counts once;
/// the last `display` given wins.
pub fn new_members(value: Option<&Value>, attr: &str) -> Result<Vec<NewMember>, ScimError> {
    let items: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::Object(_)) => vec![v],
        Some(_) => {
            return Err(ScimError::invalid_value(format!(
                "'{attr}' needs objects with a 'value'"
            )));
        }
    };
    let mut out: Vec<NewMember> = Vec::with_capacity(items.len());
    let mut at = std::collections::HashMap::with_capacity(items.len());
    for item in items {
        let obj = item.as_object();
        let id = match obj.and_then(|o| field(o, "value")) {
            Some(Value::String(s)) if !s.is_empty() => {
                Uuid::parse_str(s).map_err(|_| unknown_member(s))?
            }
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "each value of '{attr}' needs a string 'value' (the member's id)"
                )));
            }
        };
        let display = obj
            .and_then(|o| field(o, "display"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match at.get(&id) {
            Some(&i) => out[i] = NewMember { id, display },
            None => {
                at.insert(id, out.len());
                out.push(NewMember { id, display });
            }
        }
    }
    Ok(out)
}

/// The ids a removal names; ids that are not UUIDs name no member and
/// remove nothing.
fn removed_ids(attr: &Attribute, list: &[Value]) -> Result<Vec<Uuid>, ScimError> {
    let mut ids = Vec::with_capacity(list.len());
    for item in list {
        if let RemovalKey::Value(v) = removal_key(attr, item)?
            && let Ok(id) = Uuid::parse_str(&v)
        {
            ids.push(id);
        }
    }
    Ok(ids)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

/// What one operation with a path on the row-stored attribute `attr` means.
fn change_at(
    attr: &'static Attribute,
    path: &PatchPath,
    op: &Operation,
    quirks: &mut Quirks,
) -> Result<MemberChange, ScimError> {
    let name = attr.name;
    if path.attr.sub.is_some() || path.sub_after_filter.is_some() {
        return Err(ScimError::bad_request(
            ScimType::Mutability,
            format!("the sub-attributes of '{name}' are immutable: add or remove whole members"),
        ));
    }
    Ok(match (&path.filter, op.op) {
        (Some(f), OpKind::Remove) => {
            MemberChange::RemoveMatching(f.value_eq_strings().ok_or_else(|| {
                invalid_path(format!(
                    "members can be selected by value only, e.g. {name}[value eq \"<id>\"]"
                ))
            })?)
        }
        (Some(_), _) => {
            return Err(invalid_path(format!(
                "'{name}[…]' can only be removed; add or replace members as a whole"
            )));
        }
        (None, OpKind::Add) => MemberChange::Add(new_members(op.value.as_ref(), name)?),
        (None, OpKind::Replace) => MemberChange::ReplaceAll(new_members(op.value.as_ref(), name)?),
        (None, OpKind::Remove) => match Removal::of(op.value.as_ref(), quirks) {
            Removal::All => MemberChange::RemoveAll,
            Removal::Listed(list) => MemberChange::Remove(removed_ids(attr, &list)?),
        },
    })
}

/// Splits `ops` into operations on the document and changes to the
/// row-stored multi-valued attribute `attr` of `rt` (a group's `members`).
pub fn split_members(
    rt: &'static ResourceType,
    attr: &'static Attribute,
    ops: Vec<Operation>,
    quirks: &mut Quirks,
) -> Result<(Vec<Operation>, Vec<MemberChange>), ScimError> {
    let mut doc_ops = Vec::with_capacity(ops.len());
    let mut changes = Vec::new();
    for op in ops {
        match &op.path {
            Some(path) => {
                let is_attr = matches!(
                    path::resolve(rt, &path.attr),
                    Ok(Target::Attribute(r)) if std::ptr::eq(r.attr, attr)
                );
                if is_attr {
                    changes.push(change_at(attr, path, &op, quirks)?);
                } else {
                    doc_ops.push(op);
                }
            }
            None => {
                let Some(Value::Object(mut map)) = op.value.clone() else {
                    doc_ops.push(op);
                    continue;
                };
                let key = map
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(attr.name))
                    .cloned();
                if let Some(key) = key {
                    let members = new_members(map.remove(&key).as_ref(), attr.name)?;
                    changes.push(match op.op {
                        OpKind::Add => MemberChange::Add(members),
                        _ => MemberChange::ReplaceAll(members),
                    });
                }
                if !map.is_empty() {
                    doc_ops.push(Operation {
                        op: op.op,
                        path: None,
                        value: Some(Value::Object(map)),
                    });
                }
            }
        }
    }
    Ok((doc_ops, changes))
}

/// A POST or PUT body's members, taken out of the body before the rest is
/// validated as a document (they are rows, not part of it).
pub fn take_members(
    body: &mut Value,
    attr: &'static Attribute,
) -> Result<Vec<NewMember>, ScimError> {
    let Value::Object(map) = body else {
        return Ok(Vec::new());
    };
    let key = map
        .keys()
        .find(|k| k.eq_ignore_ascii_case(attr.name))
        .cloned();
    new_members(key.and_then(|k| map.remove(&k)).as_ref(), attr.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{GROUP_RESOURCE, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn removal_keys_follow_the_value_sub_attribute() {
        let emails = USER_SCHEMA.attribute("emails").unwrap();
        let key = |v: Value| removal_key(emails, &v);
        assert_eq!(
            key(json!({"value": "A@x.io", "type": "work"})).unwrap(),
            RemovalKey::Value("a@x.io".into())
        );
        assert_eq!(
            key(json!("a@X.io")).unwrap(),
            RemovalKey::Value("a@x.io".into())
        );
        assert!(key(json!({"type": "work"})).is_err());
        let addresses = USER_SCHEMA.attribute("addresses").unwrap();
        assert_eq!(
            removal_key(addresses, &json!({"locality": "Oslo"})).unwrap(),
            RemovalKey::Whole(r#"{"locality":"Oslo"}"#.into())
        );
        let mut q = Quirks::default();
        assert_eq!(Removal::of(None, &mut q), Removal::All);
        assert_eq!(Removal::of(Some(&Value::Null), &mut q), Removal::All);
        assert!(q.is_empty());
        assert_eq!(
            Removal::of(Some(&json!([])), &mut q),
            Removal::Listed(vec![])
        );
        assert_eq!(q.names(), [compat::REMOVE_BY_VALUE_LIST]);
    }

    #[test]
    fn members_dedupe_and_need_ids() {
        let a = "0190a3c2-0000-7000-8000-000000000001";
        let m = new_members(
            Some(&json!([{"value": a}, {"value": a, "display": "Ann"}])),
            "members",
        )
        .unwrap();
        assert_eq!(
            m,
            [NewMember {
                id: Uuid::parse_str(a).unwrap(),
                display: Some("Ann".into())
            }]
        );
        assert!(new_members(Some(&json!([{"display": "x"}])), "members").is_err());
        assert!(new_members(Some(&json!("x")), "members").is_err());
        let group = Uuid::parse_str(a).unwrap();
        let err = check_not_self(group, &[MemberChange::Add(m)]).unwrap_err();
        assert!(err.detail.contains("its own member"), "{err}");
        let members = GROUP_RESOURCE.schema.attribute("members").unwrap();
        assert_eq!(
            removed_ids(members, &[json!({"value": a}), json!("not-an-id")]).unwrap(),
            [group]
        );
    }
}
