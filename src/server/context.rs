//! What the layers learn about one request as it travels inwards — its id, the operation, the
//! market — kept where the outer layers (trace, rescue) can read it on the way back out.
//!
//! The request-id layer puts an `Arc<RequestContext>` into the request's extensions — the one
//! extension the stack uses (what the inner layers hand each other is typed, `handoff.rs`) —
//! and routing and authentication fill in the operation and the market once, for the trace
//! and the rescue to read on the way out. The clock is read here, once per request: `started`
//! (tokio's, for the deadline and the latency) and `now` (the wall clock, for every date the
//! operation compares or writes).
//!
//! The request's span is made here too, from what the context knows ([`RequestContext::span`]):
//! at arrival when every request gets one (the access line through `tracing`, spans exported),
//! else only when something inside the request logs or runs an operation — a refused request, a
//! health check or a warm card (answered from memory before the operation runs) makes none, and
//! its access line is written from the context (`telemetry/logging/access.rs`).

use std::sync::{Arc, OnceLock};

use http::{HeaderMap, Request};
use tokio::time::Instant;
use tracing::Span;

use crate::market::Market;
use crate::telemetry::events::server::RequestFields;

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
    /// The matched SPI route's template (health routes have an operation but no route).
    route: OnceLock<Arc<str>>,
    market: OnceLock<Arc<Market>>,
    span: OnceLock<Span>,
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
            route: OnceLock::new(),
            market: OnceLock::new(),
            span: OnceLock::new(),
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

    /// A health route's operation name: for the metrics only, not logged.
    pub fn set_operation(&self, name: &'static str) {
        let _ = self.operation.set(name);
    }

    /// The matched SPI route: its operation and template, for logs and metrics.
    pub fn set_route(&self, operation: &'static str, template: &Arc<str>) {
        let _ = self.operation.set(operation);
        let _ = self.route.set(template.clone());
        if let Some(span) = self.span.get() {
            span.record("operation", operation);
            span.record("route", &**template);
        }
    }

    /// The authenticated market: its error table shapes the answer.
    pub fn market(&self) -> Option<&Arc<Market>> {
        self.market.get()
    }

    /// The market the caller proved its key for: from now on its tenant and market, store and
    /// register ids are logged.
    pub fn set_market(&self, market: Arc<Market>) {
        let _ = self.market.set(market);
        if let Some(span) = self.span.get() {
            self.fields().record_market(span);
        }
    }

    /// What the span and the access line say about the request, as far as it is known now.
    pub fn fields(&self) -> RequestFields<'_> {
        let market = self.market.get();
        RequestFields {
            request_id: &self.request_id,
            trace_id: self.trace.as_ref().map(|t| t.trace_id()),
            route: self
                .operation
                .get()
                .copied()
                .zip(self.route.get().map(|r| &**r)),
            market: market.map(|m| (m.settings.tenant.as_str(), m.settings.market.as_str())),
            store_id: market.and(self.store_id.as_deref()),
            register_id: market.and(self.register_id.as_deref()),
        }
    }

    /// The request's span, made on first use with every field known by then; what is learned
    /// later is recorded into it.
    pub fn span(&self) -> &Span {
        self.span
            .get_or_init(|| super::trace::request_span(&self.fields()))
    }

    /// Whether the request's span was made.
    #[cfg(test)]
    pub fn has_span(&self) -> bool {
        self.span.get().is_some()
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
