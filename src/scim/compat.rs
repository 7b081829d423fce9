//! Client compatibility: where scimd accepts what real identity providers
//! send although RFC 7643/7644 say otherwise. Every rule is named and
//! described here, once, with a stable name; when a rule changes how a
//! request is read, its name is recorded in [`Quirks`] and kept with the
//! request (the provisioning log, the metrics, and the request's log line
//! at `debug`: `quirks=…`), so an operator can see which client bent the
//! RFC, and how.
//!
//! The value-level rules ([`BOOL_STRING`], [`MANAGER_BARE_ID`]) are applied
//! here ([`coerce_value`]). The others change how a request's structure is
//! read, so they fire where that structure is parsed, each in one place:
//!
//! | rule | fires in |
//! |---|---|
//! | [`CAPITALISED_OP`] | `patch::parse` (the op name) |
//! | [`REMOVE_BY_VALUE_LIST`] | `membership::Removal::of` (every multi-valued attribute) |
//! | [`ADD_FILTER_CREATES`] | `patch::engine`, a filtered `add` |
//! | [`VALUE_KEYS_AS_PATHS`], [`OWN_ID_IN_VALUE`] | `patch::engine`, a no-path operation |
//! | [`NULL_OR_EMPTY_REMOVES`] | `patch::engine`, a `replace` |
//! | [`UNKNOWN_ATTRIBUTE_IGNORED`] | `patch::engine`, a no-path or extension value |
//! | [`DOTTED_EXTENSION_URN`] | `path::resolve` |
//!
//! [`ALL`] lists every rule; the test below runs each against the client
//! request that needs it.

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

/// What a `User-Agent` contains (lower-cased) → the client family it names.
const FAMILIES: &[(&str, &str)] = &[
    ("microsoft", "entra"),
    ("azure", "entra"),
    ("entra", "entra"),
    ("aad", "entra"),
    ("okta", "okta"),
    ("onelogin", "onelogin"),
    ("jumpcloud", "jumpcloud"),
    ("google", "google"),
    ("ping", "ping"),
    ("scim2-tester", "scim2-tester"),
    ("scim2_tester", "scim2-tester"),
    ("postman", "postman"),
    ("curl", "curl"),
    ("python", "python"),
];

/// The family of a client, from its `User-Agent` (case-insensitively, by
/// the names the identity providers and tools put there), for metrics and
/// reports: one of a fixed set, never the header itself.
pub fn client_family(user_agent: Option<&str>) -> &'static str {
    let Some(ua) = user_agent else {
        return "none";
    };
    let ua = ua.to_ascii_lowercase();
    FAMILIES
        .iter()
        .find(|(needle, _)| ua.contains(needle))
        .map_or("other", |(_, family)| family)
}

/// A family name [`client_family`] gives, as itself (a stored name read
/// back); any other name is `other`.
pub fn family_named(name: &str) -> &'static str {
    match name {
        "none" => "none",
        _ => FAMILIES
            .iter()
            .find(|(_, family)| *family == name)
            .map_or("other", |(_, family)| family),
    }
}

/// Every rule, for the table test and for anyone who asks what scimd bends.
pub const ALL: &[&str] = &[
    CAPITALISED_OP,
    BOOL_STRING,
    MANAGER_BARE_ID,
    ADD_FILTER_CREATES,
    REMOVE_BY_VALUE_LIST,
    VALUE_KEYS_AS_PATHS,
    OWN_ID_IN_VALUE,
    DOTTED_EXTENSION_URN,
    NULL_OR_EMPTY_REMOVES,
    UNKNOWN_ATTRIBUTE_IGNORED,
];

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
    use crate::scim::patch;
    use crate::scim::resource;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_RESOURCE, USER_RESOURCE, USER_SCHEMA};
    use serde_json::json;

    #[test]
    fn clients_are_told_apart_by_user_agent() {
        for (ua, family) in [
            (Some("Microsoft.Identity.Provisioning"), "entra"),
            (Some("Okta SCIM Client 1.0.0"), "okta"),
            (Some("curl/8.5.0"), "curl"),
            (Some("Mozilla/5.0"), "other"),
            (None, "none"),
        ] {
            assert_eq!(client_family(ua), family, "{ua:?}");
            assert_eq!(family_named(family), family, "read back");
        }
    }

    /// Each rule, and the request of the client that needs it (a PATCH's
    /// operations, applied to a user or a group).
    fn client_requests() -> Vec<(&'static str, bool, Value)> {
        let group = true;
        vec![
            // Entra ID: `"op":"Replace"`.
            (
                CAPITALISED_OP,
                !group,
                json!([{"op": "Replace", "path": "displayName", "value": "Ann"}]),
            ),
            // Entra ID: `"active":"False"`.
            (
                BOOL_STRING,
                !group,
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            ),
            // Entra ID: the manager as a bare id.
            (
                MANAGER_BARE_ID,
                !group,
                json!([{"op": "Add",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                "value": "26118915-6090-4610-87e4-49d8ca9f808d"}]),
            ),
            // Entra ID: a phone number added through a filter that matches nothing yet.
            (
                ADD_FILTER_CREATES,
                !group,
                json!([{"op": "Add",
                "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 555 0100"}]),
            ),
            // Entra ID: members removed by value list.
            (
                REMOVE_BY_VALUE_LIST,
                group,
                json!([{"op": "Remove", "path": "members",
                "value": [{"value": "26118915-6090-4610-87e4-49d8ca9f808d"}]}]),
            ),
            // Entra ID and others: a no-path replace keyed by paths.
            (
                VALUE_KEYS_AS_PATHS,
                !group,
                json!([{"op": "replace", "value": {"name.givenName": "Ann"}}]),
            ),
            // Okta: a group rename that repeats the group's own id.
            (
                OWN_ID_IN_VALUE,
                group,
                json!([{"op": "replace",
                "value": {"id": CASE_ID, "displayName": "New name"}}]),
            ),
            // Entra ID: the enterprise extension addressed with a dot.
            (
                DOTTED_EXTENSION_URN,
                !group,
                json!([{"op": "Replace",
                "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.department",
                "value": "Sales"}]),
            ),
            // Entra ID: an attribute cleared with null.
            (
                NULL_OR_EMPTY_REMOVES,
                !group,
                json!([{"op": "Replace", "path": "title", "value": null}]),
            ),
            // OneLogin and others: a no-path value with keys no schema defines.
            (
                UNKNOWN_ATTRIBUTE_IGNORED,
                !group,
                json!([{"op": "replace",
                "value": {"title": "Boss", "customField": "x"}}]),
            ),
        ]
    }

    const CASE_ID: &str = "2819c223-7f76-453a-919d-413861904646";

    #[test]
    fn every_rule_fires_on_its_clients_request() {
        let table = client_requests();
        let mut covered: Vec<&str> = table.iter().map(|(rule, _, _)| *rule).collect();
        covered.sort_unstable();
        let mut all = ALL.to_vec();
        all.sort_unstable();
        assert_eq!(covered, all, "the table lists every rule exactly once");
        for (rule, group, ops) in table {
            let (rt, doc) = match group {
                true => (
                    &GROUP_RESOURCE,
                    json!({"displayName": "Tour Guides",
                    "members": [{"value": "26118915-6090-4610-87e4-49d8ca9f808d"}]}),
                ),
                false => (
                    &USER_RESOURCE,
                    json!({"userName": "bjensen", "title": "Guide"}),
                ),
            };
            let doc = resource::normalize(rt, doc).unwrap();
            let mut quirks = Quirks::default();
            let body = json!({"schemas": [patch::PATCH_OP_URN], "Operations": ops});
            let result = patch::parse_request(body, &mut quirks)
                .and_then(|ops| patch::apply(rt, CASE_ID, &doc, &ops, &mut quirks));
            assert!(result.is_ok(), "{rule}: {result:?}");
            assert!(
                quirks.names().contains(&rule),
                "{rule} did not fire: {quirks}"
            );
        }
    }

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
