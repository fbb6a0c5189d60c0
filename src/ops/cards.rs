//! The rendered cards: a card as the till sees it, kept as the bytes of the SPI customer, so a
//! warm card costs no Voyado call and no JSON work (`card.rs` renders them; search, add and update
//! answer with them too).
//!
//! The key is the SPI's view — the Voyado identity, the market (two markets on one tenant map
//! differently), the contact and the mapping plan's generation (a reload never serves an old
//! rendering). Freshness against writes is read from the Voyado answer cache's record of writes
//! (`voyado::Caches::last_write`), so one write makes answers and cards stale alike, here and — with
//! `[cluster]` — on every replica. Memory is bounded by weight — the card's bytes, its key and the
//! cache's own bookkeeping — within the cards' share of `[cache] max_bytes`
//! (`voyado::Caches::cards_share`); the answers take the rest.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use moka::sync::Cache;
use tokio::time::Instant;

use crate::telemetry::Metrics;
use crate::voyado::{ALLOCATION, Caches, ENTRY_OVERHEAD, VoyadoClient};

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
    /// Cards bounded by their share of `max_bytes`, judged fresh against the writes `answers`
    /// records.
    pub fn new(max_bytes: u64, answers: Caches, metrics: Arc<Metrics>) -> Cards {
        Cards(Arc::new(Inner {
            cards: Cache::builder()
                .max_capacity(Caches::cards_share(max_bytes))
                .weigher(|k: &CardKey, e: &Arc<CardEntry>| {
                    // The bytes and the contact id are an allocation each.
                    let heap = e.bytes.len() + k.contact.len() + 2 * ALLOCATION + ENTRY_OVERHEAD;
                    u32::try_from(heap).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .build(),
            answers,
            metrics,
        }))
    }

    /// A card still current: fresh, and rendered after the last write to its contact.
    pub fn get(&self, key: &CardKey) -> Option<Bytes> {
        let card = self.current(key);
        self.0.metrics.card(card.is_some());
        card
    }

    /// A card still current, counted only when there is one: the miss is counted by
    /// [`missed`](Cards::missed) where the card is then rendered.
    pub fn hit(&self, key: &CardKey) -> Option<Bytes> {
        let card = self.current(key);
        if card.is_some() {
            self.0.metrics.card(true);
        }
        card
    }

    /// Counts a miss that [`hit`](Cards::hit) found and left uncounted.
    pub fn missed(&self) {
        self.0.metrics.card(false);
    }

    fn current(&self, key: &CardKey) -> Option<Bytes> {
        match self.0.cards.get(key) {
            Some(entry) if self.is_current(key, &entry) => Some(entry.bytes.clone()),
            _ => None,
        }
    }

    /// Keeps a rendered card until `fresh_until` (the earliest expiry of its parts);
    /// `rendered_from` is when its rendering began, so a write to the contact after that — even
    /// one that landed while it was being rendered — keeps it out. The bytes are kept in an
    /// allocation of their exact size: a card written into a growing buffer may sit in one up to
    /// twice as large, which is what the cache would then hold.
    pub fn keep(&self, key: CardKey, bytes: Bytes, fresh_until: Instant, rendered_from: Instant) {
        let entry = CardEntry {
            bytes: Bytes::copy_from_slice(&bytes),
            rendered_from,
            fresh_until,
            ttl: fresh_until.saturating_duration_since(Instant::now()),
        };
        if self.is_current(&key, &entry) {
            self.0.cards.insert(key, Arc::new(entry));
        }
    }

    /// What the rendered cards and the Voyado answers weigh now, in bytes, once the caches'
    /// pending work is done: what `cargo bench --bench cache` sets beside the process's RSS.
    pub async fn weighed(&self) -> (u64, u64) {
        let answers = &self.0.answers.answers;
        self.0.cards.run_pending_tasks();
        answers.run_pending_tasks().await;
        (self.0.cards.weighted_size(), answers.weighted_size())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn card_key(n: usize) -> CardKey {
        CardKey {
            identity: "https://a#01".into(),
            market: "demo/SE".into(),
            contact: format!("c0ffee00-0000-4000-8000-{n:012}").into(),
            generation: 1,
        }
    }

    /// Cards stay within their share of `max_bytes`, each weighed with the cache's bookkeeping.
    #[tokio::test]
    async fn cards_stay_within_their_share_of_max_bytes() {
        let max_bytes = 1 << 20;
        let cards = Cards::new(max_bytes, Caches::new(max_bytes), Arc::default());
        let until = Instant::now() + Duration::from_secs(60);
        let mut rendered = Vec::with_capacity(4096);
        rendered.resize(1_000, b'x');
        for n in 0..2_000 {
            let bytes = Bytes::from(rendered.clone());
            cards.keep(card_key(n), bytes, until, Instant::now());
        }
        cards.0.cards.run_pending_tasks();
        let (held, count) = (cards.0.cards.weighted_size(), cards.0.cards.entry_count());
        assert!(held <= Caches::cards_share(max_bytes), "{held} bytes held");
        assert!(count > 0);
        assert!(
            held >= count * (1_000 + ENTRY_OVERHEAD as u64),
            "weighed light"
        );
    }
}
