//! The `[cluster]` Redis' events: lost, or reachable again. Each change of state is one line and
//! moves `svp_cluster_up`; the requests that fall back meanwhile are only counted
//! (`Metrics::cluster_fallback`), since every one of them falls back while Redis is down.

use super::InternalEvent;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::{Fallback, FallbackLabels, Unlabelled};

/// Sets `svp_cluster_up`, and puts each `svp_cluster_fallbacks_total{what}` at 0 if it has no
/// series yet, so that a rate or an alert on it works on a replica that never fell back (and
/// neither family shows on a replica without `[cluster]`).
fn state(metrics: &Metrics, up: bool) {
    metrics
        .cluster_up
        .get_or_create(&Unlabelled)
        .set(i64::from(up));
    for what in Fallback::ALL {
        metrics
            .cluster_fallbacks
            .get_or_create_owned(&FallbackLabels { what: what.label() });
    }
}

/// Redis answers: the first reading at start, or Redis back after it was lost (no restart).
/// Writes `INFO redis reachable: the Voyado budget, redeem slots and write notifications are
/// shared with the other replicas`; sets `svp_cluster_up` to 1.
#[derive(Debug)]
pub struct RedisReachable;

impl InternalEvent for RedisReachable {
    fn emit(self, metrics: &Metrics) {
        state(metrics, true);
        tracing::info!(
            "redis reachable: the Voyado budget, redeem slots and write notifications are shared \
             with the other replicas"
        );
    }
}

/// Redis does not answer: the first reading at start, or a call or the background probe found
/// it gone. Writes `WARN redis unreachable: this replica falls back to its own budget share,
/// redeem slots and cache TTLs until it answers again` with `reason`; sets `svp_cluster_up` to 0.
#[derive(Debug)]
pub struct RedisLost {
    /// From a fixed list (`timeout`, `connection refused`, `connection lost`, `authentication
    /// failed`, `server error`, `refused`, `client error`): never the URL, which may carry a
    /// password, nor the client's own message, which may quote the address.
    pub reason: &'static str,
}

impl InternalEvent for RedisLost {
    fn emit(self, metrics: &Metrics) {
        state(metrics, false);
        tracing::warn!(
            reason = self.reason,
            "redis unreachable: this replica falls back to its own budget share, redeem slots \
             and cache TTLs until it answers again"
        );
    }
}
