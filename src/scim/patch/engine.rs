//! The document engine: a stored document and parsed operations in, a new
//! document or a SCIM error out. Schema-driven, so that every resource type
//! uses it unchanged.
//!
//! Operations apply in order to a copy; if any fails, the caller keeps the
//! original (atomicity). The result is validated against the schema as a
//! whole, exactly as a PUT body would be.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::parse::{OpKind, Operation};
use crate::scim::compat::{self, Quirks};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{self, CompValue, CompareOp, Filter, PatchPath, Scope};
use crate::scim::membership::{self, Removal};
use crate::scim::path::{self, Container, Resolved, Target};
use crate::scim::resource::{self, MAX_VALUES, normalize_single, normalize_value};
use crate::scim::schema::{AttrType, Attribute, Mutability, ResourceType, Schema};

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

fn mutability(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::Mutability, detail)
}

/// Applies `ops` to `doc` (a stored document of resource type `rt` whose id
/// is `id`) and returns the new, validated document.
pub fn apply(
    rt: &'static ResourceType,
    id: &str,
    doc: &Map<String, Value>,
    ops: &[Operation],
    quirks: &mut Quirks,
) -> Result<Map<String, Value>, ScimError> {
    let mut engine = Engine {
        rt,
        id,
        doc: doc.clone(),
        quirks,
    };
    for op in ops {
        engine.operation(op)?;
    }
    let Engine {
        doc: patched,
        quirks,
        ..
    } = engine;
    let result = resource::normalize_with(rt, Value::Object(patched), quirks)?;
    check_immutable(rt, doc, &result)?;
    Ok(result)
}

struct Engine<'q> {
    rt: &'static ResourceType,
    id: &'q str,
    doc: Map<String, Value>,
    quirks: &'q mut Quirks,
}

/// `null`, `""` and `[]`: what a `replace` uses to clear an attribute.
fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl Engine<'_> {
    fn operation(&mut self, op: &Operation) -> Result<(), ScimError> {
        match &op.path {
            None => {
                let value = op.value.clone().unwrap_or(Value::Null);
                let Value::Object(map) = value else {
                    return Err(ScimError::invalid_value(
                        "an operation without 'path' needs an object 'value'",
                    ));
                };
                self.no_path(op.op, map)
            }
            Some(path) => {
                let target = path::resolve(self.rt, &path.attr).map_err(|e| invalid_path(e.0))?;
                self.target(op.op, target, path, op.value.clone())
            }
        }
    }

    /// A no-path `add`/`replace`: each key of the value is an attribute (or,
    /// per [`compat::VALUE_KEYS_AS_PATHS`], a path) and gets the same op.
    fn no_path(&mut self, op: OpKind, map: Map<String, Value>) -> Result<(), ScimError> {
        for (key, value) in map {
            if key.eq_ignore_ascii_case("schemas") {
                continue;
            }
            if key.eq_ignore_ascii_case("id") {
                if value.as_str() == Some(self.id) {
                    self.quirks.fire(compat::OWN_ID_IN_VALUE);
                    continue;
                }
                return Err(mutability("'id' is readOnly"));
            }
            let path = filter::parse_path(&key)
                .map_err(|e| invalid_path(format!("invalid attribute '{key}': {e}")))?;
            if path.filter.is_some() || path.attr.sub.is_some() || path.attr.uri.is_some() {
                let is_extension =
                    matches!(path::resolve(self.rt, &path.attr), Ok(Target::Extension(_)));
                if !is_extension {
                    self.quirks.fire(compat::VALUE_KEYS_AS_PATHS);
                }
            }
            match path::resolve(self.rt, &path.attr) {
                Ok(target) => self.target(op, target, &path, Some(value))?,
                Err(_) => self.quirks.fire(compat::UNKNOWN_ATTRIBUTE_IGNORED),
            }
        }
        Ok(())
    }

    fn target(
        &mut self,
        op: OpKind,
        target: Target,
        path: &PatchPath,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        match target {
            Target::Extension(ext) => self.extension(op, ext, value),
            Target::Attribute(r) => {
                if let Some(q) = r.quirk {
                    self.quirks.fire(q);
                }
                let sub = match (r.sub, &path.sub_after_filter) {
                    (Some(_), Some(_)) => {
                        return Err(invalid_path(format!("invalid path '{path}'")));
                    }
                    (Some(s), None) => Some(s),
                    (None, Some(name)) => Some(r.attr.sub_attribute(name).ok_or_else(|| {
                        invalid_path(format!(
                            "'{name}' is not a sub-attribute of '{}'",
                            r.attr.name
                        ))
                    })?),
                    (None, None) => None,
                };
                for a in std::iter::once(r.attr).chain(sub) {
                    if a.mutability == Mutability::ReadOnly {
                        return Err(mutability(format!("'{}' is readOnly", a.name)));
                    }
                }
                if r.attr.multi_valued {
                    self.multi(op, r, path.filter.as_ref(), sub, value)
                } else if path.filter.is_some() {
                    Err(invalid_path(format!(
                        "'{}' is not multi-valued: it cannot take a value filter",
                        r.attr.name
                    )))
                } else {
                    self.single(op, r, sub, value)
                }
            }
        }
    }

    /// The whole extension object (`path` = the extension URN).
    fn extension(
        &mut self,
        op: OpKind,
        ext: &'static Schema,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        let value = value.unwrap_or(Value::Null);
        if op == OpKind::Remove || (op == OpKind::Replace && value.is_null()) {
            if let Some(a) = ext.attributes.iter().find(|a| a.required) {
                return Err(mutability(format!("'{}' is required", a.name)));
            }
            self.doc.remove(ext.id);
            return Ok(());
        }
        let Value::Object(map) = value else {
            return Err(ScimError::invalid_value(format!(
                "'{}' needs an object value",
                ext.id
            )));
        };
        for (key, v) in map {
            match ext.attribute(&key) {
                Some(attr) => {
                    let r = Resolved {
                        container: Container::Extension(ext),
                        attr,
                        sub: None,
                        quirk: None,
                    };
                    let p = PatchPath {
                        attr: filter::AttrPath {
                            uri: Some(ext.id.to_owned()),
                            name: attr.name.to_owned(),
                            sub: None,
                        },
                        filter: None,
                        sub_after_filter: None,
                    };
                    self.target(op, Target::Attribute(r), &p, Some(v))?;
                }
                None => self.quirks.fire(compat::UNKNOWN_ATTRIBUTE_IGNORED),
            }
        }
        Ok(())
    }

    /// Validates a value for `attr` after the compatibility coercions.
    fn value_for(&mut self, attr: &Attribute, value: Value) -> Result<Option<Value>, ScimError> {
        let value = compat::coerce_value(attr, value, self.quirks);
        normalize_value(attr, value, attr.name)
    }

    fn element_for(&mut self, attr: &Attribute, value: Value) -> Result<Option<Value>, ScimError> {
        let value = compat::coerce_value(attr, Value::Array(vec![value]), self.quirks);
        let Value::Array(mut items) = value else {
            unreachable!("coerce_value keeps arrays")
        };
        normalize_single(attr, items.remove(0), attr.name)
    }

    /// `replace` with `null`/`""` clears (per [`compat::NULL_OR_EMPTY_REMOVES`]).
    fn clears(&mut self, op: OpKind, value: &Option<Value>) -> bool {
        let clears = op == OpKind::Replace && value.as_ref().is_some_and(is_empty_value);
        if clears && value.as_ref().is_some_and(|v| !v.is_array()) {
            self.quirks.fire(compat::NULL_OR_EMPTY_REMOVES);
        }
        clears
    }

    fn remove_attr(&mut self, r: Resolved) -> Result<(), ScimError> {
        if r.attr.required {
            return Err(mutability(format!(
                "'{}' is required and cannot be removed",
                r.attr.name
            )));
        }
        let container = r.container.get_mut(&mut self.doc);
        container.remove(r.attr.name);
        self.drop_empty_extension(r.container);
        Ok(())
    }

    fn drop_empty_extension(&mut self, container: Container) {
        if let Container::Extension(ext) = container
            && self
                .doc
                .get(ext.id)
                .and_then(Value::as_object)
                .is_some_and(Map::is_empty)
        {
            self.doc.remove(ext.id);
        }
    }

    /// A single-valued attribute (simple or complex), or one of its sub-attributes.
    fn single(
        &mut self,
        op: OpKind,
        r: Resolved,
        sub: Option<&'static Attribute>,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        let clears = self.clears(op, &value);
        match sub {
            Some(sub) => {
                if op == OpKind::Remove || clears {
                    if sub.required {
                        return Err(mutability(format!(
                            "'{}.{}' is required",
                            r.attr.name, sub.name
                        )));
                    }
                    let container = r.container.get_mut(&mut self.doc);
                    if let Some(Value::Object(obj)) = container.get_mut(r.attr.name) {
                        obj.remove(sub.name);
                        if obj.is_empty() {
                            container.remove(r.attr.name);
                        }
                    }
                    self.drop_empty_extension(r.container);
                    return Ok(());
                }
                let v = self.value_for(sub, value.unwrap_or(Value::Null))?;
                let container = r.container.get_mut(&mut self.doc);
                let obj = container
                    .entry(r.attr.name.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !obj.is_object() {
                    *obj = Value::Object(Map::new());
                }
                let obj = obj.as_object_mut().expect("just made an object");
                match v {
                    Some(v) => {
                        obj.insert(sub.name.to_owned(), v);
                    }
                    None => {
                        obj.remove(sub.name);
                    }
                }
                Ok(())
            }
            None => {
                if op == OpKind::Remove || clears {
                    return self.remove_attr(r);
                }
                let Some(v) = self.value_for(r.attr, value.unwrap_or(Value::Null))? else {
                    return Ok(());
                };
                let container = r.container.get_mut(&mut self.doc);
                match (r.attr.ty, v, container.get_mut(r.attr.name)) {
                    // A complex value merges its sub-attributes (RFC 7644 §3.5.2.1, §3.5.2.3).
                    (AttrType::Complex, Value::Object(new), Some(Value::Object(old))) => {
                        for (k, v) in new {
                            old.insert(k, v);
                        }
                    }
                    (_, v, _) => {
                        container.insert(r.attr.name.to_owned(), v);
                    }
                }
                Ok(())
            }
        }
    }

    /// Indices of the values of `attr` that `filter` selects.
    fn select(&self, r: Resolved, filter: &Filter) -> Result<Vec<usize>, ScimError> {
        let Some(items) = r
            .container
            .get(&self.doc)
            .and_then(|c| c.get(r.attr.name))
            .and_then(Value::as_array)
        else {
            // Validate the filter even when there is nothing to select from.
            filter::matches(filter, &Map::new(), Scope::Element(r.attr))
                .map_err(|e| invalid_path(e.detail))?;
            return Ok(Vec::new());
        };
        let mut selected = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let empty = Map::new();
            let obj = item.as_object().unwrap_or(&empty);
            if filter::matches(filter, obj, Scope::Element(r.attr))
                .map_err(|e| invalid_path(e.detail))?
            {
                selected.push(i);
            }
        }
        Ok(selected)
    }

    fn items_mut(&mut self, r: Resolved) -> &mut Vec<Value> {
        let container = r.container.get_mut(&mut self.doc);
        let entry = container
            .entry(r.attr.name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if !entry.is_array() {
            *entry = Value::Array(Vec::new());
        }
        entry.as_array_mut().expect("just made an array")
    }

    /// Removes the attribute if no values are left (RFC 7644 §3.5.2.2).
    fn tidy(&mut self, r: Resolved) {
        let container = r.container.get_mut(&mut self.doc);
        if let Some(Value::Array(items)) = container.get_mut(r.attr.name) {
            items.retain(|v| !v.as_object().is_some_and(Map::is_empty));
            if items.is_empty() {
                container.remove(r.attr.name);
            }
        }
        self.drop_empty_extension(r.container);
    }

    /// After values at `touched` were set: one of them `primary` clears the
    /// flag on all the others.
    fn settle_primary(&mut self, r: Resolved, touched: &[usize]) {
        let items = self.items_mut(r);
        let is_primary = |v: &Value| v.get("primary") == Some(&Value::Bool(true));
        if !touched
            .iter()
            .any(|&i| items.get(i).is_some_and(is_primary))
        {
            return;
        }
        let touched = marks(items.len(), touched);
        for (i, item) in items.iter_mut().enumerate() {
            if !touched[i]
                && is_primary(item)
                && let Some(obj) = item.as_object_mut()
            {
                obj.insert("primary".to_owned(), Value::Bool(false));
            }
        }
    }

    /// A multi-valued attribute, optionally through a value filter and/or to
    /// a sub-attribute of its values.
    fn multi(
        &mut self,
        op: OpKind,
        r: Resolved,
        filter: Option<&Filter>,
        sub: Option<&'static Attribute>,
        value: Option<Value>,
    ) -> Result<(), ScimError> {
        let clears = self.clears(op, &value);
        match (filter, sub) {
            (Some(filter), _) => self.filtered(op, r, filter, sub, value, clears),
            (None, Some(sub)) => {
                // `emails.type` without a filter: every value.
                let count = self.items_mut(r).len();
                let all: Vec<usize> = (0..count).collect();
                if op == OpKind::Remove || clears {
                    self.remove_sub(r, &all, sub)
                } else if count == 0 {
                    let v = value.unwrap_or(Value::Null);
                    let mut element = Map::new();
                    element.insert(sub.name.to_owned(), v);
                    self.push_new(r, Value::Object(element))
                } else {
                    self.set_sub(r, &all, sub, value.unwrap_or(Value::Null))
                }
            }
            (None, None) => match op {
                OpKind::Remove => match Removal::of(value.as_ref(), self.quirks) {
                    Removal::All => self.remove_attr(r),
                    Removal::Listed(list) => self.remove_listed(r, list),
                },
                _ if clears => self.remove_attr(r),
                OpKind::Replace => {
                    let v = match value.unwrap_or(Value::Null) {
                        Value::Array(a) => Value::Array(a),
                        single => Value::Array(vec![single]),
                    };
                    match self.value_for(r.attr, v)? {
                        Some(v) => {
                            r.container
                                .get_mut(&mut self.doc)
                                .insert(r.attr.name.to_owned(), v);
                        }
                        None => self.remove_attr(r)?,
                    }
                    self.tidy(r);
                    Ok(())
                }
                OpKind::Add => {
                    let values = match value.unwrap_or(Value::Null) {
                        Value::Array(a) => a,
                        Value::Null => Vec::new(),
                        single => vec![single],
                    };
                    // Values already present are found by their JSON text
                    // (canonical: keys sorted), so adding n values to m is
                    // O(n + m), not O(n * m).
                    let mut touched = Vec::new();
                    let mut present: HashMap<String, usize> = self
                        .items_mut(r)
                        .iter()
                        .enumerate()
                        .rev() // the first of equal values wins
                        .map(|(i, e)| (e.to_string(), i))
                        .collect();
                    for v in values {
                        let Some(element) = self.element_for(r.attr, v)? else {
                            continue;
                        };
                        let items = self.items_mut(r);
                        match present.entry(element.to_string()) {
                            Entry::Occupied(at) => touched.push(*at.get()),
                            Entry::Vacant(slot) => {
                                slot.insert(items.len());
                                touched.push(items.len());
                                items.push(element);
                            }
                        }
                    }
                    // Checked here, not only when the result is validated,
                    // so that later operations never scan an oversized list.
                    let count = self.items_mut(r).len();
                    if count > MAX_VALUES {
                        return Err(ScimError::invalid_value(format!(
                            "attribute '{}' would have {count} values; at most {MAX_VALUES} are accepted",
                            r.attr.name
                        )));
                    }
                    self.settle_primary(r, &touched);
                    self.tidy(r);
                    Ok(())
                }
            },
        }
    }

    fn filtered(
        &mut self,
        op: OpKind,
        r: Resolved,
        filter: &Filter,
        sub: Option<&'static Attribute>,
        value: Option<Value>,
        clears: bool,
    ) -> Result<(), ScimError> {
        let selected = self.select(r, filter)?;
        if selected.is_empty() {
            if op != OpKind::Add {
                return Err(no_target(format!(
                    "no value of '{}' matches the filter [{filter}]",
                    r.attr.name
                )));
            }
            // Entra adds through a filter that matches nothing yet.
            let Some(mut element) = element_from_filter(filter) else {
                return Err(no_target(format!(
                    "no value of '{}' matches [{filter}], and the filter does not describe a new value",
                    r.attr.name
                )));
            };
            self.quirks.fire(compat::ADD_FILTER_CREATES);
            match (sub, value.unwrap_or(Value::Null)) {
                (Some(sub), v) => {
                    element.insert(sub.name.to_owned(), v);
                }
                (None, Value::Object(fields)) => element.extend(fields),
                (None, _) => {
                    return Err(ScimError::invalid_value(format!(
                        "adding to '{}[…]' needs an object value",
                        r.attr.name
                    )));
                }
            }
            return self.push_new(r, Value::Object(element));
        }
        match (op, sub) {
            (OpKind::Remove, Some(sub)) => self.remove_sub(r, &selected, sub),
            (OpKind::Remove, None) => self.remove_at(r, &selected),
            (_, Some(sub)) if clears => self.remove_sub(r, &selected, sub),
            (_, Some(sub)) => self.set_sub(r, &selected, sub, value.unwrap_or(Value::Null)),
            (_, None) if clears => self.remove_at(r, &selected),
            (op, None) => {
                let Some(Value::Object(new)) =
                    self.element_for(r.attr, value.unwrap_or(Value::Null))?
                else {
                    return Err(ScimError::invalid_value(format!(
                        "'{}[…]' needs an object value",
                        r.attr.name
                    )));
                };
                let items = self.items_mut(r);
                for &i in &selected {
                    match (op, &mut items[i]) {
                        // add merges into the selected values; replace swaps them.
                        (OpKind::Add, Value::Object(old)) => old.extend(new.clone()),
                        (_, slot) => *slot = Value::Object(new.clone()),
                    }
                }
                self.settle_primary(r, &selected);
                Ok(())
            }
        }
    }

    fn remove_at(&mut self, r: Resolved, at: &[usize]) -> Result<(), ScimError> {
        let items = self.items_mut(r);
        let gone = marks(items.len(), at);
        let mut i = 0;
        items.retain(|_| {
            let keep = !gone[i];
            i += 1;
            keep
        });
        self.tidy(r);
        Ok(())
    }

    fn set_sub(
        &mut self,
        r: Resolved,
        at: &[usize],
        sub: &'static Attribute,
        value: Value,
    ) -> Result<(), ScimError> {
        let v = self.value_for(sub, value)?;
        let items = self.items_mut(r);
        for &i in at {
            if let Some(obj) = items[i].as_object_mut() {
                match &v {
                    Some(v) => obj.insert(sub.name.to_owned(), v.clone()),
                    None => obj.remove(sub.name),
                };
            }
        }
        self.settle_primary(r, at);
        self.tidy(r);
        Ok(())
    }

    fn remove_sub(
        &mut self,
        r: Resolved,
        at: &[usize],
        sub: &'static Attribute,
    ) -> Result<(), ScimError> {
        if sub.required {
            return Err(mutability(format!(
                "'{}.{}' is required",
                r.attr.name, sub.name
            )));
        }
        let items = self.items_mut(r);
        for &i in at {
            if let Some(obj) = items[i].as_object_mut() {
                obj.remove(sub.name);
            }
        }
        self.tidy(r);
        Ok(())
    }

    fn push_new(&mut self, r: Resolved, element: Value) -> Result<(), ScimError> {
        let Some(element) = self.element_for(r.attr, element)? else {
            return Ok(());
        };
        let items = self.items_mut(r);
        items.push(element);
        let at = [items.len() - 1];
        self.settle_primary(r, &at);
        self.tidy(r);
        Ok(())
    }

    /// A `remove` that carries values ([`Removal::Listed`]): removes the
    /// values that match one of them by [`membership::removal_key`], in one
    /// pass over the values.
    fn remove_listed(&mut self, r: Resolved, list: Vec<Value>) -> Result<(), ScimError> {
        let whole = r.attr.sub_attribute("value").is_none();
        let mut wanted = HashSet::with_capacity(list.len());
        for item in list {
            // Matched whole, a listed value is normalised as a stored one was.
            let item = match whole {
                true => match self.element_for(r.attr, item)? {
                    Some(v) => v,
                    None => continue,
                },
                false => item,
            };
            wanted.insert(membership::removal_key(r.attr, &item)?);
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let items = self.items_mut(r);
        items.retain(|item| {
            !membership::removal_key(r.attr, item).is_ok_and(|k| wanted.contains(&k))
        });
        self.tidy(r);
        Ok(())
    }
}

/// `len` flags, set at `at`: a set of indices with O(1) membership.
fn marks(len: usize, at: &[usize]) -> Vec<bool> {
    let mut flags = vec![false; len];
    for &i in at {
        if let Some(f) = flags.get_mut(i) {
            *f = true;
        }
    }
    flags
}

/// The value a filter of `eq` comparisons joined by `and` describes:
/// `type eq "work" and primary eq true` → `{"type":"work","primary":true}`.
fn element_from_filter(filter: &Filter) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    fn walk(f: &Filter, out: &mut Map<String, Value>) -> bool {
        match f {
            Filter::And(a, b) => walk(a, out) && walk(b, out),
            Filter::Compare {
                path,
                op: CompareOp::Eq,
                value,
            } if path.uri.is_none() && path.sub.is_none() => {
                let v = match value {
                    CompValue::String(s) => Value::String(s.clone()),
                    CompValue::Bool(b) => Value::Bool(*b),
                    CompValue::Number(n) => Value::Number(n.clone()),
                    CompValue::Null => return false,
                };
                out.insert(path.name.clone(), v);
                true
            }
            _ => false,
        }
    }
    walk(filter, &mut out).then_some(out)
}

/// RFC 7643 §2.2 `immutable`: once set, a value may not change.
fn check_immutable(
    rt: &ResourceType,
    old: &Map<String, Value>,
    new: &Map<String, Value>,
) -> Result<(), ScimError> {
    let containers = std::iter::once((Container::Core, rt.schema.attributes)).chain(
        rt.extensions
            .iter()
            .map(|e| (Container::Extension(e.schema), e.schema.attributes)),
    );
    for (container, attrs) in containers {
        for attr in attrs
            .iter()
            .filter(|a| a.mutability == Mutability::Immutable)
        {
            let before = container.get(old).and_then(|c| c.get(attr.name));
            let after = container.get(new).and_then(|c| c.get(attr.name));
            if before.is_some() && before != after {
                return Err(mutability(format!("'{}' is immutable", attr.name)));
            }
        }
    }
    Ok(())
}
