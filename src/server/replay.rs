//! Idempotent redeem (contract §6.4): a till that repeats a redeem with the same `Request-ID` it
//! sent itself — a retry after a timeout, say — gets the first answer again, and Voyado is not
//! called twice. The same `Request-ID` with another body is refused.
//!
//! One slot per (market, customer, Request-ID), kept 10 minutes. The slot's lock is held by the
//! redeem's own task until it ends, so a repeat that arrives while the first is still running
//! waits for it (within its own deadline) instead of redeeming again.
//!
//! `server/operation.rs` asks here before it runs a redeem and stores the answer after; the
//! redeem itself (all or nothing, compensation, unclear results) is `ops/redeem.rs`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::spi::ProxyError;

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
}

/// What to do with a redeem that carries the client's own `Request-ID`.
pub enum Decision {
    /// Answered before: this is the answer.
    Replay(Bytes),
    /// Not answered yet: run it, holding this, and `record` the answer.
    Run(Pending),
}

/// The slot of a redeem being run; dropped without a record, a later repeat runs it again.
pub struct Pending {
    guard: OwnedMutexGuard<Option<Replay>>,
    body_digest: [u8; 32],
}

impl Pending {
    pub fn record(mut self, answer: &Bytes) {
        *self.guard = Some(Replay {
            body_digest: self.body_digest,
            answer: answer.clone(),
        });
    }
}

impl Replays {
    pub fn new() -> Replays {
        Replays {
            slots: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEEP)
                .build(),
        }
    }

    /// Waits for a redeem with the same key still running, then replays its answer, refuses a
    /// different body, or hands out the slot to run it.
    pub async fn decide(
        &self,
        market: Arc<str>,
        customer: &str,
        request_id: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Decision, ProxyError> {
        let key = SlotKey {
            market,
            customer: customer.to_ascii_lowercase().into(),
            request_id: request_id.into(),
        };
        // serde_json's maps are sorted, so the same body always serialises the same way.
        let body_digest: [u8; 32] =
            Sha256::digest(body.map(|b| b.to_string()).unwrap_or_default()).into();
        let slot = self
            .slots
            .get_with(key, async { Arc::new(Mutex::new(None)) })
            .await;
        let guard = slot.lock_owned().await;
        match &*guard {
            Some(replay) if replay.body_digest == body_digest => {
                Ok(Decision::Replay(replay.answer.clone()))
            }
            Some(_) => Err(ProxyError::field(
                "Request-ID",
                "was already used for a different redeem",
            )),
            None => Ok(Decision::Run(Pending { guard, body_digest })),
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

    #[tokio::test]
    async fn a_recorded_answer_is_replayed_for_the_same_body_only() {
        let replays = Replays::new();
        let body = json!({"bonus_checks": ["a"]});
        let Ok(Decision::Run(pending)) = replays.decide(market(), "C", "r1", Some(&body)).await
        else {
            panic!("the first one runs");
        };
        pending.record(&Bytes::from_static(b"first"));
        let Ok(Decision::Replay(answer)) = replays.decide(market(), "c", "r1", Some(&body)).await
        else {
            panic!("a repeat replays");
        };
        assert_eq!(answer, "first");
        let other = json!({"bonus_checks": ["b"]});
        assert!(
            replays
                .decide(market(), "c", "r1", Some(&other))
                .await
                .is_err()
        );
        // Another customer or another id is another redeem.
        assert!(matches!(
            replays.decide(market(), "d", "r1", Some(&body)).await,
            Ok(Decision::Run(_))
        ));
    }

    #[tokio::test]
    async fn an_unrecorded_run_lets_the_repeat_run() {
        let replays = Replays::new();
        let body = json!({});
        let Ok(Decision::Run(pending)) = replays.decide(market(), "c", "r", Some(&body)).await
        else {
            panic!("runs");
        };
        drop(pending);
        assert!(matches!(
            replays.decide(market(), "c", "r", Some(&body)).await,
            Ok(Decision::Run(_))
        ));
    }

    #[tokio::test]
    async fn a_repeat_waits_for_the_first_to_finish() {
        let replays = Replays::new();
        let body = json!({"x": 1});
        let Ok(Decision::Run(pending)) = replays.decide(market(), "c", "r", Some(&body)).await
        else {
            panic!("runs");
        };
        let again = {
            let replays = replays.clone();
            let body = body.clone();
            tokio::spawn(async move {
                match replays.decide(market(), "c", "r", Some(&body)).await {
                    Ok(Decision::Replay(answer)) => answer,
                    _ => panic!("the repeat should replay"),
                }
            })
        };
        tokio::task::yield_now().await;
        assert!(!again.is_finished(), "the repeat must wait for the first");
        pending.record(&Bytes::from_static(b"done"));
        assert_eq!(again.await.unwrap(), "done");
    }
}
