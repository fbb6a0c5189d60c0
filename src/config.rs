//! The operator's config file: one TOML file with `listen`, `mappings`, `[limits]` and one
//! `[[market]]` per (tenant, market) pair. Secrets come from `${ENV}`; every problem is reported at
//! once with its file, line and key.
//!
//! Parsing produces [`Config`]: plain, validated data. It builds no client and compiles no
//! mapping; `app` does that from it, so `check` needs no network.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use url::Url;

use crate::keys;
use crate::spi::error::{ErrorRow, Reason};

/// A secret from the config: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A CRM API key kept only as its SHA-256 digest, compared in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct CrmKeyDigest([u8; 32]);

impl CrmKeyDigest {
    pub fn of(secret: &str) -> CrmKeyDigest {
        CrmKeyDigest(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for CrmKeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CrmKeyDigest(***)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberNumberLookup {
    /// `GET /api/v2/contacts/id?customKey=`
    CustomKey,
    /// `GET /api/v2/contacts/{type}/bykey?keyValue=`
    ByKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoPromotion {
    /// Answer `400 cannot_undo_promotion`: Voyado cannot revert a promotion redemption.
    Refuse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    listen: Option<String>,
    admin_listen: Option<String>,
    mappings: Option<String>,
    mappings_poll_ms: Option<u64>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default)]
    voyado: VoyadoBudget,
    #[serde(default)]
    telemetry: TelemetryFile,
    #[serde(default)]
    market: Vec<MarketFile>,
}

/// `[telemetry]`: where the proxy's own spans go, if anywhere.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryFile {
    otlp_endpoint: Option<String>,
}

/// How long Voyado answers are kept in memory (contract §6.2), and how much memory they may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Answers, and rendered cards, each stay under this (weighed by size).
    pub max_bytes: u64,
    pub key_to_id_ms: Option<u64>,
    pub contact_ms: Option<u64>,
    pub definitions_ms: Option<u64>,
    pub offers_ms: Option<u64>,
    pub not_found_ms: Option<u64>,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            max_bytes: 128 * 1024 * 1024,
            key_to_id_ms: None,
            contact_ms: None,
            definitions_ms: None,
            offers_ms: None,
            not_found_ms: None,
        }
    }
}

impl CacheConfig {
    /// The global TTLs: the defaults with what the file sets.
    pub fn ttls(&self) -> CacheTtlsMs {
        CacheTtlOverrides {
            key_to_id_ms: self.key_to_id_ms,
            contact_ms: self.contact_ms,
            definitions_ms: self.definitions_ms,
            offers_ms: self.offers_ms,
            not_found_ms: self.not_found_ms,
        }
        .over(CacheTtlsMs::default())
    }
}

/// Time to live per kind of answer, in milliseconds; 0 turns that kind's caching off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheTtlsMs {
    /// Search key → contact id.
    pub key_to_id_ms: u64,
    /// A contact, and a member status.
    pub contact_ms: u64,
    /// Consent definitions.
    pub definitions_ms: u64,
    /// Promotions, available bonus checks and point balances.
    pub offers_ms: u64,
    /// "No such contact" (a search before a create leaves one; the create drops it).
    pub not_found_ms: u64,
}

impl Default for CacheTtlsMs {
    fn default() -> CacheTtlsMs {
        CacheTtlsMs {
            key_to_id_ms: 60_000,
            contact_ms: 30_000,
            definitions_ms: 600_000,
            offers_ms: 10_000,
            not_found_ms: 5_000,
        }
    }
}

/// A market's overrides of the global cache TTLs.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheTtlOverrides {
    key_to_id_ms: Option<u64>,
    contact_ms: Option<u64>,
    definitions_ms: Option<u64>,
    offers_ms: Option<u64>,
    not_found_ms: Option<u64>,
}

impl CacheTtlOverrides {
    fn over(self, base: CacheTtlsMs) -> CacheTtlsMs {
        CacheTtlsMs {
            key_to_id_ms: self.key_to_id_ms.unwrap_or(base.key_to_id_ms),
            contact_ms: self.contact_ms.unwrap_or(base.contact_ms),
            definitions_ms: self.definitions_ms.unwrap_or(base.definitions_ms),
            offers_ms: self.offers_ms.unwrap_or(base.offers_ms),
            not_found_ms: self.not_found_ms.unwrap_or(base.not_found_ms),
        }
    }
}

/// Voyado's rate budget per API key (contract §6.3) and when to stop calling a failing tenant.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoyadoBudget {
    /// Calls per second per API key, for all replicas together (Voyado asks for under 50).
    pub rate_per_second: u32,
    pub burst: u32,
    /// How many replicas share the budget: each takes its share.
    pub replicas: u32,
    /// How long a new request may wait for a permit before it is answered 429.
    pub permit_wait_ms: u64,
    /// The share of the rate new requests may use; the rest is kept for calls of requests
    /// already under way and for writes.
    pub new_work_share: f64,
    /// Consecutive failures (timeouts, connection errors, 5xx) that make a tenant fail fast.
    pub breaker_failures: u32,
    /// How long a failing tenant is answered 503 at once before one probe call is let through.
    pub breaker_cool_off_ms: u64,
}

impl Default for VoyadoBudget {
    fn default() -> VoyadoBudget {
        VoyadoBudget {
            rate_per_second: 40,
            burst: 20,
            replicas: 1,
            permit_wait_ms: 500,
            new_work_share: 0.8,
            breaker_failures: 5,
            breaker_cool_off_ms: 5_000,
        }
    }
}

/// What the edge admits and how long shutdown waits (contract §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Open connections; beyond this a new connection gets `503` and is closed.
    pub max_connections: usize,
    /// Requests being worked on; beyond this a request gets `503` with `Retry-After` at once.
    pub max_in_flight: usize,
    /// The largest request body (`400 body_too_large` above).
    pub body_max_bytes: usize,
    /// After an oversized body is refused, how much of it is still read and discarded so the
    /// client sees the answer rather than a broken pipe.
    pub body_drain_max_bytes: usize,
    /// The largest Voyado answer body read (`502` above).
    pub voyado_reply_max_bytes: usize,
    /// The most items one redeem or undo may name (`400` above).
    pub redeem_max_items: usize,
    /// The most items read from one paged Voyado list (bonus checks, point accounts), page by
    /// page; a longer list is cut there and the cut is logged.
    pub voyado_list_max_items: usize,
    /// How long shutdown waits for open requests and detached writes, together.
    pub shutdown_grace_ms: u64,
    /// After SIGTERM, how long the proxy keeps accepting while `/readyz` answers `503`, so a load
    /// balancer stops sending before the listener closes. 0 closes at once.
    pub shutdown_delay_ms: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 2048,
            max_in_flight: 512,
            body_max_bytes: 64 * 1024,
            body_drain_max_bytes: 8 * 1024 * 1024,
            voyado_reply_max_bytes: 4 * 1024 * 1024,
            redeem_max_items: 20,
            voyado_list_max_items: 1000,
            shutdown_grace_ms: 20_000,
            shutdown_delay_ms: 0,
        }
    }
}

impl Limits {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    pub fn shutdown_delay(&self) -> Duration {
        Duration::from_millis(self.shutdown_delay_ms)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketFile {
    tenant: String,
    market: String,
    crm_api_keys: Vec<Secret>,
    voyado_url: String,
    voyado_api_key: Secret,
    default_country: String,
    personal_id_country: Option<String>,
    currency: Option<String>,
    timezone: Option<String>,
    locale: Option<String>,
    mapping: Option<String>,
    contact_type: Option<String>,
    search_contact_types: Option<Vec<String>>,
    promote_contact_types: Option<Vec<String>>,
    contact_key: Option<String>,
    member_number_lookup: Option<MemberNumberLookup>,
    source: Option<String>,
    #[serde(default)]
    create_defaults: BTreeMap<String, toml::Value>,
    #[serde(default)]
    create_as_unapproved: bool,
    #[serde(default)]
    required_fields: Vec<String>,
    #[serde(default)]
    clearable_fields: Vec<String>,
    #[serde(default)]
    read_only_fields: Vec<String>,
    #[serde(default)]
    consent_map: BTreeMap<String, String>,
    #[serde(default)]
    consent_defaults: BTreeMap<String, bool>,
    #[serde(default)]
    lookup_enabled: bool,
    request_timeout_ms: Option<u64>,
    voyado_timeout_ms: Option<u64>,
    sitoo_api_url: Option<String>,
    sitoo_account_id: Option<u64>,
    sitoo_api_user: Option<String>,
    sitoo_api_password: Option<Secret>,
    sitoo_timeout_ms: Option<u64>,
    #[serde(default)]
    order_customer_create: bool,
    redeem_timeout_ms: Option<u64>,
    redeem_window_ms: Option<u64>,
    undo_promotion: Option<UndoPromotion>,
    #[serde(default)]
    errors: BTreeMap<Reason, ErrorRow>,
    #[serde(default)]
    cache: CacheTtlOverrides,
}

/// A market's access to Sitoo's REST API (order events).
#[derive(Debug, Clone)]
pub struct SitooSettings {
    pub url: Url,
    pub account_id: u64,
    pub user: String,
    pub password: Secret,
    pub timeout: Duration,
}

/// One (tenant, market) as the operator wrote it, validated. The mapping-dependent parts
/// (contact key default, field names) are checked by `app` against the compiled plan.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// `market[i]`: where this market is in the file, for errors found later.
    pub at: String,
    pub tenant: String,
    pub market: String,
    pub crm_keys: Vec<CrmKeyDigest>,
    pub voyado_url: Url,
    pub voyado_api_key: Secret,
    pub region: String,
    pub personal_id_region: String,
    pub currency: String,
    pub timezone: TimeZone,
    pub locale: String,
    /// The mapping profile's name (a file in the mappings directory).
    pub mapping: String,
    pub contact_type: String,
    pub search_contact_types: Vec<String>,
    /// Types a create promotes in place when the key already belongs to one of them.
    pub promote_contact_types: Vec<String>,
    /// Every type an order's customer may be (search types, the own type, then the promotable
    /// ones such as e-commerce `Contact`): a purchase is booked on the contact Voyado already
    /// has, whatever its type, before one is ever created.
    pub order_contact_types: Vec<String>,
    /// The contact type's key; `None` takes the mapping's default.
    pub contact_key: Option<String>,
    pub member_number_lookup: MemberNumberLookup,
    pub source: String,
    pub create_defaults: Map<String, Value>,
    pub create_as_unapproved: bool,
    pub required_fields: Vec<String>,
    pub clearable_fields: Vec<String>,
    pub read_only_fields: Vec<String>,
    pub consent_map: Vec<(String, String)>,
    pub consent_defaults: BTreeMap<String, bool>,
    pub lookup_enabled: bool,
    pub request_timeout: Duration,
    pub voyado_timeout: Duration,
    /// A voucher or promotion redeem's own call timeout: Voyado keeps working on one for up to
    /// 4.5 s and asks clients not to give up early (contract §6.4).
    pub redeem_timeout: Duration,
    /// How long after a redeem was sent Voyado may still be landing it: an unclear redeem is read
    /// back only once this has passed.
    pub redeem_window: Duration,
    pub undo_promotion: UndoPromotion,
    /// Sitoo's REST API, where order events' orders are read; none: this market takes no events.
    pub sitoo: Option<SitooSettings>,
    /// Whether an order whose customer matches no contact creates one (source `order-import`).
    pub order_customer_create: bool,
    pub errors: BTreeMap<Reason, ErrorRow>,
    /// The global cache TTLs with this market's overrides.
    pub cache: CacheTtlsMs,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Health and metrics also on this address, if set.
    pub admin_listen: Option<SocketAddr>,
    pub mappings: MappingSource,
    /// How often the mappings directory is read for changes (its files' digest); zero: only
    /// on SIGHUP.
    pub mappings_poll: Duration,
    pub limits: Limits,
    pub cache: CacheConfig,
    pub voyado: VoyadoBudget,
    /// An OTLP/HTTP collector for the proxy's spans (`[telemetry] otlp_endpoint`, e.g.
    /// `http://collector:4318`); a build without the `otlp` feature refuses one.
    pub otlp_endpoint: Option<Url>,
    pub markets: Vec<MarketConfig>,
    /// The file's name and text, so later checks can point at its lines.
    text: ConfigText,
}

#[derive(Debug, Clone)]
struct ConfigText {
    name: String,
    text: String,
}

/// Where mapping profiles, the error table and the route table come from.
#[derive(Debug, Clone)]
pub enum MappingSource {
    Dir(PathBuf),
    /// The files shipped in `mappings/`, compiled into the binary (the demo uses them).
    BuiltIn,
}

const BUILT_IN_DEFAULT: &str = include_str!("../mappings/default.toml");
const BUILT_IN_ERRORS: &str = include_str!("../mappings/errors.toml");
const BUILT_IN_ROUTES: &str = include_str!("../mappings/routes.toml");

impl MappingSource {
    /// A digest of every `.toml` file the source holds (by name and content, in name order): what
    /// a reload compares to see whether anything changed, and how the active set is named in the
    /// log and `/metrics`. A file that cannot be read counts by its name and the error's kind.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        match self {
            MappingSource::Dir(dir) => {
                let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
                    .into_iter()
                    .flatten()
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.extension().is_some_and(|e| e == "toml"))
                    .collect();
                names.sort();
                for path in names {
                    hasher.update(path.file_name().unwrap_or_default().as_encoded_bytes());
                    match std::fs::read(&path) {
                        Ok(bytes) => hasher.update(&bytes),
                        Err(e) => hasher.update(format!("{:?}", e.kind())),
                    }
                }
            }
            MappingSource::BuiltIn => {
                for text in [BUILT_IN_DEFAULT, BUILT_IN_ERRORS, BUILT_IN_ROUTES] {
                    hasher.update(text);
                }
            }
        }
        hasher.finalize()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The text of mapping file `name` and the name to report it by.
    pub fn read(&self, name: &str) -> Result<(String, String), String> {
        match self {
            MappingSource::Dir(dir) => {
                let file = dir.join(format!("{name}.toml"));
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
                Ok((text, file.display().to_string()))
            }
            MappingSource::BuiltIn => match name {
                "default" => Ok((BUILT_IN_DEFAULT.into(), "mappings/default.toml".into())),
                "errors" => Ok((BUILT_IN_ERRORS.into(), "mappings/errors.toml".into())),
                "routes" => Ok((BUILT_IN_ROUTES.into(), "mappings/routes.toml".into())),
                other => Err(format!("no built-in mapping profile '{other}'")),
            },
        }
    }
}

/// Every problem found in a config, each naming the file and key.
#[derive(Debug, thiserror::Error)]
#[error("{}", errors.join("\n"))]
pub struct ConfigError {
    pub errors: Vec<String>,
}

/// Country defaults for the optional market keys.
fn country_defaults(country: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match country {
        "SE" => ("SEK", "Europe/Stockholm", "sv-SE"),
        "NO" => ("NOK", "Europe/Oslo", "nb-NO"),
        "FI" => ("EUR", "Europe/Helsinki", "fi-FI"),
        "DK" => ("DKK", "Europe/Copenhagen", "da-DK"),
        "DE" => ("EUR", "Europe/Berlin", "de-DE"),
        "GB" => ("GBP", "Europe/London", "en-GB"),
        _ => return None,
    })
}

impl Config {
    /// Loads and validates a config file; mappings are relative to the file, `${ENV}` comes from
    /// the process environment.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        Config::load_unchecked(file)?.checked()
    }

    /// Like [`Config::load`], but a config whose values have problems still comes back, with the
    /// problems beside it, so that `check` can look at its mappings too and report everything at
    /// once. Such a config is never served.
    pub fn load_unchecked(file: &Path) -> Result<(Config, Vec<String>), ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
            errors: vec![format!("{name}: cannot read: {e}")],
        })?;
        let base = file.parent().unwrap_or(Path::new("."));
        Config::parse_unchecked(
            &text,
            &name,
            |dir| MappingSource::Dir(base.join(dir)),
            |var| std::env::var(var).ok(),
        )
    }

    /// Parses config text. `mappings` turns the `mappings` key into a source of profiles; `env`
    /// looks up `${NAME}` (tests pass their own instead of touching the process environment).
    pub fn parse(
        text: &str,
        name: &str,
        mappings: impl FnOnce(&str) -> MappingSource,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        Config::parse_unchecked(text, name, mappings, env)?.checked()
    }

    /// Parses config text; `Err` only when nothing usable could be read (syntax, a missing
    /// `${ENV}`, a wrong type), otherwise the config with its problems (see `load_unchecked`).
    pub fn parse_unchecked(
        text: &str,
        name: &str,
        mappings: impl FnOnce(&str) -> MappingSource,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        let located = ConfigText {
            name: name.to_owned(),
            text: text.to_owned(),
        };
        let mut raw: toml::Value =
            toml::from_str(text).map_err(|e| located.locate(vec![e.to_string()]))?;
        let mut errors = Vec::new();
        interpolate(&mut raw, String::new(), &env, &mut errors);
        if !errors.is_empty() {
            return Err(located.locate(errors));
        }
        let file: ConfigFile = raw
            .try_into()
            .map_err(|e: toml::de::Error| located.locate(vec![e.to_string()]))?;
        let address = |key: &str, value: &str, errors: &mut Vec<String>| {
            value.parse::<SocketAddr>().map_err(|_| {
                errors.push(format!("{key}: '{value}' is not an address:port"));
            })
        };
        let listen = address(
            "listen",
            file.listen.as_deref().unwrap_or("0.0.0.0:8080"),
            &mut errors,
        )
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 8080)));
        let admin_listen = file
            .admin_listen
            .as_deref()
            .and_then(|a| address("admin_listen", a, &mut errors).ok());
        let otlp_endpoint = file.telemetry.otlp_endpoint.as_deref().and_then(|text| {
            if !cfg!(feature = "otlp") {
                errors.push(
                    "telemetry.otlp_endpoint: this build has no OTLP export (build with \
                     --features otlp)"
                        .into(),
                );
                return None;
            }
            base_url(text)
                .map_err(|problem| errors.push(format!("telemetry.otlp_endpoint: {problem}")))
                .ok()
        });
        check_limits(&file.limits, &mut errors);
        check_budget(&file.voyado, &mut errors);
        check_ttls("cache", &file.cache.ttls(), &mut errors);
        if file.market.is_empty() {
            errors.push("market: at least one [[market]] is needed".into());
        }
        let mut markets: Vec<MarketConfig> = Vec::new();
        for (i, m) in file.market.into_iter().enumerate() {
            let at = format!("market[{i}]");
            if markets
                .iter()
                .any(|o| o.tenant == m.tenant && o.market == m.market)
            {
                errors.push(format!("{at}: a second market {}/{}", m.tenant, m.market));
            }
            let market = market_config(m, at, file.cache.ttls(), &mut errors);
            check_ttls(&format!("{}.cache", market.at), &market.cache, &mut errors);
            markets.push(market);
        }
        let config = Config {
            listen,
            admin_listen,
            mappings: mappings(file.mappings.as_deref().unwrap_or("mappings")),
            mappings_poll: Duration::from_millis(file.mappings_poll_ms.unwrap_or(1_000)),
            limits: file.limits,
            cache: file.cache,
            voyado: file.voyado,
            otlp_endpoint,
            markets,
            text: located,
        };
        Ok((config, errors))
    }

    /// Errors found after parsing (against the mappings, say), each put at its file and line.
    pub fn locate(&self, errors: Vec<String>) -> ConfigError {
        self.text.locate(errors)
    }
}

/// What `parse_unchecked` returns: usable only without problems.
trait Checked {
    fn checked(self) -> Result<Config, ConfigError>;
}

impl Checked for (Config, Vec<String>) {
    fn checked(self) -> Result<Config, ConfigError> {
        match self {
            (config, problems) if problems.is_empty() => Ok(config),
            (config, problems) => Err(config.locate(problems)),
        }
    }
}

impl ConfigText {
    /// Each error starts with its key path; the file's line for that key goes in front.
    fn locate(&self, errors: Vec<String>) -> ConfigError {
        let name = &self.name;
        ConfigError {
            errors: errors
                .into_iter()
                .map(|e| {
                    let key = e.split(": ").next().unwrap_or("");
                    match line_of(&self.text, key) {
                        Some(line) => format!("{name}:{line}: {e}"),
                        None => format!("{name}: {e}"),
                    }
                })
                .collect(),
        }
    }
}

fn check_limits(limits: &Limits, errors: &mut Vec<String>) {
    for (key, value) in [
        ("limits.max_connections", limits.max_connections),
        ("limits.max_in_flight", limits.max_in_flight),
        ("limits.body_max_bytes", limits.body_max_bytes),
        (
            "limits.voyado_reply_max_bytes",
            limits.voyado_reply_max_bytes,
        ),
        ("limits.redeem_max_items", limits.redeem_max_items),
        ("limits.voyado_list_max_items", limits.voyado_list_max_items),
    ] {
        if value == 0 {
            errors.push(format!("{key}: must be above 0"));
        }
    }
}

/// An upstream's base URL: http(s) with a host, and nothing that metrics (which name a tenant by
/// its URL) or logs could leak — no user, password, query or fragment.
fn base_url(text: &str) -> Result<Url, &'static str> {
    match Url::parse(text) {
        Ok(url)
            if !url.username().is_empty()
                || url.password().is_some()
                || url.query().is_some()
                || url.fragment().is_some() =>
        {
            Err("must have no user, password, query or fragment")
        }
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(url),
        Ok(_) => Err("must be an http(s) URL with a host"),
        Err(_) => Err("is not a URL"),
    }
}

/// Stands in for a URL with a problem, so later checks still see the market.
fn placeholder_url() -> Url {
    Url::from_directory_path("/").expect("'/' is an absolute directory")
}

/// The market's Sitoo REST API access, for order events: all four keys, or none.
fn sitoo_settings(m: &MarketFile, err: &mut impl FnMut(&str, String)) -> Option<SitooSettings> {
    let given = [
        m.sitoo_api_url.is_some(),
        m.sitoo_account_id.is_some(),
        m.sitoo_api_user.is_some(),
        m.sitoo_api_password.is_some(),
    ];
    if given.iter().all(|g| !g) {
        return None;
    }
    if given.iter().any(|g| !g) {
        err(
            "sitoo_api_url",
            "sitoo_api_url, sitoo_account_id, sitoo_api_user and sitoo_api_password go together"
                .into(),
        );
        return None;
    }
    let url = base_url(m.sitoo_api_url.as_deref().unwrap_or_default())
        .map_err(|problem| err("sitoo_api_url", problem.into()))
        .ok()?;
    let timeout = Duration::from_millis(m.sitoo_timeout_ms.unwrap_or(5_000));
    if timeout.is_zero() || timeout > Duration::from_secs(14) {
        // Sitoo waits 15 s for an events answer.
        err(
            "sitoo_timeout_ms",
            "must be above 0 and at most 14000".into(),
        );
    }
    Some(SitooSettings {
        url,
        account_id: m.sitoo_account_id.unwrap_or_default(),
        user: m.sitoo_api_user.clone().unwrap_or_default(),
        password: m.sitoo_api_password.clone()?,
        timeout,
    })
}

/// A market's settings; each value with a problem is reported and replaced by a harmless
/// stand-in, so later checks still see the market (the config as a whole is refused).
/// The longest a cache TTL may be: the record of a contact's last write outlives every entry.
pub const CACHE_TTL_MAX_MS: u64 = 3_600_000;

/// Voyado recommends a client timeout of no less than 60 s for a redeem; longer than that a
/// till's cashier is long gone.
const MAX_REDEEM_WAIT: Duration = Duration::from_secs(60);

fn check_ttls(at: &str, ttls: &CacheTtlsMs, errors: &mut Vec<String>) {
    for (key, value) in [
        ("key_to_id_ms", ttls.key_to_id_ms),
        ("contact_ms", ttls.contact_ms),
        ("definitions_ms", ttls.definitions_ms),
        ("offers_ms", ttls.offers_ms),
        ("not_found_ms", ttls.not_found_ms),
    ] {
        if value > CACHE_TTL_MAX_MS {
            errors.push(format!(
                "{at}.{key}: must be at most {CACHE_TTL_MAX_MS} (an hour)"
            ));
        }
    }
}

fn check_budget(budget: &VoyadoBudget, errors: &mut Vec<String>) {
    for (key, value) in [
        ("voyado.rate_per_second", budget.rate_per_second),
        ("voyado.burst", budget.burst),
        ("voyado.replicas", budget.replicas),
        ("voyado.breaker_failures", budget.breaker_failures),
    ] {
        if value == 0 {
            errors.push(format!("{key}: must be above 0"));
        }
    }
    if !(budget.new_work_share > 0.0 && budget.new_work_share <= 1.0) {
        errors.push("voyado.new_work_share: must be above 0 and at most 1".into());
    }
}

fn market_config(
    m: MarketFile,
    at: String,
    cache: CacheTtlsMs,
    errors: &mut Vec<String>,
) -> MarketConfig {
    let mut err = |key: &str, problem: String| errors.push(format!("{at}.{key}: {problem}"));
    let path_safe = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !path_safe(&m.tenant) {
        err("tenant", "must be letters, digits, '-' or '_'".into());
    }
    if !path_safe(&m.market) {
        err("market", "must be letters, digits, '-' or '_'".into());
    }
    if m.crm_api_keys.is_empty() || m.crm_api_keys.iter().any(|k| k.expose().is_empty()) {
        err("crm_api_keys", "needs at least one non-empty key".into());
    }
    if m.voyado_api_key.expose().is_empty() {
        err("voyado_api_key", "must not be empty".into());
    } else if http::HeaderValue::from_str(m.voyado_api_key.expose()).is_err() {
        err("voyado_api_key", "is not a valid header value".into());
    }
    let voyado_url = base_url(&m.voyado_url)
        .map_err(|problem| err("voyado_url", problem.into()))
        .unwrap_or_else(|()| placeholder_url());
    let sitoo = sitoo_settings(&m, &mut err);
    let region = match keys::country_code(&m.default_country) {
        Ok(c) => c,
        Err(e) => {
            err("default_country", e.into());
            String::new()
        }
    };
    // Voyado validates Swedish and Finnish personal ids only; elsewhere they are refused unless
    // the market says which of the two its customers carry.
    let personal_id_region = match m
        .personal_id_country
        .as_deref()
        .map(str::to_ascii_uppercase)
    {
        None => region.clone(),
        Some(c) if c == "SE" || c == "FI" => c,
        Some(_) => {
            err("personal_id_country", "must be SE or FI".into());
            String::new()
        }
    };
    let defaults = country_defaults(&region);
    let pick = |value: Option<String>, default: Option<&str>| value.or(default.map(str::to_owned));
    let currency = pick(m.currency, defaults.map(|d| d.0));
    let timezone_name = pick(m.timezone, defaults.map(|d| d.1));
    let locale = pick(m.locale, defaults.map(|d| d.2)).unwrap_or_else(|| "en-GB".into());
    let currency = match currency {
        Some(c) if c.len() == 3 && c.chars().all(|c| c.is_ascii_uppercase()) => c,
        Some(_) => {
            err("currency", "must be an ISO 4217 code such as SEK".into());
            String::new()
        }
        // An invalid country was reported already; no cascade.
        None if region.is_empty() => String::new(),
        None => {
            err("currency", format!("is required for country '{region}'"));
            String::new()
        }
    };
    let timezone = match timezone_name.as_deref().map(TimeZone::get) {
        Some(Ok(tz)) => tz,
        Some(Err(_)) => {
            err("timezone", "is not an IANA time zone".into());
            TimeZone::UTC
        }
        None if region.is_empty() => TimeZone::UTC,
        None => {
            err("timezone", format!("is required for country '{region}'"));
            TimeZone::UTC
        }
    };
    let request_timeout = Duration::from_millis(m.request_timeout_ms.unwrap_or(8_000));
    let voyado_timeout = Duration::from_millis(m.voyado_timeout_ms.unwrap_or(3_000));
    if voyado_timeout.is_zero() || voyado_timeout > request_timeout {
        err(
            "voyado_timeout_ms",
            "must be above 0 and at most request_timeout_ms".into(),
        );
    }
    let redeem_timeout = Duration::from_millis(m.redeem_timeout_ms.unwrap_or(6_000));
    if redeem_timeout.is_zero() || redeem_timeout > MAX_REDEEM_WAIT {
        err(
            "redeem_timeout_ms",
            "must be above 0 and at most 60000".into(),
        );
    }
    let redeem_window = Duration::from_millis(m.redeem_window_ms.unwrap_or(4_500));
    if redeem_window > MAX_REDEEM_WAIT {
        err("redeem_window_ms", "must be at most 60000".into());
    }
    let contact_type = m.contact_type.unwrap_or_else(|| "Member".into());
    let search_contact_types = m
        .search_contact_types
        .unwrap_or_else(|| vec![contact_type.clone()]);
    if search_contact_types.is_empty() {
        err("search_contact_types", "must name at least one type".into());
    }
    if let Some(key) = &m.contact_key
        && m.clearable_fields.contains(key)
    {
        err(
            "clearable_fields",
            format!("the contact key '{key}' can never be cleared"),
        );
    }
    let promote_contact_types = m
        .promote_contact_types
        .unwrap_or_else(|| vec!["Contact".into()]);
    let mut order_contact_types: Vec<String> = Vec::new();
    for kind in search_contact_types
        .iter()
        .chain([&contact_type])
        .chain(&promote_contact_types)
    {
        if !order_contact_types
            .iter()
            .any(|k| k.eq_ignore_ascii_case(kind))
        {
            order_contact_types.push(kind.clone());
        }
    }
    let create_defaults = m
        .create_defaults
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
        .collect();
    MarketConfig {
        tenant: m.tenant,
        market: m.market,
        crm_keys: m
            .crm_api_keys
            .iter()
            .map(|k| CrmKeyDigest::of(k.expose()))
            .collect(),
        voyado_url,
        voyado_api_key: m.voyado_api_key,
        region,
        personal_id_region,
        currency,
        timezone,
        locale,
        mapping: m.mapping.unwrap_or_else(|| "default".into()),
        contact_type,
        search_contact_types,
        promote_contact_types,
        order_contact_types,
        contact_key: m.contact_key,
        member_number_lookup: m
            .member_number_lookup
            .unwrap_or(MemberNumberLookup::CustomKey),
        source: m.source.unwrap_or_else(|| "POS".into()),
        create_defaults,
        create_as_unapproved: m.create_as_unapproved,
        required_fields: m.required_fields,
        clearable_fields: m.clearable_fields,
        read_only_fields: m.read_only_fields,
        consent_map: m.consent_map.into_iter().collect(),
        consent_defaults: m.consent_defaults,
        lookup_enabled: m.lookup_enabled,
        request_timeout,
        voyado_timeout,
        redeem_timeout,
        redeem_window,
        undo_promotion: m.undo_promotion.unwrap_or(UndoPromotion::Refuse),
        sitoo,
        order_customer_create: m.order_customer_create,
        errors: m.errors,
        cache: m.cache.over(cache),
        at,
    }
}

/// The 1-based line where a key path such as `market[0].timezone` is written, or where the
/// nearest enclosing table is when the key itself is missing.
fn line_of(text: &str, path: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    if path.is_empty() || path.contains(' ') {
        return None;
    }
    let root = DeTable::parse(text).ok()?;
    let mut table = root.get_ref();
    let mut offset = None;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((k, v)) = table.iter().find(|(k, _)| k.get_ref() == key) else {
            break;
        };
        offset = Some(k.span().start);
        let mut value = v;
        if let (Some(i), DeValue::Array(items)) = (index, v.get_ref()) {
            match items.get(i) {
                Some(item) => {
                    offset = Some(item.span().start);
                    value = item;
                }
                None => break,
            }
        }
        match value.get_ref() {
            DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    offset.map(|o| text[..o.min(text.len())].matches('\n').count() + 1)
}

/// Replaces `${NAME}` in every string with the environment variable; a missing one is an error
/// naming the key (never the value).
fn interpolate(
    value: &mut toml::Value,
    at: String,
    env: &impl Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find('}') else {
                    errors.push(format!("{at}: unclosed '${{'"));
                    return;
                };
                let name = &rest[start + 2..start + end];
                match env(name) {
                    Some(v) => out.push_str(&v),
                    None => errors.push(format!("{at}: environment variable {name} is not set")),
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate(item, format!("{at}[{i}]"), env, errors);
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let key = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                interpolate(v, key, env, errors);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(var: &str) -> Option<String> {
        (var == "SVP_TEST_CRM_KEY").then(|| "from-env".to_owned())
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml", |_| MappingSource::BuiltIn, env)
    }

    const GOOD: &str = r#"
        [[market]]
        tenant = "DevShop"
        market = "NOR"
        crm_api_keys = ["${SVP_TEST_CRM_KEY}"]
        voyado_url = "https://devshop.voyado.com"
        voyado_api_key = "k"
        default_country = "NO"
    "#;

    #[test]
    fn interpolates_env_and_fills_country_defaults() {
        let config = parse(GOOD).unwrap();
        let m = &config.markets[0];
        assert_eq!(m.crm_keys, vec![CrmKeyDigest::of("from-env")]);
        assert_eq!(m.currency, "NOK");
        assert_eq!(m.locale, "nb-NO");
        assert_eq!(m.contact_key, None);
        assert_eq!(config.listen.port(), 8080);
        assert_eq!(config.limits, Limits::default());
    }

    #[test]
    fn reports_every_error_with_its_key() {
        let text = r#"
            listen = "nowhere"
            [[market]]
            tenant = "a/b"
            market = "SE"
            crm_api_keys = []
            voyado_url = "ftp://x"
            voyado_api_key = "${SVP_SURELY_UNSET_VAR}"
            default_country = "XX"
        "#;
        let errors = parse(text).unwrap_err().errors;
        assert_eq!(errors.len(), 1, "env errors come first: {errors:?}");
        assert!(errors[0].contains("market[0].voyado_api_key"));
        assert!(!errors[0].contains("SVP_SURELY_UNSET_VAR}"));
        let errors = parse(&text.replace("${SVP_SURELY_UNSET_VAR}", "k"))
            .unwrap_err()
            .errors
            .join("\n");
        for key in [
            "test.toml:2: listen",
            "test.toml:4: market[0].tenant",
            "test.toml:6: market[0].crm_api_keys",
            "test.toml:7: market[0].voyado_url",
            "test.toml:9: market[0].default_country",
        ] {
            assert!(errors.contains(key), "{key} missing in:\n{errors}");
        }
        assert!(
            !errors.contains("currency"),
            "no cascade from the bad country: {errors}"
        );
        let errors = parse(
            &text
                .replace("\"XX\"", "\"BR\"")
                .replace("${SVP_SURELY_UNSET_VAR}", "k"),
        )
        .unwrap_err()
        .errors
        .join("\n");
        assert!(
            errors.contains("test.toml:3: market[0].currency: is required for country 'BR'"),
            "{errors}"
        );
        assert!(
            errors.contains("market[0].timezone: is required"),
            "{errors}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let text = GOOD.replace("default_country", "colour = \"red\"\ndefault_country");
        assert!(parse(&text).unwrap_err().to_string().contains("colour"));
        let text = format!("[limits]\nmax_in_flight = 0\n{GOOD}");
        let errors = parse(&text).unwrap_err().to_string();
        assert!(
            errors.contains("test.toml:2: limits.max_in_flight: must be above 0"),
            "{errors}"
        );
    }

    #[test]
    fn error_overrides_name_known_reasons_only() {
        let text = format!(
            "{GOOD}\n[market.errors.customer_exists]\nstatus = 409\nerror_code = \"conflict\"\n"
        );
        let config = parse(&text).unwrap();
        assert_eq!(
            config.markets[0].errors[&Reason::CustomerExists].status,
            409
        );
        let text = text.replace("customer_exists", "customer_exist");
        assert!(
            parse(&text)
                .unwrap_err()
                .to_string()
                .contains("customer_exist")
        );
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** ***");
    }
}
