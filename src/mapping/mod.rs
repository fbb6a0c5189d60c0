//! The declarative mapping engine: SPI ↔ Voyado field rules loaded from `mappings/*.toml`.
//!
//! A profile file is compiled once into a [`Plan`]; operations gather Voyado answers into one source
//! document and the plan turns it into the SPI answer (and an SPI body into Voyado changes). The module
//! is pure: no I/O once loaded, no HTTP, no field names in code — every name lives in the profile
//! (but for the SPI's fixed shape of `additional_options` items, see `options`).

mod codec;
mod contact;
mod options;
pub(crate) mod path;
mod rules;

use std::collections::BTreeMap;
use std::path::Path as FsPath;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::keys::Normalizer;
use codec::{ConsentFields, MoneyFields, ReadContext, Table};
use options::{OptionRule, OptionSpec};
use path::{Path, Scope};
use rules::{Compiler, Omitted, Rule, RuleSpec};

pub use contact::{FieldError, WritePolicy};

/// The market facts a mapping needs: currency, time zone, locale, region and consent id map, and
/// the request's clock reading (the engine never reads a clock itself).
pub struct MarketView<'a> {
    pub currency: &'a str,
    pub timezone: &'a TimeZone,
    pub locale: &'a str,
    pub region: &'a str,
    /// The country personal ids follow (Voyado knows SE and FI ids only).
    pub personal_id_region: &'a str,
    /// `(spi id, voyado id)` pairs; empty means identity.
    pub consent_map: &'a [(String, String)],
    /// When the request is being answered: expiry checks and two-digit birth years use it.
    pub now: jiff::Timestamp,
}

impl MarketView<'_> {
    /// Checks and normalises a value the POS sent, in this market's country.
    pub fn normalize(&self, normalizer: Normalizer, raw: &str) -> Result<String, &'static str> {
        let region = match normalizer {
            Normalizer::PersonalId => self.personal_id_region,
            _ => self.region,
        };
        let today = self.now.to_zoned(self.timezone.clone()).date();
        normalizer.apply(raw, region, today)
    }

    pub(crate) fn consent_to_spi(&self, voyado: &str) -> Option<String> {
        if self.consent_map.is_empty() {
            return Some(voyado.to_owned());
        }
        self.consent_map
            .iter()
            .find(|(_, v)| v == voyado)
            .map(|(s, _)| s.clone())
    }

    pub(crate) fn consent_to_voyado(&self, spi: &str) -> Option<String> {
        if self.consent_map.is_empty() {
            return Some(spi.to_owned());
        }
        self.consent_map
            .iter()
            .find(|(s, _)| s == spi)
            .map(|(_, v)| v.clone())
    }
}

/// How an SPI key type is looked up in Voyado: the query parameter and the normaliser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub param: String,
    pub normalize: Normalizer,
    /// The key the market's `member_number_lookup` applies to (it may use Voyado's bykey route).
    #[serde(default)]
    pub member_number: bool,
}

/// Where Voyado keeps contact facts the operations decide on, and how a write body is shaped.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoyadoSpec {
    approved: String,
    member_number: String,
    write_flatten: String,
    create_type_field: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusSpec {
    query_field: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddSpec {
    key: String,
}

/// Names the redeem body uses (SPI) and the item fields redeem decides on (Voyado).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedeemNames {
    pub bonus_checks: String,
    pub promotions: String,
    pub items: String,
    pub item_type: String,
    pub item_id: String,
    pub bonus_check_type: String,
    pub promotion_type: String,
    pub voyado_id: String,
    pub voyado_redeemed: String,
    pub voyado_expires: String,
    pub voyado_items: String,
    /// The channel named when redeeming a promotion.
    pub channel: String,
    pos_channel: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageOrder {
    OldestFirst,
    NewestFirst,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionsSpec {
    sort: String,
    order: PageOrder,
    items: String,
    total_count: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    spi: String,
    voyado: String,
    codec: Option<String>,
    check: Option<Normalizer>,
    #[serde(default = "yes")]
    write: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileSpec {
    version: u32,
    #[serde(default)]
    tables: BTreeMap<String, BTreeMap<String, String>>,
    voyado: VoyadoSpec,
    money: MoneyFields,
    consent: ConsentFields,
    status: StatusSpec,
    add: AddSpec,
    redeem: RedeemNames,
    transactions: TransactionsSpec,
    search: BTreeMap<String, KeySpec>,
    #[serde(default)]
    lookup: BTreeMap<String, KeySpec>,
    field: Vec<FieldSpec>,
    #[serde(default)]
    option: Vec<OptionSpec>,
    #[serde(default)]
    card: Vec<RuleSpec>,
    #[serde(default)]
    transaction: Vec<RuleSpec>,
    #[serde(default)]
    consent_definition: Vec<RuleSpec>,
    #[serde(default)]
    person: Vec<RuleSpec>,
    #[serde(default)]
    receipt: Vec<RuleSpec>,
}

/// One contact field, both directions.
#[derive(Debug, Clone)]
pub(crate) struct FieldRule {
    spi: String,
    spi_keys: Vec<String>,
    voyado_keys: Vec<String>,
    codec: codec::Codec,
    check: Option<Normalizer>,
    write: bool,
}

/// Which Voyado calls the customer card needs, derived from the rules that read each root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CardNeeds {
    pub promotions: bool,
    pub bonus_checks: bool,
    pub points: bool,
    pub status: bool,
}

/// The compiled profile. Requests only read it.
#[derive(Debug)]
pub struct Plan {
    tables: BTreeMap<String, Table>,
    money: MoneyFields,
    consent: ConsentFields,
    fields: Vec<FieldRule>,
    options: Vec<OptionRule>,
    card: Vec<Rule>,
    card_needs: CardNeeds,
    transaction: Vec<Rule>,
    consent_definition: Vec<Rule>,
    person: Vec<Rule>,
    receipt: Vec<Rule>,
    search: BTreeMap<String, KeySpec>,
    lookup: BTreeMap<String, KeySpec>,
    approved: Path,
    member_number: Path,
    write_flatten: String,
    create_type_field: String,
    status_query_field: String,
    default_key: String,
    redeem: RedeemNames,
    pos_channel: Path,
    transactions: TransactionsSpec,
    transaction_sort: Path,
}

/// Roots of the card's source document.
pub const CONTACT: &str = "contact";
pub const PROMOTIONS: &str = "promotions";
pub const BONUS_CHECKS: &str = "bonus_checks";
pub const POINTS: &str = "points";
pub const STATUS: &str = "status";
pub const MARKET: &str = "market";
/// Roots of the other documents.
pub const TRANSACTION: &str = "transaction";
pub const DEFINITION: &str = "definition";
pub const DEFAULT: &str = "default";
pub const PERSON: &str = "person";
pub const ORDER: &str = "order";
pub const RECEIPT: &str = "receipt";

/// Every problem found while loading a profile, with the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}", errors.join(&format!("\n{file}: ")))]
pub struct MappingError {
    pub file: String,
    pub errors: Vec<String>,
}

impl Plan {
    pub fn load(file: &FsPath) -> Result<Plan, MappingError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|e| MappingError {
            file: name.clone(),
            errors: vec![format!("cannot read: {e}")],
        })?;
        Plan::compile(&text, &name)
    }

    pub fn compile(text: &str, file: &str) -> Result<Plan, MappingError> {
        let fail = |errors| MappingError {
            file: file.to_owned(),
            errors,
        };
        let spec: ProfileSpec = toml::from_str(text).map_err(|e| fail(vec![e.to_string()]))?;
        let mut errors = Vec::new();
        if spec.version != 1 {
            errors.push(format!("version {} is not supported (1 is)", spec.version));
        }
        let tables: BTreeMap<String, Table> = spec
            .tables
            .iter()
            .map(|(name, pairs)| {
                let pairs = pairs.iter().map(|(s, v)| (s.clone(), v.clone())).collect();
                (name.clone(), Table { pairs })
            })
            .collect();
        let mut path = |text: &str, at: &str| match Path::parse(text) {
            Ok(p) => p,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                Path::default()
            }
        };
        let approved = path(&spec.voyado.approved, "voyado.approved");
        let member_number = path(&spec.voyado.member_number, "voyado.member_number");
        let pos_channel = path(&spec.redeem.pos_channel, "redeem.pos_channel");
        let transaction_sort = path(&spec.transactions.sort, "transactions.sort");

        let fields = compile_fields(&spec.field, &tables, &mut errors);
        let options = options::compile(
            &spec.option,
            &tables,
            &fields,
            &spec.voyado.write_flatten,
            &mut errors,
        );
        if !fields.iter().any(|f| f.spi == spec.add.key) {
            errors.push(format!(
                "add.key: no [[field]] has spi = \"{}\"",
                spec.add.key
            ));
        }
        if !spec.search.contains_key(&spec.add.key) {
            errors.push(format!(
                "add.key: no [search.{}] to look it up",
                spec.add.key
            ));
        }

        // The contact fields are read back into the card too, from the `contact` root.
        let field_specs: Vec<RuleSpec> = spec
            .field
            .iter()
            .filter(|f| fields.iter().any(|c| c.spi == f.spi))
            .map(|f| RuleSpec {
                to: f.spi.clone(),
                from: Some(rules::OneOrMany::One(format!("{CONTACT}.{}", f.voyado))),
                codec: f.codec.clone(),
                ..RuleSpec::default()
            })
            .collect();
        let mut compiler = Compiler {
            tables: &tables,
            errors: &mut errors,
            roots: Vec::new(),
        };
        let mut card = compiler.rules(&field_specs, "field", false);
        card.extend(compiler.rules(&spec.card, "card", false));
        // Only the card's roots decide which Voyado calls a card makes.
        let card_roots = std::mem::take(&mut compiler.roots);
        let transaction = compiler.rules(&spec.transaction, "transaction", false);
        let consent_definition =
            compiler.rules(&spec.consent_definition, "consent_definition", false);
        let person = compiler.rules(&spec.person, "person", false);
        let receipt = compiler.rules(&spec.receipt, "receipt", false);
        let card_needs = CardNeeds {
            promotions: card_roots.iter().any(|r| r == PROMOTIONS),
            bonus_checks: card_roots.iter().any(|r| r == BONUS_CHECKS),
            points: card_roots.iter().any(|r| r == POINTS),
            status: card_roots.iter().any(|r| r == STATUS),
        };
        let spi_targets: Vec<&str> = spec.field.iter().map(|f| f.spi.as_str()).collect();
        for rule in &spec.card {
            if spi_targets.contains(&rule.to.as_str()) {
                errors.push(format!(
                    "card (to = \"{}\"): already written by a [[field]] rule",
                    rule.to
                ));
            }
        }
        let under_options = |to: &str| {
            to.strip_prefix(options::FIELD)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        };
        if !options.is_empty() {
            for to in spi_targets
                .into_iter()
                .chain(spec.card.iter().map(|r| r.to.as_str()))
                .filter(|to| under_options(to))
            {
                errors.push(format!("\"{to}\": already written by the [[option]] rules"));
            }
        }
        if !errors.is_empty() {
            return Err(fail(errors));
        }
        Ok(Plan {
            tables,
            money: spec.money,
            consent: spec.consent,
            fields,
            options,
            card,
            card_needs,
            transaction,
            consent_definition,
            person,
            receipt,
            search: spec.search,
            lookup: spec.lookup,
            approved,
            member_number,
            write_flatten: spec.voyado.write_flatten,
            create_type_field: spec.voyado.create_type_field,
            status_query_field: spec.status.query_field,
            default_key: spec.add.key,
            redeem: spec.redeem,
            pos_channel,
            transactions: spec.transactions,
            transaction_sort,
        })
    }

    fn read_context<'a>(&'a self, market: &'a MarketView<'a>) -> ReadContext<'a> {
        ReadContext {
            tables: &self.tables,
            money: &self.money,
            consent: &self.consent,
            market,
            now: market.now,
        }
    }

    fn map(&self, rules: &[Rule], source: &Value, market: &MarketView<'_>) -> (Value, usize) {
        let ctx = self.read_context(market);
        let omitted = Omitted::default();
        let scope = Scope {
            root: source,
            item: source,
            locale: market.locale,
        };
        let mut out = Map::new();
        // A top-level required rule that fails leaves the field out; the document still answers.
        let _ = rules::apply(rules, scope, &ctx, &omitted, &mut out);
        (Value::Object(out), omitted.count())
    }

    /// The SPI customer from `{contact, promotions, bonus_checks, points, status, market}`, with
    /// the number of items left out (e.g. a bonus check with no amount in the market currency, or
    /// an option value the profile's table does not know).
    pub fn customer(&self, source: &Value, market: &MarketView<'_>) -> (Value, usize) {
        let (mut customer, omitted) = self.map(&self.card, source, market);
        let contact = source.get(CONTACT).unwrap_or(&Value::Null);
        let (additional, left_out) = options::read(&self.options, contact);
        if let (Some(additional), Value::Object(map)) = (additional, &mut customer) {
            map.insert(options::FIELD.to_owned(), additional);
        }
        (customer, omitted + left_out)
    }

    pub fn card_needs(&self) -> CardNeeds {
        self.card_needs
    }

    pub fn transaction(&self, source: &Value, market: &MarketView<'_>) -> Value {
        self.map(&self.transaction, source, market).0
    }

    pub fn consent_definition(&self, source: &Value, market: &MarketView<'_>) -> Value {
        self.map(&self.consent_definition, source, market).0
    }

    /// The Voyado receipt from `{order, receipt, contact}`: the Sitoo order as read, the facts the
    /// proxy derived from it (see `ops::events`), and the resolved contact.
    pub fn receipt(&self, source: &Value, market: &MarketView<'_>) -> Value {
        self.map(&self.receipt, source, market).0
    }

    pub fn person(&self, source: &Value, market: &MarketView<'_>) -> Value {
        self.map(&self.person, source, market).0
    }

    pub fn search_key(&self, key_type: &str) -> Option<&KeySpec> {
        self.search.get(key_type)
    }

    pub fn search_key_types(&self) -> impl Iterator<Item = &str> {
        self.search.keys().map(String::as_str)
    }

    pub fn lookup_key(&self, key_type: &str) -> Option<&KeySpec> {
        self.lookup.get(key_type)
    }

    pub fn default_key(&self) -> &str {
        &self.default_key
    }

    /// The SPI name of a Voyado contact field (`firstName` → `name_first`, an option's attribute
    /// → `additional_options`), to name the field in Voyado's validation errors.
    pub fn spi_field_for(&self, voyado: &str) -> Option<&str> {
        let names =
            |keys: &[String]| keys.join(".") == voyado || keys.last().is_some_and(|k| k == voyado);
        self.fields
            .iter()
            .find(|f| names(&f.voyado_keys))
            .map(|f| f.spi.as_str())
            .or_else(|| {
                self.options
                    .iter()
                    .any(|o| names(&o.voyado_keys))
                    .then_some(options::FIELD)
            })
    }

    /// The contact fields the profile maps: each SPI name and the Voyado keys it reads, from
    /// the contact (`["attributes", "firstName"]`).
    pub fn contact_fields(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.fields
            .iter()
            .map(|f| (f.spi.as_str(), f.voyado_keys.as_slice()))
    }

    /// Whether `name` is an SPI customer field of this profile (config validation uses it);
    /// `additional_options` is one when the profile maps an option.
    pub fn has_field(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.spi == name)
            || (name == options::FIELD && !self.options.is_empty())
    }

    /// A compiled path read from one Voyado object (contact, promotion, transaction).
    fn read_path<'a>(&self, path: &Path, value: &'a Value) -> Option<&'a Value> {
        path.get(Scope {
            root: value,
            item: value,
            locale: "",
        })
    }

    /// A contact is approved unless Voyado says `false`.
    pub fn is_approved(&self, contact: &Value) -> bool {
        self.approval(contact) != Some(false)
    }

    /// What the contact says about its approval, if anything (the field is not documented).
    pub fn approval(&self, contact: &Value) -> Option<bool> {
        self.read_path(&self.approved, contact)?.as_bool()
    }

    pub fn member_number(&self, contact: &Value) -> Option<String> {
        match self.read_path(&self.member_number, contact)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    pub fn status_query_field(&self) -> &str {
        &self.status_query_field
    }

    pub fn create_type_field(&self) -> &str {
        &self.create_type_field
    }

    pub fn redeem(&self) -> &RedeemNames {
        &self.redeem
    }

    /// Whether a Voyado promotion can be redeemed at the POS.
    pub fn has_pos_channel(&self, promotion: &Value) -> bool {
        self.read_path(&self.pos_channel, promotion).is_some()
    }

    /// The entries of a Voyado list: a paged wrapper's items, or a bare array.
    pub fn list_items<'a>(&self, list: &'a Value) -> &'a [Value] {
        list.get(&self.redeem.voyado_items)
            .unwrap_or(list)
            .as_array()
            .map_or(&[], Vec::as_slice)
    }

    /// The id of a Voyado object: a contact, bonus check or promotion.
    pub fn item_id<'a>(&self, item: &'a Value) -> Option<&'a str> {
        item.get(&self.redeem.voyado_id)?.as_str()
    }

    pub fn item_redeemed(&self, item: &Value) -> bool {
        item.get(&self.redeem.voyado_redeemed) == Some(&Value::Bool(true))
    }

    pub fn item_expired(&self, item: &Value, now: jiff::Timestamp) -> bool {
        item.get(&self.redeem.voyado_expires)
            .and_then(codec::timestamp)
            .is_some_and(|expires| expires < now)
    }

    pub fn transactions_order(&self) -> PageOrder {
        self.transactions.order
    }

    pub fn transaction_items<'a>(&self, page: &'a Value) -> &'a [Value] {
        page.get(&self.transactions.items)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    pub fn transaction_total(&self, page: &Value) -> Option<u64> {
        page.get(&self.transactions.total_count)?.as_u64()
    }

    /// The instant a transaction happened, for newest-first ordering.
    pub fn transaction_time(&self, item: &Value) -> i64 {
        self.read_path(&self.transaction_sort, item)
            .and_then(codec::timestamp)
            .map_or(i64::MIN, |t| t.as_second())
    }
}

fn compile_fields(
    specs: &[FieldSpec],
    tables: &BTreeMap<String, Table>,
    errors: &mut Vec<String>,
) -> Vec<FieldRule> {
    let mut out: Vec<FieldRule> = Vec::with_capacity(specs.len());
    for (i, f) in specs.iter().enumerate() {
        let at = format!("field[{i}] (spi = \"{}\")", f.spi);
        let keys = |text: &str| {
            Path::parse(text)
                .ok()
                .and_then(|p| p.keys().map(|k| k.into_iter().map(str::to_owned).collect()))
                .filter(|k: &Vec<String>| !k.is_empty())
        };
        let (Some(spi_keys), Some(voyado_keys)) = (keys(&f.spi), keys(&f.voyado)) else {
            errors.push(format!("{at}: 'spi' and 'voyado' must be dotted keys"));
            continue;
        };
        let codec = match codec::Codec::parse(f.codec.as_deref().unwrap_or("text"), tables) {
            Ok(c) => c,
            Err(e) => {
                errors.push(format!("{at}: {e}"));
                continue;
            }
        };
        if out.iter().any(|o| o.spi == f.spi) {
            errors.push(format!("{at}: a second rule for the same SPI field"));
        }
        if out.iter().any(|o| o.voyado_keys == voyado_keys) {
            errors.push(format!("{at}: a second rule for the same Voyado field"));
        }
        out.push(FieldRule {
            spi: f.spi.clone(),
            spi_keys,
            voyado_keys,
            codec,
            check: f.check,
            write: f.write,
        });
    }
    out
}

#[cfg(test)]
mod tests;
