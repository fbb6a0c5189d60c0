//! The outermost layer: every request gets an id — the client's `Request-ID` when it is sane
//! (`[A-Za-z0-9._-]{1,128}`), a fresh one otherwise — and every answer carries it back, whatever
//! happened inside.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
        let context = match client_request_id(request.headers()) {
            Some(id) => RequestContext::new(id, request.headers()).sent_by_client(),
            None => RequestContext::new(fresh(), request.headers()),
        };
        let context = Arc::new(context);
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

/// The client's own `Request-ID`, when it sent a sane one.
fn client_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_owned)
}

fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A fresh id: 32 hex digits, two keyed hashes (std's SipHash `RandomState`, keyed from the OS
/// once per process) of a process-wide counter. Ids do not repeat, differ between replicas and
/// cannot be told from one another — enough for a log correlation id, which is no secret — with
/// no call for OS randomness per request (a version-4 UUID made one on every request).
pub fn fresh() -> String {
    static KEYS: OnceLock<(RandomState, RandomState)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (high, low) = KEYS.get_or_init(|| (RandomState::new(), RandomState::new()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = (u128::from(high.hash_one(n)) << 64) | u128::from(low.hash_one(n));
    // By hand: `format!` with `{:x}` was a few per cent of a warm card.
    (0..32)
        .rev()
        .map(|digit| char::from(HEX[((bits >> (4 * digit)) & 0xf) as usize]))
        .collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

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
    fn a_sane_id_is_taken() {
        assert_eq!(
            client_request_id(&with("abc-1.2_3")).as_deref(),
            Some("abc-1.2_3")
        );
    }

    #[test]
    fn an_insane_id_is_not_taken_and_a_fresh_one_is_sane() {
        for bad in ["a b", "", "a/b", "ä"] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(HEADER, v);
            }
            assert_eq!(client_request_id(&h), None, "{bad}");
        }
        let long = "x".repeat(129);
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_str(&long).unwrap());
        assert_eq!(client_request_id(&h), None);
        assert!(is_sane(&fresh()));
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| fresh()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| id.len() == 32 && is_sane(id)));
        assert!(
            ids.iter().all(|id| id.bytes().all(|b| HEX.contains(&b))),
            "lower-case hex digits only"
        );
    }

    proptest! {
        #[test]
        fn any_header_is_taken_only_when_sane(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert(HEADER, v);
            }
            let expected = std::str::from_utf8(&bytes).ok().filter(|t| is_sane(t));
            let taken = client_request_id(&h);
            prop_assert_eq!(taken.as_deref(), expected);
        }
    }
}
