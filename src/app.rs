//! The composition root: turns the plain [`Config`] into the running parts — per market the
//! compiled mapping plan, the error table with its overrides and the Voyado client — plus what the
//! whole process shares (route table, metrics registry, the tracker of detached writes).
//!
//! [`compile`] is the half `check` runs: every file read and compiled, every cross-reference
//! checked, no client built and no network touched. [`App::build`] adds the clients.
//!
//! What requests are served with — the markets with their plans and error tables, the route
//! table — is one [`Served`] set behind an atomic pointer. [`App::reload`] compiles the mappings
//! directory afresh and swaps the whole set at once, keeping each market's Voyado client (its
//! caches, budget and breaker); a set that does not compile is refused and the last good one
//! keeps serving. A request holds the set it started with until it ends. What asks for a reload
//! is `reload.rs` (polling the directory, SIGHUP).
//!
//! With `[cluster]`, [`App::build`] starts the one handle on the shared Redis (`cluster`) and
//! hands it to what several replicas share: each API key's budget, the write path of every
//! Voyado client (what a write changed is announced), the redeem replay (`server/replay.rs`),
//! and the subscriber that makes this replica's caches forget what the others' writes changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;

use crate::cluster::{Change, Cluster, Notice, Subscription};
use crate::config::{
    CacheTtlsMs, Config, ConfigError, CrmKeyDigest, Limits, MappingSource, MarketConfig, Place,
    Problem, VoyadoBudget,
};
use crate::limiter::Budget;
use crate::mapping::Plan;
use crate::market::{Draining, Market, Served, ServedSet};
use crate::ops::Cards;
use crate::sitoo::SitooClient;
use crate::spi::ErrorTable;
use crate::spi::routes::RouteTable;
use crate::telemetry::Metrics;
use crate::telemetry::events::mappings::{MappingReloadRefused, MappingsLoaded, MappingsReloaded};
use crate::voyado::{
    Breaker, BreakerSettings, CacheTtls, Caches, ClientParts, KeyBudget, Transport, VoyadoClient,
    build_http_client,
};

/// A reload that was applied: its generation and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub generation: u64,
    pub digest: String,
}

/// A market whose mapping compiled and whose fields the mapping knows.
struct CompiledMarket {
    settings: MarketConfig,
    contact_key: String,
    plan: Arc<Plan>,
    errors: ErrorTable,
}

/// Everything the config names, read and compiled: what `check` validates.
pub struct Compiled {
    pub errors: ErrorTable,
    pub routes: RouteTable,
    markets: Vec<CompiledMarket>,
}

impl Compiled {
    pub fn market_count(&self) -> usize {
        self.markets.len()
    }

    /// A market by `tenant/market`: its settings and compiled plan (what `map` runs).
    pub fn market(&self, key: &str) -> Option<(&MarketConfig, &Plan)> {
        self.markets
            .iter()
            .find(|m| format!("{}/{}", m.settings.tenant, m.settings.market) == key)
            .map(|m| (&m.settings, &*m.plan))
    }
}

/// `check`: the config file and every mapping it names, with every problem of both reported at
/// once, each at its file, line and column. No client is built and no socket opened.
pub fn check(file: &std::path::Path) -> Result<Compiled, ConfigError> {
    let (config, mut problems) = Config::load_unchecked(file)?;
    let compiled = compile_into(&config, &mut problems);
    match compiled {
        Some(compiled) if problems.is_empty() => Ok(compiled),
        _ => Err(ConfigError::new(problems)),
    }
}

/// Reads and compiles the error table, the route table and every mapping profile a market names,
/// and checks each market's field names against its plan. Reports every problem at once, each at
/// the config key that led to it.
pub fn compile(config: &Config) -> Result<Compiled, ConfigError> {
    let mut problems = Vec::new();
    match compile_into(config, &mut problems) {
        Some(compiled) if problems.is_empty() => Ok(compiled),
        _ => Err(ConfigError::new(problems)),
    }
}

fn compile_into(config: &Config, problems: &mut Vec<Problem>) -> Option<Compiled> {
    let source = &config.mappings;
    let table = source
        .read("errors")
        .map_err(|e| vec![e])
        .and_then(|(text, file)| {
            ErrorTable::parse(&text)
                .map_err(|found| found.iter().map(|e| format!("{file}: {e}")).collect())
        });
    let routes = source
        .read("routes")
        .and_then(|(text, file)| RouteTable::parse(&text).map_err(|e| format!("{file}: {e}")));
    let (table, routes) = match (table, routes) {
        (Ok(t), Ok(r)) => (t, r),
        (t, r) => {
            // The tables come from the directory the config's `mappings` names.
            let found = t.err().into_iter().flatten().chain(r.err());
            problems.extend(found.map(|e| config.mappings_at.problem(e)));
            return None;
        }
    };
    let mut plans: BTreeMap<&str, Option<Arc<Plan>>> = BTreeMap::new();
    let mut markets = Vec::new();
    for m in &config.markets {
        let plan = plans
            .entry(&m.mapping)
            .or_insert_with(|| match compile_profile(source, &m.mapping) {
                Ok(plan) => Some(Arc::new(plan)),
                Err(found) => {
                    // Each at its mapping file, line and column, after the market's place.
                    problems.extend(found.into_iter().map(|d| m.at.mapping.problem(d)));
                    None
                }
            })
            .clone();
        let market_table = table.with_overrides(&m.errors);
        let Some(plan) = plan else { continue };
        let contact_key = m
            .contact_key
            .clone()
            .unwrap_or_else(|| plan.default_key().to_owned());
        check_fields(m, &plan, &contact_key, problems);
        markets.push(CompiledMarket {
            settings: m.clone(),
            contact_key,
            plan,
            errors: market_table,
        });
    }
    Some(Compiled {
        errors: table,
        routes,
        markets,
    })
}

/// A mapping profile, compiled; or each of its problems (it cannot be read, or its diagnostics,
/// each at its file, line and column).
fn compile_profile(source: &MappingSource, name: &str) -> Result<Plan, Vec<String>> {
    let (text, file) = source.read(name).map_err(|e| vec![e])?;
    // A profile's `extends` names another in the same source.
    let resolve = |name: &str| source.read(name);
    Plan::compile_with(&text, &file, &resolve)
        .map_err(|e| e.diagnostics.iter().map(ToString::to_string).collect())
}

/// The market's field names must be fields of its mapping; each problem is placed at the name.
fn check_fields(m: &MarketConfig, plan: &Plan, contact_key: &str, problems: &mut Vec<Problem>) {
    let at = &m.at;
    if !plan.has_field(contact_key) || plan.search_key(contact_key).is_none() {
        problems.push(at.contact_key.problem(format!(
            "'{contact_key}' is not a searchable customer field"
        )));
    }
    // The places were taken from the same lists, item by item.
    for (places, list) in [
        (&at.required_fields, &m.required_fields),
        (&at.clearable_fields, &m.clearable_fields),
        (&at.read_only_fields, &m.read_only_fields),
    ] {
        for (place, f) in places.iter().zip(list) {
            if !plan.has_field(f) {
                problems
                    .push(place.problem(format!("'{f}' is not a customer field of the mapping")));
            }
        }
    }
    if m.contact_key.is_none() {
        for (place, f) in at.clearable_fields.iter().zip(&m.clearable_fields) {
            if f == contact_key {
                problems.push(place.problem(format!(
                    "the contact key '{contact_key}' can never be cleared"
                )));
            }
        }
    }
}

/// A Voyado tenant as cache keys name it: its base URL and a digest of its API key (never the
/// key itself).
fn identity(settings: &MarketConfig, key_digest: &[u8; 32]) -> Arc<str> {
    let digest: String = key_digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}#{digest}", settings.voyado_url).into()
}

fn ttls(ms: &CacheTtlsMs) -> CacheTtls {
    CacheTtls {
        key_to_id: Duration::from_millis(ms.key_to_id_ms),
        contact: Duration::from_millis(ms.contact_ms),
        definitions: Duration::from_millis(ms.definitions_ms),
        offers: Duration::from_millis(ms.offers_ms),
        not_found: Duration::from_millis(ms.not_found_ms),
    }
}

fn budget(b: &VoyadoBudget) -> Budget {
    Budget {
        rate_per_second: b.rate_per_second,
        burst: b.burst,
        replicas: b.replicas,
        max_wait: Duration::from_millis(b.permit_wait_ms),
        new_work_share: b.new_work_share,
    }
}

/// One API key's budget: shared through Redis with `[cluster]` (named by a digest of the key:
/// Voyado counts per key, so two markets on one key share it, as locally), else this replica's.
fn key_budget(b: &VoyadoBudget, key_digest: &[u8; 32], cluster: &Option<Cluster>) -> KeyBudget {
    match cluster {
        Some(cluster) => {
            let name: String = key_digest[..16]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            KeyBudget::shared(budget(b), cluster.clone(), format!("key#{name}").into())
        }
        None => KeyBudget::local(budget(b)),
    }
}

/// Starts the handle on the shared Redis. Only a URL that `check` already accepts gets here, so
/// the refusal is for a build that runs outside a tokio runtime, or a redis-rs that changed its
/// mind about a URL.
fn start_cluster(
    config: &Config,
    settings: &crate::cluster::ClusterConfig,
    metrics: &Arc<Metrics>,
) -> Result<Cluster, ConfigError> {
    // The config file's name: `mappings_at` is always a place in it.
    let at = Place {
        path: "cluster.redis_url".into(),
        ..Place::whole(config.mappings_at.file.as_str())
    };
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(at.problem("needs the proxy's runtime to start").into());
    }
    Cluster::start(settings, metrics.clone()).map_err(|e| at.problem(e.to_string()).into())
}

/// This replica's caches forget what the other replicas' writes changed as they hear of them,
/// and everything after a gap (a dropped subscription: writes may have been missed).
fn hear_writes(cluster: &Cluster, caches: Caches) -> Subscription {
    cluster.subscribe(move |notice| match notice {
        Notice::Changed(changes) => {
            for change in changes {
                match change {
                    Change::Contact {
                        identity,
                        contact,
                        part,
                    } => caches.forget_contact(&Arc::from(identity), &contact, part),
                    Change::Keys { identity } => caches.forget_keys(&Arc::from(identity)),
                }
            }
        }
        Notice::Gap => caches.forget_all(),
    })
}

fn breaker_settings(b: &VoyadoBudget) -> BreakerSettings {
    BreakerSettings {
        failures: b.breaker_failures,
        cool_off: Duration::from_millis(b.breaker_cool_off_ms),
    }
}

/// The running proxy: markets, shared tables, metrics and the detached writes in flight.
pub struct App {
    pub served: Arc<ServedSet>,
    /// What a reload compiles against: the config as loaded (markets and the mappings source).
    config: Config,
    /// The last generation handed out; reloads are numbered in the order they were applied.
    generation: AtomicU64,
    /// One reload at a time (the poller and SIGHUP may ask together).
    reloading: tokio::sync::Mutex<()>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// Write sequences (create + re-lookup, redeem + compensation) that outlive their request's
    /// deadline; shutdown waits for them.
    pub writes: TaskTracker,
    /// One permit per running write sequence (`max_in_flight` of them): a write whose request
    /// timed out still holds one, so writes cannot pile up behind a slow Voyado.
    pub write_slots: Arc<tokio::sync::Semaphore>,
    /// Compared against when the tenant or market is unknown, so timing reveals nothing.
    pub decoy_key: CrmKeyDigest,
    pub draining: Arc<Draining>,
    /// The rendered cards of every market, kept across reloads (the plan's generation is in
    /// their key).
    pub cards: Cards,
    /// The Redis several replicas share (`[cluster]`), if configured.
    pub cluster: Option<Cluster>,
    /// Hears the other replicas' writes for as long as the app lives.
    _writes_heard: Option<Subscription>,
}

impl App {
    /// Compiles the config and builds a Voyado client per market (one connection pool for all).
    /// With `[cluster]` it also starts the handle on Redis (without waiting for it: Redis is
    /// joined whenever it answers), which needs a tokio runtime.
    pub fn build(config: &Config) -> Result<Arc<App>, ConfigError> {
        let digest = config.mappings.digest();
        let compiled = compile(config)?;
        let metrics = Arc::new(Metrics::new());
        let cluster = match &config.cluster {
            Some(settings) => Some(start_cluster(config, settings, &metrics)?),
            None => None,
        };
        Ok(App::from_compiled(
            compiled, config, digest, metrics, cluster,
        ))
    }

    fn from_compiled(
        compiled: Compiled,
        config: &Config,
        digest: String,
        metrics: Arc<Metrics>,
        cluster: Option<Cluster>,
    ) -> Arc<App> {
        // The first phone parse loads the metadata (about a second in a debug build): not on a
        // cashier's request.
        crate::keys::warm_up_phone_metadata();
        let limits = config.limits;
        let http = build_http_client();
        let caches = Caches::new(config.cache.max_bytes);
        // One budget per Voyado API key (Voyado's budget is per key), one breaker per tenant.
        let mut budgets: BTreeMap<[u8; 32], Arc<KeyBudget>> = BTreeMap::new();
        let mut breakers: BTreeMap<Arc<str>, Arc<Breaker>> = BTreeMap::new();
        let markets = compiled
            .markets
            .into_iter()
            .map(|m| {
                let key: [u8; 32] = Sha256::digest(m.settings.voyado_api_key.expose()).into();
                let identity = identity(&m.settings, &key);
                let budget = budgets
                    .entry(key)
                    .or_insert_with(|| Arc::new(key_budget(&config.voyado, &key, &cluster)))
                    .clone();
                let breaker = breakers
                    .entry(identity.clone())
                    .or_insert_with(|| Arc::new(Breaker::new(breaker_settings(&config.voyado))))
                    .clone();
                let transport = Transport::new(
                    http.clone(),
                    m.settings.voyado_url.clone(),
                    m.settings.voyado_api_key.expose(),
                    m.settings.voyado_timeout,
                    limits.voyado_reply_max_bytes,
                    metrics.clone(),
                );
                let voyado = VoyadoClient::new(ClientParts {
                    transport,
                    identity,
                    caches: caches.clone(),
                    ttls: ttls(&m.settings.cache),
                    budget,
                    breaker,
                    cluster: cluster.clone(),
                    metrics: metrics.clone(),
                });
                let sitoo = m
                    .settings
                    .sitoo
                    .as_ref()
                    .map(|settings| SitooClient::new(http.clone(), settings));
                Arc::new(Market {
                    key: format!("{}/{}", m.settings.tenant, m.settings.market).into(),
                    generation: 0,
                    sitoo,
                    identities: Arc::default(),
                    settings: m.settings,
                    contact_key: m.contact_key,
                    plan: m.plan,
                    errors: m.errors,
                    voyado,
                    limits,
                    metrics: metrics.clone(),
                })
            })
            .collect();
        metrics.emit(MappingsLoaded { digest: &digest });
        let writes_heard = cluster.as_ref().map(|c| hear_writes(c, caches.clone()));
        Arc::new(App {
            served: Arc::new(ServedSet::new(Served {
                markets,
                routes: compiled.routes,
                errors: compiled.errors,
                generation: 0,
                digest,
            })),
            config: config.clone(),
            generation: AtomicU64::new(0),
            reloading: tokio::sync::Mutex::new(()),
            limits,
            metrics: metrics.clone(),
            writes: TaskTracker::new(),
            write_slots: Arc::new(tokio::sync::Semaphore::new(limits.max_in_flight)),
            decoy_key: CrmKeyDigest::of(&uuid::Uuid::new_v4().to_string()),
            draining: Arc::default(),
            cards: Cards::new(config.cache.max_bytes, caches, metrics.clone()),
            cluster,
            _writes_heard: writes_heard,
        })
    }

    /// `[admin]` as configured: the workbench's token.
    pub fn admin(&self) -> &crate::config::AdminConfig {
        &self.config.admin
    }

    /// The admin routes' own address, if they have one (else the main listener answers them).
    pub fn admin_listen(&self) -> Option<std::net::SocketAddr> {
        self.config.admin_listen
    }

    /// Where the mapping profiles are read from: the workbench reads a market's profile (and
    /// what a draft `extends`) from it, and writes nothing.
    pub fn mapping_source(&self) -> &MappingSource {
        &self.config.mappings
    }

    /// The digest of the mapping files as they are on disk now.
    pub fn mappings_digest(&self) -> String {
        self.config.mappings.digest()
    }

    /// The set requests are served with now; a request keeps the one it took.
    pub fn served(&self) -> Arc<Served> {
        self.served.current()
    }

    /// Reads and compiles the mappings again and, when they changed and compile, serves them
    /// from now on: `Ok(None)` when nothing changed. A set with a problem is refused with every
    /// problem (the set in service stays). Each market keeps its Voyado client; its cards are
    /// keyed by the new generation, so none rendered by the old mappings is served again.
    pub async fn reload(&self) -> Result<Option<Reloaded>, ConfigError> {
        let _one_at_a_time = self.reloading.lock().await;
        let source = &self.config.mappings;
        let digest = source.digest();
        let current = self.served();
        if digest == current.digest {
            return Ok(None);
        }
        let compiled = compile(&self.config).inspect_err(|e| {
            self.metrics.emit(MappingReloadRefused {
                digest: &digest,
                problems: e,
            });
        })?;
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let markets = compiled
            .markets
            .into_iter()
            .filter_map(|m| {
                let old = current.market(&m.settings.tenant, &m.settings.market)?;
                Some(Arc::new(Market {
                    settings: m.settings,
                    contact_key: m.contact_key,
                    plan: m.plan,
                    errors: m.errors,
                    voyado: old.voyado.clone(),
                    limits: old.limits,
                    metrics: old.metrics.clone(),
                    key: old.key.clone(),
                    generation,
                    sitoo: old.sitoo.clone(),
                    identities: old.identities.clone(),
                }))
            })
            .collect();
        self.served.replace(Served {
            markets,
            routes: compiled.routes,
            errors: compiled.errors,
            generation,
            digest: digest.clone(),
        });
        self.metrics.emit(MappingsReloaded {
            generation,
            digest: &digest,
        });
        Ok(Some(Reloaded { generation, digest }))
    }

    /// From now on readiness answers 503; with `limits.shutdown_delay_ms` the listener stays open
    /// that long, so a load balancer stops sending before it closes.
    pub fn start_draining(&self) {
        self.draining.start();
    }
}
