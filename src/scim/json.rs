//! Reading a SCIM request body: JSON, strictly. Attribute names are
//! case-insensitive (RFC 7643 §2.1), so an object that names a member twice,
//! exactly or in another case, is ambiguous and refused (`400
//! invalidSyntax`) at every level, instead of silently keeping the last.
//! U+0000 is refused in every string and key (`400 invalidValue`): no
//! attribute may hold it, PostgreSQL cannot store it in text, and a string
//! that SQLite stores with it reads back cut short.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::error::ScimError;

/// Objects with more members than this check duplicates through a hash set
/// (below it, a scan of the few keys read so far is cheaper).
const SCAN_KEYS: usize = 16;

/// Parses a request body.
pub fn parse(bytes: &[u8]) -> Result<Value, ScimError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|e| {
            ScimError::invalid_syntax(format!("The request body is not valid JSON: {e}"))
        })?;
    check_no_nul(&value, &mut Vec::new())?;
    Ok(value)
}

/// Refuses U+0000 in a string that came from elsewhere (a query parameter).
pub fn check_text(what: &str, text: &str) -> Result<(), ScimError> {
    match text.contains('\0') {
        true => Err(nul_error(what)),
        false => Ok(()),
    }
}

fn nul_error(at: &str) -> ScimError {
    ScimError::invalid_value(format!("{at} contains U+0000, which no string may hold"))
}

/// Walks `value`; `at` is the path so far, for the error message.
fn check_no_nul<'a>(value: &'a Value, at: &mut Vec<&'a str>) -> Result<(), ScimError> {
    let here = |at: &[&str]| match at.is_empty() {
        true => "the request body".to_owned(),
        false => format!("'{}'", at.join(".")),
    };
    match value {
        Value::String(s) if s.contains('\0') => Err(nul_error(&here(at))),
        Value::Array(items) => items.iter().try_for_each(|v| check_no_nul(v, at)),
        Value::Object(map) => {
            for (k, v) in map {
                if k.contains('\0') {
                    return Err(nul_error(&format!("a key of {}", here(at))));
                }
                at.push(k);
                check_no_nul(v, at)?;
                at.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A JSON value whose objects name each member once (ASCII case folded).
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        let mut folded: Option<HashSet<String>> = None;
        while let Some(key) = access.next_key::<String>()? {
            let duplicate = match &mut folded {
                Some(set) => !set.insert(key.to_ascii_lowercase()),
                None => {
                    let dup = map.keys().any(|k: &String| k.eq_ignore_ascii_case(&key));
                    if map.len() >= SCAN_KEYS {
                        folded = Some(map.keys().map(|k| k.to_ascii_lowercase()).collect());
                        folded.as_mut().map(|s| s.insert(key.to_ascii_lowercase()));
                    }
                    dup
                }
            };
            if duplicate {
                return Err(de::Error::custom(format!(
                    "the member \"{key}\" is given more than once in one object \
                     (names are case-insensitive)"
                )));
            }
            let value = access.next_value_seed(Strict)?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::ScimType;

    fn scim_type(body: &str) -> Option<ScimType> {
        parse(body.as_bytes()).err().and_then(|e| e.scim_type)
    }

    #[test]
    fn duplicates_at_any_level_and_in_any_case_are_refused() {
        assert!(parse(br#"{"a": 1, "b": {"c": [{"d": 1, "e": 2}]}}"#).is_ok());
        for body in [
            r#"{"userName": "a", "userName": "b"}"#,
            r#"{"userName": "a", "USERNAME": "b"}"#,
            r#"{"name": {"givenName": "a", "givenname": "b"}}"#,
            r#"{"emails": [{"value": "a", "Value": "b"}]}"#,
        ] {
            assert_eq!(scim_type(body), Some(ScimType::InvalidSyntax), "{body}");
        }
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        assert!(parse(format!("{{{}}}", many.join(",")).as_bytes()).is_ok());
        let dup = format!("{{{}, \"K39\": 0}}", many.join(","));
        assert_eq!(scim_type(&dup), Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn nul_is_refused_in_strings_and_keys() {
        assert_eq!(
            scim_type(r#"{"userName": "a\u0000b"}"#),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(
            scim_type(r#"{"emails": [{"value": "\u0000"}]}"#),
            Some(ScimType::InvalidValue)
        );
        assert_eq!(scim_type(r#"{"a\u0000": 1}"#), Some(ScimType::InvalidValue));
        assert!(check_text("filter", "userName eq \"a\0\"").is_err());
    }

    #[test]
    fn not_json_is_invalid_syntax() {
        for body in ["", "{", "{} {}", "[1,]", "nul"] {
            assert_eq!(scim_type(body), Some(ScimType::InvalidSyntax), "{body:?}");
        }
        let deep = "[".repeat(1000) + &"]".repeat(1000);
        assert_eq!(scim_type(&deep), Some(ScimType::InvalidSyntax));
    }
}
