//! W3C trace context (`traceparent`, `tracestate`) from the caller, carried to every Voyado call
//! of the same request so one trace spans the till, the proxy and Voyado. The proxy exports no
//! spans of its own, so it passes the context on unchanged, as the W3C recommendation asks of an
//! intermediary that does not take part.

use http::{HeaderMap, HeaderValue};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

/// The longest `tracestate` passed on (the W3C limit is 512 characters).
const TRACESTATE_MAX: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    traceparent: HeaderValue,
    tracestate: Option<HeaderValue>,
    trace_id: String,
}

impl TraceContext {
    /// The caller's context, when its `traceparent` is well formed
    /// (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero); otherwise none.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let parent = headers.get(TRACEPARENT)?;
        let text = parent.to_str().ok()?;
        let parts: Vec<&str> = text.split('-').collect();
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let [version, trace_id, parent_id, flags] = parts[..] else {
            return None;
        };
        let well_formed = version == "00"
            && hex(trace_id, 32)
            && hex(parent_id, 16)
            && hex(flags, 2)
            && trace_id.bytes().any(|b| b != b'0')
            && parent_id.bytes().any(|b| b != b'0');
        if !well_formed {
            return None;
        }
        let tracestate = headers
            .get(TRACESTATE)
            .filter(|v| v.len() <= TRACESTATE_MAX && v.to_str().is_ok())
            .cloned();
        Some(TraceContext {
            traceparent: parent.clone(),
            tracestate,
            trace_id: trace_id.to_owned(),
        })
    }

    /// The trace id, for the request's log line.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The headers to send on with a Voyado call.
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &HeaderValue)> {
        std::iter::once((TRACEPARENT, &self.traceparent))
            .chain(self.tracestate.iter().map(|v| (TRACESTATE, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(parent: &str, state: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_str(parent).unwrap());
        if let Some(state) = state {
            h.insert(TRACESTATE, HeaderValue::from_str(state).unwrap());
        }
        h
    }

    #[test]
    fn a_well_formed_context_is_kept_as_sent() {
        let t = TraceContext::from_headers(&headers(GOOD, Some("congo=t61rcWkgMzE"))).unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let sent: Vec<_> = t.headers().map(|(n, v)| (n, v.to_str().unwrap())).collect();
        assert_eq!(
            sent,
            [(TRACEPARENT, GOOD), (TRACESTATE, "congo=t61rcWkgMzE")]
        );
    }

    #[test]
    fn a_malformed_traceparent_is_dropped() {
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(
                TraceContext::from_headers(&headers(bad, None)),
                None,
                "{bad}"
            );
        }
        let long = "a=".to_owned() + &"b".repeat(600);
        let t = TraceContext::from_headers(&headers(GOOD, Some(&long))).unwrap();
        assert_eq!(
            t.headers().count(),
            1,
            "an oversized tracestate is not passed on"
        );
    }

    proptest! {
        #[test]
        fn any_header_gives_a_valid_context_or_none(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&bytes) {
                h.insert(TRACEPARENT, v);
            }
            if let Some(t) = TraceContext::from_headers(&h) {
                prop_assert_eq!(t.trace_id().len(), 32);
                prop_assert_eq!(bytes.len(), 55);
            }
        }
    }
}
