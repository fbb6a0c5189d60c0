//! The state a request is served with: one market's parts (settings, compiled plan, error table,
//! Voyado and Sitoo clients, metrics, the identity locks) and the whole set of markets and routes
//! that a live reload swaps at once. The composition root (`app.rs`) builds them; the layers of
//! `server/` and the operations of `ops/` use them, never the root.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};

use crate::config::{Limits, MarketConfig};
use crate::mapping::{MarketView, Plan};
use crate::sitoo::SitooClient;
use crate::spi::ErrorTable;
use crate::spi::routes::RouteTable;
use crate::telemetry::Metrics;
use crate::voyado::VoyadoClient;

/// One (tenant, market): everything a request for it needs.
#[derive(Debug)]
pub struct Market {
    pub settings: MarketConfig,
    /// The contact type's key: the config's, else the mapping's default.
    pub contact_key: String,
    pub plan: Arc<Plan>,
    pub errors: ErrorTable,
    pub voyado: VoyadoClient,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// `tenant/market`, as the card cache names it.
    pub key: Arc<str>,
    /// The generation of the mapping set the plan came from: rendered cards of another
    /// generation are never served.
    pub generation: u64,
    /// Sitoo's REST API, for order events; none when the market takes no events.
    pub sitoo: Option<SitooClient>,
    /// Held while an order's customer is resolved, so concurrent imports of one new customer
    /// create one contact.
    pub identities: Arc<IdentityLocks>,
}

/// Striped locks by customer identity (an email or a phone): a fixed set, so nothing grows.
#[derive(Debug)]
pub struct IdentityLocks(Vec<tokio::sync::Mutex<()>>);

impl Default for IdentityLocks {
    fn default() -> IdentityLocks {
        IdentityLocks((0..64).map(|_| tokio::sync::Mutex::new(())).collect())
    }
}

impl IdentityLocks {
    /// The lock of this identity's stripe.
    pub async fn lock(&self, identity: &str) -> tokio::sync::MutexGuard<'_, ()> {
        let digest = Sha256::digest(identity.as_bytes());
        let stripe = usize::from(digest[0]) % self.0.len();
        self.0[stripe].lock().await
    }
}

/// The mappings a request is served with, compiled together: replaced whole on a reload.
#[derive(Debug)]
pub struct Served {
    pub markets: Vec<Arc<Market>>,
    pub routes: RouteTable,
    /// The table used before a market is known (401, 404 on unknown paths, 503 when shedding).
    pub errors: ErrorTable,
    /// 0 at start, one more for each reload that was applied.
    pub generation: u64,
    /// A digest of the mapping files the set was compiled from (see `MappingSource::digest`).
    pub digest: String,
}

impl Served {
    /// The configured market for these path segments, if any.
    pub fn market(&self, tenant: &str, market: &str) -> Option<&Arc<Market>> {
        self.markets
            .iter()
            .find(|m| m.settings.tenant == tenant && m.settings.market == market)
    }
}

impl Market {
    /// The market facts the mapping needs, with the request's clock reading.
    pub fn view(&self, now: jiff::Timestamp) -> MarketView<'_> {
        view(&self.settings, now)
    }
}

/// The market facts the mapping needs, from a market's settings and a clock reading.
pub fn view(s: &MarketConfig, now: jiff::Timestamp) -> MarketView<'_> {
    MarketView {
        currency: &s.currency,
        timezone: &s.timezone,
        locale: &s.locale,
        region: &s.region,
        personal_id_region: &s.personal_id_region,
        consent_map: &s.consent_map,
        now,
    }
}

/// The set requests are served with, behind an atomic pointer: a live reload replaces it whole
/// (`App::reload`), and a request keeps the set it took until it ends.
#[derive(Debug)]
pub struct ServedSet(ArcSwap<Served>);

impl ServedSet {
    pub fn new(served: Served) -> ServedSet {
        ServedSet(ArcSwap::from_pointee(served))
    }

    /// The set in service now.
    pub fn current(&self) -> Arc<Served> {
        self.0.load_full()
    }

    /// Serves `served` from the next request on.
    pub fn replace(&self, served: Served) {
        self.0.store(Arc::new(served));
    }
}

/// Whether shutdown has begun: readiness answers `503` from then on.
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    pub fn start(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
