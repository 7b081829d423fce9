//! `If-Match` preconditions (RFC 9110 §13.1.1) over resource versions.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, header};

use crate::scim::ScimError;

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header, or `*`: any current version.
    Any,
    /// One of these versions.
    Versions(Vec<i64>),
}

/// Parses an entity-tag list header (`If-Match`, `If-None-Match`): `None`
/// when absent. Weak and strong tags both name a version (`W/"3"`, `"3"`);
/// tags that are not ours name none.
fn parse_tags(headers: &HeaderMap, name: HeaderName) -> Result<Option<IfMatch>, ScimError> {
    let Some(value) = headers.get(&name) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ScimError::invalid_syntax(format!("{name} is not valid text")))?;
    if text.trim() == "*" {
        return Ok(Some(IfMatch::Any));
    }
    let mut versions = Vec::new();
    for tag in text.split(',') {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let Some(inner) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
            return Err(ScimError::invalid_syntax(format!(
                "malformed entity tag in {name}: {tag}"
            )));
        };
        if let Ok(v) = inner.parse::<i64>() {
            versions.push(v);
        }
    }
    Ok(Some(IfMatch::Versions(versions)))
}

/// `If-None-Match` on a GET (RFC 7644 §3.14, RFC 9110 §13.1.2): the one
/// header, taken from the request without copying the others.
pub struct IfNoneMatch(HeaderMap);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut one = HeaderMap::new();
        if let Some(v) = parts.headers.get(header::IF_NONE_MATCH) {
            one.insert(header::IF_NONE_MATCH, v.clone());
        }
        Ok(IfNoneMatch(one))
    }
}

impl IfNoneMatch {
    /// Whether the client's copy is current (a tag names `version`, or
    /// `*`), so that the answer is `304 Not Modified` without a body.
    pub fn not_modified(&self, version: i64) -> Result<bool, ScimError> {
        Ok(match parse_tags(&self.0, header::IF_NONE_MATCH)? {
            None => false,
            Some(IfMatch::Any) => true,
            Some(IfMatch::Versions(v)) => v.contains(&version),
        })
    }
}

impl IfMatch {
    /// Parses `If-Match`; no header is [`IfMatch::Any`].
    pub fn from_headers(headers: &HeaderMap) -> Result<IfMatch, ScimError> {
        Ok(parse_tags(headers, header::IF_MATCH)?.unwrap_or(IfMatch::Any))
    }

    /// The single version a conditional write must find, if any. A list of
    /// several tags is satisfied by its first; no valid tag can match nothing.
    pub fn required_version(&self) -> Option<i64> {
        match self {
            IfMatch::Any => None,
            IfMatch::Versions(v) => Some(v.first().copied().unwrap_or(-1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn parse(v: &str) -> Result<IfMatch, ScimError> {
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_str(v).unwrap());
        IfMatch::from_headers(&h)
    }

    #[test]
    fn parses_tags() {
        assert_eq!(
            IfMatch::from_headers(&HeaderMap::new()).unwrap(),
            IfMatch::Any
        );
        assert_eq!(parse("*").unwrap(), IfMatch::Any);
        assert_eq!(parse("W/\"3\"").unwrap(), IfMatch::Versions(vec![3]));
        assert_eq!(
            parse("\"4\", W/\"5\"").unwrap(),
            IfMatch::Versions(vec![4, 5])
        );
        assert_eq!(parse("\"abc\"").unwrap().required_version(), Some(-1));
        assert!(parse("3").is_err());
    }

    #[test]
    fn if_none_match() {
        let mut h = HeaderMap::new();
        assert!(!IfNoneMatch(h.clone()).not_modified(3).unwrap());
        h.insert(
            "if-none-match",
            HeaderValue::from_static("W/\"2\", W/\"3\""),
        );
        assert!(IfNoneMatch(h.clone()).not_modified(3).unwrap());
        assert!(!IfNoneMatch(h.clone()).not_modified(4).unwrap());
        h.insert("if-none-match", HeaderValue::from_static("*"));
        assert!(IfNoneMatch(h).not_modified(9).unwrap());
    }
}
