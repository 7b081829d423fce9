//! Evaluating a filter against a JSON resource (or against one value of a
//! multi-valued attribute, for value paths). This is what PATCH value paths
//! use, and the oracle the SQL compilation is tested against.
//!
//! Semantics (RFC 7644 §3.4.2.2): attribute names are case-insensitive;
//! strings compare case-insensitively unless the attribute is `caseExact`;
//! dateTimes compare as instants; a multi-valued attribute matches when any
//! value does; a complex multi-valued attribute without a sub-attribute
//! compares its `value`; `ne` is the negation of `eq`; `pr` means present
//! and not empty; `eq null` means not present.

use std::cmp::Ordering;

use chrono::DateTime;
use serde_json::{Map, Value};

use super::ast::{AttrPath, CompValue, CompareOp, Filter};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::path::{self, Target};
use crate::scim::schema::{AttrType, Attribute, ResourceType};

/// What the attribute paths of a filter are relative to.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// A whole resource of this type.
    Resource(&'static ResourceType),
    /// One value of this complex multi-valued attribute.
    Element(&'static Attribute),
}

fn invalid(detail: String) -> ScimError {
    ScimError::bad_request(ScimType::InvalidFilter, detail)
}

/// Whether `obj` matches `filter`. Fails with `invalidFilter` when the filter
/// names unknown attributes or compares in a way the attribute's type does
/// not allow.
pub fn matches(filter: &Filter, obj: &Map<String, Value>, scope: Scope) -> Result<bool, ScimError> {
    validate(filter, scope)?;
    Ok(eval(filter, obj, scope))
}

/// The attribute definition a comparison applies to, and how to reach values.
#[derive(Clone, Copy)]
struct Leaf {
    resolved: Option<path::Resolved>,
    element_attr: Option<&'static Attribute>,
    def: &'static Attribute,
}

fn leaf(path: &AttrPath, scope: Scope) -> Result<Leaf, ScimError> {
    match scope {
        Scope::Element(parent) => {
            let def = path::resolve_in_element(parent, path).map_err(|e| invalid(e.0))?;
            Ok(Leaf {
                resolved: None,
                element_attr: Some(def),
                def,
            })
        }
        Scope::Resource(rt) => match path::resolve(rt, path).map_err(|e| invalid(e.0))? {
            Target::Extension(s) => {
                Err(invalid(format!("'{}' is a schema, not an attribute", s.id)))
            }
            Target::Attribute(r) => {
                let def = match r.sub {
                    Some(sub) => sub,
                    // A complex attribute without a sub-attribute compares its `value`.
                    None if r.attr.ty == AttrType::Complex => {
                        r.attr.sub_attribute("value").unwrap_or(r.attr)
                    }
                    None => r.attr,
                };
                Ok(Leaf {
                    resolved: Some(r),
                    element_attr: None,
                    def,
                })
            }
        },
    }
}

/// Checks that every path of `filter` names an attribute of `scope` and that
/// every comparison suits the attribute's type (`invalidFilter` otherwise).
pub fn validate(filter: &Filter, scope: Scope) -> Result<(), ScimError> {
    match filter {
        Filter::And(a, b) | Filter::Or(a, b) => {
            validate(a, scope)?;
            validate(b, scope)
        }
        Filter::Not(inner) => validate(inner, scope),
        Filter::Present(path) => leaf(path, scope).map(|_| ()),
        Filter::Compare { path, op, value } => {
            let l = leaf(path, scope)?;
            check_comparison(path, l.def, *op, value)
        }
        Filter::ValuePath { path, filter } => {
            let Scope::Resource(rt) = scope else {
                return Err(invalid("value filters cannot be nested".into()));
            };
            let parent = value_path_parent(rt, path)?;
            validate(filter, Scope::Element(parent))
        }
    }
}

fn value_path_parent(
    rt: &'static ResourceType,
    path: &AttrPath,
) -> Result<&'static Attribute, ScimError> {
    match path::resolve(rt, path).map_err(|e| invalid(e.0))? {
        Target::Attribute(r)
            if r.sub.is_none() && r.attr.multi_valued && r.attr.ty == AttrType::Complex =>
        {
            Ok(r.attr)
        }
        _ => Err(invalid(format!(
            "'{path}[…]' needs a complex multi-valued attribute"
        ))),
    }
}

fn check_comparison(
    path: &AttrPath,
    def: &Attribute,
    op: CompareOp,
    value: &CompValue,
) -> Result<(), ScimError> {
    use CompareOp::*;
    let ordering = matches!(op, Gt | Ge | Lt | Le);
    let substring = matches!(op, Co | Sw | Ew);
    let fail = |why: &str| Err(invalid(format!("'{path} {} {value}': {why}", op.keyword())));
    if matches!(value, CompValue::Null) {
        return if matches!(op, Eq | Ne) {
            Ok(())
        } else {
            fail("null can only be compared with eq or ne")
        };
    }
    match def.ty {
        AttrType::Complex => fail("a complex attribute cannot be compared"),
        AttrType::Boolean => match value {
            CompValue::Bool(_) if !ordering && !substring => Ok(()),
            CompValue::Bool(_) => fail("booleans support only eq and ne"),
            _ => fail("the attribute is a boolean"),
        },
        AttrType::Integer | AttrType::Decimal => match value {
            CompValue::Number(_) if !substring => Ok(()),
            CompValue::Number(_) => fail("numbers do not support co, sw or ew"),
            _ => fail("the attribute is a number"),
        },
        AttrType::DateTime => match value {
            CompValue::String(s) if ordering || matches!(op, Eq | Ne) => {
                match DateTime::parse_from_rfc3339(s) {
                    Ok(_) => Ok(()),
                    Err(_) => fail("not a dateTime (RFC 3339, e.g. 2011-05-13T04:42:34Z)"),
                }
            }
            CompValue::String(_) => Ok(()),
            _ => fail("the attribute is a dateTime string"),
        },
        AttrType::String | AttrType::Reference | AttrType::Binary => match value {
            CompValue::String(_) => Ok(()),
            _ => fail("the attribute is a string; quote the value"),
        },
    }
}

fn eval(filter: &Filter, obj: &Map<String, Value>, scope: Scope) -> bool {
    match filter {
        Filter::And(a, b) => eval(a, obj, scope) && eval(b, obj, scope),
        Filter::Or(a, b) => eval(a, obj, scope) || eval(b, obj, scope),
        Filter::Not(inner) => !eval(inner, obj, scope),
        Filter::Present(path) => {
            leaf(path, scope).is_ok_and(|l| values(obj, &l, true).iter().any(|v| is_present(v)))
        }
        Filter::Compare { path, op, value } => {
            let Ok(l) = leaf(path, scope) else {
                return false;
            };
            let vals = values(obj, &l, matches!(value, CompValue::Null));
            match (op, value) {
                (CompareOp::Eq, CompValue::Null) => !vals.iter().any(|v| is_present(v)),
                (CompareOp::Ne, CompValue::Null) => vals.iter().any(|v| is_present(v)),
                (CompareOp::Ne, lit) => !vals.iter().any(|v| compare(l.def, v, CompareOp::Eq, lit)),
                (op, lit) => vals.iter().any(|v| compare(l.def, v, *op, lit)),
            }
        }
        Filter::ValuePath { path, filter } => {
            let Scope::Resource(rt) = scope else {
                return false;
            };
            let Ok(parent) = value_path_parent(rt, path) else {
                return false;
            };
            let Ok(Target::Attribute(r)) = path::resolve(rt, path) else {
                return false;
            };
            r.container
                .get(obj)
                .and_then(|c| c.get(parent.name))
                .and_then(Value::as_array)
                .is_some_and(|elements| {
                    elements.iter().any(|e| {
                        e.as_object()
                            .is_some_and(|e| eval(filter, e, Scope::Element(parent)))
                    })
                })
        }
    }
}

/// Every value a path reaches in `obj` (several for multi-valued attributes).
/// For `pr` (`presence`), a complex attribute without a sub-attribute is
/// judged by its own values; for comparisons, by their `value`.
fn values<'v>(obj: &'v Map<String, Value>, l: &Leaf, presence: bool) -> Vec<&'v Value> {
    if let Some(def) = l.element_attr {
        return obj.get(def.name).into_iter().collect();
    }
    let Some(r) = l.resolved else {
        return Vec::new();
    };
    let Some(v) = r.container.get(obj).and_then(|c| c.get(r.attr.name)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(items) if r.attr.multi_valued => items.iter().collect(),
        other => vec![other],
    };
    let whole = r.sub.is_none() && (presence || std::ptr::eq(l.def, r.attr));
    if r.attr.ty == AttrType::Complex && !whole {
        items
            .into_iter()
            .filter_map(|item| item.get(l.def.name))
            .collect()
    } else {
        items
    }
}

fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn fold(def: &Attribute, s: &str) -> String {
    if def.case_exact {
        s.to_owned()
    } else {
        crate::scim::resource::caseless(s)
    }
}

/// One value against one literal.
fn compare(def: &Attribute, actual: &Value, op: CompareOp, lit: &CompValue) -> bool {
    use CompareOp::*;
    let ordering = match (actual, lit) {
        (Value::Bool(a), CompValue::Bool(b)) => a.cmp(b),
        (Value::Number(a), CompValue::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => match a.partial_cmp(&b) {
                Some(o) => o,
                None => return false,
            },
            _ => return false,
        },
        (Value::String(a), CompValue::String(b))
            if def.ty == AttrType::DateTime && !matches!(op, Co | Sw | Ew) =>
        {
            match (
                DateTime::parse_from_rfc3339(a),
                DateTime::parse_from_rfc3339(b),
            ) {
                (Ok(a), Ok(b)) => a.cmp(&b),
                _ => return false,
            }
        }
        (Value::String(a), CompValue::String(b)) => {
            let (a, b) = (fold(def, a), fold(def, b));
            match op {
                Co => return a.contains(&b),
                Sw => return a.starts_with(&b),
                Ew => return a.ends_with(&b),
                _ => a.cmp(&b),
            }
        }
        _ => return false,
    };
    match op {
        Eq => ordering == Ordering::Equal,
        Ne => ordering != Ordering::Equal,
        Gt => ordering == Ordering::Greater,
        Ge => ordering != Ordering::Less,
        Lt => ordering == Ordering::Less,
        Le => ordering != Ordering::Greater,
        Co | Sw | Ew => false,
    }
}
