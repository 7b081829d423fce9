//! `If-Match` preconditions (RFC 9110 §13.1.1) over resource versions.

use axum::http::HeaderMap;

use crate::scim::ScimError;

/// What an `If-Match` header asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// No header, or `*`: any current version.
    Any,
    /// One of these versions.
    Versions(Vec<i64>),
}

impl IfMatch {
    /// Parses `If-Match`. Weak and strong tags both match (`W/"3"`, `"3"`);
    /// tags that are not ours can never match, so they yield an empty list.
    pub fn from_headers(headers: &HeaderMap) -> Result<IfMatch, ScimError> {
        let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
            return Ok(IfMatch::Any);
        };
        let text = value
            .to_str()
            .map_err(|_| ScimError::invalid_syntax("If-Match is not valid text"))?;
        if text.trim() == "*" {
            return Ok(IfMatch::Any);
        }
        let mut versions = Vec::new();
        for tag in text.split(',') {
            let tag = tag.trim();
            let tag = tag.strip_prefix("W/").unwrap_or(tag);
            let Some(inner) = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')) else {
                return Err(ScimError::invalid_syntax(format!(
                    "malformed entity tag in If-Match: {tag}"
                )));
            };
            if let Ok(v) = inner.parse::<i64>() {
                versions.push(v);
            }
        }
        Ok(IfMatch::Versions(versions))
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
}
