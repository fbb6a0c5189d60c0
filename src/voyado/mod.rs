//! The Voyado Engage side: the v2 endpoint table, the client and the decoding of Voyado's success
//! and error bodies. Nothing here knows about the SPI.
//!
//! A call goes through layers, outside in: the answer cache (GETs of a cacheable kind; concurrent
//! misses make one call) → the breaker (this tenant's Voyado keeps failing: `503` at once) → the
//! budget (this API key's rate budget, `budget.rs`: shared by all replicas with `[cluster]`) →
//! the transport (one HTTP exchange with its timeout). A write marks what it changed as stale
//! before it returns, and with `[cluster]` tells the other replicas, which do the same. Reads
//! that settle an unclear write and writes that compensate a failed one skip the breaker: it must
//! never stand between a redeem and putting the money right.
//!
//! A Voyado 429, room by room: decoded in `error.rs`, it pauses the API key in `budget.rs` (the
//! local `limiter.rs`, and every replica through Redis), and reaches the till as
//! `too_many_requests` with `Retry-After` through `spi/error.rs`.

mod breaker;
mod budget;
mod cache;
mod client;
mod endpoints;
mod error;
mod trace;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

pub use crate::cluster::Part;
use crate::cluster::{Change, Cluster};
use crate::limiter::Priority;
use crate::telemetry::Fallback;
pub use breaker::{Breaker, BreakerSettings};
pub use budget::KeyBudget;
pub use cache::{ALLOCATION, CacheTtls, Caches, ENTRY_OVERHEAD};
pub use client::{Reply, Transport, build_http_client};
pub use endpoints::Endpoint;
pub use error::VoyadoError;
pub use trace::TraceContext;

pub use client::Call;

use cache::{Entry, Key, Remembered};

use crate::telemetry::Metrics;

tokio::task_local! {
    /// The SPI request a Voyado call belongs to: its first call is new work, the rest are under
    /// way (see `src/limiter.rs` for why that split keeps writes and second rounds from starving).
    static REQUEST: RequestBudget;
}

struct RequestBudget {
    write: bool,
    admitted: AtomicBool,
    trace: Option<TraceContext>,
}

/// Runs one SPI operation's work, so its Voyado calls know which request they belong to (and
/// carry its trace context). A plain function, not an `async fn`: that would hold `work` twice
/// (as its argument and inside the scope), doubling what every request copies.
pub fn within_request<F: Future>(
    write: bool,
    trace: Option<TraceContext>,
    work: F,
) -> impl Future<Output = F::Output> {
    let budget = RequestBudget {
        write,
        admitted: AtomicBool::new(false),
        trace,
    };
    REQUEST.scope(budget, work)
}

/// The trace context of the request this call belongs to.
fn trace() -> Option<TraceContext> {
    REQUEST.try_with(|r| r.trace.clone()).ok().flatten()
}

/// New work until the request's first call got a permit; writes and calls outside a request
/// (tools) are always under way.
fn priority() -> Priority {
    REQUEST
        .try_with(|r| {
            if r.write || r.admitted.load(Ordering::Relaxed) {
                Priority::UnderWay
            } else {
                Priority::NewWork
            }
        })
        .unwrap_or(Priority::UnderWay)
}

fn mark_admitted() {
    let _ = REQUEST.try_with(|r| r.admitted.store(true, Ordering::Relaxed));
}

/// The client of one Voyado tenant, with its layers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct VoyadoClient {
    transport: Arc<Transport>,
    /// Base URL and a digest of the API key: what cache keys start with.
    identity: Arc<str>,
    /// The tenant as metrics name it (its identity: URL and key digest, never the key).
    label: Arc<str>,
    caches: Caches,
    ttls: CacheTtls,
    budget: Arc<KeyBudget>,
    breaker: Arc<Breaker>,
    /// The other replicas, told of every write (`[cluster]`).
    cluster: Option<Cluster>,
    metrics: Arc<Metrics>,
}

/// What a client is built from; the composition root shares the caches, the budget per API key
/// and the breaker per identity between markets.
pub struct ClientParts {
    pub transport: Transport,
    pub identity: Arc<str>,
    pub caches: Caches,
    pub ttls: CacheTtls,
    pub budget: Arc<KeyBudget>,
    pub breaker: Arc<Breaker>,
    pub cluster: Option<Cluster>,
    pub metrics: Arc<Metrics>,
}

impl VoyadoClient {
    pub fn new(parts: ClientParts) -> VoyadoClient {
        VoyadoClient {
            transport: Arc::new(parts.transport),
            label: parts.identity.clone(),
            identity: parts.identity,
            caches: parts.caches,
            ttls: parts.ttls,
            budget: parts.budget,
            breaker: parts.breaker,
            cluster: parts.cluster,
            metrics: parts.metrics,
        }
    }

    /// A GET: from memory when its kind may be cached and a current copy is there, else from
    /// Voyado — one call for all concurrent askers, in a task of its own, so a caller that goes
    /// away neither stalls the others nor wastes the call.
    pub async fn get(
        &self,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, VoyadoError> {
        self.get_until(endpoint, segments, query)
            .await
            .map(|(value, _)| value)
    }

    /// [`VoyadoClient::get`], with until when the answer may be kept (now, for a kind that is
    /// never cached): what a rendered card's lifetime is made of.
    pub async fn get_until(
        &self,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<(Value, Instant), VoyadoError> {
        let Some(ttl) = self.ttls.for_endpoint(endpoint) else {
            let value = self.get_fresh(endpoint, segments, query).await?;
            return Ok((value, Instant::now()));
        };
        let key = self.key(endpoint, segments, query);
        let template = endpoint.route().1;
        if let Some(entry) = self.caches.answers.get(&key).await {
            if let Some(until) = self.caches.current_until(&key, &entry, ttl) {
                self.metrics.cache(template, true);
                return entry.answer.read().map(|value| (value, until));
            }
            self.caches.answers.invalidate(&key).await;
        }
        self.metrics.cache(template, false);
        let priority = priority();
        let trace = trace();
        // A load that began before a write to what it reads may finish after it: it is then
        // not current, and is loaded once more.
        for _ in 0..2 {
            let client = self.clone();
            let load_key = key.clone();
            let trace = trace.clone();
            let loading = tokio::spawn(async move {
                // The value this task loaded, if it was the one to load: its caller takes it as
                // it is, where the others parse the kept bytes.
                let mut loaded = None;
                let load = async {
                    let (entry, value) = client
                        .load(&load_key, priority, trace.as_ref(), ttl)
                        .await?;
                    loaded = value;
                    Ok(Arc::new(entry))
                };
                let entry = client
                    .caches
                    .answers
                    .try_get_with(load_key.clone(), load)
                    .await;
                (entry, loaded)
            });
            let (entry, loaded) = loading.await.map_err(|_| VoyadoError::Malformed)?;
            let entry = match entry {
                Ok(entry) => entry,
                // This call joined a load begun as someone's new work, which the budget
                // refused; a call of a request already under way (a write's card, say) is never
                // refused for that: it asks Voyado itself, waiting its turn.
                Err(e)
                    if priority == Priority::UnderWay
                        && matches!(*e, VoyadoError::Throttled { .. }) =>
                {
                    break;
                }
                Err(e) => return Err((*e).clone()),
            };
            if priority == Priority::NewWork {
                mark_admitted();
            }
            if let Some(until) = self.caches.current_until(&key, &entry, ttl) {
                return match loaded {
                    Some(value) => Ok((value, until)),
                    None => entry.answer.read().map(|value| (value, until)),
                };
            }
            self.caches.answers.invalidate(&key).await;
        }
        let value = self.get_fresh(endpoint, segments, query).await?;
        Ok((value, Instant::now()))
    }

    /// A GET straight from Voyado, never from memory: what redeem and undo decide on. Tried once
    /// more after a connection error, 502 or 503.
    pub async fn get_fresh(
        &self,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, VoyadoError> {
        self.retried(priority(), trace().as_ref(), endpoint, segments, query)
            .await
            .map(|reply| reply.body)
    }

    /// A GET the way `read` says: [`VoyadoClient::get`], [`VoyadoClient::get_fresh`] or
    /// [`VoyadoClient::get_settling`].
    pub async fn read(
        &self,
        read: Read,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, VoyadoError> {
        match read {
            Read::Cached => self.get(endpoint, segments, query).await,
            Read::Fresh => self.get_fresh(endpoint, segments, query).await,
            Read::Settling => self.get_settling(endpoint, segments, query).await,
        }
    }

    /// Every page of one of Voyado's paged lists (`PagedResultOf<T>`: `items` and `totalCount`,
    /// asked for by `offset` and `count`, at most [`PAGE`] a page), read the way `read` says, up to
    /// `max_items` — as one page holding them all, so a mapping reads it like any page. The first
    /// page tells how many there are; the rest are asked for together. A list longer than
    /// `max_items` is cut there, and the cut is logged.
    pub async fn get_pages(
        &self,
        read: Read,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
        max_items: usize,
    ) -> Result<(Value, Instant), VoyadoError> {
        let page = |offset: usize| async move {
            let (offset, count) = (offset.to_string(), PAGE.to_string());
            let mut query = query.to_vec();
            query.push(("offset", &offset));
            query.push(("count", &count));
            let (page, until) = match read {
                Read::Cached => self.get_until(endpoint, segments, &query).await?,
                _ => (
                    self.read(read, endpoint, segments, &query).await?,
                    Instant::now(),
                ),
            };
            let total = page.get("totalCount").and_then(Value::as_u64);
            match page {
                Value::Object(mut page) => match page.remove("items") {
                    Some(Value::Array(items)) => Ok((items, total.unwrap_or(0), until)),
                    _ => Err(VoyadoError::Malformed),
                },
                _ => Err(VoyadoError::Malformed),
            }
        };
        let (mut items, total, mut fresh_until) = page(0).await?;
        let total = usize::try_from(total).unwrap_or(usize::MAX);
        let wanted = total.min(max_items);
        if !items.is_empty() && items.len() < wanted {
            let rest = (items.len()..wanted).step_by(items.len()).map(page);
            for (more, _, until) in futures_util::future::try_join_all(rest).await? {
                items.extend(more);
                fresh_until = fresh_until.min(until);
            }
        }
        if total > max_items {
            items.truncate(max_items);
            tracing::warn!(
                ?endpoint,
                total,
                max_items,
                "a Voyado list is longer than limits.voyado_list_max_items; the rest is not read"
            );
        }
        let count = items.len();
        let all =
            serde_json::json!({"items": items, "totalCount": total, "offset": 0, "count": count});
        Ok((all, fresh_until))
    }

    /// A GET that settles a write whose result was unclear (did the redeem land?). It goes
    /// through even while the tenant is cooling off: the breaker must never stand between a
    /// redeem and the check of it.
    pub async fn get_settling(
        &self,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, VoyadoError> {
        let call = Call::new(endpoint, segments, query);
        self.exchange(Priority::UnderWay, trace().as_ref(), call, Gate::Bypass)
            .await
            .map(|reply| reply.body)
    }

    /// A compensating write (a bonus check reactivated after a failed redeem, or redeemed again
    /// after a failed undo): like [`VoyadoClient::send_call`], but never refused by the breaker —
    /// money must not stay in the wrong state because other calls failed.
    pub async fn send_compensating(&self, call: Call<'_>) -> Result<Reply, VoyadoError> {
        self.write(call, Gate::Bypass).await
    }

    /// A write, never retried. Before it returns, whatever it changed is dropped from memory:
    /// the contact it names (its answers and cards), and on a create or an edit the tenant's key
    /// answers that found nobody (a key may now be someone's) — here and, with `[cluster]`, on
    /// every other replica.
    pub async fn send(
        &self,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
        headers: &[(&'static str, &str)],
        body: Option<&Value>,
    ) -> Result<Reply, VoyadoError> {
        let call = Call {
            endpoint,
            segments,
            query,
            headers,
            body,
            timeout: None,
        };
        self.send_call(call).await
    }

    /// [`VoyadoClient::send`] of a call built by the caller (one with its own timeout).
    pub async fn send_call(&self, call: Call<'_>) -> Result<Reply, VoyadoError> {
        self.write(call, Gate::Breaker).await
    }

    async fn write(&self, call: Call<'_>, gate: Gate) -> Result<Reply, VoyadoError> {
        let Call {
            endpoint,
            segments,
            body,
            ..
        } = call;
        let sent = Instant::now();
        let result = self
            .exchange(Priority::UnderWay, trace().as_ref(), call, gate)
            .await;
        // The contact a create or an update answered with — unless another write to its profile
        // was marked while this one was under way: this answer may be older than that write.
        let answered = result.as_ref().ok().filter(|reply| {
            let id = reply.body.get("id").and_then(Value::as_str);
            endpoint.answers_with_contact()
                && id.is_some_and(|id| {
                    !self
                        .caches
                        .written_since(&self.identity, id, Part::Profile, sent)
                })
        });
        // Even a failed write may have landed.
        let mut changes = Vec::new();
        if endpoint.names_contact()
            && let Some(contact) = segments.first()
        {
            // An update that carries a contact type changes more than the profile.
            let part = match body {
                Some(body) if body.get("contactType").is_some() => Part::All,
                _ => endpoint.part(),
            };
            self.caches.forget_contact(&self.identity, contact, part);
            changes.push(self.contact_changed(contact, part));
        }
        if endpoint.may_move_keys() {
            self.caches.forget_keys(&self.identity);
            changes.push(Change::Keys {
                identity: self.identity.to_string(),
            });
        }
        if let Some(reply) = answered {
            self.remember_contact(reply).await;
        }
        self.announce(&changes).await;
        result
    }

    /// Keeps the contact a create or an update answered with as the contact's current answer,
    /// as if read just after the write made older answers stale (and before the other replicas
    /// are told): the card that follows the write then reads it from memory instead of asking
    /// Voyado once more. An answer that is not a contact with an id is not kept.
    async fn remember_contact(&self, reply: &Reply) {
        let Some(ttl) = self.ttls.for_endpoint(Endpoint::Contact) else {
            return;
        };
        let Some(id) = reply.body.get("id").and_then(Value::as_str) else {
            return;
        };
        let key = self.key(Endpoint::Contact, &[id], &[]);
        // Read after the write's mark, which the entry must follow to be current: on a clock
        // that has not moved since (paused time), one nanosecond later.
        let read_at = Instant::now() + Duration::from_nanos(1);
        let entry = Entry::new(&key, Remembered::found(&reply.body), ttl, read_at);
        self.caches.answers.insert(key, Arc::new(entry)).await;
    }

    /// Drops what is remembered of a part of a contact, here and on the other replicas; for
    /// writes whose path does not name it (a reward voucher's reactivation).
    pub async fn forget_contact(&self, contact: &str, part: Part) {
        self.caches.forget_contact(&self.identity, contact, part);
        self.announce(&[self.contact_changed(contact, part)]).await;
    }

    fn contact_changed(&self, contact: &str, part: Part) -> Change {
        Change::Contact {
            identity: self.identity.to_string(),
            contact: contact.to_ascii_lowercase(),
            part,
        }
    }

    /// Tells the other replicas what a write changed, before the write answers its till (one
    /// Redis round trip). Without Redis they are not told: counted, and their cache TTLs bound
    /// how long they serve what the write changed.
    async fn announce(&self, changes: &[Change]) {
        if let Some(cluster) = &self.cluster
            && !changes.is_empty()
            && cluster.publish(changes).await.is_err()
        {
            self.metrics.cluster_fallback(Fallback::Notify);
        }
    }

    /// Base URL and a digest of the API key: whose contacts these are, as cache keys name it.
    pub fn identity(&self) -> &Arc<str> {
        &self.identity
    }

    fn key(&self, endpoint: Endpoint, segments: &[&str], query: &[(&str, &str)]) -> Key {
        let contact = if endpoint.names_contact() {
            segments.first().map(|c| c.to_ascii_lowercase().into())
        } else {
            query
                .iter()
                .find(|(k, _)| *k == "contactId")
                .map(|(_, v)| v.to_ascii_lowercase().into())
        };
        Key {
            identity: self.identity.clone(),
            endpoint,
            segments: segments.iter().map(|s| (*s).into()).collect(),
            query: query
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            contact,
        }
    }

    /// One cache load: the call (tried once more when a retry can help), kept as found, or as
    /// not-found for the endpoints where 404 means "no such thing"; and the value found, for the
    /// caller that loaded it.
    async fn load(
        &self,
        key: &Key,
        priority: Priority,
        trace: Option<&TraceContext>,
        ttl: Duration,
    ) -> Result<(Entry, Option<Value>), VoyadoError> {
        let started = Instant::now();
        let segments: Vec<&str> = key.segments.iter().map(|s| &**s).collect();
        let query: Vec<(&str, &str)> = key.query.iter().map(|(k, v)| (&**k, &**v)).collect();
        match self
            .retried(priority, trace, key.endpoint, &segments, &query)
            .await
        {
            Ok(reply) => {
                // A key's answer is the contact's id (`/contacts/id`) or the contact (`bykey`).
                let found = match key.endpoint {
                    Endpoint::ContactId => reply.body.as_str(),
                    Endpoint::ContactByKey => reply.body.get("id").and_then(Value::as_str),
                    _ => None,
                }
                .map(str::to_owned);
                let entry = Entry::new(key, Remembered::found(&reply.body), ttl, started);
                Ok((entry.finding(found.as_deref()), Some(reply.body)))
            }
            Err(e) if e.is_not_found() && CacheTtls::remembers_not_found(key.endpoint) => {
                let not_found = Remembered::NotFound(e);
                Ok((
                    Entry::new(key, not_found, self.ttls.not_found, started),
                    None,
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// A GET, tried once more after a connection error, 502 or 503 (never a write).
    async fn retried(
        &self,
        priority: Priority,
        trace: Option<&TraceContext>,
        endpoint: Endpoint,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Reply, VoyadoError> {
        let once = || {
            self.exchange(
                priority,
                trace,
                Call::new(endpoint, segments, query),
                Gate::Breaker,
            )
        };
        match once().await {
            Err(e) if e.retryable() => once().await,
            other => other,
        }
    }

    /// The breaker (unless bypassed), then the budget, then the transport; a Voyado 429
    /// pauses the key (on every replica, with `[cluster]`).
    async fn exchange(
        &self,
        priority: Priority,
        trace: Option<&TraceContext>,
        call: Call<'_>,
        gate: Gate,
    ) -> Result<Reply, VoyadoError> {
        let attempt = match gate {
            Gate::Bypass => None,
            Gate::Breaker => match self.breaker.admit() {
                Ok(attempt) => Some(attempt),
                Err(open) => {
                    self.metrics
                        .breaker_state(&self.label, self.breaker.state().as_gauge());
                    return Err(VoyadoError::CoolingOff {
                        retry_after: open.retry_after_secs,
                    });
                }
            },
        };
        if let Err(throttled) = self.budget.acquire(priority, &self.metrics).await {
            self.metrics.throttled(&self.label);
            return Err(VoyadoError::Throttled {
                retry_after: throttled.retry_after_secs,
            });
        }
        if priority == Priority::NewWork {
            mark_admitted();
        }
        let result = self.transport.send(call, trace).await;
        match (&result, attempt) {
            (Err(e), Some(attempt)) if e.is_outage() => attempt.failed(),
            (_, Some(attempt)) => attempt.succeeded(),
            (_, None) => {}
        }
        self.metrics
            .breaker_state(&self.label, self.breaker.state().as_gauge());
        if let Err(VoyadoError::Status {
            status: 429,
            retry_after,
            ..
        }) = &result
        {
            let pause = Duration::from_secs(retry_after.unwrap_or(1).max(1));
            self.budget.pause(pause, &self.metrics).await;
        }
        result
    }
}

/// Items a page of a paged Voyado list holds (Voyado's default `count`).
pub const PAGE: usize = 100;

/// How a list is read: through the answer cache, straight from Voyado (what money is decided
/// on), or settling an unclear write (past the breaker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    Cached,
    Fresh,
    Settling,
}

/// Whether a call asks the breaker first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Breaker,
    /// Settling or compensating a write: never refused while the tenant cools off.
    Bypass,
}
