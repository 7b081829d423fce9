//! Limits on the size of a request that are checked before anything reads
//! it, each answered at once with a SCIM error: a declared `Content-Length`
//! over the body limit (`413`, instead of reading, or waiting for, a body
//! that will be refused), a long request target (`414`) and large headers
//! (`431`). hyper has limits of its own, set above these (see
//! `listener.rs`), so that ours, with their SCIM bodies, are the ones a
//! client meets.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};
use tower::{Layer, Service};

use super::error::ApiError;
use crate::scim::ScimError;

/// Longest request target (path and query) accepted, in bytes. A filter may
/// be 8 KiB (`scim::filter::MAX_LEN`), more once percent-encoded.
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Most header bytes (names and values) accepted in one request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields accepted in one request.
pub const MAX_HEADERS: usize = 100;

/// The layer that refuses oversized requests before the service sees them.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimitsLayer {
    pub body_limit: usize,
}

impl<S> Layer<S> for RequestLimitsLayer {
    type Service = RequestLimits<S>;
    fn layer(&self, inner: S) -> RequestLimits<S> {
        RequestLimits {
            inner,
            body_limit: self.body_limit,
        }
    }
}

/// See [`RequestLimitsLayer`]. A plain service with its own future: this
/// runs for every request, so it boxes nothing and clones nothing.
#[derive(Debug, Clone)]
pub struct RequestLimits<S> {
    inner: S,
    body_limit: usize,
}

impl<S, B> Service<Request<B>> for RequestLimits<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LimitsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        match too_large(&req, self.body_limit) {
            Some(err) => LimitsFuture::Refused {
                response: Some(ApiError::from(err).into_response()),
            },
            None => LimitsFuture::Inner {
                future: self.inner.call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The refusal, or the inner service's future.
    #[project = LimitsProj]
    pub enum LimitsFuture<F> {
        Refused { response: Option<Response> },
        Inner { #[pin] future: F },
    }
}

impl<F, E> Future for LimitsFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            LimitsProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("a refusal is answered once")))
            }
            LimitsProj::Inner { future } => future.poll(cx),
        }
    }
}

fn too_large<B>(req: &Request<B>, body_limit: usize) -> Option<ScimError> {
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
