//! Resolving parsed attribute paths against a resource type's schemas:
//! which attribute (and sub-attribute) a path names, and where its value
//! lives in a document (top level, or under an extension's URN).

use serde_json::{Map, Value};

use super::compat;
use super::filter::AttrPath;
use super::schema::{self, Attribute, ResourceType, Schema};

/// Where a top-level attribute's value lives in a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// Core schema and common attributes: at the top level.
    Core,
    /// An extension's attributes: under the extension URN.
    Extension(&'static Schema),
}

impl Container {
    /// The object holding this container's attributes, if present.
    pub fn get<'d>(&self, doc: &'d Map<String, Value>) -> Option<&'d Map<String, Value>> {
        match self {
            Container::Core => Some(doc),
            Container::Extension(s) => doc.get(s.id).and_then(Value::as_object),
        }
    }

    /// The object holding this container's attributes, created if missing.
    pub fn get_mut<'d>(&self, doc: &'d mut Map<String, Value>) -> &'d mut Map<String, Value> {
        match self {
            Container::Core => doc,
            Container::Extension(s) => {
                let entry = doc
                    .entry(s.id.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                entry.as_object_mut().expect("just made an object")
            }
        }
    }
}

/// A path resolved to schema definitions.
#[derive(Debug, Clone, Copy)]
pub struct Resolved {
    pub container: Container,
    pub attr: &'static Attribute,
    pub sub: Option<&'static Attribute>,
    /// The compatibility rule that had to bend the RFC to read the path.
    pub quirk: Option<&'static str>,
}

/// What a path names.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Attribute(Resolved),
    /// A whole extension (`urn:…:enterprise:2.0:User`).
    Extension(&'static Schema),
}

/// Why a path names nothing; the caller picks the `scimType`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

fn unknown(path: &AttrPath) -> ResolveError {
    ResolveError(format!(
        "'{path}' is not an attribute of this resource type"
    ))
}

/// Resolves `path` within resource type `rt`.
pub fn resolve(rt: &ResourceType, path: &AttrPath) -> Result<Target, ResolveError> {
    let (container, name, sub, quirk) = match &path.uri {
        None => (
            Container::Core,
            path.name.as_str(),
            path.sub.as_deref(),
            None,
        ),
        Some(uri) if uri.eq_ignore_ascii_case(rt.schema.id) => (
            Container::Core,
            path.name.as_str(),
            path.sub.as_deref(),
            None,
        ),
        Some(uri) => {
            if let Some(ext) = rt.extension(uri) {
                (
                    Container::Extension(ext),
                    path.name.as_str(),
                    path.sub.as_deref(),
                    None,
                )
            } else if let Some(ext) = rt.extension(&format!("{uri}:{}", path.name)) {
                // The whole extension, or `URN.attr` written for `URN:attr`.
                match path.sub.as_deref() {
                    None => return Ok(Target::Extension(ext)),
                    Some(attr) => (
                        Container::Extension(ext),
                        attr,
                        None,
                        Some(compat::DOTTED_EXTENSION_URN),
                    ),
                }
            } else {
                return Err(ResolveError(format!("unknown schema '{uri}' in '{path}'")));
            }
        }
    };
    let attr = match container {
        Container::Core => rt
            .schema
            .attribute(name)
            .or_else(|| schema::common_attribute(name)),
        Container::Extension(ext) => ext.attribute(name),
    }
    .ok_or_else(|| unknown(path))?;
    let sub = match sub {
        None => None,
        Some(s) => Some(attr.sub_attribute(s).ok_or_else(|| unknown(path))?),
    };
    Ok(Target::Attribute(Resolved {
        container,
        attr,
        sub,
        quirk,
    }))
}

/// Resolves a path inside a value filter of `parent` (`emails[type eq …]`):
/// a plain sub-attribute name.
pub fn resolve_in_element(
    parent: &'static Attribute,
    path: &AttrPath,
) -> Result<&'static Attribute, ResolveError> {
    if path.uri.is_some() || path.sub.is_some() {
        return Err(ResolveError(format!(
            "'{path}' must be a sub-attribute name of '{}'",
            parent.name
        )));
    }
    parent.sub_attribute(&path.name).ok_or_else(|| {
        ResolveError(format!(
            "'{}' is not a sub-attribute of '{}'",
            path.name, parent.name
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::filter::parse_path;
    use crate::scim::schema::USER_RESOURCE;

    fn res(p: &str) -> Result<Target, ResolveError> {
        resolve(&USER_RESOURCE, &parse_path(p).unwrap().attr)
    }

    #[test]
    fn resolves_core_extension_and_dotted_paths() {
        let Target::Attribute(r) = res("NAME.givenname").unwrap() else {
            panic!()
        };
        assert_eq!((r.attr.name, r.sub.unwrap().name), ("name", "givenName"));
        let Target::Attribute(r) =
            res("urn:ietf:params:scim:schemas:core:2.0:User:name.givenName").unwrap()
        else {
            panic!()
        };
        assert_eq!(r.container, Container::Core);
        let Target::Attribute(r) =
            res("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
                .unwrap()
        else {
            panic!()
        };
        assert!(matches!(r.container, Container::Extension(_)));
        assert_eq!(
            (r.attr.name, r.sub.unwrap().name, r.quirk),
            ("manager", "value", None)
        );
        let Target::Attribute(r) =
            res("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User.manager").unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (r.attr.name, r.quirk),
            ("manager", Some(compat::DOTTED_EXTENSION_URN))
        );
        assert!(matches!(
            res("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").unwrap(),
            Target::Extension(_)
        ));
        assert!(matches!(
            res("meta.lastModified").unwrap(),
            Target::Attribute(_)
        ));
        assert!(res("nosuch").is_err());
        assert!(res("name.nosuch").is_err());
        assert!(res("urn:example:other:2.0:User:name").is_err());
        assert!(
            res("department").is_err(),
            "extension attributes need their URN"
        );
    }
}
