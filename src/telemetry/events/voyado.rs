//! The Voyado side's event: one HTTP exchange with Voyado Engage.

use std::error::Error;
use std::time::Duration;

use super::{InternalEvent, millis};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::VoyadoLabels;

/// One call to Voyado, answered or not (each try of a retried call is one). Writes
/// `DEBUG voyado call` with `endpoint`, `status` and `elapsed_ms`, or `DEBUG voyado call failed`
/// with `endpoint`, `error` and `elapsed_ms`; counts `svp_voyado_calls_total{endpoint,outcome}`
/// and observes `svp_voyado_call_duration_seconds{endpoint,outcome}`.
#[derive(Debug)]
pub struct VoyadoCall<'a> {
    /// The path template (`/api/v2/contacts/{}`), never the filled-in path, which would carry
    /// contact ids and keys.
    pub endpoint: &'static str,
    pub elapsed: Duration,
    pub answer: VoyadoAnswer<'a>,
}

#[derive(Debug)]
pub enum VoyadoAnswer<'a> {
    /// A 2xx answer: outcome `ok`.
    Answered { status: u16 },
    /// No answer, or an error answer; `outcome` is the error's metric label.
    Failed {
        outcome: &'static str,
        error: &'a dyn Error,
    },
}

impl InternalEvent for VoyadoCall<'_> {
    fn emit(self, metrics: &Metrics) {
        let VoyadoCall {
            endpoint,
            elapsed,
            answer,
        } = self;
        let outcome = match answer {
            VoyadoAnswer::Answered { .. } => "ok",
            VoyadoAnswer::Failed { outcome, .. } => outcome,
        };
        let labels = VoyadoLabels { endpoint, outcome };
        metrics.voyado_calls.get_or_create(&labels).inc();
        metrics
            .voyado_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        let elapsed_ms = millis(elapsed);
        match answer {
            VoyadoAnswer::Answered { status } => {
                tracing::debug!(endpoint, status, elapsed_ms, "voyado call");
            }
            VoyadoAnswer::Failed { error, .. } => {
                tracing::debug!(endpoint, %error, elapsed_ms, "voyado call failed");
            }
        }
    }
}
