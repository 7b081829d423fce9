//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5, §3.9): which
//! attributes a response carries. `id` (returned `always`) and `schemas`
//! are never dropped; `returned: request` attributes appear only when asked
//! for; `returned: never` ones never (rendering already drops them).

use serde_json::{Map, Value};

use super::filter::parse_path;
use super::path::{self, Container, Target};
use super::schema::{Attribute, ResourceType, Returned};

/// One requested attribute, or one sub-attribute of it.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    container: Container,
    attr: &'static Attribute,
    sub: Option<&'static Attribute>,
}

#[derive(Debug, Clone, Default)]
pub enum Projection {
    /// The default set: everything but `returned: request`.
    #[default]
    Default,
    /// `attributes=…`: these, plus what is always returned.
    Only(Vec<Selection>),
    /// `excludedAttributes=…`: the default set without these.
    Without(Vec<Selection>),
}

/// Parses a comma-separated list of attribute paths. Names that match no
/// attribute are ignored (they select nothing), as RFC 7644 allows.
fn selections(rt: &ResourceType, list: &str) -> Vec<Selection> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Ok(p) = parse_path(item) else { continue };
        if p.filter.is_some() {
            continue;
        }
        match path::resolve(rt, &p.attr) {
            Ok(Target::Attribute(r)) => out.push(Selection {
                container: r.container,
                attr: r.attr,
                sub: r.sub,
            }),
            Ok(Target::Extension(ext)) => out.extend(ext.attributes.iter().map(|attr| Selection {
                container: Container::Extension(ext),
                attr,
                sub: None,
            })),
            Err(_) => {}
        }
    }
    out
}

impl Projection {
    /// From the request's `attributes` and `excludedAttributes`; when both
    /// are given, `attributes` wins.
    pub fn new(rt: &ResourceType, attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        match (attributes, excluded) {
            (Some(a), _) if !a.trim().is_empty() => Projection::Only(selections(rt, a)),
            (_, Some(e)) if !e.trim().is_empty() => Projection::Without(selections(rt, e)),
            _ => Projection::Default,
        }
    }

    /// Whether the response would carry `attr` at all.
    pub fn includes(&self, attr: &Attribute) -> bool {
        match self {
            Projection::Default => {
                attr.returned != Returned::Request && attr.returned != Returned::Never
            }
            Projection::Only(sel) => {
                attr.returned == Returned::Always || sel.iter().any(|s| std::ptr::eq(s.attr, attr))
            }
            Projection::Without(sel) => {
                attr.returned == Returned::Always
                    || (attr.returned == Returned::Default
                        && !sel
                            .iter()
                            .any(|s| std::ptr::eq(s.attr, attr) && s.sub.is_none()))
            }
        }
    }

    /// Applies the projection to a rendered resource of type `rt`.
    pub fn apply(&self, rt: &ResourceType, resource: &mut Map<String, Value>) {
        let containers = std::iter::once((Container::Core, rt.schema.attributes))
            .chain(std::iter::once((
                Container::Core,
                super::schema::COMMON_ATTRIBUTES,
            )))
            .chain(
                rt.extensions
                    .iter()
                    .map(|e| (Container::Extension(e.schema), e.schema.attributes)),
            );
        for (container, attrs) in containers {
            let Some(obj) = container_mut(container, resource) else {
                continue;
            };
            for attr in attrs {
                if !obj.contains_key(attr.name) {
                    continue;
                }
                if !self.includes(attr) {
                    obj.remove(attr.name);
                    continue;
                }
                let subs: Vec<&Attribute> = self.sub_selection(container, attr);
                if subs.is_empty() {
                    continue;
                }
                let keep_only = matches!(self, Projection::Only(_));
                if let Some(v) = obj.get_mut(attr.name) {
                    prune(v, &subs, keep_only);
                }
                if obj.get(attr.name).is_some_and(is_empty) {
                    obj.remove(attr.name);
                }
            }
            if let Container::Extension(ext) = container
                && resource
                    .get(ext.id)
                    .and_then(Value::as_object)
                    .is_some_and(Map::is_empty)
            {
                resource.remove(ext.id);
            }
        }
    }

    /// The sub-attributes of `attr` that the projection names.
    fn sub_selection(
        &self,
        container: Container,
        attr: &'static Attribute,
    ) -> Vec<&'static Attribute> {
        let sel = match self {
            Projection::Default => return Vec::new(),
            Projection::Only(sel) | Projection::Without(sel) => sel,
        };
        let mine = sel
            .iter()
            .filter(|s| s.container == container && std::ptr::eq(s.attr, attr));
        // `attributes=name,name.givenName` asks for the whole of name.
        if matches!(self, Projection::Only(_))
            && sel
                .iter()
                .any(|s| std::ptr::eq(s.attr, attr) && s.sub.is_none())
        {
            return Vec::new();
        }
        mine.filter_map(|s| s.sub).collect()
    }
}

fn container_mut(
    container: Container,
    resource: &mut Map<String, Value>,
) -> Option<&mut Map<String, Value>> {
    match container {
        Container::Core => Some(resource),
        Container::Extension(ext) => resource.get_mut(ext.id).and_then(Value::as_object_mut),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Keeps (`keep_only`) or drops the named sub-attributes of a complex value
/// or of each element of a multi-valued one.
fn prune(v: &mut Value, subs: &[&Attribute], keep_only: bool) {
    match v {
        Value::Object(o) => {
            o.retain(|k, _| subs.iter().any(|s| s.name == k) == keep_only);
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                prune(item, subs, keep_only);
            }
            items.retain(|i| !is_empty(i));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::USER_RESOURCE;
    use serde_json::json;

    const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

    fn user() -> Map<String, Value> {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENT],
            "id": "1", "externalId": "e", "userName": "u", "title": "t",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@x", "type": "work"}, {"value": "b@x"}],
            "meta": {"resourceType": "User", "version": "W/\"1\""},
            ENT: {"department": "D", "manager": {"value": "m"}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn project(attrs: Option<&str>, excluded: Option<&str>) -> Value {
        let mut u = user();
        Projection::new(&USER_RESOURCE, attrs, excluded).apply(&USER_RESOURCE, &mut u);
        Value::Object(u)
    }

    #[test]
    fn attributes_keep_only_what_is_asked_plus_always() {
        assert_eq!(
            project(Some("userName, NAME.givenName,emails.value"), None),
            json!({"schemas": user()["schemas"], "id": "1", "userName": "u", "name": {"givenName": "G"},
                   "emails": [{"value": "a@x"}, {"value": "b@x"}]})
        );
        assert_eq!(
            project(Some(&format!("{ENT}:department,meta")), None),
            json!({"schemas": user()["schemas"], "id": "1", "meta": user()["meta"], ENT: {"department": "D"}})
        );
        assert_eq!(
            project(Some("name,name.givenName"), None)["name"],
            json!({"givenName": "G", "familyName": "F"})
        );
        assert_eq!(
            project(Some("nosuch"), None),
            json!({"schemas": user()["schemas"], "id": "1"})
        );
    }

    #[test]
    fn excluded_attributes_drop_but_never_id_or_schemas() {
        let v = project(
            None,
            Some(
                "id,schemas,emails,name.familyName,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
            ),
        );
        assert_eq!(v["id"], "1");
        assert!(v.get("schemas").is_some());
        assert!(v.get("emails").is_none());
        assert_eq!(v["name"], json!({"givenName": "G"}));
        assert_eq!(v[ENT], json!({"department": "D"}));
        assert_eq!(project(None, Some(ENT)).get(ENT), None);
        assert_eq!(
            project(Some("userName"), Some("userName"))["userName"],
            "u",
            "attributes wins"
        );
    }
}
