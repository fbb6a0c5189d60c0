//! What the proxy remembers of Voyado's answers (contract §6.2), and when each contact was last
//! written. The rendered cards built from the answers live with the card, in `ops/cards.rs`.
//!
//! One moka cache for the whole process; every key starts with the Voyado identity (base URL and a
//! digest of the API key), so two tenants holding the same contact id never share an entry. Each
//! entry lives as long as its kind allows (key → id 60 s, contact 30 s, definitions 10 min,
//! promotions and bonus checks 10 s, not-found 5 s) for the market reading it; freshness is judged
//! on tokio's clock, so tests on paused time see it expire. A write is recorded per contact and
//! part (its profile or its offers: an edit leaves the offers current, a redeem the contact; per
//! tenant for keys), and anything loaded before it is no longer current; with `[cluster]` the
//! other replicas' writes are recorded too, and everything at once after a gap in hearing of them.
//! Answers are kept as the bytes of their JSON and parsed on a hit: a parsed `serde_json::Value`
//! takes 7–8 times as much heap (measured in BENCHMARKS.md), and a hit is rare next to a warm
//! card, which is served from its rendered bytes without reading any answer. Memory is bounded by
//! weight: what an entry really costs on the heap, bytes, key and the cache's own bookkeeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use moka::Expiry;
use moka::future::Cache;
use moka::policy::EvictionPolicy;
use serde_json::Value;
use tokio::time::Instant;

use super::{Endpoint, VoyadoError};
use crate::cluster::Part;

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

impl Key {
    /// What the key's own allocations take on the heap (the identity is shared by every key).
    fn heap_bytes(&self) -> usize {
        let text = |s: &str| s.len() + ALLOCATION;
        let segments = self.segments.iter().map(|s| text(s)).sum::<usize>();
        let query = self
            .query
            .iter()
            .map(|(k, v)| text(k) + text(v))
            .sum::<usize>();
        let contact = self.contact.as_deref().map_or(0, text);
        segments + query + contact + ALLOCATION * 2
    }
}

/// What one heap allocation costs beyond its bytes (glibc malloc's header, rounded up).
pub const ALLOCATION: usize = 16;

/// What one cache entry costs beyond its bytes and its key's allocations: moka's own records of
/// it (the entry, its key's `Arc`, its place in the access and timer queues and the hash table,
/// about 400 bytes) and our `Arc` around the entry (about 200). Checked against the growth of
/// VmRSS per customer in `cargo bench --bench cache` (BENCHMARKS.md, "Memory").
pub const ENTRY_OVERHEAD: usize = 600;

/// A remembered answer: found (its JSON, parsed again on each hit), or Voyado's not-found (kept
/// as it came, code and all).
#[derive(Debug, Clone)]
pub enum Remembered {
    Found(Bytes),
    NotFound(VoyadoError),
}

impl Remembered {
    /// An answer as it will be kept: Voyado's JSON written compactly, in an allocation of its
    /// exact size.
    pub fn found(value: &Value) -> Remembered {
        let json = serde_json::to_vec(value).unwrap_or_default();
        Remembered::Found(Bytes::copy_from_slice(&json))
    }

    /// The answer as it was given: the value found, or the not-found.
    pub fn read(&self) -> Result<Value, VoyadoError> {
        match self {
            Remembered::Found(json) => {
                serde_json::from_slice(json).map_err(|_| VoyadoError::Malformed)
            }
            Remembered::NotFound(e) => Err(e.clone()),
        }
    }

    /// What it takes on the heap beyond the entry that holds it.
    fn heap_bytes(&self) -> usize {
        match self {
            Remembered::Found(json) => json.len() + ALLOCATION,
            // Its code and field names: a few short strings.
            Remembered::NotFound(_) => 128,
        }
    }
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
    /// An answer to `key`, weighed as it sits in memory, so that `max_bytes` bounds the heap.
    pub fn new(key: &Key, answer: Remembered, ttl: Duration, loaded_from: Instant) -> Entry {
        let weight = answer.heap_bytes() + key.heap_bytes() + ENTRY_OVERHEAD;
        Entry {
            answer,
            loaded_from,
            found: None,
            fresh_until: loaded_from + ttl,
            ttl,
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        }
    }

    /// The contact a key → contact answer found, which a write to it makes stale.
    pub fn finding(mut self, contact: Option<&str>) -> Entry {
        self.found = contact.map(|c| c.to_ascii_lowercase().into());
        let found = self.found.as_deref().map_or(0, |c| c.len() + ALLOCATION);
        self.weight = self
            .weight
            .saturating_add(u32::try_from(found).unwrap_or(u32::MAX));
        self
    }
}

/// Who a write made stale: one part of one contact of a tenant (its answers of that part, its
/// cards, and for its profile the key → contact answers that found it), or the key answers of a
/// tenant that found nobody (a key may now be someone's).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Written {
    /// A write records every part it reaches: its own, and always [`Part::All`] (any write to
    /// the contact), so each reader — an answer of one part, a card of all — looks up one record.
    Contact(Arc<str>, Box<str>, Part),
    NewKeys(Arc<str>),
}

/// The parts a write record is kept for.
const PARTS: [Part; 3] = [Part::Profile, Part::Offers, Part::All];

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
    /// When everything was last forgotten at once ([`Caches::forget_all`]): anything loaded
    /// before is stale. Nanoseconds after `epoch`, plus one (0: never), so a hit reads one atomic.
    forgot_all: Arc<AtomicU64>,
    epoch: Instant,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("answers", &self.answers.entry_count())
            .finish()
    }
}

impl Caches {
    /// Answers bounded by their share of `max_bytes`, the rest being the rendered cards'
    /// ([`Caches::cards_share`]). Least recently used go first: an answer is worth keeping only
    /// within its TTL, so the recent ones are the ones that may still be read (TinyLFU would
    /// refuse a new answer in favour of an old one asked for as often — once).
    pub fn new(max_bytes: u64) -> Caches {
        Caches {
            answers: Cache::builder()
                .max_capacity(max_bytes - Caches::cards_share(max_bytes))
                .weigher(|_: &Key, e: &Arc<Entry>| e.weight)
                .eviction_policy(EvictionPolicy::lru())
                .expire_after(PerEntry)
                .build(),
            // Longer than any entry lives (TTLs are at most an hour, `config::CACHE_TTL_MAX_MS`):
            // a remembered write outlasts what it made stale.
            // LRU: a new write record is never refused admission, as TinyLFU might.
            written: moka::sync::Cache::builder()
                .eviction_policy(EvictionPolicy::lru())
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
            forgot_all: Arc::default(),
            epoch: Instant::now(),
        }
    }

    /// The part of `[cache] max_bytes` the rendered cards (`ops/cards.rs`) may take: seven
    /// eighths. A warm card is served from its own bytes and needs no answer; answers are what a
    /// cold card, a search or the consents read within their TTLs (seconds to a minute), and a
    /// customer's five answers weigh about four rendered cards, so they get the eighth left: in
    /// service a few thousand customers' answers, many times what one API key's Voyado budget
    /// can load within the TTLs. Together they stay under `max_bytes`.
    pub fn cards_share(max_bytes: u64) -> u64 {
        max_bytes - max_bytes / 8
    }

    /// When everything was last forgotten, if ever.
    fn forgot_all_at(&self) -> Option<Instant> {
        match self.forgot_all.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(self.epoch + Duration::from_nanos(nanos - 1)),
        }
    }

    /// When `written` was last written, or everything forgotten, whichever is later.
    fn last(&self, written: &Written) -> Option<Instant> {
        self.written.get(written).max(self.forgot_all_at())
    }

    /// When a part of a contact was last written (any part, for [`Part::All`]), or everything
    /// forgotten.
    fn last_of(&self, identity: &Arc<str>, contact: &str, part: Part) -> Option<Instant> {
        self.last(&Written::Contact(identity.clone(), contact.into(), part))
    }

    /// Until when an answer may be served to a reader whose TTL for its kind is `reader_ttl`
    /// (markets on one tenant may keep a kind for different times), or `None` when it may not
    /// be served at all: expired, or loaded before the last write to what it is about.
    pub fn current_until(&self, key: &Key, entry: &Entry, reader_ttl: Duration) -> Option<Instant> {
        let until = entry.fresh_until.min(entry.loaded_from + reader_ttl);
        let identity = &key.identity;
        let last = match (&key.contact, key.endpoint, &entry.found) {
            (Some(contact), endpoint, _) => self.last_of(identity, contact, endpoint.part()),
            (None, Endpoint::ContactId | Endpoint::ContactByKey, Some(found)) => {
                self.last_of(identity, found, Part::Profile)
            }
            (None, Endpoint::ContactId | Endpoint::ContactByKey, None) => {
                self.last(&Written::NewKeys(identity.clone()))
            }
            (None, _, _) => self.forgot_all_at(),
        };
        let unwritten = last.is_none_or(|at| entry.loaded_from > at);
        (unwritten && Instant::now() < until).then_some(until)
    }

    /// Whether a part of a contact (any case) was marked written at `since` or later, or
    /// everything forgotten.
    pub fn written_since(
        &self,
        identity: &Arc<str>,
        contact: &str,
        part: Part,
        since: Instant,
    ) -> bool {
        let contact = contact.to_ascii_lowercase();
        self.last_of(identity, &contact, part)
            .is_some_and(|at| at >= since)
    }

    /// When a contact (lower case, as keys hold it) of a tenant was last written, if this process
    /// remembers: what rendered cards are judged against.
    pub fn last_write(&self, identity: &Arc<str>, contact: &str) -> Option<Instant> {
        self.last_of(identity, contact, Part::All)
    }

    /// Marks what is remembered of one part of one contact of one tenant — its answers of that
    /// part, and its cards in every market — as older than this write, so none of it is served
    /// again. An edit leaves the contact's offers as they were; a redeem its profile.
    pub fn forget_contact(&self, identity: &Arc<str>, contact: &str, part: Part) {
        let contact: Box<str> = contact.to_ascii_lowercase().into();
        let now = Instant::now();
        for p in PARTS.into_iter().filter(|p| part.reaches(*p)) {
            let written = Written::Contact(identity.clone(), contact.clone(), p);
            self.written.insert(written, now);
        }
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

    /// Marks everything remembered — every answer and every card, of every tenant — as older
    /// than now: what a replica does when it may have missed other replicas' writes (its
    /// subscription to them dropped, `[cluster]`). The next read of each thing goes to Voyado
    /// once. Definitions (consents) go too: one call each per tenant, and simpler than telling
    /// them apart.
    pub fn forget_all(&self) {
        let nanos = Instant::now()
            .saturating_duration_since(self.epoch)
            .as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1;
        self.forgot_all.fetch_max(nanos, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact_key(identity: &Arc<str>, contact: &str) -> Key {
        Key {
            identity: identity.clone(),
            endpoint: Endpoint::Contact,
            segments: Box::new([contact.into()]),
            query: Box::new([]),
            contact: Some(contact.into()),
        }
    }

    fn key_of(identity: &Arc<str>, endpoint: Endpoint, contact: &str) -> Key {
        Key {
            endpoint,
            ..contact_key(identity, contact)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_makes_stale_only_the_part_of_the_contact_it_changed() {
        let caches = Caches::new(1 << 20);
        let ttl = Duration::from_secs(30);
        let a: Arc<str> = "https://a#01".into();
        let contact = key_of(&a, Endpoint::Contact, "c1");
        let promotions = key_of(&a, Endpoint::Promotions, "c1");
        let points = Key {
            segments: Box::new([]),
            query: Box::new([("contactId".into(), "c1".into())]),
            ..key_of(&a, Endpoint::PointAccounts, "c1")
        };
        let found_by_key = Key {
            contact: None,
            ..key_of(&a, Endpoint::ContactId, "c1")
        };
        let found = loaded_now().finding(Some("C1"));
        let loaded = loaded_now();
        tokio::time::advance(Duration::from_millis(1)).await;
        let current = |key: &Key, entry: &Entry| caches.current_until(key, entry, ttl).is_some();

        let before = Instant::now();
        caches.forget_contact(&a, "C1", Part::Profile);
        assert!(caches.written_since(&a, "c1", Part::Profile, before));
        assert!(!caches.written_since(&a, "c1", Part::Offers, before));
        let later = before + Duration::from_nanos(1);
        assert!(!caches.written_since(&a, "c1", Part::Profile, later));
        assert!(!current(&contact, &loaded));
        assert!(!current(&found_by_key, &found), "a key that found it");
        assert!(current(&promotions, &loaded));
        assert!(current(&points, &loaded));
        assert_eq!(caches.last_write(&a, "c1"), Some(Instant::now()), "cards");

        caches.forget_contact(&a, "c1", Part::Offers);
        assert!(!current(&promotions, &loaded));
        assert!(!current(&points, &loaded));

        tokio::time::advance(Duration::from_millis(1)).await;
        let again = loaded_now();
        tokio::time::advance(Duration::from_millis(1)).await;
        caches.forget_contact(&a, "c1", Part::All);
        assert!(!current(&contact, &again));
        assert!(!current(&promotions, &again));
    }

    fn loaded_now() -> Entry {
        let key = contact_key(&"https://a#01".into(), "c1");
        let value = Remembered::found(&Value::Null);
        Entry::new(&key, value, Duration::from_secs(30), Instant::now())
    }

    /// An answer weighs its JSON as written compactly (not the 7–8 times as much a parsed
    /// `Value` takes), its key and the bookkeeping, and reads back as it came.
    #[test]
    fn an_answer_is_kept_as_its_json_and_weighed_by_it() {
        let key = contact_key(&"https://a#01".into(), "c1");
        let value = serde_json::json!({"id": "c1", "attributes": {"firstName": "Anna"}});
        let json = serde_json::to_vec(&value).unwrap();
        let entry = Entry::new(
            &key,
            Remembered::found(&value),
            Duration::from_secs(30),
            Instant::now(),
        );
        assert!(matches!(&entry.answer, Remembered::Found(kept) if **kept == *json));
        assert_eq!(entry.answer.read(), Ok(value));
        let weight = entry.weight as usize;
        assert!(weight > json.len() + ENTRY_OVERHEAD, "{weight}");
        assert!(weight < json.len() + ENTRY_OVERHEAD + 256, "{weight}");
    }

    /// Answers stay within what the cards leave of `max_bytes`, and the newest answer is kept
    /// when they are full: the oldest goes.
    #[tokio::test]
    async fn answers_take_what_cards_leave_of_max_bytes_and_the_oldest_go_first() {
        let max_bytes = 1 << 20;
        let caches = Caches::new(max_bytes);
        let identity: Arc<str> = "https://a#01".into();
        let value = serde_json::json!({"text": "x".repeat(500)});
        let ttl = Duration::from_secs(30);
        for n in 0..1_000 {
            let key = contact_key(&identity, &format!("c{n}"));
            let entry = Entry::new(&key, Remembered::found(&value), ttl, Instant::now());
            caches.answers.insert(key, Arc::new(entry)).await;
            caches.answers.run_pending_tasks().await;
        }
        let held = caches.answers.weighted_size();
        assert!(
            held <= max_bytes - Caches::cards_share(max_bytes),
            "{held} bytes held"
        );
        assert!(caches.answers.contains_key(&contact_key(&identity, "c999")));
        assert!(!caches.answers.contains_key(&contact_key(&identity, "c0")));
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_all_makes_everything_loaded_before_stale_in_every_tenant() {
        let caches = Caches::new(1 << 20);
        let ttl = Duration::from_secs(30);
        let (a, b): (Arc<str>, Arc<str>) = ("https://a#01".into(), "https://b#02".into());
        let (key_a, key_b) = (contact_key(&a, "c1"), contact_key(&b, "c2"));
        let before = loaded_now();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(caches.current_until(&key_a, &before, ttl).is_some());
        assert_eq!(caches.last_write(&a, "c1"), None);

        caches.forget_all();
        assert!(caches.current_until(&key_a, &before, ttl).is_none());
        assert!(caches.current_until(&key_b, &before, ttl).is_none());
        let forgot = caches.last_write(&b, "c2");
        assert_eq!(forgot, Some(Instant::now()), "cards are judged by it too");

        tokio::time::advance(Duration::from_millis(1)).await;
        let after = loaded_now();
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(caches.current_until(&key_a, &after, ttl).is_some());
        // A later write to one contact still counts for that contact.
        caches.forget_contact(&a, "C1", Part::All);
        assert!(caches.current_until(&key_a, &after, ttl).is_none());
        assert!(caches.current_until(&key_b, &after, ttl).is_some());
    }
}
