//! List responses (RFC 7644 §3.4.2) and their paging parameters.

use serde_json::Value;

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
    serde_json::json!({
        "schemas": [LIST_RESPONSE_URN],
        "totalResults": total_results,
        "itemsPerPage": resources.len(),
        "startIndex": page.start_index,
        "Resources": resources,
    })
}

/// A ListResponse page of cursor pagination (RFC 9865): no `startIndex`;
/// `nextCursor` unless it is the last page, `previousCursor` unless the first.
pub fn cursor_list_response(
    resources: Vec<Value>,
    next: Option<String>,
    previous: Option<String>,
) -> Value {
    let mut v = serde_json::json!({
        "schemas": [LIST_RESPONSE_URN],
        "itemsPerPage": resources.len(),
        "Resources": resources,
    });
    if let Some(n) = next {
        v["nextCursor"] = Value::from(n);
    }
    if let Some(p) = previous {
        v["previousCursor"] = Value::from(p);
    }
    v
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
