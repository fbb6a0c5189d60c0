//! `[[market]]`: one (tenant, market) pair — its Voyado tenant and keys, its country and what
//! follows from it (currency, time zone, locale), contact types, timeouts, Sitoo access, error
//! overrides and cache TTLs — as written ([`MarketFile`], each value a check may refuse with its
//! place) and as checked ([`MarketConfig`]). The checks that need the market's mapping run in
//! `app`, at the places the market keeps ([`MarketPlaces`]).

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;
use url::Url;

use super::cache::{CacheFile, CacheTtlsMs};
use super::problem::{Place, Problems};
use super::secrets::{CrmKeyDigest, Secret};
use super::{base_url, placeholder_url};
use crate::keys;
use crate::spi::error::{ErrorRow, Reason};

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
    /// Where this market's keys are in the file, for the problems found later.
    pub at: MarketPlaces,
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

/// Where a market's keys were written, for the problems its mapping finds in them. A key left
/// out (the default profile, the mapping's contact key) is placed at the `[[market]]` itself.
#[derive(Debug, Clone)]
pub struct MarketPlaces {
    pub mapping: Place,
    pub contact_key: Place,
    /// One place per item of the list, in its order.
    pub required_fields: Vec<Place>,
    pub clearable_fields: Vec<Place>,
    pub read_only_fields: Vec<Place>,
}

/// `[[market]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MarketFile {
    tenant: Spanned<String>,
    market: Spanned<String>,
    crm_api_keys: Spanned<Vec<Secret>>,
    voyado_url: Spanned<String>,
    voyado_api_key: Spanned<Secret>,
    default_country: Spanned<String>,
    personal_id_country: Option<Spanned<String>>,
    currency: Option<Spanned<String>>,
    timezone: Option<Spanned<String>>,
    locale: Option<String>,
    mapping: Option<Spanned<String>>,
    contact_type: Option<String>,
    search_contact_types: Option<Spanned<Vec<String>>>,
    promote_contact_types: Option<Vec<String>>,
    contact_key: Option<Spanned<String>>,
    member_number_lookup: Option<MemberNumberLookup>,
    source: Option<String>,
    #[serde(default)]
    create_defaults: BTreeMap<String, toml::Value>,
    #[serde(default)]
    create_as_unapproved: bool,
    #[serde(default)]
    required_fields: Vec<Spanned<String>>,
    #[serde(default)]
    clearable_fields: Vec<Spanned<String>>,
    #[serde(default)]
    read_only_fields: Vec<Spanned<String>>,
    #[serde(default)]
    consent_map: BTreeMap<String, String>,
    #[serde(default)]
    consent_defaults: BTreeMap<String, bool>,
    #[serde(default)]
    lookup_enabled: bool,
    request_timeout_ms: Option<Spanned<u64>>,
    voyado_timeout_ms: Option<Spanned<u64>>,
    sitoo_api_url: Option<Spanned<String>>,
    sitoo_account_id: Option<Spanned<u64>>,
    sitoo_api_user: Option<Spanned<String>>,
    sitoo_api_password: Option<Spanned<Secret>>,
    sitoo_timeout_ms: Option<Spanned<u64>>,
    #[serde(default)]
    order_customer_create: bool,
    redeem_timeout_ms: Option<Spanned<u64>>,
    redeem_window_ms: Option<Spanned<u64>>,
    undo_promotion: Option<UndoPromotion>,
    #[serde(default)]
    errors: BTreeMap<Reason, ErrorRowFile>,
    #[serde(default)]
    cache: CacheFile,
}

/// An error-table override as written: its status placed, for the check.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorRowFile {
    status: Spanned<u16>,
    error_code: String,
}

/// Voyado recommends a client timeout of no less than 60 s for a redeem; longer than that a
/// till's cashier is long gone.
const MAX_REDEEM_WAIT: Duration = Duration::from_secs(60);

/// Every `[[market]]`, checked; a second market with the same tenant and market is a problem.
pub(super) fn markets(
    files: Vec<Spanned<MarketFile>>,
    global: CacheTtlsMs,
    problems: &mut Problems<'_>,
) -> Vec<MarketConfig> {
    if files.is_empty() {
        problems.missing("market", "at least one [[market]] is needed");
    }
    let mut markets: Vec<MarketConfig> = Vec::new();
    for (index, file) in files.into_iter().enumerate() {
        let mut at = At {
            path: format!("market[{index}]"),
            table: file.span(),
            problems: &mut *problems,
        };
        let file = file.into_inner();
        let (tenant, market) = (file.tenant.get_ref(), file.market.get_ref());
        if markets
            .iter()
            .any(|o| &o.tenant == tenant && &o.market == market)
        {
            let problem = format!("a second market {tenant}/{market}");
            at.problems
                .push(at.path.as_str(), at.table.clone(), problem);
        }
        markets.push(file.check(&mut at, global));
    }
    markets
}

/// One `[[market]]` while it is checked: a problem of a key is placed at the key's value, or at
/// the `[[market]]` itself when the key is left out.
struct At<'p, 't> {
    /// `market[i]`
    path: String,
    table: Range<usize>,
    problems: &'p mut Problems<'t>,
}

impl At<'_, '_> {
    /// Where `key` is: at its value's `span`, or at the `[[market]]` when it is left out.
    fn place(&self, key: &str, span: impl Into<Option<Range<usize>>>) -> Place {
        let span = span.into().unwrap_or_else(|| self.table.clone());
        self.problems.place(format!("{}.{key}", self.path), span)
    }

    fn push(
        &mut self,
        key: &str,
        span: impl Into<Option<Range<usize>>>,
        message: impl Into<String>,
    ) {
        let problem = self.place(key, span).problem(message);
        self.problems.add(problem);
    }
}

/// A duration given in milliseconds, or its default.
fn millis(value: &Option<Spanned<u64>>, default_ms: u64) -> Duration {
    Duration::from_millis(value.as_ref().map_or(default_ms, |ms| *ms.get_ref()))
}

/// Where an optional value was written, if it was.
fn span_of<T>(value: &Option<Spanned<T>>) -> Option<Range<usize>> {
    value.as_ref().map(Spanned::span)
}

/// The country's currency, time zone and locale.
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

/// The value of `key` (`currency` or `timezone`) as given, else the country's; a country without
/// one needs it given, which is a problem at the `[[market]]`. After a bad country nothing more is
/// said (no cascade).
fn by_country<'v>(
    at: &mut At<'_, '_>,
    key: &str,
    given: Option<&'v Spanned<String>>,
    region: &str,
    default: Option<&'v str>,
) -> Option<&'v str> {
    let value = given.map(|v| v.get_ref().as_str()).or(default);
    if value.is_none() && !region.is_empty() {
        at.push(
            key,
            given.map(Spanned::span),
            format!("is required for country '{region}'"),
        );
    }
    value
}

/// What a market's country decides, unless the market says otherwise.
struct Country {
    region: String,
    personal_id_region: String,
    currency: String,
    timezone: TimeZone,
    locale: String,
}

struct Timeouts {
    request: Duration,
    voyado: Duration,
    redeem: Duration,
    redeem_window: Duration,
}

struct ContactTypes {
    own: String,
    search: Vec<String>,
    promote: Vec<String>,
    order: Vec<String>,
}

impl MarketFile {
    /// The market's settings; each value with a problem is reported and replaced by a harmless
    /// stand-in, so later checks still see the market (the config as a whole is refused).
    fn check(self, at: &mut At<'_, '_>, global: CacheTtlsMs) -> MarketConfig {
        self.check_names(at);
        self.check_clearable(at);
        let (crm_keys, voyado_url) = self.voyado_access(at);
        let country = self.country(at);
        let timeouts = self.timeouts(at);
        let types = self.contact_types(at);
        let sitoo = self.sitoo(at);
        let errors = self.error_overrides(at);
        let places = self.places(at);
        let strings =
            |list: Vec<Spanned<String>>| list.into_iter().map(Spanned::into_inner).collect();
        MarketConfig {
            at: places,
            tenant: self.tenant.into_inner(),
            market: self.market.into_inner(),
            crm_keys,
            voyado_url,
            voyado_api_key: self.voyado_api_key.into_inner(),
            region: country.region,
            personal_id_region: country.personal_id_region,
            currency: country.currency,
            timezone: country.timezone,
            locale: country.locale,
            mapping: self
                .mapping
                .map_or_else(|| "default".into(), Spanned::into_inner),
            contact_type: types.own,
            search_contact_types: types.search,
            promote_contact_types: types.promote,
            order_contact_types: types.order,
            contact_key: self.contact_key.map(Spanned::into_inner),
            member_number_lookup: self
                .member_number_lookup
                .unwrap_or(MemberNumberLookup::CustomKey),
            source: self.source.unwrap_or_else(|| "POS".into()),
            create_defaults: self
                .create_defaults
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(Value::Null)))
                .collect(),
            create_as_unapproved: self.create_as_unapproved,
            required_fields: strings(self.required_fields),
            clearable_fields: strings(self.clearable_fields),
            read_only_fields: strings(self.read_only_fields),
            consent_map: self.consent_map.into_iter().collect(),
            consent_defaults: self.consent_defaults,
            lookup_enabled: self.lookup_enabled,
            request_timeout: timeouts.request,
            voyado_timeout: timeouts.voyado,
            redeem_timeout: timeouts.redeem,
            redeem_window: timeouts.redeem_window,
            undo_promotion: self.undo_promotion.unwrap_or(UndoPromotion::Refuse),
            sitoo,
            order_customer_create: self.order_customer_create,
            errors,
            cache: self
                .cache
                .market(&format!("{}.cache", at.path), global, at.problems),
        }
    }

    /// The tenant and market are path segments of the SPI base URL.
    fn check_names(&self, at: &mut At<'_, '_>) {
        for (key, name) in [("tenant", &self.tenant), ("market", &self.market)] {
            let safe = !name.get_ref().is_empty()
                && name
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !safe {
                at.push(key, name.span(), "must be letters, digits, '-' or '_'");
            }
        }
    }

    /// An edit may never clear the contact key (the mapping's default key is checked in `app`).
    fn check_clearable(&self, at: &mut At<'_, '_>) {
        let Some(key) = &self.contact_key else {
            return;
        };
        for field in &self.clearable_fields {
            if field.get_ref() == key.get_ref() {
                let problem = format!("the contact key '{}' can never be cleared", key.get_ref());
                at.push("clearable_fields", field.span(), problem);
            }
        }
    }

    /// The CRM keys the till may send (as digests) and the Voyado tenant's URL; the Voyado key
    /// must be sendable as a header.
    fn voyado_access(&self, at: &mut At<'_, '_>) -> (Vec<CrmKeyDigest>, Url) {
        let crm_keys = self.crm_api_keys.get_ref();
        if crm_keys.is_empty() || crm_keys.iter().any(|k| k.expose().is_empty()) {
            at.push(
                "crm_api_keys",
                self.crm_api_keys.span(),
                "needs at least one non-empty key",
            );
        }
        let voyado_key = self.voyado_api_key.get_ref().expose();
        let span = self.voyado_api_key.span();
        if voyado_key.is_empty() {
            at.push("voyado_api_key", span, "must not be empty");
        } else if http::HeaderValue::from_str(voyado_key).is_err() {
            at.push("voyado_api_key", span, "is not a valid header value");
        }
        let voyado_url = base_url(self.voyado_url.get_ref())
            .map_err(|problem| at.push("voyado_url", self.voyado_url.span(), problem))
            .unwrap_or_else(|()| placeholder_url());
        let digests = crm_keys.iter().map(|k| CrmKeyDigest::of(k.expose()));
        (digests.collect(), voyado_url)
    }

    /// The country, whose personal ids the market takes, and the currency, time zone and locale
    /// (the country's unless given).
    fn country(&self, at: &mut At<'_, '_>) -> Country {
        let region = keys::country_code(self.default_country.get_ref()).unwrap_or_else(|problem| {
            at.push("default_country", self.default_country.span(), problem);
            String::new()
        });
        let defaults = country_defaults(&region);
        let currency = match by_country(
            at,
            "currency",
            self.currency.as_ref(),
            &region,
            defaults.map(|d| d.0),
        ) {
            Some(code) if code.len() == 3 && code.chars().all(|c| c.is_ascii_uppercase()) => {
                code.to_owned()
            }
            Some(_) => {
                at.push(
                    "currency",
                    span_of(&self.currency),
                    "must be an ISO 4217 code such as SEK",
                );
                String::new()
            }
            None => String::new(),
        };
        let timezone = match by_country(
            at,
            "timezone",
            self.timezone.as_ref(),
            &region,
            defaults.map(|d| d.1),
        ) {
            Some(name) => TimeZone::get(name).unwrap_or_else(|_| {
                at.push(
                    "timezone",
                    span_of(&self.timezone),
                    "is not an IANA time zone",
                );
                TimeZone::UTC
            }),
            None => TimeZone::UTC,
        };
        let locale = self.locale.as_deref().or(defaults.map(|d| d.2));
        Country {
            personal_id_region: self.personal_id_region(&region, at),
            region,
            currency,
            timezone,
            locale: locale.unwrap_or("en-GB").to_owned(),
        }
    }

    /// Voyado validates Swedish and Finnish personal ids only; elsewhere they are refused unless
    /// the market says which of the two its customers carry.
    fn personal_id_region(&self, region: &str, at: &mut At<'_, '_>) -> String {
        let Some(country) = &self.personal_id_country else {
            return region.to_owned();
        };
        let code = country.get_ref().to_ascii_uppercase();
        if code == "SE" || code == "FI" {
            return code;
        }
        at.push("personal_id_country", country.span(), "must be SE or FI");
        String::new()
    }

    /// Each call's time within the request's, and a redeem's within what a cashier waits.
    fn timeouts(&self, at: &mut At<'_, '_>) -> Timeouts {
        let request = millis(&self.request_timeout_ms, 8_000);
        let voyado = millis(&self.voyado_timeout_ms, 3_000);
        if voyado.is_zero() || voyado > request {
            let span = span_of(&self.voyado_timeout_ms);
            at.push(
                "voyado_timeout_ms",
                span,
                "must be above 0 and at most request_timeout_ms",
            );
        }
        let redeem = millis(&self.redeem_timeout_ms, 6_000);
        if redeem.is_zero() || redeem > MAX_REDEEM_WAIT {
            let span = span_of(&self.redeem_timeout_ms);
            at.push(
                "redeem_timeout_ms",
                span,
                "must be above 0 and at most 60000",
            );
        }
        let redeem_window = millis(&self.redeem_window_ms, 4_500);
        if redeem_window > MAX_REDEEM_WAIT {
            let span = span_of(&self.redeem_window_ms);
            at.push("redeem_window_ms", span, "must be at most 60000");
        }
        Timeouts {
            request,
            voyado,
            redeem,
            redeem_window,
        }
    }

    fn contact_types(&self, at: &mut At<'_, '_>) -> ContactTypes {
        let own = self.contact_type.clone().unwrap_or_else(|| "Member".into());
        let search = match &self.search_contact_types {
            Some(types) if types.get_ref().is_empty() => {
                at.push(
                    "search_contact_types",
                    types.span(),
                    "must name at least one type",
                );
                Vec::new()
            }
            Some(types) => types.get_ref().clone(),
            None => vec![own.clone()],
        };
        let promote = self
            .promote_contact_types
            .clone()
            .unwrap_or_else(|| vec!["Contact".into()]);
        let mut order: Vec<String> = Vec::new();
        for kind in search.iter().chain([&own]).chain(&promote) {
            if !order.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
                order.push(kind.clone());
            }
        }
        ContactTypes {
            own,
            search,
            promote,
            order,
        }
    }

    /// The market's Sitoo REST API access, for order events: all four keys, or none.
    fn sitoo(&self, at: &mut At<'_, '_>) -> Option<SitooSettings> {
        let (Some(url), Some(account_id), Some(user), Some(password)) = (
            &self.sitoo_api_url,
            &self.sitoo_account_id,
            &self.sitoo_api_user,
            &self.sitoo_api_password,
        ) else {
            let given = [
                ("sitoo_api_url", span_of(&self.sitoo_api_url)),
                ("sitoo_account_id", span_of(&self.sitoo_account_id)),
                ("sitoo_api_user", span_of(&self.sitoo_api_user)),
                ("sitoo_api_password", span_of(&self.sitoo_api_password)),
            ];
            if let Some((key, span)) = given.into_iter().find(|(_, span)| span.is_some()) {
                let problem = "sitoo_api_url, sitoo_account_id, sitoo_api_user and \
                               sitoo_api_password go together";
                at.push(key, span, problem);
            }
            return None;
        };
        let url = base_url(url.get_ref())
            .map_err(|problem| at.push("sitoo_api_url", url.span(), problem))
            .ok();
        let timeout = millis(&self.sitoo_timeout_ms, 5_000);
        // Sitoo waits 15 s for an events answer.
        if timeout.is_zero() || timeout > Duration::from_secs(14) {
            let span = span_of(&self.sitoo_timeout_ms);
            at.push(
                "sitoo_timeout_ms",
                span,
                "must be above 0 and at most 14000",
            );
        }
        Some(SitooSettings {
            url: url?,
            account_id: *account_id.get_ref(),
            user: user.get_ref().clone(),
            password: password.get_ref().clone(),
            timeout,
        })
    }

    /// The market's error-table overrides; each must still answer with an error status.
    fn error_overrides(&self, at: &mut At<'_, '_>) -> BTreeMap<Reason, ErrorRow> {
        let mut overrides = BTreeMap::new();
        for (reason, row) in &self.errors {
            let status = *row.status.get_ref();
            if let Some(problem) = ErrorRow::status_problem(status) {
                at.push(
                    &format!("errors.{reason}.status"),
                    row.status.span(),
                    problem,
                );
            }
            let row = ErrorRow {
                status,
                error_code: row.error_code.clone(),
            };
            overrides.insert(*reason, row);
        }
        overrides
    }

    fn places(&self, at: &At<'_, '_>) -> MarketPlaces {
        let each = |key: &str, list: &[Spanned<String>]| {
            list.iter().map(|item| at.place(key, item.span())).collect()
        };
        MarketPlaces {
            mapping: at.place("mapping", span_of(&self.mapping)),
            contact_key: at.place("contact_key", span_of(&self.contact_key)),
            required_fields: each("required_fields", &self.required_fields),
            clearable_fields: each("clearable_fields", &self.clearable_fields),
            read_only_fields: each("read_only_fields", &self.read_only_fields),
        }
    }
}
