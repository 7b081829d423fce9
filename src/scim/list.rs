//! List responses (RFC 7644 §3.4.2) and their paging parameters.

use serde_json::{Map, Value};

use super::schema::LIST_RESPONSE_URN;

/// Paging as the client asked for it, already clamped to what the server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based index of the first result (RFC 7644 §3.4.2.4).
    pub start_index: u64,
    /// Maximum number of resources to return; 0 asks for totals only.
    pub count: u64,
}

impl Page {
    /// Interprets the raw `startIndex` and `count` values. A `startIndex` below
    /// 1 is treated as 1, a negative `count` as 0 and a `count` above
    /// `max_results` is clamped to it (RFC 7644 §3.4.2.4).
    pub fn new(
        start_index: Option<i64>,
        count: Option<i64>,
        default_count: u64,
        max_results: u64,
    ) -> Page {
        let start_index = start_index.unwrap_or(1).max(1) as u64;
        let count = match count {
            None => default_count.min(max_results),
            Some(c) => (c.max(0) as u64).min(max_results),
        };
        Page { start_index, count }
    }

    /// The zero-based row offset of the first result.
    pub fn offset(&self) -> u64 {
        self.start_index - 1
    }
}

/// A ListResponse message.
pub fn list_response(total_results: u64, page: Page, resources: Vec<Value>) -> Value {
    with_resources(
        index_envelope(total_results, page, resources.len()),
        resources,
    )
}

/// A ListResponse's members but `Resources`, for `items` resources.
pub fn index_envelope(total_results: u64, page: Page, items: usize) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("schemas".into(), serde_json::json!([LIST_RESPONSE_URN]));
    v.insert("totalResults".into(), Value::from(total_results));
    v.insert("itemsPerPage".into(), Value::from(items));
    v.insert("startIndex".into(), Value::from(page.start_index));
    v
}

/// A ListResponse page of cursor pagination (RFC 9865), but `Resources`:
/// no `startIndex`; `nextCursor` unless it is the last page,
/// `previousCursor` unless the first.
pub fn cursor_envelope(
    items: usize,
    next: Option<String>,
    previous: Option<String>,
) -> Map<String, Value> {
    let mut v = Map::new();
    v.insert("schemas".into(), serde_json::json!([LIST_RESPONSE_URN]));
    v.insert("itemsPerPage".into(), Value::from(items));
    if let Some(n) = next {
        v.insert("nextCursor".into(), Value::from(n));
    }
    if let Some(p) = previous {
        v.insert("previousCursor".into(), Value::from(p));
    }
    v
}

/// A ListResponse: the envelope with its resources.
pub fn with_resources(mut envelope: Map<String, Value>, resources: Vec<Value>) -> Value {
    envelope.insert("Resources".into(), Value::Array(resources));
    Value::Object(envelope)
}

/// A ListResponse as JSON text, its resources already rendered as text
/// (see [`super::resource::render_text`]).
pub fn with_rendered_resources(envelope: Map<String, Value>, resources: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(resources.iter().map(|r| r.len() + 1).sum::<usize>() + 256);
    // Serialising a map of JSON values into a `Vec` cannot fail; it ends
    // in the `}` that the resources go before.
    let _ = serde_json::to_writer(&mut out, &envelope);
    out.pop();
    out.extend_from_slice(b",\"Resources\":[");
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(b"]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_clamps_and_defaults() {
        assert_eq!(
            Page::new(None, None, 100, 1000),
            Page {
                start_index: 1,
                count: 100
            }
        );
        assert_eq!(
            Page::new(Some(0), Some(5), 100, 1000),
            Page {
                start_index: 1,
                count: 5
            }
        );
        assert_eq!(
            Page::new(Some(-3), Some(-1), 100, 1000),
            Page {
                start_index: 1,
                count: 0
            }
        );
        assert_eq!(
            Page::new(Some(7), Some(5000), 100, 1000),
            Page {
                start_index: 7,
                count: 1000
            }
        );
        assert_eq!(Page::new(Some(7), None, 100, 1000).offset(), 6);
    }
}
