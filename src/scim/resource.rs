//! Turning request bodies into stored documents and stored documents into
//! responses, guided by the schema definitions.
//!
//! A stored document holds the client-writable attributes only, under their
//! canonical names: no `id`, no `meta`, nothing readOnly, nothing
//! `returned: never`. `id` and `meta` come from the store's columns when the
//! document is rendered.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};

use super::compat::{self, Quirks};
use super::error::ScimError;
use super::schema::{self, AttrType, Attribute, Mutability, ResourceType, Returned};

/// Most values one multi-valued attribute of a document may hold (a group's
/// `members` are rows, bounded on their own). Every filter over the
/// attribute reads them all, and a PATCH touches them all.
pub const MAX_VALUES: usize = 1000;

/// The form in which case-insensitive strings are compared and keyed (the
/// unique `userName` key among them): Unicode NFC, then lower case, so that
/// canonically equivalent spellings (`é` as one code point or as `e` and a
/// combining accent) are equal, as RFC 7643 §2.1's case-insensitive
/// comparison expects of text. ASCII, nearly all of it, takes a fast path.
pub fn caseless(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let lower = s.nfc().collect::<String>().to_lowercase();
    lower.nfc().collect()
}

/// A member of a JSON object by case-insensitive key (SCIM attribute names
/// and message fields are case-insensitive).
pub fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Validates a POST/PUT body against `rt` and returns the document to store.
///
/// Attribute names are matched case-insensitively and stored under their
/// canonical spelling; attributes no schema defines are ignored, readOnly
/// ones are ignored (RFC 7644 §3.5.1), `null` means absent (RFC 7643 §2.5).
pub fn normalize(rt: &ResourceType, input: Value) -> Result<Map<String, Value>, ScimError> {
    normalize_with(rt, input, &mut Quirks::default())
}

/// [`normalize`], applying the value-level compatibility rules
/// (`compat::coerce_value`) and recording those that fired.
pub fn normalize_with(
    rt: &ResourceType,
    input: Value,
    quirks: &mut Quirks,
) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(input) = input else {
        return Err(ScimError::invalid_syntax(
            "the request body must be a JSON object",
        ));
    };
    let mut out = Map::new();
    let mut seen: Vec<String> = Vec::with_capacity(input.len());
    for (key, value) in input {
        let lower = key.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(ScimError::invalid_value(format!(
                "attribute '{key}' is given more than once"
            )));
        }
        seen.push(lower);

        if key.eq_ignore_ascii_case("schemas") {
            check_schemas(rt, &value)?;
        } else if let Some(ext) = rt.extension(&key) {
            match value {
                Value::Null => {}
                Value::Object(ext_input) => {
                    let ext_out = normalize_attributes(ext.attributes, ext_input, ext.id, quirks)?;
                    if !ext_out.is_empty() {
                        out.insert(ext.id.to_owned(), Value::Object(ext_out));
                    }
                }
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "'{}' must be a JSON object",
                        ext.id
                    )));
                }
            }
        } else if let Some(attr) = rt
            .schema
            .attribute(&key)
            .or_else(|| schema::common_attribute(&key))
            && let Some(v) =
                normalize_value(attr, compat::coerce_value(attr, value, quirks), attr.name)?
        {
            out.insert(attr.name.to_owned(), v);
        }
    }
    check_required(rt.schema.attributes, &out, "")?;
    for ext in rt.extensions {
        let ext_doc = out.get(ext.schema.id).and_then(Value::as_object);
        match ext_doc {
            Some(doc) => check_required(ext.schema.attributes, doc, ext.schema.id)?,
            None if ext.required => {
                return Err(ScimError::invalid_value(format!(
                    "the extension '{}' is required",
                    ext.schema.id
                )));
            }
            None => {}
        }
    }
    let schemas = schemas_for(rt, &out);
    out.insert("schemas".to_owned(), schemas);
    Ok(out)
}

/// The `schemas` value of a document: the core URN plus each extension URN
/// whose attributes are present.
pub fn schemas_for(rt: &ResourceType, doc: &Map<String, Value>) -> Value {
    let mut urns = vec![Value::from(rt.schema.id)];
    for ext in rt.extensions {
        if doc.contains_key(ext.schema.id) {
            urns.push(Value::from(ext.schema.id));
        }
    }
    Value::Array(urns)
}

fn check_schemas(rt: &ResourceType, value: &Value) -> Result<(), ScimError> {
    let Value::Array(urns) = value else {
        return Err(ScimError::invalid_value(
            "'schemas' must be an array of schema URNs",
        ));
    };
    for urn in urns {
        let Some(urn) = urn.as_str() else {
            return Err(ScimError::invalid_value(
                "'schemas' must be an array of schema URNs",
            ));
        };
        if !rt.supports_schema(urn) {
            return Err(ScimError::invalid_value(format!(
                "the schema '{urn}' is not supported by the {} resource type",
                rt.name
            )));
        }
    }
    Ok(())
}

fn normalize_attributes(
    attrs: &'static [Attribute],
    input: Map<String, Value>,
    parent: &str,
    quirks: &mut Quirks,
) -> Result<Map<String, Value>, ScimError> {
    let mut out = Map::new();
    for (key, value) in input {
        let Some(attr) = attrs.iter().find(|a| a.name.eq_ignore_ascii_case(&key)) else {
            continue;
        };
        if out.contains_key(attr.name) {
            return Err(ScimError::invalid_value(format!(
                "attribute '{parent}:{key}' is given more than once"
            )));
        }
        let path = format!("{parent}:{}", attr.name);
        if let Some(v) = normalize_value(attr, compat::coerce_value(attr, value, quirks), &path)? {
            out.insert(attr.name.to_owned(), v);
        }
    }
    Ok(out)
}

/// Validates one attribute value; `Ok(None)` means "store nothing".
pub(crate) fn normalize_value(
    attr: &Attribute,
    value: Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    if value.is_null() || attr.mutability == Mutability::ReadOnly {
        return Ok(None);
    }
    let normalized = if attr.multi_valued {
        let Value::Array(items) = value else {
            return Err(type_error(path, "an array"));
        };
        if items.len() > MAX_VALUES {
            return Err(ScimError::invalid_value(format!(
                "attribute '{path}' has {} values; at most {MAX_VALUES} are accepted",
                items.len()
            )));
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if item.is_array() {
                return Err(type_error(path, "an array of single values"));
            }
            if let Some(v) = normalize_single(attr, item, path)? {
                out.push(v);
            }
        }
        let primaries = out
            .iter()
            .filter(|v| v.get("primary") == Some(&Value::Bool(true)))
            .count();
        if primaries > 1 {
            return Err(ScimError::invalid_value(format!(
                "at most one value of '{path}' may be primary"
            )));
        }
        (!out.is_empty()).then_some(Value::Array(out))
    } else {
        normalize_single(attr, value, path)?
    };
    // Attributes that are never returned are not stored either: a password is
    // accepted and validated, then dropped (the README says why).
    Ok(normalized.filter(|_| attr.returned != Returned::Never))
}

/// Validates one value of `attr` (one element, for a multi-valued attribute).
pub(crate) fn normalize_single(
    attr: &Attribute,
    value: Value,
    path: &str,
) -> Result<Option<Value>, ScimError> {
    let ok = match (attr.ty, &value) {
        (_, Value::Null) => return Ok(None),
        (AttrType::Complex, Value::Object(_)) => {
            let Value::Object(map) = value else {
                unreachable!("matched as an object")
            };
            let out = normalize_attributes(attr.sub_attributes, map, path, &mut Quirks::default())?;
            check_required(attr.sub_attributes, &out, path)?;
            return Ok((!out.is_empty()).then_some(Value::Object(out)));
        }
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(_)) => true,
        (AttrType::Boolean, Value::Bool(_)) => true,
        (AttrType::Decimal, Value::Number(_)) => true,
        (AttrType::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (AttrType::DateTime, Value::String(s)) => DateTime::parse_from_rfc3339(s).is_ok(),
        _ => false,
    };
    if ok {
        Ok(Some(value))
    } else {
        Err(type_error(path, expected_type(attr.ty)))
    }
}

fn expected_type(ty: AttrType) -> &'static str {
    match ty {
        AttrType::String => "a string",
        AttrType::Boolean => "a boolean",
        AttrType::Decimal => "a number",
        AttrType::Integer => "an integer",
        AttrType::DateTime => "a dateTime string (RFC 3339)",
        AttrType::Binary => "a base64 string",
        AttrType::Reference => "a URI string",
        AttrType::Complex => "a JSON object",
    }
}

fn type_error(path: &str, expected: &str) -> ScimError {
    ScimError::invalid_value(format!("attribute '{path}' must be {expected}"))
}

fn check_required(
    attrs: &'static [Attribute],
    doc: &Map<String, Value>,
    parent: &str,
) -> Result<(), ScimError> {
    for attr in attrs {
        if !attr.required || attr.mutability == Mutability::ReadOnly {
            continue;
        }
        let present = match doc.get(attr.name) {
            None | Some(Value::Null) => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        };
        if !present {
            let path = if parent.is_empty() {
                attr.name.to_owned()
            } else {
                format!("{parent}.{}", attr.name)
            };
            return Err(ScimError::invalid_value(format!(
                "attribute '{path}' is required"
            )));
        }
    }
    Ok(())
}

/// Resource metadata kept by the store (RFC 7643 §3.1 `meta`).
#[derive(Debug, Clone)]
pub struct Meta<'a> {
    pub resource_type: &'a str,
    pub created: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub location: String,
    pub version: i64,
}

/// The entity tag of a resource version (RFC 7644 §3.14), also its `meta.version`.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// A timestamp as SCIM renders it: RFC 3339, UTC, millisecond precision.
pub fn format_datetime(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Builds the response representation of a stored document.
pub fn render(rt: &ResourceType, mut out: Map<String, Value>, id: &str, meta: &Meta<'_>) -> Value {
    out.retain(|k, _| {
        rt.schema
            .attribute(k)
            .is_none_or(|a| a.returned != Returned::Never)
    });
    out.insert("id".to_owned(), Value::from(id));
    out.insert(
        "meta".to_owned(),
        serde_json::json!({
            "resourceType": meta.resource_type,
            "created": format_datetime(meta.created),
            "lastModified": format_datetime(meta.last_modified),
            "location": meta.location,
            "version": etag(meta.version),
        }),
    );
    Value::Object(out)
}

/// The response form of a stored document held as JSON text, written
/// without parsing it: the document's members, then `id`, `meta` and the
/// `extra` members (a user's derived `groups`). What [`render`] and the
/// default projection make of the same document, for a document scimd
/// stored: `normalize` keeps no `id`, `meta`, read-only or never-returned
/// attribute, and no schema here has one returned only on request. `None`
/// when the text is not a JSON object.
pub fn render_text(
    stored: &str,
    id: &str,
    meta: &Meta<'_>,
    extra: &[(&str, Value)],
) -> Option<Vec<u8>> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct MetaOut<'a> {
        resource_type: &'a str,
        created: String,
        last_modified: String,
        location: &'a str,
        version: String,
    }
    let members = stored.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    let mut out = Vec::with_capacity(stored.len() + 256);
    out.push(b'{');
    out.extend_from_slice(members.as_bytes());
    if !members.is_empty() {
        out.push(b',');
    }
    // Serialising strings and a plain struct into a `Vec` cannot fail.
    out.extend_from_slice(b"\"id\":");
    serde_json::to_writer(&mut out, id).ok()?;
    out.extend_from_slice(b",\"meta\":");
    let meta = MetaOut {
        resource_type: meta.resource_type,
        created: format_datetime(meta.created),
        last_modified: format_datetime(meta.last_modified),
        location: &meta.location,
        version: etag(meta.version),
    };
    serde_json::to_writer(&mut out, &meta).ok()?;
    for (name, value) in extra {
        out.push(b',');
        serde_json::to_writer(&mut out, name).ok()?;
        out.push(b':');
        serde_json::to_writer(&mut out, value).ok()?;
    }
    out.push(b'}');
    Some(out)
}

#[cfg(test)]
mod caseless_tests {
    use super::caseless;

    #[test]
    fn canonically_equivalent_spellings_fold_alike() {
        assert_eq!(caseless("Ann"), "ann");
        assert_eq!(caseless("Ren\u{e9}e"), caseless("RENE\u{301}E"));
        assert_ne!(caseless("Renee"), caseless("Ren\u{e9}e"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::error::ScimType;
    use crate::scim::schema::{ENTERPRISE_USER_URN, USER_RESOURCE};
    use serde_json::json;

    fn norm(v: Value) -> Result<Value, ScimError> {
        normalize(&USER_RESOURCE, v).map(Value::Object)
    }

    #[test]
    fn canonicalises_names_and_drops_unknown_readonly_and_null() {
        let doc = norm(json!({
            "USERNAME": "bjensen",
            "id": "evil",
            "meta": {"version": "x"},
            "groups": [{"value": "g"}],
            "userId": "ignored",
            "title": null,
            "NAME": {"GivenName": "Barbara", "nickname": "unknown sub"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}, null],
        }))
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "bjensen",
                "name": {"givenName": "Barbara"},
                "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            })
        );
    }

    #[test]
    fn enterprise_extension_sets_schemas() {
        let doc = norm(json!({
            "schemas": [USER_RESOURCE.schema.id, ENTERPRISE_USER_URN],
            "userName": "a",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {
                "department": "Sales", "manager": {"value": "42", "displayName": "ro"}
            }
        }))
        .unwrap();
        assert_eq!(doc["schemas"][1], ENTERPRISE_USER_URN);
        assert_eq!(
            doc[ENTERPRISE_USER_URN],
            json!({"department": "Sales", "manager": {"value": "42"}})
        );
    }

    #[test]
    fn rejects_wrong_types_missing_username_and_unknown_schema() {
        let cases = [
            json!({"userName": 5}),
            json!({"userName": "a", "active": "yes"}),
            json!({"userName": "a", "emails": {"value": "x"}}),
            json!({"userName": "a", "emails": ["x"]}),
            json!({"userName": "a", "name": "Barbara"}),
            json!({"userName": "a", "emails": [{"value": "x", "primary": true}, {"value": "y", "primary": true}]}),
            json!({"userName": ""}),
            json!({"displayName": "no user name"}),
            json!({"userName": "a", "schemas": ["urn:example:other"]}),
            json!({"userName": "a", "UserName": "b"}),
        ];
        for case in cases {
            let err = norm(case.clone()).unwrap_err();
            assert_eq!(err.status, 400, "{case}");
            assert_eq!(err.scim_type, Some(ScimType::InvalidValue), "{case}");
        }
        assert_eq!(
            norm(json!([1])).unwrap_err().scim_type,
            Some(ScimType::InvalidSyntax)
        );
    }

    #[test]
    fn password_is_validated_but_not_stored() {
        let doc = norm(json!({"userName": "a", "password": "s3cret"})).unwrap();
        assert!(doc.get("password").is_none());
        assert!(norm(json!({"userName": "a", "password": 1})).is_err());
    }

    fn meta_at_version_3() -> Meta<'static> {
        let t = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.678Z")
            .unwrap()
            .with_timezone(&Utc);
        Meta {
            resource_type: "User",
            created: t,
            last_modified: t,
            location: "http://h/scim/v2/Users/1".into(),
            version: 3,
        }
    }

    #[test]
    fn render_adds_id_and_meta() {
        let doc = normalize(&USER_RESOURCE, json!({"userName": "a"})).unwrap();
        let meta = meta_at_version_3();
        let v = render(&USER_RESOURCE, doc, "1", &meta);
        assert_eq!(v["id"], "1");
        assert_eq!(v["meta"]["version"], "W/\"3\"");
        assert_eq!(v["meta"]["created"], "2026-01-02T03:04:05.678Z");
    }

    #[test]
    fn render_text_equals_render_of_the_same_document() {
        let meta = meta_at_version_3();
        let groups = json!([{"value": "g", "display": "G \"q\""}]);
        for input in [
            json!({"userName": "a"}),
            json!({"userName": "q\"u\\o\u{1}te", "name": {"givenName": "\u{e9}"}, "emails": [{"value": "x@y"}]}),
        ] {
            let doc = normalize(&USER_RESOURCE, input).unwrap();
            // PostgreSQL's JSONB text has spaces after separators; SQLite's none.
            let spaced = serde_json::to_string_pretty(&doc).unwrap();
            for stored in [serde_json::to_string(&doc).unwrap(), spaced] {
                let text = render_text(&stored, "1", &meta, &[("groups", groups.clone())]).unwrap();
                let mut parsed = render(&USER_RESOURCE, doc.clone(), "1", &meta);
                parsed["groups"] = groups.clone();
                assert_eq!(serde_json::from_slice::<Value>(&text).unwrap(), parsed);
            }
        }
        let empty = render_text(" { } ", "1", &meta, &[]).unwrap();
        let empty: Value = serde_json::from_slice(&empty).unwrap();
        assert_eq!(empty["id"], "1");
        assert_eq!(empty.as_object().unwrap().len(), 2);
        assert!(render_text("[1]", "1", &meta, &[]).is_none());
        assert!(render_text("\"{}\"", "1", &meta, &[]).is_none());
    }
}
