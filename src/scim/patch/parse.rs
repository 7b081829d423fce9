//! Parsing a PatchOp request body (RFC 7644 §3.5.2) into [`Operation`]s.

use serde_json::Value;

use crate::scim::compat::{self, Quirks};
use crate::scim::error::{ScimError, ScimType};
use crate::scim::filter::{self, PatchPath};
use crate::scim::resource::field;

pub const PATCH_OP_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Most operations accepted in one PATCH request.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// One parsed operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    /// `None` when the request had no `value` member.
    pub value: Option<Value>,
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::invalid_syntax(detail)
}

fn invalid_path(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidPath, detail)
}

fn no_target(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::NoTarget, detail)
}

/// Parses a PatchOp request body (RFC 7644 §3.5.2).
pub fn parse_request(body: Value, quirks: &mut Quirks) -> Result<Vec<Operation>, ScimError> {
    let Value::Object(body) = body else {
        return Err(syntax("the PATCH body must be a JSON object"));
    };
    if let Some(schemas) = field(&body, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter().any(|s| {
                s.as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP_URN))
            })
        });
        if !ok {
            return Err(syntax(format!("'schemas' must contain \"{PATCH_OP_URN}\"")));
        }
    }
    let Some(ops) = field(&body, "Operations") else {
        return Err(syntax("the PATCH body has no 'Operations'"));
    };
    let Some(ops) = ops.as_array() else {
        return Err(syntax("'Operations' must be an array"));
    };
    if ops.is_empty() {
        return Err(syntax("'Operations' is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(syntax(format!(
            "at most {MAX_OPERATIONS} operations are accepted in one request"
        )));
    }
    ops.iter()
        .enumerate()
        .map(|(i, op)| parse_operation(i, op, quirks))
        .collect()
}

fn parse_operation(i: usize, op: &Value, quirks: &mut Quirks) -> Result<Operation, ScimError> {
    let Some(op) = op.as_object() else {
        return Err(syntax(format!("operation {i} must be a JSON object")));
    };
    let Some(name) = field(op, "op").and_then(Value::as_str) else {
        return Err(syntax(format!("operation {i} has no 'op'")));
    };
    let kind = match name.to_ascii_lowercase().as_str() {
        "add" => OpKind::Add,
        "replace" => OpKind::Replace,
        "remove" => OpKind::Remove,
        _ => {
            return Err(syntax(format!(
                "operation {i}: unknown op '{name}' (expected add, replace or remove)"
            )));
        }
    };
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        quirks.fire(compat::CAPITALISED_OP);
    }
    let path = match field(op, "path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(
            filter::parse_path(p)
                .map_err(|e| invalid_path(format!("operation {i}: invalid path '{p}': {e}")))?,
        ),
        Some(_) => {
            return Err(invalid_path(format!(
                "operation {i}: 'path' must be a string"
            )));
        }
    };
    let value = field(op, "value").cloned();
    match kind {
        OpKind::Remove if path.is_none() => {
            return Err(no_target(format!("operation {i}: remove needs a 'path'")));
        }
        OpKind::Add | OpKind::Replace if value.is_none() => {
            return Err(syntax(format!("operation {i}: {name} needs a 'value'")));
        }
        _ => {}
    }
    Ok(Operation {
        op: kind,
        path,
        value,
    })
}

/// How many values `ops` carry (an array counts its elements): what the
/// engine's work grows with, for deciding where to run it.
pub fn weight(ops: &[Operation]) -> usize {
    ops.iter()
        .map(|op| match &op.value {
            Some(Value::Array(items)) => items.len().max(1),
            Some(Value::Object(map)) => map.len().max(1),
            _ => 1,
        })
        .sum()
}
