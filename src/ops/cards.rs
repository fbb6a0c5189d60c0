//! The rendered cards: a card as the till sees it, kept as the bytes of the SPI customer, so a
//! warm card costs no Voyado call and no JSON work (`card.rs` renders them; search, add and update
//! answer with them too).
//!
//! The key is the SPI's view — the Voyado identity, the market (two markets on one tenant map
//! differently), the contact and the mapping plan's generation (a reload never serves an old
//! rendering). Freshness against writes is read from the Voyado answer cache's record of writes
//! (`voyado::Caches::last_write`), so one write makes answers and cards stale alike, here and — with
//! `[cluster]` — on every replica. Memory is bounded by weight, as much as the answers may take.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use tokio::time::Instant;

use crate::telemetry::Metrics;
use crate::voyado::{Caches, VoyadoClient};

/// A card's place: whose contact, in which market, under which plan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardKey {
    identity: Arc<str>,
    market: Arc<str>,
    contact: Box<str>,
    generation: u64,
}

impl CardKey {
    /// The key of a contact's card in a market (`tenant/market`) under a plan generation.
    pub fn new(voyado: &VoyadoClient, market: Arc<str>, contact: &str, generation: u64) -> CardKey {
        CardKey {
            identity: voyado.identity().clone(),
            market,
            contact: contact.to_ascii_lowercase().into(),
            generation,
        }
    }
}

#[derive(Debug)]
struct CardEntry {
    bytes: Bytes,
    rendered_from: Instant,
    fresh_until: Instant,
    ttl: Duration,
}

/// Each card expires after its own TTL (moka's clock bounds memory; tokio's decides freshness).
/// moka's trait names its own clock's `std::time::Instant`, unused here.
struct PerEntry;

#[allow(clippy::disallowed_types)]
impl Expiry<CardKey, Arc<CardEntry>> for PerEntry {
    fn expire_after_create(
        &self,
        _: &CardKey,
        entry: &Arc<CardEntry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The process's rendered cards, shared by every market and kept across mapping reloads. Cheap to
/// clone (one count), as every request does.
#[derive(Clone)]
pub struct Cards(Arc<Inner>);

struct Inner {
    cards: Cache<CardKey, Arc<CardEntry>>,
    /// The answer cache, for its record of writes.
    answers: Caches,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Cards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cards")
            .field("cards", &self.0.cards.entry_count())
            .finish()
    }
}

impl Cards {
    /// Cards bounded by `max_bytes`, judged fresh against the writes `answers` records.
    pub fn new(max_bytes: u64, answers: Caches, metrics: Arc<Metrics>) -> Cards {
        Cards(Arc::new(Inner {
            cards: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &CardKey, e: &Arc<CardEntry>| {
                    u32::try_from(e.bytes.len() + k.contact.len() + 128).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
            answers,
            metrics,
        }))
    }

    /// A card still current: fresh, and rendered after the last write to its contact.
    pub async fn get(&self, key: &CardKey) -> Option<Bytes> {
        let card = match self.0.cards.get(key).await {
            Some(entry) if self.is_current(key, &entry) => Some(entry.bytes.clone()),
            _ => None,
        };
        self.0.metrics.cache("card", card.is_some());
        card
    }

    /// Keeps a rendered card until `fresh_until` (the earliest expiry of its parts);
    /// `rendered_from` is when its rendering began, so a write to the contact after that — even
    /// one that landed while it was being rendered — keeps it out.
    pub async fn keep(
        &self,
        key: CardKey,
        bytes: Bytes,
        fresh_until: Instant,
        rendered_from: Instant,
    ) {
        let entry = CardEntry {
            bytes,
            rendered_from,
            fresh_until,
            ttl: fresh_until.saturating_duration_since(Instant::now()),
        };
        if self.is_current(&key, &entry) {
            self.0.cards.insert(key, Arc::new(entry)).await;
        }
    }

    fn is_current(&self, key: &CardKey, entry: &CardEntry) -> bool {
        Instant::now() < entry.fresh_until
            && self
                .0
                .answers
                .last_write(&key.identity, &key.contact)
                .is_none_or(|at| entry.rendered_from > at)
    }
}
