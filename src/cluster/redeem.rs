//! Idempotent redeem across replicas (contract §6.4, §6.7): the `Request-ID` slot of
//! `server/replay.rs`, kept in Redis so that a till's repeat is answered the same wherever it
//! lands. The API mirrors `Replays::decide` and `Pending::record`.
//!
//! One key per (market, customer, Request-ID), named by their digest. Its value is a claim while
//! the first redeem runs (`P`, the body's digest, the claimant) and the answer once it is known
//! (`A`, the body's digest, the answer's bytes). The claim is taken with `SET NX PX` inside a
//! script that also reads what is there, so a slot is claimed, replayed or refused in one round
//! trip; it is replaced by the answer, or deleted, only by its own claimant (compare and set).
//! A repeat that finds a claim for the same body polls until the answer is there, within the
//! caller's deadline: this happens only when a till retries while its first attempt still runs,
//! and polling has no subscription to lose.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis::Script;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::{Cluster, Down};

/// How long a claim holds without an answer: well past the longest a redeem runs (its own 6 s
/// timeout, the read-back of an unclear result, the compensation), so no second replica runs it
/// meanwhile; and short enough that a replica that died mid-redeem does not lock its
/// Request-ID for the ten minutes an answer is kept.
const CLAIM_LEASE: Duration = Duration::from_secs(60);

/// How long an answer is kept for a repeat, as the local replay store keeps it.
const KEEP: Duration = Duration::from_secs(600);

/// How often a repeat looks for the answer of a redeem still running.
const POLL: Duration = Duration::from_millis(50);

/// Claims an empty slot, or reads what is in it: KEYS = the slot; ARGV = the claim, its lease
/// (ms). Answers nil when claimed, else the value found.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
",
    )
});

/// Replaces a claim by the answer, or deletes it, if it is still the caller's own: KEYS = the
/// slot; ARGV = the claim, the new value (empty: delete), its time to live (ms). Answers 1 when
/// done, 0 when the claim was no longer there.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
",
    )
});

const CLAIMED: u8 = b'P';
const ANSWERED: u8 = b'A';

/// What to do with a redeem that carries the till's own `Request-ID`.
#[derive(Debug)]
pub enum Decision {
    /// Answered before, on this replica or another: this is the answer.
    Replay(Bytes),
    /// Not answered yet, and now claimed by this call: run it and `record` the answer.
    Run(Pending),
}

/// Why a redeem's slot gives no decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The same `Request-ID` came with another body: the caller's existing 400.
    #[error("the Request-ID was already used for a different redeem")]
    Mismatch,
    /// The first redeem is still running at the caller's deadline, or Redis stopped answering
    /// while this repeat waited for it (the first may still be running somewhere).
    #[error("the first redeem with this Request-ID is still running")]
    StillRunning,
    /// Redis cannot say, and no other replica's claim was seen: the caller decides whether its
    /// local store may.
    #[error(transparent)]
    Down(#[from] Down),
}

/// A slot as found in Redis.
#[derive(Debug, PartialEq, Eq)]
enum Found<'a> {
    Claimed { body: &'a [u8] },
    Answered { body: &'a [u8], answer: &'a [u8] },
}

/// Reads a slot's value; `None` for one no version of this proxy writes.
fn read(value: &[u8]) -> Option<Found<'_>> {
    let (&state, rest) = value.split_first()?;
    let (body, rest) = rest.split_at_checked(32)?;
    match state {
        CLAIMED => Some(Found::Claimed { body }),
        ANSWERED => Some(Found::Answered { body, answer: rest }),
        _ => None,
    }
}

fn value(state: u8, body: &[u8; 32], rest: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(1 + 32 + rest.len());
    value.push(state);
    value.extend_from_slice(body);
    value.extend_from_slice(rest);
    value
}

/// What tells two redeems under one `Request-ID` apart: SHA-256 of the JSON body (serde_json's
/// maps are sorted, so the same body always serialises the same way). The local replay store
/// (`server/replay.rs`) keys its slots by the same digest.
pub fn body_digest(body: Option<&serde_json::Value>) -> [u8; 32] {
    Sha256::digest(body.map(|b| b.to_string()).unwrap_or_default()).into()
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The slot of a redeem this replica claimed. Recorded, the answer replaces the claim;
/// released, or dropped without either, the claim goes and a repeat may run the redeem again.
#[derive(Debug)]
pub struct Pending {
    cluster: Cluster,
    key: String,
    body: [u8; 32],
    claim: Vec<u8>,
    settled: bool,
}

impl Pending {
    /// Stores the answer for every repeat, on any replica, for ten minutes.
    pub async fn record(mut self, answer: &Bytes) -> Result<(), Down> {
        self.settled = true;
        let answer = value(ANSWERED, &self.body, answer);
        settle(&self.cluster, &self.key, &self.claim, &answer, KEEP).await
    }

    /// The redeem ended without an answer to keep: a repeat may run it again.
    pub async fn release(mut self) -> Result<(), Down> {
        self.settled = true;
        settle(&self.cluster, &self.key, &self.claim, &[], Duration::ZERO).await
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // Dropped without an answer (the redeem failed or was cancelled): free the slot now
        // rather than when the lease runs out. Outside a runtime there is nothing to run it on,
        // and the lease frees it. The task holds no `Pending`: a runtime shutting down drops
        // it unrun, and that must not spawn again.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let cluster = self.cluster.clone();
        let key = std::mem::take(&mut self.key);
        let claim = std::mem::take(&mut self.claim);
        runtime.spawn(async move {
            let _ = settle(&cluster, &key, &claim, &[], Duration::ZERO).await;
        });
    }
}

/// Replaces `claim` by `new` (deletes it when `new` is empty), if it is still there.
async fn settle(
    cluster: &Cluster,
    key: &str,
    claim: &[u8],
    new: &[u8],
    ttl: Duration,
) -> Result<(), Down> {
    let mut invocation = SETTLE.key(key);
    invocation.arg(claim).arg(new).arg(millis(ttl).max(1));
    let settled: i64 = cluster
        .call(|mut connection| async move { invocation.invoke_async(&mut connection).await })
        .await?;
    if settled == 0 {
        // Our lease ran out before the redeem ended, and the slot expired or was claimed
        // again: a repeat may have run the redeem a second time.
        tracing::warn!("a redeem outlived its Request-ID claim in redis");
    }
    Ok(())
}

impl Cluster {
    /// Claims the slot of a redeem with the till's own `Request-ID`, or answers from it: the
    /// stored answer for the same body, `Mismatch` for another body, and for a redeem of the
    /// same body still running on some replica, its answer once it is there, waiting no longer
    /// than `deadline` (`StillRunning` then). A first redeem that ends without an answer frees
    /// the slot, and a repeat that was waiting claims it and runs.
    pub async fn decide_redeem(
        &self,
        market: &str,
        customer: &str,
        request_id: &str,
        body: Option<&serde_json::Value>,
        deadline: Instant,
    ) -> Result<Decision, SlotError> {
        let key = self.inner.keys.key(
            "redeem",
            &[market, &customer.to_ascii_lowercase(), request_id],
        );
        let digest = body_digest(body);
        let claim = value(CLAIMED, &digest, uuid::Uuid::new_v4().as_bytes());
        // Whether another replica's claim on this redeem was seen: from then on, a Redis that
        // stops answering must not let this repeat run the redeem locally (the first may still
        // be running), so it ends as `StillRunning`.
        let mut waited = false;
        loop {
            let mut invocation = CLAIM.key(&key);
            invocation.arg(&claim).arg(millis(CLAIM_LEASE));
            let found: Option<Vec<u8>> = match self
                .call(
                    |mut connection| async move { invocation.invoke_async(&mut connection).await },
                )
                .await
            {
                Ok(found) => found,
                Err(_) if waited => return Err(SlotError::StillRunning),
                Err(down) => return Err(SlotError::Down(down)),
            };
            let Some(found) = found else {
                return Ok(Decision::Run(Pending {
                    cluster: self.clone(),
                    key,
                    body: digest,
                    claim,
                    settled: false,
                }));
            };
            match read(&found) {
                Some(Found::Answered { body, answer }) if body == digest => {
                    return Ok(Decision::Replay(Bytes::copy_from_slice(answer)));
                }
                Some(Found::Claimed { body }) if body == digest => {
                    if Instant::now() + POLL > deadline {
                        return Err(SlotError::StillRunning);
                    }
                    waited = true;
                    tokio::time::sleep(POLL).await;
                }
                Some(_) => return Err(SlotError::Mismatch),
                // Not a value this proxy writes: Redis is not ours to trust here.
                None => return Err(SlotError::Down(Down::Refused)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_values_read_back_as_written() {
        let body = [7u8; 32];
        let claim = value(CLAIMED, &body, &[1; 16]);
        assert_eq!(read(&claim), Some(Found::Claimed { body: &body }));
        let answer = value(ANSWERED, &body, b"{\"ok\":true}");
        assert_eq!(
            read(&answer),
            Some(Found::Answered {
                body: &body,
                answer: b"{\"ok\":true}"
            })
        );
        assert_eq!(
            read(&value(ANSWERED, &body, b"")),
            Some(Found::Answered {
                body: &body,
                answer: b""
            })
        );
        assert_eq!(read(b""), None);
        assert_eq!(read(b"A short"), None);
        assert_eq!(read(&value(b'X', &body, b"")), None);
    }
}
