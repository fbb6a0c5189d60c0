//! Idempotent redeem (contract §6.4): a till that repeats a redeem with the same `Request-ID` it
//! sent itself — a retry after a timeout, say — gets the first answer again, and Voyado is not
//! called twice. The same `Request-ID` with another body is refused.
//!
//! One slot per (market, customer, Request-ID), kept 10 minutes. The slot's lock is held by the
//! redeem's own task until it ends, so a repeat that arrives while the first is still running
//! waits for it (within its own deadline) instead of redeeming again.
//!
//! With `[cluster]` the slot lives in Redis first (`cluster::Cluster::decide_redeem`), so a
//! repeat that reaches another replica is answered the same, even while the first still runs
//! there; the local slot is kept as well, as the fallback while Redis cannot answer (counted in
//! `svp_cluster_fallbacks_total{what="redeem"}`). A repeat that was waiting for another replica
//! when Redis went away is answered as its deadline would be, never run again here.
//!
//! `server/operation.rs` asks here before it runs a redeem and stores the answer after; the
//! redeem itself (all or nothing, compensation, unclear results) is `ops/redeem.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::cluster::{self, Cluster, SlotError};
use crate::spi::ProxyError;
use crate::telemetry::{Fallback, Metrics};

/// How long a redeem's answer is kept for a repeat.
const KEEP: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SlotKey {
    market: Arc<str>,
    customer: Box<str>,
    request_id: Box<str>,
}

/// The first answer to a redeem, and a digest of the body that asked for it.
#[derive(Debug)]
pub struct Replay {
    body_digest: [u8; 32],
    answer: Bytes,
}

type Slot = Arc<Mutex<Option<Replay>>>;

#[derive(Clone)]
pub struct Replays {
    slots: Cache<SlotKey, Slot>,
    /// Where the slots of every replica are, with `[cluster]`.
    cluster: Option<Cluster>,
    metrics: Arc<Metrics>,
}

/// What to do with a redeem that carries the client's own `Request-ID`.
pub enum Decision {
    /// Answered before: this is the answer.
    Replay(Bytes),
    /// Not answered yet: run it, holding this, and `record` the answer.
    Run(Pending),
}

/// The slot of a redeem being run, here and (with `[cluster]`, when Redis answered) in Redis;
/// dropped without a record, a later repeat runs it again.
pub struct Pending {
    guard: OwnedMutexGuard<Option<Replay>>,
    body_digest: [u8; 32],
    shared: Option<cluster::Pending>,
    metrics: Arc<Metrics>,
}

impl Pending {
    /// Keeps the answer for every repeat: here, and for every replica in Redis.
    pub async fn record(mut self, answer: &Bytes) {
        *self.guard = Some(Replay {
            body_digest: self.body_digest,
            answer: answer.clone(),
        });
        if let Some(shared) = self.shared.take() {
            record_shared(shared, answer, &self.metrics).await;
        }
    }
}

/// The answer for the other replicas; when Redis cannot take it, only this replica has it.
async fn record_shared(shared: cluster::Pending, answer: &Bytes, metrics: &Metrics) {
    if shared.record(answer).await.is_err() {
        metrics.cluster_fallback(Fallback::Redeem);
    }
}

fn mismatch() -> ProxyError {
    ProxyError::field("Request-ID", "was already used for a different redeem")
}

impl Replays {
    /// The replay store; its slots are shared through `cluster` when there is one.
    pub fn new(cluster: Option<Cluster>, metrics: Arc<Metrics>) -> Replays {
        Replays {
            slots: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEEP)
                .build(),
            cluster,
            metrics,
        }
    }

    /// Waits for a redeem with the same key still running (on any replica, with `[cluster]`;
    /// until `deadline`, then `504`), then replays its answer, refuses a different body, or hands
    /// out the slot to run it.
    pub async fn decide(
        &self,
        market: Arc<str>,
        customer: &str,
        request_id: &str,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<Decision, ProxyError> {
        let shared = match &self.cluster {
            None => None,
            Some(cluster) => {
                match cluster
                    .decide_redeem(&market, customer, request_id, body, deadline)
                    .await
                {
                    Ok(cluster::Decision::Replay(answer)) => return Ok(Decision::Replay(answer)),
                    Ok(cluster::Decision::Run(pending)) => Some(pending),
                    Err(SlotError::Mismatch) => return Err(mismatch()),
                    Err(SlotError::StillRunning) => return Err(ProxyError::timeout()),
                    Err(SlotError::Down(_)) => {
                        self.metrics.cluster_fallback(Fallback::Redeem);
                        None
                    }
                }
            }
        };
        let key = SlotKey {
            market,
            customer: customer.to_ascii_lowercase().into(),
            request_id: request_id.into(),
        };
        let body_digest = cluster::body_digest(body);
        let slot = self
            .slots
            .get_with(key, async { Arc::new(Mutex::new(None)) })
            .await;
        let guard = slot.lock_owned().await;
        match &*guard {
            // Answered here while Redis was away: Redis learns the answer now.
            Some(replay) if replay.body_digest == body_digest => {
                if let Some(shared) = shared {
                    record_shared(shared, &replay.answer, &self.metrics).await;
                }
                Ok(Decision::Replay(replay.answer.clone()))
            }
            // A claim in Redis is released when `shared` drops.
            Some(_) => Err(mismatch()),
            None => Ok(Decision::Run(Pending {
                guard,
                body_digest,
                shared,
                metrics: self.metrics.clone(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn market() -> Arc<str> {
        "demo/SE".into()
    }

    fn replays() -> Replays {
        Replays::new(None, Arc::new(Metrics::new()))
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(8)
    }

    #[tokio::test]
    async fn a_recorded_answer_is_replayed_for_the_same_body_only() {
        let replays = replays();
        let body = json!({"bonus_checks": ["a"]});
        let Ok(Decision::Run(pending)) = replays
            .decide(market(), "C", "r1", Some(&body), later())
            .await
        else {
            panic!("the first one runs");
        };
        pending.record(&Bytes::from_static(b"first")).await;
        let Ok(Decision::Replay(answer)) = replays
            .decide(market(), "c", "r1", Some(&body), later())
            .await
        else {
            panic!("a repeat replays");
        };
        assert_eq!(answer, "first");
        let other = json!({"bonus_checks": ["b"]});
        assert!(
            replays
                .decide(market(), "c", "r1", Some(&other), later())
                .await
                .is_err()
        );
        // Another customer or another id is another redeem.
        assert!(matches!(
            replays
                .decide(market(), "d", "r1", Some(&body), later())
                .await,
            Ok(Decision::Run(_))
        ));
    }

    #[tokio::test]
    async fn an_unrecorded_run_lets_the_repeat_run() {
        let replays = replays();
        let body = json!({});
        let Ok(Decision::Run(pending)) = replays
            .decide(market(), "c", "r", Some(&body), later())
            .await
        else {
            panic!("runs");
        };
        drop(pending);
        assert!(matches!(
            replays
                .decide(market(), "c", "r", Some(&body), later())
                .await,
            Ok(Decision::Run(_))
        ));
    }

    #[tokio::test]
    async fn a_repeat_waits_for_the_first_to_finish() {
        let replays = replays();
        let body = json!({"x": 1});
        let Ok(Decision::Run(pending)) = replays
            .decide(market(), "c", "r", Some(&body), later())
            .await
        else {
            panic!("runs");
        };
        let again = {
            let replays = replays.clone();
            let body = body.clone();
            tokio::spawn(async move {
                match replays
                    .decide(market(), "c", "r", Some(&body), later())
                    .await
                {
                    Ok(Decision::Replay(answer)) => answer,
                    _ => panic!("the repeat should replay"),
                }
            })
        };
        tokio::task::yield_now().await;
        assert!(!again.is_finished(), "the repeat must wait for the first");
        pending.record(&Bytes::from_static(b"done")).await;
        assert_eq!(again.await.unwrap(), "done");
    }
}
