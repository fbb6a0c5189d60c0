//! The inbound side's events: a request answered, and writes abandoned when shutdown stops
//! waiting.

use std::time::Duration;

use super::{InternalEvent, millis};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{OperationLabels, RequestLabels};

/// An SPI request answered, whatever its status (health and metrics on the SPI port too), emitted
/// in the request's span. Writes `INFO request done` with `status` and `latency_ms` (the span adds
/// the request id, route, operation, tenant and market); counts
/// `svp_requests_total{operation,status}` and observes `svp_request_duration_seconds{operation}`.
#[derive(Debug)]
pub struct RequestDone {
    /// The operation's name, `unknown` when no route matched.
    pub operation: &'static str,
    pub status: u16,
    pub elapsed: Duration,
}

impl InternalEvent for RequestDone {
    fn emit(self, metrics: &Metrics) {
        let RequestDone {
            operation,
            status,
            elapsed,
        } = self;
        metrics
            .requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        metrics
            .request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
        tracing::info!(status, latency_ms = millis(elapsed), "request done");
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
