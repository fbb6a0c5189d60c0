//! One Voyado API key's budget as the call path sees it (contract §6.3, §6.7): with `[cluster]`
//! the permit comes from the budget all replicas share in Redis (`Cluster::reserve`) and a
//! Voyado 429 pauses the key for all of them (`Cluster::pause`); without it — or whenever Redis
//! cannot answer — from this replica's own limiter (`limiter::KeyLimiter`, its `replicas` share).
//!
//! A Redis call is bounded by `[cluster] timeout_ms` (50 ms by default) and answers at once
//! while Redis is known to be down, so the fallback costs a till at most that, once. Each
//! fallback is counted (`svp_cluster_fallbacks_total{what="budget"|"pause"}`).

use std::sync::Arc;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::limiter::{Budget, KeyLimiter, Priority, Throttled};
use crate::telemetry::{Fallback, Metrics};

/// One API key's budget: shared through Redis when there is a cluster, else this replica's.
#[derive(Debug)]
pub struct KeyBudget {
    local: KeyLimiter,
    shared: Option<Shared>,
}

/// The key's budget in Redis: the whole budget (`replicas` divides nothing there).
#[derive(Debug)]
struct Shared {
    cluster: Cluster,
    /// What names the key in Redis: a digest of the API key (only a digest of it reaches Redis).
    name: Arc<str>,
    budget: Budget,
}

impl KeyBudget {
    /// This replica's share of `budget` only: a proxy without `[cluster]`.
    pub fn local(budget: Budget) -> KeyBudget {
        KeyBudget {
            local: KeyLimiter::new(budget),
            shared: None,
        }
    }

    /// `budget` shared by every replica through `cluster`, under `name`; this replica's share
    /// of it while Redis cannot answer.
    pub fn shared(budget: Budget, cluster: Cluster, name: Arc<str>) -> KeyBudget {
        KeyBudget {
            local: KeyLimiter::new(budget),
            shared: Some(Shared {
                cluster,
                name,
                budget,
            }),
        }
    }

    /// A permit, waited for as the limiter waits (`KeyLimiter::acquire`): new work refused when
    /// it would wait past `permit_wait_ms` or while the key is paused, work under way in turn.
    pub async fn acquire(&self, priority: Priority, metrics: &Metrics) -> Result<(), Throttled> {
        if let Some(shared) = &self.shared {
            match shared
                .cluster
                .reserve(&shared.name, &shared.budget, priority)
                .await
            {
                Ok(Ok(wait)) => {
                    // A booked slot: once slept, the call may go. A caller that goes away
                    // meanwhile leaves it unused — Voyado gets fewer calls, never more.
                    tokio::time::sleep(wait).await;
                    return Ok(());
                }
                Ok(Err(throttled)) => return Err(throttled),
                Err(_) => metrics.cluster_fallback(Fallback::Budget),
            }
        }
        self.local.acquire(priority).await
    }

    /// Voyado answered 429: this replica pauses the key at once, and the others through Redis.
    pub async fn pause(&self, pause: Duration, metrics: &Metrics) {
        self.local.pause(pause);
        if let Some(shared) = &self.shared
            && shared.cluster.pause(&shared.name, pause).await.is_err()
        {
            metrics.cluster_fallback(Fallback::Pause);
        }
    }
}
