//! Additional options: the customer's `additional_options` (`[{id, enum_values}]`), each option id
//! the profile maps (`[[option]]`) kept in one Voyado contact attribute through a value table, both
//! ways.
//!
//! A `single` option keeps its one choice as a string, a `multi` option its choices as a list of
//! strings. Option ids without a rule are absent from the card and ignored on write. The SPI names
//! of the list and its items are the SPI's own shape, so they live here rather than in the profile.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::FieldRule;
use super::codec::Table;
use super::contact::{FieldError, WritePolicy};
use super::diagnostic::{At, Problems, did_you_mean};
use super::path::{get_keys, set};
use super::profile::InFile;
use super::rules::target;

/// The SPI customer field, and the names inside one of its items.
pub(crate) const FIELD: &str = "additional_options";
const ID: &str = "id";
const VALUES: &str = "enum_values";

/// `[[option]]`: an SPI option id, the Voyado attribute, single or multi choice, the value table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OptionSpec {
    id: Spanned<String>,
    voyado: Spanned<String>,
    kind: Spanned<String>,
    values: Spanned<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Single,
    Multi,
}

/// One option, compiled: its table is copied in, so a request never looks a name up.
#[derive(Debug, Clone)]
pub(crate) struct OptionRule {
    id: String,
    pub(crate) voyado_keys: Vec<String>,
    kind: Kind,
    values: Table,
}

/// Compiles the `[[option]]` rules. A rule's attribute must not overlap a `[[field]]` rule's or
/// another option's — in the contact, or in the write body once `write_flatten` is lifted — or
/// two rules would write the same Voyado value.
pub(crate) fn compile(
    specs: &[InFile<OptionSpec>],
    tables: &BTreeMap<String, Table>,
    fields: &[(FieldRule, At)],
    write_flatten: &str,
    problems: &mut Problems<'_>,
) -> Vec<OptionRule> {
    let flat = |keys: &[String]| -> Vec<String> {
        match keys.split_first() {
            Some((first, rest)) if first == write_flatten => rest.to_vec(),
            _ => keys.to_vec(),
        }
    };
    let overlap = |a: &[String], b: &[String]| {
        let prefix = |x: &[String], y: &[String]| x.starts_with(y) || y.starts_with(x);
        prefix(a, b) || prefix(&flat(a), &flat(b))
    };
    let mut out: Vec<(OptionRule, At)> = Vec::with_capacity(specs.len());
    for InFile { file, spec } in specs {
        let at = |s: &Spanned<String>| At::of(*file, s);
        let id = spec.id.get_ref();
        if id.is_empty() {
            problems.push(at(&spec.id), "'id' must not be empty");
        }
        if let Some((_, first)) = out.iter().find(|(o, _)| o.id == *id) {
            let place = problems.place(*first, *file);
            problems.push(
                at(&spec.id),
                format!("a second rule for option '{id}' (the first is at {place})"),
            );
        }
        let kind = match spec.kind.get_ref().as_str() {
            "single" => Some(Kind::Single),
            "multi" => Some(Kind::Multi),
            other => {
                let hint = did_you_mean(other, ["single", "multi"]);
                problems.push(
                    at(&spec.kind),
                    format!("unknown kind '{other}'{hint}; known: single, multi"),
                );
                None
            }
        };
        let values = tables.get(spec.values.get_ref()).cloned();
        if values.is_none() {
            let name = spec.values.get_ref();
            let hint = did_you_mean(name, tables.keys().map(String::as_str));
            problems.push(at(&spec.values), format!("unknown table '{name}'{hint}"));
        }
        let Some(voyado_keys) = target(spec.voyado.get_ref()) else {
            problems.push(at(&spec.voyado), "'voyado' must be dotted keys");
            continue;
        };
        if let Some((field, field_at)) = fields
            .iter()
            .find(|(f, _)| overlap(&f.voyado_keys, &voyado_keys))
        {
            let place = problems.place(*field_at, *file);
            problems.push(
                at(&spec.voyado),
                format!(
                    "'voyado' overlaps the Voyado field of [[field]] spi = \"{}\" ({place})",
                    field.spi
                ),
            );
        }
        if let Some((other, other_at)) = out
            .iter()
            .find(|(o, _)| overlap(&o.voyado_keys, &voyado_keys))
        {
            let place = problems.place(*other_at, *file);
            problems.push(
                at(&spec.voyado),
                format!(
                    "'voyado' overlaps the Voyado field of option '{}' ({place})",
                    other.id
                ),
            );
        }
        if let (Some(kind), Some(values)) = (kind, values) {
            out.push((
                OptionRule {
                    id: id.clone(),
                    voyado_keys,
                    kind,
                    values,
                },
                at(&spec.id),
            ));
        }
    }
    out.into_iter().map(|(rule, _)| rule).collect()
}

impl OptionRule {
    /// The Voyado values an attribute holds: a `multi` list's items (a lone string is one item),
    /// a `single` string itself. `""` is no value.
    fn held<'a>(&self, attribute: Option<&'a Value>) -> Vec<&'a Value> {
        let items = match (self.kind, attribute) {
            (_, None) => return Vec::new(),
            (Kind::Multi, Some(Value::Array(items))) => items.iter().collect(),
            (_, Some(value)) => vec![value],
        };
        items.into_iter().filter(|v| *v != "").collect()
    }

    /// Whether the table knows a Voyado value (values it does not know are never the POS's).
    fn knows(&self, voyado: &Value) -> bool {
        voyado
            .as_str()
            .and_then(|v| self.values.to_spi(v))
            .is_some()
    }

    /// The Voyado values for an item's `enum_values`, each checked against the table.
    fn wanted<'a>(&'a self, values: &[Value], at: &str) -> Result<Vec<&'a str>, FieldError> {
        let field = format!("{at}.{VALUES}");
        if self.kind == Kind::Single && values.len() > 1 {
            return Err(FieldError::new(&field, "takes one value for this option"));
        }
        let mut out = Vec::with_capacity(values.len());
        for (j, value) in values.iter().enumerate() {
            let here = format!("{field}[{j}]");
            // A string: `check_shape` has seen every value.
            let spi = value.as_str().unwrap_or_default();
            let voyado = self
                .values
                .to_voyado(spi.trim())
                .ok_or_else(|| FieldError::new(&here, "is not a value of this option"))?;
            if !out.contains(&voyado) {
                out.push(voyado);
            }
        }
        Ok(out)
    }

    /// The write that brings the attribute to `wanted` (none means clear), if it is a change.
    /// A `multi` list keeps the choices (strings) the table does not know: the POS never saw them.
    fn change(&self, now: Option<&Value>, wanted: &[&str], clearable: bool) -> Option<Value> {
        if wanted.is_empty() && !clearable {
            return None;
        }
        let held = self.held(now);
        let mut target: Vec<Value> = match self.kind {
            Kind::Single => Vec::new(),
            Kind::Multi => held
                .iter()
                .filter(|v| v.is_string() && !self.knows(v))
                .map(|v| (*v).clone())
                .collect(),
        };
        target.extend(wanted.iter().map(|v| Value::String((*v).to_owned())));
        // Compared as sets: Voyado's order of a list is not a change.
        let same =
            target.iter().all(|t| held.contains(&t)) && held.iter().all(|h| target.contains(*h));
        if same {
            return None;
        }
        if target.is_empty() {
            return Some(Value::Null);
        }
        Some(match self.kind {
            Kind::Single => target.remove(0),
            Kind::Multi => Value::Array(target),
        })
    }
}

/// The card's `additional_options`: every mapped option whose attribute holds a value the table
/// knows, or `None` when no option does. Also counts the Voyado values left out (no table entry,
/// or not a string).
pub(crate) fn read(rules: &[OptionRule], contact: &Value) -> (Option<Value>, usize) {
    let mut omitted = 0;
    let mut out = Vec::new();
    for rule in rules {
        let mut values: Vec<Value> = Vec::new();
        for held in rule.held(get_keys(contact, &rule.voyado_keys)) {
            match held.as_str().and_then(|v| rule.values.to_spi(v)) {
                Some(spi) if values.iter().any(|v| v == spi) => {}
                Some(spi) => values.push(Value::String(spi.to_owned())),
                None => omitted += 1,
            }
        }
        if !values.is_empty() {
            let mut item = Map::new();
            item.insert(ID.to_owned(), Value::String(rule.id.clone()));
            item.insert(VALUES.to_owned(), Value::Array(values));
            out.push(Value::Object(item));
        }
    }
    ((!out.is_empty()).then_some(Value::Array(out)), omitted)
}

/// Adds the attribute writes the body's `additional_options` asks for to `changes`, only where
/// they differ from `current`. Without option rules the field is not the profile's and is ignored,
/// like any unknown field. An option left out, or sent without `enum_values`, is unchanged; an
/// empty `enum_values` (or `null`, or `null` for the whole list) clears where the market allows.
pub(crate) fn changes(
    rules: &[OptionRule],
    body: &Map<String, Value>,
    current: &Value,
    policy: &WritePolicy<'_>,
    changes: &mut Map<String, Value>,
) -> Result<(), FieldError> {
    // A read-only field is skipped unseen, like every other read-only field.
    if policy.ignored.iter().any(|f| f == FIELD) {
        return Ok(());
    }
    let Some(options) = body.get(FIELD) else {
        return Ok(());
    };
    let shape = check_shape(options)?;
    if rules.is_empty() {
        return Ok(());
    }
    let wishes: Vec<(&OptionRule, Vec<&str>)> = match shape {
        Shape::Blank => return Ok(()),
        Shape::ClearAll => rules.iter().map(|r| (r, Vec::new())).collect(),
        Shape::Items(items) => wishes(rules, items)?,
    };
    let clearable = policy.clearable.iter().any(|f| f == FIELD);
    for (rule, wanted) in wishes {
        let now = get_keys(current, &rule.voyado_keys);
        if let Some(value) = rule.change(now, &wanted, clearable) {
            set(changes, &rule.voyado_keys, value);
        }
    }
    Ok(())
}

/// What the field asks, once its shape is known good.
enum Shape<'a> {
    /// `""`: nothing.
    Blank,
    /// `null`: every option cleared.
    ClearAll,
    /// Items of the document's shape.
    Items(&'a [Value]),
}

/// The field is a list (or `null`, or blank) and every item `{"id": string, "enum_values"?:
/// [string] | null}` as the SPI document says, even one whose option this profile does not map
/// (its values are not checked against a table).
fn check_shape(options: &Value) -> Result<Shape<'_>, FieldError> {
    let items = match options {
        Value::Null => return Ok(Shape::ClearAll),
        Value::String(s) if s.trim().is_empty() => return Ok(Shape::Blank),
        Value::Array(items) => items,
        _ => return Err(FieldError::new(FIELD, "must be a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let at = format!("{FIELD}[{i}]");
        let item = item
            .as_object()
            .ok_or_else(|| FieldError::new(&at, "must be an object"))?;
        if !item.get(ID).is_some_and(Value::is_string) {
            return Err(FieldError::new(&format!("{at}.{ID}"), "must be a string"));
        }
        match item.get(VALUES) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.trim().is_empty() => {}
            Some(Value::Array(values)) => {
                if let Some(j) = values.iter().position(|v| !v.is_string()) {
                    return Err(FieldError::new(
                        &format!("{at}.{VALUES}[{j}]"),
                        "must be a string",
                    ));
                }
            }
            Some(_) => {
                return Err(FieldError::new(
                    &format!("{at}.{VALUES}"),
                    "must be a list of strings",
                ));
            }
        }
    }
    Ok(Shape::Items(items))
}

/// What each item (already of the document's shape) asks of its option: the wanted Voyado values
/// (empty to clear). Items whose id has no rule, and items without `enum_values`, ask nothing.
fn wishes<'a>(
    rules: &'a [OptionRule],
    items: &[Value],
) -> Result<Vec<(&'a OptionRule, Vec<&'a str>)>, FieldError> {
    let mut wishes: Vec<(&OptionRule, Vec<&str>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{FIELD}[{i}]");
        let id = item[ID].as_str().unwrap_or_default();
        let Some(rule) = rules.iter().find(|r| r.id == id) else {
            continue;
        };
        if wishes.iter().any(|(r, _)| r.id == id) {
            return Err(FieldError::new(
                &format!("{at}.{ID}"),
                "names an option a second time",
            ));
        }
        let wanted = match item.get(VALUES) {
            Some(Value::Null) => Vec::new(),
            Some(Value::Array(values)) => rule.wanted(values, &at)?,
            // Absent or blank (the shape allows nothing else): this option is unchanged.
            _ => continue,
        };
        wishes.push((rule, wanted));
    }
    Ok(wishes)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use jiff::tz::TimeZone;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;
    use serde_json::{Map, Value, json};

    use super::super::path::set;
    use super::super::tests::places;
    use super::super::{FieldError, MappingError, MarketView, Plan, WritePolicy};
    use super::FIELD;

    const DEFAULT: &str = include_str!("../../mappings/default.toml");
    /// Two options: `fav-nhl-team` (single, `attributes.favNhlTeam`) and `sports` (multi,
    /// `attributes.sports`).
    const OPTIONS: &str = include_str!("../../fixtures/mapping/options.toml");

    fn compile(extra: &str) -> Result<Plan, MappingError> {
        Plan::compile(&format!("{DEFAULT}\n{extra}"), "options.toml")
    }

    /// Compiled once: the property test below asks for it in every case.
    fn plan() -> &'static Plan {
        static PLAN: LazyLock<Plan> = LazyLock::new(|| compile(OPTIONS).unwrap());
        &PLAN
    }

    fn default_plan() -> &'static Plan {
        static PLAN: LazyLock<Plan> =
            LazyLock::new(|| Plan::compile(DEFAULT, "default.toml").unwrap());
        &PLAN
    }

    fn with_market<T>(f: impl FnOnce(&MarketView<'_>) -> T) -> T {
        let tz = TimeZone::get("Europe/Stockholm").unwrap();
        f(&MarketView {
            currency: "SEK",
            timezone: &tz,
            locale: "sv-SE",
            region: "SE",
            personal_id_region: "SE",
            consent_map: &[],
            now: jiff::Timestamp::now(),
        })
    }

    fn card(plan: &Plan, attributes: Value) -> (Value, usize) {
        let source = json!({"contact": {"id": "x", "attributes": attributes}});
        with_market(|m| plan.customer(&source, m))
    }

    /// The contact-shaped changes for `body` against a contact with these attributes.
    fn write(
        plan: &Plan,
        options: Value,
        attributes: Value,
        clearable: &[&str],
        ignored: &[&str],
    ) -> Result<Value, FieldError> {
        let clearable: Vec<String> = clearable.iter().map(|f| (*f).to_owned()).collect();
        let ignored: Vec<String> = ignored.iter().map(|f| (*f).to_owned()).collect();
        let policy = WritePolicy {
            clearable: &clearable,
            ignored: &ignored,
            source: "POS",
            now: "2026-11-27T10:00:00Z",
        };
        let body = json!({ FIELD: options });
        let current = json!({"attributes": attributes});
        with_market(|m| plan.contact_changes(&body, &current, &policy, m)).map(Value::Object)
    }

    #[test]
    fn the_card_shows_mapped_options_through_their_tables() {
        let attributes = json!({"firstName": "Anna", "favNhlTeam": "SEA",
                                "sports": ["Tennis", "Curling", "Hockey", "Tennis"]});
        let (customer, omitted) = card(plan(), attributes.clone());
        assert_eq!(
            customer[FIELD],
            json!([{"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]},
                   {"id": "sports", "enum_values": ["tennis", "hockey"]}])
        );
        assert_eq!(customer["name_first"], "Anna");
        assert_eq!(omitted, 1, "Curling has no table entry");
        // The default profile maps no option.
        let (customer, omitted) = card(default_plan(), attributes);
        assert!(customer.get(FIELD).is_none(), "{customer}");
        assert_eq!(omitted, 0);
    }

    #[test]
    fn an_option_with_no_known_value_is_absent() {
        let p = plan();
        for (attributes, omitted) in [
            (json!({}), 0),
            (json!({"favNhlTeam": "", "sports": []}), 0),
            (json!({"favNhlTeam": null, "sports": null}), 0),
            (json!({"favNhlTeam": "XYZ", "sports": ["Curling"]}), 2),
            (json!({"favNhlTeam": ["SEA"], "sports": {"a": "Hockey"}}), 2),
        ] {
            let (customer, left_out) = card(p, attributes.clone());
            assert!(customer.get(FIELD).is_none(), "{attributes}: {customer}");
            assert_eq!(left_out, omitted, "{attributes}");
        }
        // A multi attribute holding one string is a one-value list.
        let (customer, _) = card(p, json!({"sports": "Hockey"}));
        assert_eq!(
            customer[FIELD],
            json!([{"id": "sports", "enum_values": ["hockey"]}])
        );
    }

    #[test]
    fn a_create_writes_every_mapped_option_flat() {
        let p = plan();
        let options = json!([
            {"id": "fav-nhl-team", "enum_values": [" seattle-kraken "]},
            {"id": "sports", "enum_values": ["hockey", "tennis", "hockey"]},
            {"id": "unmapped", "enum_values": ["anything", "7"]},
        ]);
        let body = json!({"email": "new@example.com", FIELD: options});
        let policy = WritePolicy {
            clearable: &[],
            ignored: &[],
            source: "POS",
            now: "2026-11-27T10:00:00Z",
        };
        let changes = with_market(|m| p.contact_changes(&body, &Value::Null, &policy, m)).unwrap();
        assert_eq!(
            Value::Object(p.voyado_body(changes)),
            json!({"email": "new@example.com", "favNhlTeam": "SEA",
                   "sports": ["Hockey", "Tennis"]})
        );
    }

    #[test]
    fn an_update_writes_only_the_options_that_change() {
        let p = plan();
        let current = json!({"favNhlTeam": "SEA", "sports": ["Tennis", "Hockey"]});
        // The same values, in another order: nothing to write.
        let same = json!([{"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]},
                          {"id": "sports", "enum_values": ["hockey", "tennis"]}]);
        assert_eq!(write(p, same, current.clone(), &[], &[]), Ok(json!({})));
        let one = json!([{"id": "fav-nhl-team", "enum_values": ["vancouver-canucks"]},
                         {"id": "sports", "enum_values": ["tennis", "hockey"]}]);
        assert_eq!(
            write(p, one, current.clone(), &[], &[]),
            Ok(json!({"attributes": {"favNhlTeam": "VAN"}}))
        );
        // A value the table does not know stays in a multi list; the POS never saw it.
        let kept = json!({"sports": ["Curling", "Hockey"]});
        let tennis = json!([{"id": "sports", "enum_values": ["tennis"]}]);
        assert_eq!(
            write(p, tennis, kept, &[], &[]),
            Ok(json!({"attributes": {"sports": ["Curling", "Tennis"]}}))
        );
        // Only choices are kept: what is not a string goes.
        let junk = json!({"sports": [3, "Curling", {"a": "Hockey"}]});
        let tennis = json!([{"id": "sports", "enum_values": ["tennis"]}]);
        assert_eq!(
            write(p, tennis, junk, &[], &[]),
            Ok(json!({"attributes": {"sports": ["Curling", "Tennis"]}}))
        );
        // Left out, without enum_values, "" or read-only for edits: unchanged.
        for options in [
            json!([]),
            json!(""),
            json!([{"id": "sports"}, {"id": "fav-nhl-team", "enum_values": ""}]),
        ] {
            assert_eq!(
                write(p, options.clone(), current.clone(), &[FIELD], &[]),
                Ok(json!({})),
                "{options}"
            );
        }
        let bad = json!([{"id": "sports", "enum_values": ["cricket"]}]);
        assert_eq!(write(p, bad, current, &[], &[FIELD]), Ok(json!({})));
    }

    #[test]
    fn empty_enum_values_clear_only_where_the_market_allows() {
        let p = plan();
        let current = json!({"favNhlTeam": "SEA", "sports": ["Curling", "Hockey"]});
        let empty = json!([{"id": "fav-nhl-team", "enum_values": []},
                           {"id": "sports", "enum_values": null}]);
        assert_eq!(
            write(p, empty.clone(), current.clone(), &[], &[]),
            Ok(json!({}))
        );
        assert_eq!(
            write(p, empty.clone(), current.clone(), &[FIELD], &[]),
            Ok(json!({"attributes": {"favNhlTeam": null, "sports": ["Curling"]}}))
        );
        // `null` for the whole list clears every option; nothing to clear writes nothing.
        assert_eq!(
            write(p, Value::Null, json!({"sports": ["Hockey"]}), &[FIELD], &[]),
            Ok(json!({"attributes": {"sports": null}}))
        );
        assert_eq!(write(p, empty, json!({}), &[FIELD], &[]), Ok(json!({})));
    }

    #[test]
    fn bad_options_name_their_field_without_the_value() {
        let p = plan();
        let cases = [
            (json!({"id": "sports"}), "additional_options"),
            (json!(["sports"]), "additional_options[0]"),
            (
                json!([{"enum_values": ["hockey"]}]),
                "additional_options[0].id",
            ),
            (
                json!([{"id": 7, "enum_values": []}]),
                "additional_options[0].id",
            ),
            (
                json!([{"id": "sports", "enum_values": "hockey"}]),
                "additional_options[0].enum_values",
            ),
            (
                json!([{}, {"id": "sports", "enum_values": ["hockey", 3]}]),
                "additional_options[0].id",
            ),
            (
                json!([{"id": "x"}, {"id": "sports", "enum_values": ["hockey", 3]}]),
                "additional_options[1].enum_values[1]",
            ),
            (
                json!([{"id": "sports", "enum_values": ["hockey", "cricket"]}]),
                "additional_options[0].enum_values[1]",
            ),
            // An option this profile does not map still has the document's shape.
            (
                json!([{"id": "unmapped", "enum_values": [{}]}]),
                "additional_options[0].enum_values[0]",
            ),
            (
                json!([{"id": "fav-nhl-team", "enum_values": ["seattle-kraken", "cricket"]}]),
                "additional_options[0].enum_values",
            ),
            (
                json!([{"id": "sports", "enum_values": ["hockey"]},
                       {"id": "sports", "enum_values": ["tennis"]}]),
                "additional_options[1].id",
            ),
        ];
        for (options, field) in cases {
            let error = write(p, options.clone(), json!({}), &[FIELD], &[]).unwrap_err();
            assert_eq!(error.field, field, "{options}");
            assert!(!error.message.contains("cricket"), "{error:?}");
            // Without option rules the values are not the profile's: ignored like any unknown
            // field's, once they have the document's shape.
            let default = default_plan();
            let expected = match super::check_shape(&options) {
                Ok(_) => Ok(json!({})),
                Err(_) => Err(field.to_owned()),
            };
            assert_eq!(
                write(default, options, json!({}), &[], &[]).map_err(|e| e.field),
                expected
            );
        }
    }

    #[test]
    fn the_field_is_the_profiles_only_when_it_maps_an_option() {
        let (p, default) = (plan(), default_plan());
        assert!(p.has_field(FIELD) && !default.has_field(FIELD));
        assert_eq!(p.spi_field_for("favNhlTeam"), Some(FIELD));
        assert_eq!(p.spi_field_for("attributes.sports"), Some(FIELD));
        assert_eq!(default.spi_field_for("favNhlTeam"), None);
    }

    #[test]
    fn option_load_errors_are_all_reported() {
        let rule = |id: &str, voyado: &str, kind: &str, values: &str| {
            format!(
                "\n[[option]]\nid = \"{id}\"\nvoyado = \"{voyado}\"\nkind = \"{kind}\"\n\
                 values = \"{values}\"\n"
            )
        };
        let text = [
            "[tables.teams]\nseattle-kraken = \"SEA\"\n".to_owned(),
            rule("team", "attributes.favTeam", "single", "teams"),
            rule("team", "attributes.otherTeam", "single", "teams"),
            rule("colour", "attributes.colour", "several", "teams"),
            rule("shoe", "attributes.shoe", "single", "shoes"),
            rule("name", "attributes.firstName", "single", "teams"),
            rule("flat", "attributes.preferences", "multi", "teams"),
            rule("inner", "attributes.favTeam.inner", "single", "teams"),
            rule("path", "attributes..x", "single", "teams"),
            "\n[[card]]\nto = \"additional_options\"\nvalue = []\n".to_owned(),
        ]
        .concat();
        let error = compile(&text).unwrap_err();
        let full = format!("{DEFAULT}\n{text}");
        let at = |needle: &str| places("options.toml", &full, needle)[0].clone();
        let line = |needle: &str| at(needle).split(':').nth(1).unwrap().to_owned();
        let lines: Vec<String> = error.diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{}: a second rule for option 'team' (the first is at line {})",
                    at("\"team\"\nvoyado = \"attributes.otherTeam\""),
                    line("\"team\"\nvoyado = \"attributes.favTeam\"")
                ),
                format!(
                    "{}: unknown kind 'several'; known: single, multi",
                    at("\"several\"")
                ),
                format!("{}: unknown table 'shoes'", at("\"shoes\"")),
                format!(
                    "{}: 'voyado' overlaps the Voyado field of [[field]] spi = \"name_first\" \
                     (line {})",
                    at("\"attributes.firstName\"\nkind"),
                    line("spi = \"name_first\"")
                ),
                format!(
                    "{}: 'voyado' overlaps the Voyado field of [[field]] spi = \
                     \"accepts_communication\" (line {})",
                    at("\"attributes.preferences\""),
                    line("spi = \"accepts_communication\"")
                ),
                format!(
                    "{}: 'voyado' overlaps the Voyado field of option 'team' (line {})",
                    at("\"attributes.favTeam.inner\""),
                    line("\"team\"\nvoyado = \"attributes.favTeam\"")
                ),
                format!("{}: 'voyado' must be dotted keys", at("\"attributes..x\"")),
                format!(
                    "{}: 'additional_options' is already written by the [[option]] rules",
                    at("\"additional_options\"\nvalue")
                ),
            ]
        );
        assert!(compile(OPTIONS).is_ok());
    }

    /// The names the generators draw from: the fixture's option ids and SPI values, others, and
    /// text with a marker no message may carry.
    const IDS: &[&str] = &["fav-nhl-team", "sports", "unmapped", "", "MARKER"];
    #[rustfmt::skip]
    const SPI_VALUES: &[&str] = &[
        "seattle-kraken", "toronto-maple-leafs", "vancouver-canucks", "hockey", "tennis",
        "football", " hockey ", "", "SEA", "cricket-MARKER",
    ];
    const VOYADO_VALUES: &[&str] = &["SEA", "TOR", "VAN", "Hockey", "Tennis", "Curling", ""];

    fn any_json() -> BoxedStrategy<Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            select(SPI_VALUES).prop_map(Value::from),
            "\\PC{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..4).prop_map(Value::Array),
                vec((select(&["id", "enum_values", "x"][..]), inner), 0..3).prop_map(|pairs| {
                    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
        .boxed()
    }

    /// `additional_options` as a POS might send it, nearly, or anything.
    fn options() -> BoxedStrategy<Value> {
        let values = prop_oneof![
            6 => vec(select(SPI_VALUES).prop_map(Value::from), 0..4).prop_map(Value::Array),
            1 => Just(Value::Null),
            1 => Just(Value::from("")),
            1 => any_json(),
        ];
        let item = prop_oneof![
            8 => (
                prop_oneof![6 => select(IDS).prop_map(Value::from), 1 => any_json()],
                proptest::option::weighted(0.9, values),
            )
                .prop_map(|(id, values)| {
                    let mut item = Map::new();
                    item.insert("id".to_owned(), id);
                    if let Some(values) = values {
                        item.insert("enum_values".to_owned(), values);
                    }
                    Value::Object(item)
                }),
            1 => any_json(),
        ];
        prop_oneof![
            6 => vec(item, 0..4).prop_map(Value::Array),
            1 => Just(Value::Null),
            1 => any_json(),
        ]
        .boxed()
    }

    /// What a contact's option attribute might hold.
    fn attribute() -> BoxedStrategy<Value> {
        let voyado = || select(VOYADO_VALUES).prop_map(Value::from);
        prop_oneof![
            3 => voyado(),
            3 => vec(voyado(), 0..4).prop_map(Value::Array),
            1 => any_json(),
        ]
        .boxed()
    }

    /// A path read without dropping `null` (a write of `null` clears).
    fn raw<'a>(value: &'a Value, keys: &[String]) -> Option<&'a Value> {
        keys.iter().try_fold(value, |v, k| v.get(k.as_str()))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        /// Any `additional_options` gives changes or an error naming a field inside it, never
        /// with the value. Changes touch only the options' attributes, and once applied the
        /// card shows what was asked: the values sent, nothing after a clear the market allows,
        /// the option as before otherwise.
        #[test]
        fn any_additional_options_give_the_asked_card_or_a_named_error(
            options in options(),
            team in proptest::option::of(attribute()),
            sports in proptest::option::of(attribute()),
            clearable in any::<bool>(),
        ) {
            let p = plan();
            let mut attributes = Map::new();
            attributes.extend(team.map(|t| ("favNhlTeam".to_owned(), t)));
            attributes.extend(sports.map(|s| ("sports".to_owned(), s)));
            let attributes = Value::Object(attributes);
            let allowed: &[&str] = if clearable { &[FIELD] } else { &[] };
            let changes = match write(p, options.clone(), attributes.clone(), allowed, &[]) {
                Ok(changes) => changes,
                Err(e) => {
                    prop_assert!(e.field.starts_with(FIELD), "{e:?}");
                    prop_assert!(!e.message.is_empty(), "{e:?}");
                    prop_assert!(!e.message.contains("MARKER"), "{e:?}");
                    return Ok(());
                }
            };
            let before = json!({"attributes": attributes});
            let mut after = Map::new();
            after.insert("attributes".to_owned(), attributes);
            let mut touched = 0;
            for rule in &p.options {
                if let Some(value) = raw(&changes, &rule.voyado_keys) {
                    set(&mut after, &rule.voyado_keys, value.clone());
                    touched += 1;
                }
            }
            let after = Value::Object(after);
            let count = |v: &Value| v.as_object().map_or(0, |m| {
                m.values().map(|v| v.as_object().map_or(1, Map::len)).sum::<usize>()
            });
            prop_assert_eq!(count(&changes), touched, "only option attributes: {}", changes);
            // Once written, the same body asks nothing more.
            let again = write(p, options.clone(), after["attributes"].clone(), allowed, &[]);
            prop_assert_eq!(again, Ok(json!({})), "after {}", changes);

            let shown = |contact: &Value, id: &str| {
                let source = json!({"contact": contact});
                let (customer, _) = with_market(|m| p.customer(&source, m));
                customer[FIELD].as_array().into_iter().flatten()
                    .find(|o| o["id"] == id)
                    .map(|o| o["enum_values"].clone())
            };
            for rule in &p.options {
                let asked = match &options {
                    Value::Null => Some(&Value::Null),
                    // The first item of the option that asks anything.
                    Value::Array(items) => items
                        .iter()
                        .filter(|i| i["id"] == rule.id.as_str())
                        .filter_map(|i| i.get("enum_values"))
                        .find(|v| *v != ""),
                    _ => None,
                };
                let want = match asked {
                    Some(Value::Array(values)) if !values.is_empty() => {
                        let mut set: Vec<Value> = Vec::new();
                        for v in values {
                            let v = Value::from(v.as_str().unwrap_or_default().trim());
                            if !set.contains(&v) {
                                set.push(v);
                            }
                        }
                        Some(Value::Array(set))
                    }
                    Some(_) if clearable => None,
                    _ => shown(&before, &rule.id),
                };
                let got = shown(&after, &rule.id);
                let sorted = |v: Option<Value>| v.map(|v| {
                    let mut list: Vec<String> = v.as_array().into_iter().flatten()
                        .filter_map(|s| s.as_str().map(str::to_owned)).collect();
                    list.sort();
                    list
                });
                prop_assert_eq!(sorted(got), sorted(want), "{} after {}", rule.id, changes);
            }
        }
    }
}
