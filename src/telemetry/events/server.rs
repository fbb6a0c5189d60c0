//! The inbound side's events: a request answered, and writes abandoned when shutdown stops
//! waiting.

use std::time::Duration;

use super::{InternalEvent, millis};
use crate::telemetry::metrics::{OperationLabels, RequestLabels};
use crate::telemetry::{Metrics, logging};

/// The target of the `request done` line: this module, as `tracing` names it.
pub(crate) const TARGET: &str = module_path!();

/// An SPI request answered, whatever its status (health and metrics on the SPI port too). Writes
/// `INFO request done` with `status` and `latency_ms`, in the request's span (`request{..}`: the
/// request id, trace id, operation, route, tenant, market, store and register ids, status and
/// latency, as far as they are known); counts `svp_requests_total{operation,status}` and
/// observes `svp_request_duration_seconds{operation}`.
///
/// With the proxy's own subscriber (`logging::init`) in place, the line is written straight to
/// the log writer from `request` (`logging/access.rs`), byte for byte the line the fmt layer
/// would write — one `write` into a buffer, where the fmt layer looked the span up and formatted
/// every field as it was recorded — and the request needs no span unless something inside it
/// logs. Otherwise (tests with their own subscriber, OTLP export) it is a `tracing` event inside
/// the span.
#[derive(Debug)]
pub struct RequestDone<'a> {
    /// The operation's name, `unknown` when no route matched.
    pub operation: &'static str,
    pub status: u16,
    pub elapsed: Duration,
    pub request: RequestFields<'a>,
}

/// What the request's span and its `request done` line say about it, in the order they say it.
/// Never the URI, the query or personal data; tenant, market, store and register only once the
/// caller proved its key.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestFields<'a> {
    pub request_id: &'a str,
    /// The caller's W3C trace id.
    pub trace_id: Option<&'a str>,
    /// The operation's name and the route template, once routing matched an SPI route.
    pub route: Option<(&'static str, &'a str)>,
    /// The configured tenant and market, once the caller proved its key.
    pub market: Option<(&'a str, &'a str)>,
    pub store_id: Option<&'a str>,
    pub register_id: Option<&'a str>,
}

impl RequestFields<'_> {
    /// Records what authentication teaches — tenant and market, store and register — into a
    /// span made before it was known. Only what is there: recording an absent value leaves a
    /// stray space in the line.
    pub fn record_market(&self, span: &tracing::Span) {
        if let Some((tenant, market)) = self.market {
            span.record("tenant", tenant);
            span.record("market", market);
        }
        if let Some(store_id) = self.store_id {
            span.record("store_id", store_id);
        }
        if let Some(register_id) = self.register_id {
            span.record("register_id", register_id);
        }
    }
}

impl InternalEvent for RequestDone<'_> {
    fn emit(self, metrics: &Metrics) {
        let RequestDone {
            operation,
            status,
            elapsed,
            request,
        } = self;
        metrics
            .requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        metrics
            .request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
        let latency_ms = millis(elapsed);
        match logging::access_log() {
            Some(access) => {
                // The same filter the event below would meet (its target is this module).
                if tracing::enabled!(tracing::Level::INFO) {
                    access.write(&request, status, latency_ms);
                }
            }
            None => tracing::info!(status, latency_ms, "request done"),
        }
    }
}

/// Shutdown's grace ran out while detached Voyado writes were still running: whether they
/// happened must be checked in Voyado. Writes `ERROR write tasks still running at the end of the
/// grace period; staff should check them` with `abandoned` (how many); counts
/// `svp_write_tasks_abandoned_total` by as many. The process exits right after, so the log line
/// is what an alert can rely on.
#[derive(Debug)]
pub struct WriteTasksAbandoned {
    pub count: usize,
}

impl InternalEvent for WriteTasksAbandoned {
    fn emit(self, metrics: &Metrics) {
        metrics.write_tasks_abandoned.inc_by(self.count as u64);
        tracing::error!(
            abandoned = self.count,
            "write tasks still running at the end of the grace period; staff should check them"
        );
    }
}
