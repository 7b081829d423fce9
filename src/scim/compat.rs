//! Client compatibility: the one place where scimd accepts what real
//! identity providers send although RFC 7643/7644 say otherwise. Every rule
//! has a stable name; when a rule changes how a request is read, its name is
//! recorded in [`Quirks`] and logged with the request (`quirks=…`), so an
//! operator can see which client bent the RFC, and how. Each rule has a test
//! quoting the client's real request (tests/patch_corpus, tests/api).

use serde_json::{Map, Value};

use super::schema::{AttrType, Attribute};

/// Entra ID capitalises PATCH op names: `"op":"Replace"`, `"op":"Add"`.
pub const CAPITALISED_OP: &str = "entra.capitalised_op";
/// Entra ID sends booleans as strings in some tenants: `"value":"False"`.
pub const BOOL_STRING: &str = "entra.bool_string";
/// Entra ID sets the enterprise manager by bare id: `"value":"<user id>"`
/// for `…:enterprise:2.0:User:manager`; stored as `{"value": "<user id>"}`.
pub const MANAGER_BARE_ID: &str = "entra.manager_bare_id";
/// Entra ID `Add`s through a value filter that matches nothing yet:
/// `phoneNumbers[type eq "work"].value` creates `{"type":"work","value":…}`.
pub const ADD_FILTER_CREATES: &str = "entra.add_filter_creates";
/// Entra ID removes values of a multi-valued attribute with a value list:
/// `{"op":"Remove","path":"members","value":[{"value":"<id>"}]}` removes
/// exactly those values (RFC 7644 gives `remove` no value).
pub const REMOVE_BY_VALUE_LIST: &str = "entra.remove_by_value_list";
/// No-path `add`/`replace` whose value keys are paths, not attribute names:
/// `{"op":"replace","value":{"name.givenName":"Ann"}}`.
pub const VALUE_KEYS_AS_PATHS: &str = "value_keys_as_paths";
/// Okta repeats the resource's own id in a no-path replace:
/// `{"op":"replace","value":{"id":"<own id>","displayName":"New name"}}`.
pub const OWN_ID_IN_VALUE: &str = "okta.own_id_in_value";
/// The enterprise extension addressed with a dot: `…:2.0:User.manager`.
pub const DOTTED_EXTENSION_URN: &str = "dotted_extension_urn";
/// `replace` with `null` or `""` for an optional attribute removes it.
pub const NULL_OR_EMPTY_REMOVES: &str = "null_or_empty_removes";
/// Keys of a no-path PATCH value that name no attribute are ignored, as
/// unknown attributes of a POST or PUT body are.
pub const UNKNOWN_ATTRIBUTE_IGNORED: &str = "unknown_attribute_ignored";

/// The rules that fired for one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Quirks(Vec<&'static str>);

impl Quirks {
    pub fn fire(&mut self, rule: &'static str) {
        if !self.0.contains(&rule) {
            self.0.push(rule);
        }
    }

    /// Adds the rules that fired in `other`.
    pub fn extend(&mut self, other: &Quirks) {
        for name in other.names() {
            self.fire(name);
        }
    }

    pub fn names(&self) -> &[&'static str] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Display for Quirks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// `"True"`/`"false"` (any case) as a boolean.
fn bool_from_string(v: &Value) -> Option<bool> {
    let s = v.as_str()?;
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Applies the value-level rules ([`BOOL_STRING`], [`MANAGER_BARE_ID`]) to a
/// value about to be written to `attr`, recursively through complex and
/// multi-valued attributes. Anything else is returned unchanged for the
/// schema validation to judge.
pub fn coerce_value(attr: &Attribute, value: Value, quirks: &mut Quirks) -> Value {
    match value {
        Value::Array(items) if attr.multi_valued => Value::Array(
            items
                .into_iter()
                .map(|v| coerce_single(attr, v, quirks))
                .collect(),
        ),
        other => coerce_single(attr, other, quirks),
    }
}

fn coerce_single(attr: &Attribute, value: Value, quirks: &mut Quirks) -> Value {
    match (attr.ty, value) {
        (AttrType::Boolean, v @ Value::String(_)) => match bool_from_string(&v) {
            Some(b) => {
                quirks.fire(BOOL_STRING);
                Value::Bool(b)
            }
            None => v,
        },
        (AttrType::Complex, Value::String(id)) if is_manager(attr) => {
            quirks.fire(MANAGER_BARE_ID);
            let mut m = Map::new();
            m.insert("value".to_owned(), Value::String(id));
            Value::Object(m)
        }
        (AttrType::Complex, Value::Object(map)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| match attr.sub_attribute(&k) {
                    Some(sub) => {
                        let v = coerce_value(sub, v, quirks);
                        (k, v)
                    }
                    None => (k, v),
                })
                .collect(),
        ),
        (_, v) => v,
    }
}

/// The enterprise extension's `manager` (the only complex attribute that
/// clients set by a bare id).
fn is_manager(attr: &Attribute) -> bool {
    attr.name == "manager" && attr.sub_attribute("value").is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn coerces_bool_strings_and_bare_manager_ids() {
        let mut q = Quirks::default();
        let active = USER_SCHEMA.attribute("active").unwrap();
        assert_eq!(coerce_value(active, json!("False"), &mut q), json!(false));
        assert_eq!(coerce_value(active, json!("TRUE"), &mut q), json!(true));
        assert_eq!(coerce_value(active, json!("yes"), &mut q), json!("yes"));
        let emails = USER_SCHEMA.attribute("emails").unwrap();
        assert_eq!(
            coerce_value(emails, json!([{"value": "a", "primary": "True"}]), &mut q),
            json!([{"value": "a", "primary": true}])
        );
        let manager = ENTERPRISE_USER_SCHEMA.attribute("manager").unwrap();
        assert_eq!(
            coerce_value(manager, json!("42"), &mut q),
            json!({"value": "42"})
        );
        assert_eq!(q.to_string(), "entra.bool_string,entra.manager_bare_id");
        let name = USER_SCHEMA.attribute("name").unwrap();
        assert_eq!(
            coerce_value(name, json!("Ann"), &mut q),
            json!("Ann"),
            "only manager takes a bare id"
        );
    }
}
