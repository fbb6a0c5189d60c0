//! Whether Redis answers, as one flag every part of the cluster room reads before it calls: a
//! call that fails on the way (timeout, lost connection) sets it down, and only the probe below,
//! which pings in the background with a backoff, sets it up again. While it is down no caller
//! waits on Redis at all: each method answers `Down` at once and the caller uses its local
//! fallback.
//!
//! Each change is one event (`telemetry::events::cluster`: a warning when Redis is lost, an info
//! line when it is back, and `svp_cluster_up`), with a reason from a short fixed list: never the
//! URL, which may carry a password.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::Link;
use crate::telemetry::Metrics;
use crate::telemetry::events::cluster::{RedisLost, RedisReachable};

/// How often the probe pings a Redis that is up: a Redis lost while no request needs it is
/// noticed (and exported) within this.
const PING_EVERY: Duration = Duration::from_secs(1);
/// The probe's first retry after Redis is lost, doubled on each failure up to `RETRY_MAX`: a
/// blip is over in a tenth of a second, an outage costs one ping every two seconds, and a
/// Redis that is back is rejoined within about `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Up or down, watched.
pub(super) struct Health {
    up: watch::Sender<bool>,
    /// Whether the state was logged yet: the first reading is logged even though it changes
    /// nothing (down at start is worth a warning).
    announced: AtomicBool,
    metrics: Arc<Metrics>,
}

impl Health {
    /// Down until a probe has answered.
    pub(super) fn new(metrics: Arc<Metrics>) -> Health {
        Health {
            up: watch::Sender::new(false),
            announced: AtomicBool::new(false),
            metrics,
        }
    }

    pub(super) fn is_up(&self) -> bool {
        *self.up.borrow()
    }

    pub(super) fn watch(&self) -> watch::Receiver<bool> {
        self.up.subscribe()
    }

    pub(super) fn set_up(&self) {
        if self.set(true) {
            self.metrics.emit(RedisReachable);
        }
    }

    /// `reason` is one of `reason()`'s fixed words.
    pub(super) fn set_down(&self, reason: &'static str) {
        if self.set(false) {
            self.metrics.emit(RedisLost { reason });
        }
    }

    /// Whether this is worth a log line: a change, or the first reading.
    fn set(&self, up: bool) -> bool {
        let changed = self
            .up
            .send_if_modified(|state| std::mem::replace(state, up) != up);
        let first = !self.announced.swap(true, Ordering::AcqRel);
        changed || first
    }
}

/// Pings Redis for as long as the cluster handle lives: at once, then every `PING_EVERY` while
/// it is up, and with a growing backoff while it is down. A call that sets it down wakes the
/// probe, so the backoff starts from the failure, not from the last scheduled ping.
pub(super) async fn probe_forever(link: Link) {
    let mut state = link.health.watch();
    let mut retry = RETRY_MIN;
    loop {
        let wait = match link.probe().await {
            Ok(()) => {
                link.health.set_up();
                retry = RETRY_MIN;
                PING_EVERY
            }
            Err(_) => {
                let wait = retry;
                retry = (retry * 2).min(RETRY_MAX);
                wait
            }
        };
        // What the probe itself set is no news to it.
        state.borrow_and_update();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            // Set down by a call: probe now, and back off from there.
            Ok(()) = state.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_and_the_first_reading_are_worth_a_line() {
        let health = Health::new(Arc::new(Metrics::new()));
        let watched = health.watch();
        assert!(!health.is_up());
        assert!(health.set(false), "down at start is announced");
        assert!(!health.set(false));
        assert!(health.set(true));
        assert!(!health.set(true));
        assert!(*watched.borrow());
        assert!(health.set(false));
        assert!(!health.is_up());
    }
}
