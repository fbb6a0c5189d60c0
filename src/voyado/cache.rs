//! What the proxy remembers of Voyado's answers (contract §6.2), and the rendered cards built
//! from them.
//!
//! One moka cache for the whole process; every key starts with the Voyado identity (base URL and a
//! digest of the API key), so two tenants holding the same contact id never share an entry. Each
//! entry lives as long as its kind allows (key → id 60 s, contact 30 s, definitions 10 min,
//! promotions and bonus checks 10 s, not-found 5 s); freshness is judged on tokio's clock, so tests
//! on paused time see it expire. Memory is bounded by weight (answer bytes).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use serde_json::Value;
use tokio::time::Instant;

use super::{Endpoint, VoyadoError};

/// How long each kind of answer may be served from memory, and how much memory they may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtls {
    pub key_to_id: Duration,
    pub contact: Duration,
    pub definitions: Duration,
    pub offers: Duration,
    pub not_found: Duration,
}

impl Default for CacheTtls {
    fn default() -> CacheTtls {
        CacheTtls {
            key_to_id: Duration::from_secs(60),
            contact: Duration::from_secs(30),
            definitions: Duration::from_secs(600),
            offers: Duration::from_secs(10),
            not_found: Duration::from_secs(5),
        }
    }
}

impl CacheTtls {
    /// How long an answer of this endpoint may be kept; `None`: never cached (decisions on money
    /// read fresh, the person register is never cached, history is read as it is).
    pub fn for_endpoint(&self, endpoint: Endpoint) -> Option<Duration> {
        use Endpoint::*;
        let ttl = match endpoint {
            ContactId | ContactByKey => self.key_to_id,
            Contact | MemberStatus => self.contact,
            Consents => self.definitions,
            Promotions | AvailableBonusChecks | PointAccounts => self.offers,
            _ => return None,
        };
        (!ttl.is_zero()).then_some(ttl)
    }

    /// Whether a 404 from this endpoint is remembered (briefly) as "not there".
    pub fn remembers_not_found(endpoint: Endpoint) -> bool {
        matches!(
            endpoint,
            Endpoint::ContactId | Endpoint::ContactByKey | Endpoint::Contact
        )
    }
}

/// One remembered GET.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub identity: Arc<str>,
    pub endpoint: Endpoint,
    pub segments: Box<[Box<str>]>,
    pub query: Box<[(Box<str>, Box<str>)]>,
    /// The contact this answer is about, if any: a write to it drops the entry.
    pub contact: Option<Box<str>>,
}

/// A remembered answer: found, or Voyado's not-found (kept as it came, code and all).
#[derive(Debug, Clone)]
pub enum Remembered {
    Found(Value),
    NotFound(VoyadoError),
}

#[derive(Debug)]
pub struct Entry {
    pub answer: Remembered,
    /// When the call that got it began: a write to what it is about after that makes it stale.
    loaded_from: Instant,
    fresh_until: Instant,
    ttl: Duration,
    weight: u32,
}

impl Entry {
    pub fn new(answer: Remembered, ttl: Duration, size: usize, loaded_from: Instant) -> Entry {
        Entry {
            answer,
            loaded_from,
            fresh_until: loaded_from + ttl,
            ttl,
            // Overhead of the key and the tree beyond the bytes on the wire.
            weight: u32::try_from(size.saturating_mul(2).saturating_add(256)).unwrap_or(u32::MAX),
        }
    }
}

/// A card as the till sees it, rendered once: the bytes of the SPI customer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CardKey {
    pub identity: Arc<str>,
    /// `tenant/market`: two markets on one Voyado tenant map differently.
    pub market: Arc<str>,
    pub contact: Box<str>,
    /// The mapping plan's generation: a new plan never serves an old rendering.
    pub generation: u64,
}

#[derive(Debug)]
pub struct CardEntry {
    pub bytes: Bytes,
    rendered_from: Instant,
    fresh_until: Instant,
    ttl: Duration,
}

impl CardEntry {
    pub fn new(bytes: Bytes, ttl: Duration, rendered_from: Instant) -> CardEntry {
        CardEntry {
            bytes,
            rendered_from,
            fresh_until: rendered_from + ttl,
            ttl,
        }
    }
}

/// Who a write made stale: one contact of a tenant, or every key → id answer of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Written {
    Contact(Arc<str>, Box<str>),
    Keys(Arc<str>),
}

/// Each entry expires after its own TTL (moka's clock bounds memory; tokio's decides freshness).
/// moka's trait names its own clock's `std::time::Instant`, unused here.
struct PerEntry;

#[allow(clippy::disallowed_types)]
impl Expiry<Key, Arc<Entry>> for PerEntry {
    fn expire_after_create(
        &self,
        _: &Key,
        entry: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

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

/// The process's caches: Voyado answers and rendered cards, and when each contact (and each
/// tenant's keys) was last written, so that an answer loaded from before a write is never served
/// after it — even one whose load was still under way when the write dropped the old entries.
#[derive(Clone)]
pub struct Caches {
    pub answers: Cache<Key, Arc<Entry>>,
    pub cards: Cache<CardKey, Arc<CardEntry>>,
    /// Read on every hit, so the synchronous cache (no await on the hot path).
    written: moka::sync::Cache<Written, Instant>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("answers", &self.answers.entry_count())
            .field("cards", &self.cards.entry_count())
            .finish()
    }
}

impl Caches {
    /// Caches bounded by `max_bytes` of answers and as much again of rendered cards.
    pub fn new(max_bytes: u64) -> Caches {
        Caches {
            answers: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &Key, e: &Arc<Entry>| e.weight)
                .expire_after(PerEntry)
                .support_invalidation_closures()
                .build(),
            cards: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &CardKey, e: &Arc<CardEntry>| {
                    u32::try_from(e.bytes.len() + k.contact.len() + 128).unwrap_or(u32::MAX)
                })
                .expire_after(PerEntry)
                .support_invalidation_closures()
                .build(),
            // Longer than any entry lives: a remembered write outlasts what it made stale.
            written: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Fresh, and loaded after the last write to what it is about.
    pub fn is_current(&self, key: &Key, entry: &Entry) -> bool {
        let now = Instant::now();
        let written = match (&key.contact, key.endpoint) {
            (Some(contact), _) => Written::Contact(key.identity.clone(), contact.clone()),
            (None, Endpoint::ContactId | Endpoint::ContactByKey) => {
                Written::Keys(key.identity.clone())
            }
            (None, _) => return now < entry.fresh_until,
        };
        now < entry.fresh_until
            && self
                .written
                .get(&written)
                .is_none_or(|at| entry.loaded_from > at)
    }

    /// Fresh, and rendered after the last write to the contact.
    pub fn card_is_current(&self, key: &CardKey, entry: &CardEntry) -> bool {
        let written = Written::Contact(key.identity.clone(), key.contact.clone());
        Instant::now() < entry.fresh_until
            && self
                .written
                .get(&written)
                .is_none_or(|at| entry.rendered_from > at)
    }

    /// Drops everything remembered about one contact of one tenant: its answers and its cards in
    /// every market.
    pub fn forget_contact(&self, identity: &Arc<str>, contact: &str) {
        self.written.insert(
            Written::Contact(identity.clone(), contact.to_ascii_lowercase().into()),
            Instant::now(),
        );
        let (id, who) = (identity.clone(), contact.to_ascii_lowercase());
        let _ = self.answers.invalidate_entries_if(move |k, _| {
            k.identity == id && k.contact.as_deref() == Some(who.as_str())
        });
        let (id, who) = (identity.clone(), contact.to_ascii_lowercase());
        let _ = self
            .cards
            .invalidate_entries_if(move |k, _| k.identity == id && *k.contact == *who);
    }

    /// Drops one tenant's key → contact id answers (found and not-found): after a create or an
    /// edit, a key may point elsewhere.
    pub fn forget_keys(&self, identity: &Arc<str>) {
        self.written
            .insert(Written::Keys(identity.clone()), Instant::now());
        let id = identity.clone();
        let _ = self.answers.invalidate_entries_if(move |k, _| {
            k.identity == id && matches!(k.endpoint, Endpoint::ContactId | Endpoint::ContactByKey)
        });
    }
}
