//! What the proxy remembers of Voyado's answers (contract §6.2), and when each contact was last
//! written. The rendered cards built from the answers live with the card, in `ops/cards.rs`.
//!
//! One moka cache for the whole process; every key starts with the Voyado identity (base URL and a
//! digest of the API key), so two tenants holding the same contact id never share an entry. Each
//! entry lives as long as its kind allows (key → id 60 s, contact 30 s, definitions 10 min,
//! promotions and bonus checks 10 s, not-found 5 s) for the market reading it; freshness is judged
//! on tokio's clock, so tests on paused time see it expire. A write is recorded per contact (and
//! per tenant for keys), and anything loaded before it is no longer current. Memory is bounded by
//! weight (the answers' size in memory).

use std::sync::Arc;
use std::time::Duration;

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
    /// For a key → contact answer that found one: that contact (lower case), so a write to it —
    /// and only to it — makes the answer stale.
    found: Option<Box<str>>,
    fresh_until: Instant,
    ttl: Duration,
    weight: u32,
}

impl Entry {
    pub fn new(answer: Remembered, ttl: Duration, size: usize, loaded_from: Instant) -> Entry {
        Entry {
            answer,
            loaded_from,
            found: None,
            fresh_until: loaded_from + ttl,
            ttl,
            // A parsed `serde_json::Value` takes 7–8 times its bytes on the wire (measured on the
            // fixture's answers), plus the key: weighed as it sits in memory, so `max_bytes`
            // bounds the heap.
            weight: u32::try_from(size.saturating_mul(8).saturating_add(512)).unwrap_or(u32::MAX),
        }
    }

    /// The contact a key → contact answer found, which a write to it makes stale.
    pub fn finding(mut self, contact: Option<&str>) -> Entry {
        self.found = contact.map(|c| c.to_ascii_lowercase().into());
        self
    }
}

/// Who a write made stale: one contact of a tenant (its answers, its cards, the key → contact
/// answers that found it), or the key answers of a tenant that found nobody (a key may now be
/// someone's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Written {
    Contact(Arc<str>, Box<str>),
    NewKeys(Arc<str>),
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

/// The process's Voyado answers, and when each contact (and each tenant's keys) was last
/// written, so that an answer loaded from before a write is never served after it — even one whose
/// load was still under way when the write dropped the old entries. The rendered cards
/// (`ops/cards.rs`) read the same record of writes.
#[derive(Clone)]
pub struct Caches {
    pub answers: Cache<Key, Arc<Entry>>,
    /// Read on every hit, so the synchronous cache (no await on the hot path).
    written: moka::sync::Cache<Written, Instant>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("answers", &self.answers.entry_count())
            .finish()
    }
}

impl Caches {
    /// Answers bounded by `max_bytes`.
    pub fn new(max_bytes: u64) -> Caches {
        Caches {
            answers: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &Key, e: &Arc<Entry>| e.weight)
                .expire_after(PerEntry)
                .build(),
            // Longer than any entry lives (TTLs are at most an hour, `config::CACHE_TTL_MAX_MS`):
            // a remembered write outlasts what it made stale.
            // LRU: a new write record is never refused admission, as TinyLFU might.
            written: moka::sync::Cache::builder()
                .eviction_policy(moka::policy::EvictionPolicy::lru())
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Until when an answer may be served to a reader whose TTL for its kind is `reader_ttl`
    /// (markets on one tenant may keep a kind for different times), or `None` when it may not
    /// be served at all: expired, or loaded before the last write to what it is about.
    pub fn current_until(&self, key: &Key, entry: &Entry, reader_ttl: Duration) -> Option<Instant> {
        let until = entry.fresh_until.min(entry.loaded_from + reader_ttl);
        let written = match (&key.contact, key.endpoint, &entry.found) {
            (Some(contact), _, _) => Some(Written::Contact(key.identity.clone(), contact.clone())),
            (None, Endpoint::ContactId | Endpoint::ContactByKey, Some(found)) => {
                Some(Written::Contact(key.identity.clone(), found.clone()))
            }
            (None, Endpoint::ContactId | Endpoint::ContactByKey, None) => {
                Some(Written::NewKeys(key.identity.clone()))
            }
            (None, _, _) => None,
        };
        let unwritten = written
            .and_then(|w| self.written.get(&w))
            .is_none_or(|at| entry.loaded_from > at);
        (unwritten && Instant::now() < until).then_some(until)
    }

    /// When a contact (lower case, as keys hold it) of a tenant was last written, if this process
    /// remembers: what rendered cards are judged against.
    pub fn last_write(&self, identity: &Arc<str>, contact: &str) -> Option<Instant> {
        self.written
            .get(&Written::Contact(identity.clone(), contact.into()))
    }

    /// Marks everything remembered about one contact of one tenant — its answers and its cards
    /// in every market — as older than this write, so none of it is served again.
    pub fn forget_contact(&self, identity: &Arc<str>, contact: &str) {
        self.written.insert(
            Written::Contact(identity.clone(), contact.to_ascii_lowercase().into()),
            Instant::now(),
        );
    }

    /// Marks one tenant's key answers that found nobody as older than this write: after a
    /// create or an edit, a key may be someone's. A key answer that found a contact stays: it is
    /// stale only when that contact is written (an edit names its contact,
    /// [`Caches::forget_contact`]), so one write does not cost every other customer's next find a
    /// call.
    pub fn forget_keys(&self, identity: &Arc<str>) {
        self.written
            .insert(Written::NewKeys(identity.clone()), Instant::now());
    }
}
