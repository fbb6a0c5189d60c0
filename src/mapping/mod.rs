//! The declarative mapping engine: SPI ↔ Voyado field rules loaded from `mappings/*.toml`.
//!
//! A profile file (with the profiles it `extends`, see `profile`) is compiled once into a [`Plan`];
//! loading reports every problem at its file, line and column (`diagnostic`) and runs the
//! profile's `[[example]]`s (`examples`). Operations gather Voyado answers into one source
//! document and the plan turns it into the SPI answer (and an SPI body into Voyado changes). The module
//! is pure: no I/O (profiles are read by the caller's resolver), no HTTP, no field names in code —
//! every name lives in the profile (but for the SPI's fixed shape of `additional_options` items, see
//! `options`).

mod codec;
mod contact;
mod diagnostic;
mod examples;
mod explain;
mod options;
pub(crate) mod path;
mod profile;
mod rules;

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::DeTable;

use crate::keys::Normalizer;
use codec::{ConsentFields, MoneyFields, ReadContext, Table};
use diagnostic::{At, FileId, Files, Problems, did_you_mean};
use options::OptionRule;
use path::{Path, Scope};
use profile::{InFile, ProfileSpec};
use rules::{Compiler, Group, Omitted, Rule, RuleSpec, Witness, check_overlap, target};

pub(crate) use codec::decimal;
pub use contact::{FieldError, WritePolicy};
pub use diagnostic::{Diagnostic, MappingError};
pub use explain::{Outcome, Provenance};
// The config places its problems the way a profile's are placed, with the same hints.
pub(crate) use diagnostic::{line_and_column, serde_message};

/// Reads a mapping profile by name: its text and the name to report it by, as
/// `MappingSource::read` does. A profile's `extends` is read through it.
pub type ReadProfile<'r> = dyn Fn(&str) -> Result<(String, String), String> + 'r;

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
    approved: Spanned<String>,
    member_number: Spanned<String>,
    contact_type: Spanned<String>,
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
    key: Spanned<String>,
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
    pos_channel: Spanned<String>,
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
    sort: Spanned<String>,
    order: PageOrder,
    items: String,
    total_count: String,
    /// The query parameters Voyado pages by.
    offset_param: String,
    count_param: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldSpec {
    spi: Spanned<String>,
    voyado: Spanned<String>,
    codec: Option<Spanned<String>>,
    check: Option<Normalizer>,
    #[serde(default = "yes")]
    write: bool,
}

fn yes() -> bool {
    true
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
    /// `file:line` of its `spi`, for the workbench's provenance of a write.
    at: std::sync::Arc<str>,
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
    contact_type: Path,
    write_flatten: String,
    create_type_field: String,
    status_query_field: String,
    default_key: String,
    redeem: RedeemNames,
    pos_channel: Path,
    transactions: TransactionsSpec,
    transaction_sort: Path,
    /// The names of the `[[example]]`s that passed when it compiled (the workbench lists them).
    examples: Vec<String>,
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
/// The person lookup's other root: the normalised key the POS looked up, under its key type.
const LOOKUP_KEY: &str = "key";

/// Each rule group's source document, as the operations build it.
const CARD: Group = Group {
    name: "card",
    roots: &[CONTACT, PROMOTIONS, BONUS_CHECKS, POINTS, STATUS, MARKET],
};
const TRANSACTIONS: Group = Group {
    name: "transaction",
    roots: &[TRANSACTION],
};
const CONSENT_DEFINITIONS: Group = Group {
    name: "consent_definition",
    roots: &[DEFINITION, DEFAULT],
};
const PERSON_LOOKUP: Group = Group {
    name: "person",
    roots: &[PERSON, LOOKUP_KEY],
};
const RECEIPTS: Group = Group {
    name: "receipt",
    roots: &[ORDER, RECEIPT, CONTACT],
};

impl Plan {
    /// Compiles a profile that extends no other (`extends` is refused: there is nothing to
    /// read a base from).
    pub fn compile(text: &str, file: &str) -> Result<Plan, MappingError> {
        Plan::compile_with(text, file, &|name| {
            Err(format!("no mapping profiles to read '{name}' from here"))
        })
    }

    /// Compiles the profile `text` (reported as `file`), reading the profiles it extends through
    /// `resolve` (a profile's name to its text and the name to report it by), and runs its
    /// examples. Every problem of the profile and its bases is reported, each at its file, line
    /// and column.
    pub fn compile_with(
        text: &str,
        file: &str,
        resolve: &ReadProfile<'_>,
    ) -> Result<Plan, MappingError> {
        match Plan::compile_draft(text, file, resolve) {
            (Some(plan), found) if found.diagnostics.is_empty() => Ok(plan),
            (_, found) => Err(found),
        }
    }

    /// [`Plan::compile_with`] for the workbench's draft: every problem, and the plan too when
    /// the only problems are failing `[[example]]`s, so the card under a draft can be shown
    /// beside the examples it breaks. Never served: the loader takes only a plan with no problem.
    pub fn compile_draft(
        text: &str,
        file: &str,
        resolve: &ReadProfile<'_>,
    ) -> (Option<Plan>, MappingError) {
        let mut found = Vec::new();
        let top = profile::parse(text, FileId(0), &mut found);
        let bases = profile::read_bases(&top, file, resolve, &mut found);
        let mut list = vec![(file, text)];
        list.extend(bases.iter().map(|b| (b.name.as_str(), b.text.as_str())));
        let files = Files::new(list);
        let mut problems = Problems::new(&files, found);
        if !problems.is_empty() {
            return (None, problems.into_error());
        }
        // Parsed again: reading the chain only looked at what each base extends (and found
        // their syntax errors, of which there are none by now).
        let base_docs: Vec<_> = bases
            .iter()
            .map(|b| DeTable::parse_recoverable(&b.text).0)
            .collect();
        let docs: Vec<_> = std::iter::once(&top).chain(&base_docs).collect();
        let resolved = profile::resolve(&docs, &mut problems);
        let mut spec = ProfileSpec::read(&resolved, &mut problems);
        let examples = std::mem::take(&mut spec.example);
        match build(spec, &mut problems) {
            Some(mut plan) if problems.is_empty() => {
                plan.examples = examples::run(&plan, &examples, &mut problems);
                (Some(plan), problems.into_error())
            }
            _ => (None, problems.into_error()),
        }
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
        self.map_seen(rules, source, market, &mut ())
    }

    /// [`Plan::map`], telling `witness` what each top-level rule came to.
    fn map_seen<W: Witness>(
        &self,
        rules: &[Rule],
        source: &Value,
        market: &MarketView<'_>,
        witness: &mut W,
    ) -> (Value, usize) {
        let ctx = self.read_context(market);
        let omitted = Omitted::default();
        let scope = Scope {
            root: source,
            item: source,
            locale: market.locale,
        };
        let mut out = Map::new();
        // A top-level required rule that fails leaves the field out; the document still answers.
        let _ = rules::apply_seen(rules, scope, &ctx, &omitted, &mut out, witness);
        (Value::Object(out), omitted.count())
    }

    /// The SPI customer from `{contact, promotions, bonus_checks, points, status, market}`, with
    /// the number of items left out (e.g. a bonus check with no amount in the market currency, or
    /// an option value the profile's table does not know).
    pub fn customer(&self, source: &Value, market: &MarketView<'_>) -> (Value, usize) {
        self.customer_seen(source, market, &mut ())
    }

    /// [`Plan::customer`], telling `witness` what each card rule came to.
    fn customer_seen<W: Witness>(
        &self,
        source: &Value,
        market: &MarketView<'_>,
        witness: &mut W,
    ) -> (Value, usize) {
        let (mut customer, omitted) = self.map_seen(&self.card, source, market, witness);
        let contact = source.get(CONTACT).unwrap_or(&Value::Null);
        let (additional, left_out) = options::read(&self.options, contact);
        if let (Some(additional), Value::Object(map)) = (additional, &mut customer) {
            map.insert(options::FIELD.to_owned(), additional);
        }
        (customer, omitted + left_out)
    }

    /// The `[[example]]`s the profile passed, by name.
    pub fn examples(&self) -> &[String] {
        &self.examples
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

    /// The contact's type as Voyado names it (`Member`, `Contact`, …).
    pub fn contact_type(&self, contact: &Value) -> Option<String> {
        match self.read_path(&self.contact_type, contact)? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
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

    /// The query parameters of a transactions page: offset and count.
    pub fn transactions_params(&self) -> (&str, &str) {
        (
            &self.transactions.offset_param,
            &self.transactions.count_param,
        )
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

/// A path the profile names in a section, parsed (or its problem noted).
fn section_path(text: &Spanned<String>, file: FileId, problems: &mut Problems<'_>) -> Path {
    Path::parse(text.get_ref()).unwrap_or_else(|e| {
        problems.push(At::of(file, text), e);
        Path::default()
    })
}

/// Compiles the resolved profile's rules and sections; `None` when a part could not be read.
fn build(spec: ProfileSpec<'_>, problems: &mut Problems<'_>) -> Option<Plan> {
    if let Some(version) = &spec.version
        && *version.spec.get_ref() != 1
    {
        problems.push(
            At::of(version.file, &version.spec),
            format!("version {} is not supported (1 is)", version.spec.get_ref()),
        );
    }
    let tables = spec.tables;
    let approved = spec
        .voyado
        .as_ref()
        .map(|v| section_path(&v.spec.approved, v.file, problems));
    let member_number = spec
        .voyado
        .as_ref()
        .map(|v| section_path(&v.spec.member_number, v.file, problems));
    let contact_type = spec
        .voyado
        .as_ref()
        .map(|v| section_path(&v.spec.contact_type, v.file, problems));
    let pos_channel = spec
        .redeem
        .as_ref()
        .map(|r| section_path(&r.spec.pos_channel, r.file, problems));
    let transaction_sort = spec
        .transactions
        .as_ref()
        .map(|t| section_path(&t.spec.sort, t.file, problems));

    let fields = compile_fields(&spec.field, &tables, problems);
    let write_flatten = spec
        .voyado
        .as_ref()
        .map_or("", |v| v.spec.write_flatten.as_str());
    let options = options::compile(&spec.option, &tables, &fields, write_flatten, problems);
    if let Some(add) = &spec.add {
        let key = add.spec.key.get_ref();
        let at = At::of(add.file, &add.spec.key);
        if !spec.field_names.contains(key) {
            let hint = did_you_mean(key, spec.field_names.iter().map(String::as_str));
            problems.push(at, format!("no [[field]] has spi = \"{key}\"{hint}"));
        }
        if !spec.search.contains_key(key) {
            problems.push(at, format!("no [search.{key}] to look it up"));
        }
    }

    // The contact fields are read back into the card too, from the `contact` root, and share
    // its targets with the card rules.
    let mut card_specs: Vec<InFile<RuleSpec>> = spec
        .field
        .iter()
        .filter(|f| fields.iter().any(|(c, _)| c.spi == *f.spec.spi.get_ref()))
        .map(|f| InFile {
            file: f.file,
            spec: RuleSpec::copy(
                f.spec.spi.clone(),
                Spanned::new(
                    f.spec.voyado.span(),
                    format!("{CONTACT}.{}", f.spec.voyado.get_ref()),
                ),
                f.spec.codec.clone(),
            ),
        })
        .collect();
    card_specs.extend(spec.card);
    if !options.is_empty() {
        let under_options = |to: &str| {
            to.strip_prefix(options::FIELD)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
        };
        for rule in card_specs
            .iter()
            .filter(|r| under_options(r.spec.to.get_ref()))
        {
            problems.push(
                At::of(rule.file, &rule.spec.to),
                format!(
                    "'{}' is already written by the [[option]] rules",
                    rule.spec.to.get_ref()
                ),
            );
        }
    }
    let mut compiler = Compiler::new(&tables, problems, CARD);
    let card = compiler.group(&card_specs);
    // Only the card's roots decide which Voyado calls a card makes.
    let card_roots = compiler.roots;
    let card_needs = CardNeeds {
        promotions: card_roots.iter().any(|r| r == PROMOTIONS),
        bonus_checks: card_roots.iter().any(|r| r == BONUS_CHECKS),
        points: card_roots.iter().any(|r| r == POINTS),
        status: card_roots.iter().any(|r| r == STATUS),
    };
    let transaction = Compiler::new(&tables, problems, TRANSACTIONS).group(&spec.transaction);
    let consent_definition =
        Compiler::new(&tables, problems, CONSENT_DEFINITIONS).group(&spec.consent_definition);
    let person = Compiler::new(&tables, problems, PERSON_LOOKUP).group(&spec.person);
    let receipt = Compiler::new(&tables, problems, RECEIPTS).group(&spec.receipt);

    let (
        Some(voyado),
        Some(money),
        Some(consent),
        Some(status),
        Some(add),
        Some(redeem),
        Some(transactions),
    ) = (
        spec.voyado,
        spec.money,
        spec.consent,
        spec.status,
        spec.add,
        spec.redeem,
        spec.transactions,
    )
    else {
        return None;
    };
    Some(Plan {
        tables,
        money: money.spec,
        consent: consent.spec,
        fields: fields.into_iter().map(|(f, _)| f).collect(),
        options,
        card,
        card_needs,
        transaction,
        consent_definition,
        person,
        receipt,
        search: spec.search,
        lookup: spec.lookup,
        approved: approved.unwrap_or_default(),
        member_number: member_number.unwrap_or_default(),
        contact_type: contact_type.unwrap_or_default(),
        write_flatten: voyado.spec.write_flatten,
        create_type_field: voyado.spec.create_type_field,
        status_query_field: status.spec.query_field,
        default_key: add.spec.key.into_inner(),
        redeem: redeem.spec,
        pos_channel: pos_channel.unwrap_or_default(),
        transactions: transactions.spec,
        transaction_sort: transaction_sort.unwrap_or_default(),
        examples: Vec::new(),
    })
}

/// The `[[field]]` rules, each with the place of its `spi`. No two may write one Voyado value
/// (their SPI targets are checked with the card's, which they are part of).
fn compile_fields(
    specs: &[InFile<FieldSpec>],
    tables: &BTreeMap<String, Table>,
    problems: &mut Problems<'_>,
) -> Vec<(FieldRule, At)> {
    let mut out = Vec::with_capacity(specs.len());
    let mut written: Vec<(Vec<String>, At)> = Vec::with_capacity(specs.len());
    for InFile { file, spec: f } in specs {
        let at_spi = At::of(*file, &f.spi);
        let at_voyado = At::of(*file, &f.voyado);
        let Some(spi_keys) = target(f.spi.get_ref()) else {
            problems.push(at_spi, "'spi' must be dotted keys");
            continue;
        };
        let Some(voyado_keys) = target(f.voyado.get_ref()) else {
            problems.push(at_voyado, "'voyado' must be dotted keys");
            continue;
        };
        let codec = match &f.codec {
            None => codec::Codec::Text,
            Some(name) => match codec::Codec::parse(name.get_ref(), tables) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(At::of(*file, name), e);
                    continue;
                }
            },
        };
        check_overlap(problems, "Voyado ", &voyado_keys, at_voyado, &written);
        written.push((voyado_keys.clone(), at_voyado));
        out.push((
            FieldRule {
                spi: f.spi.get_ref().clone(),
                spi_keys,
                voyado_keys,
                codec,
                check: f.check,
                write: f.write,
                at: problems.line_of(at_spi).into(),
            },
            at_spi,
        ));
    }
    out
}

#[cfg(test)]
mod tests;
