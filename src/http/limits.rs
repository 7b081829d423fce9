//! Limits on the size of a request that are checked before anything reads
//! it, each answered at once with a SCIM error: a declared `Content-Length`
//! over the body limit (`413`, instead of reading, or waiting for, a body
//! that will be refused), a long request target (`414`) and large headers
//! (`431`). hyper has limits of its own, set above these (see
//! `listener.rs`), so that ours, with their SCIM bodies, are the ones a
//! client meets.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::scim::ScimError;

/// Longest request target (path and query) accepted, in bytes. A filter may
/// be 8 KiB (`scim::filter::MAX_LEN`), more once percent-encoded.
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Most header bytes (names and values) accepted in one request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 100;

/// The body limit the middleware enforces on declared lengths.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

pub async fn check(
    State(BodyLimit(body_limit)): State<BodyLimit>,
    req: Request,
    next: Next,
) -> Response {
    match too_large(&req, body_limit) {
        Some(err) => ApiError(err).into_response(),
        None => next.run(req).await,
    }
}

fn too_large(req: &Request, body_limit: usize) -> Option<ScimError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI_BYTES {
        return Some(ScimError::new(
            414,
            None,
            format!(
                "The request target is {target} bytes long; at most {MAX_URI_BYTES} are accepted"
            ),
        ));
    }
    let headers = req.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(ScimError::new(
            431,
            None,
            format!(
                "The request has {} header fields of {bytes} bytes; at most {MAX_HEADERS} fields \
                 of {MAX_HEADER_BYTES} bytes are accepted",
                headers.len()
            ),
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > body_limit as u64 => Some(ScimError::new(
            413,
            None,
            format!("The request body is {n} bytes; at most {body_limit} are accepted"),
        )),
        _ => None,
    }
}
