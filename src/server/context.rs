//! What the layers learn about one request as it travels inwards — its id, the operation, the
//! market — kept where the outer layers (trace, rescue) can read it on the way back out.
//!
//! The request-id layer puts an `Arc<RequestContext>` into the request's extensions — the one
//! extension the stack uses (what the inner layers hand each other is typed, `handoff.rs`) —
//! and routing and authentication fill in the operation and the market once, for the trace
//! and the rescue to read on the way out. The clock is read here, once per request: `started`
//! (tokio's, for the deadline and the latency) and `now` (the wall clock, for every date the
//! operation compares or writes).

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, Request};
use tokio::time::Instant;

use crate::market::Market;

pub struct RequestContext {
    pub request_id: String,
    /// Whether the id is the client's own (only then may a repeat be answered from memory).
    pub client_sent_id: bool,
    pub started: Instant,
    pub now: jiff::Timestamp,
    /// The decoded `Store-ID`: tracing and Voyado's `storeExternalId` on a create.
    pub store_id: Option<String>,
    pub register_id: Option<String>,
    /// W3C trace context from the caller, passed on unchanged to every Voyado call.
    pub trace: Option<crate::voyado::TraceContext>,
    operation: OnceLock<&'static str>,
    market: OnceLock<Arc<Market>>,
}

impl RequestContext {
    pub fn new(request_id: String, headers: &HeaderMap) -> RequestContext {
        RequestContext {
            request_id,
            client_sent_id: false,
            started: Instant::now(),
            now: jiff::Timestamp::now(),
            store_id: header_text(headers, "store-id"),
            register_id: header_text(headers, "register-id"),
            trace: crate::voyado::TraceContext::from_headers(headers),
            operation: OnceLock::new(),
            market: OnceLock::new(),
        }
    }

    pub fn sent_by_client(self) -> RequestContext {
        RequestContext {
            client_sent_id: true,
            ..self
        }
    }

    /// The operation's name once the route is known, for logs and metrics.
    pub fn operation(&self) -> &'static str {
        self.operation.get().copied().unwrap_or("unknown")
    }

    pub fn set_operation(&self, name: &'static str) {
        let _ = self.operation.set(name);
    }

    /// The authenticated market: its error table shapes the answer.
    pub fn market(&self) -> Option<&Arc<Market>> {
        self.market.get()
    }

    pub fn set_market(&self, market: Arc<Market>) {
        let _ = self.market.set(market);
    }

    /// The context the request-id layer attached. Inner layers always run behind it; a request
    /// without one (a test calling an inner layer alone) gets a fresh context.
    pub fn of<B>(request: &Request<B>) -> Arc<RequestContext> {
        request
            .extensions()
            .get::<Arc<RequestContext>>()
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(RequestContext::new(
                    super::request_id::fresh(),
                    request.headers(),
                ))
            })
    }
}

/// The longest `Store-ID` or `Register-ID` taken (Sitoo's external ids are short).
const ID_MAX_CHARS: usize = 64;

/// Sitoo URL-encodes the optional headers' values (UTF-8). Anything longer than an external id
/// can be, or with control characters, is ignored: it goes into logs and to Voyado.
pub fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let raw = headers.get(name)?.to_str().ok()?;
    let text = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let text = text.trim();
    let sane = !text.is_empty()
        && text.chars().count() <= ID_MAX_CHARS
        && !text.chars().any(char::is_control);
    sane.then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    #[test]
    fn optional_headers_are_url_decoded() {
        let mut h = HeaderMap::new();
        h.insert("store-id", HeaderValue::from_static("store%20200"));
        assert_eq!(header_text(&h, "store-id").as_deref(), Some("store 200"));
        h.insert("store-id", HeaderValue::from_static("%20"));
        assert_eq!(header_text(&h, "store-id"), None);
        h.insert("store-id", HeaderValue::from_static("a%0Ab"));
        assert_eq!(header_text(&h, "store-id"), None);
        h.insert("store-id", HeaderValue::from_str(&"7".repeat(65)).unwrap());
        assert_eq!(header_text(&h, "store-id"), None);
    }

    proptest! {
        #[test]
        fn any_header_bytes_decode_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert("store-id", v);
            }
            let decoded = header_text(&h, "store-id");
            prop_assert!(decoded.is_none_or(|t| !t.is_empty()
                && t.trim() == t
                && t.chars().count() <= ID_MAX_CHARS
                && !t.chars().any(char::is_control)));
        }
    }
}
