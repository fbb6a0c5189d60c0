//! The outermost layer: every request gets an id — the client's `Request-ID` when it is sane
//! (`[A-Za-z0-9._-]{1,128}`), a fresh one otherwise — and every answer carries it back, whatever
//! happened inside.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue, Request, Response};
use tower::{Layer, Service};

use super::BoxFuture;
use super::context::RequestContext;

pub const HEADER: &str = "request-id";

#[derive(Clone, Default)]
pub struct RequestIdLayer;

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId { inner }
    }
}

#[derive(Clone)]
pub struct RequestId<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for RequestId<S>
where
    S: Service<Request<B>, Response = Response<R>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let id = request_id(request.headers());
        let context = Arc::new(RequestContext::new(id, request.headers()));
        request.extensions_mut().insert(context.clone());
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            if let Ok(v) = HeaderValue::from_str(&context.request_id) {
                response.headers_mut().insert(HEADER, v);
            }
            Ok(response)
        })
    }
}

/// `Request-ID` if it is sane, otherwise a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map_or_else(fresh, str::to_owned)
}

fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub fn fresh() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn a_sane_id_is_echoed() {
        assert_eq!(request_id(&with("abc-1.2_3")), "abc-1.2_3");
    }

    #[test]
    fn an_insane_id_is_replaced_by_a_fresh_one() {
        for bad in ["a b", "", "a/b", "ä"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(HEADER, v);
            }
            let id = request_id(&h);
            assert_ne!(id, bad);
            assert!(is_sane(&id), "{id}");
        }
        let long = "x".repeat(129);
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(&long).unwrap());
        assert_eq!(request_id(&h).len(), 32);
    }

    proptest! {
        #[test]
        fn any_header_gives_a_sane_id(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert(HEADER, v);
            }
            let id = request_id(&h);
            prop_assert!(is_sane(&id));
            if let Ok(text) = std::str::from_utf8(&bytes) && is_sane(text) {
                prop_assert_eq!(id, text);
            }
        }
    }
}
