//! Provenance, for the workbench: for each field of a card, receipt or Voyado write, the rule
//! that made it (`file:line`), what it read, its codec, and why a field stayed empty.
//!
//! It is the hot path itself, not a second copy: the card and the receipt are mapped by the same
//! `rules::apply_seen` with an [`Explainer`] as the witness (the hot path's witness is `()`),
//! and only when a rule made nothing does the explainer look at why.

use serde::Serialize;
use serde_json::{Map, Value};

use super::codec::ReadContext;
use super::path::Scope;
use super::rules::{Rule, Seen, Witness};
use super::{MarketView, Plan, WritePolicy, options};

/// What a rule came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It wrote the field.
    Made,
    /// It found nothing and wrote its `default`.
    Default,
    /// It found nothing: the field is left out.
    Empty,
    /// Its `when`/`unless` did not hold, or it was not reached.
    Skipped,
}

/// One field and the rule behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Provenance {
    /// The field, dotted: the SPI customer's, the receipt's, or the Voyado write body's.
    pub field: String,
    /// Where the rule is written: `mappings/default.toml:42`.
    pub rule: String,
    /// What it reads, as written.
    pub reads: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    pub outcome: Outcome,
    /// Why the field is empty, skipped or defaulted; never a value from the document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Notes what each top-level rule of one group came to, and asks the rule why when it made
/// nothing.
struct Explainer<'a> {
    scope: Scope<'a>,
    ctx: ReadContext<'a>,
    found: Vec<Provenance>,
}

impl<'a> Explainer<'a> {
    fn new(plan: &'a Plan, source: &'a Value, market: &'a MarketView<'a>) -> Explainer<'a> {
        Explainer {
            scope: Scope {
                root: source,
                item: source,
                locale: market.locale,
            },
            ctx: plan.read_context(market),
            found: Vec::new(),
        }
    }

    /// What was noted, and the rules never reached (after a required value was missing).
    fn finish(mut self, rules: &[Rule]) -> Vec<Provenance> {
        for rule in rules.iter().skip(self.found.len()) {
            self.found.push(entry(
                rule,
                Outcome::Skipped,
                Some("not reached: a required value of an earlier rule is missing".into()),
            ));
        }
        self.found
    }
}

fn entry(rule: &Rule, outcome: Outcome, why: Option<String>) -> Provenance {
    Provenance {
        field: rule.target(),
        rule: rule.origin().at.to_string(),
        reads: rule.origin().reads.clone(),
        codec: rule.codec_name(),
        outcome,
        why,
    }
}

impl Witness for Explainer<'_> {
    fn saw(&mut self, rule: &Rule, seen: Seen) {
        let why = || Some(rule.why_nothing(self.scope, &self.ctx));
        let (outcome, why) = match seen {
            Seen::Made => (Outcome::Made, None),
            Seen::Defaulted => (Outcome::Default, why()),
            Seen::Empty => (Outcome::Empty, why()),
            Seen::Skipped => (Outcome::Skipped, why()),
            Seen::MissingInside => (
                Outcome::Empty,
                Some(
                    "a required value inside it is missing: it and the rules after it are left out"
                        .into(),
                ),
            ),
        };
        self.found.push(entry(rule, outcome, why));
    }
}

impl Plan {
    /// [`Plan::customer`] with the provenance of every card field.
    pub fn explain_customer(
        &self,
        source: &Value,
        market: &MarketView<'_>,
    ) -> (Value, usize, Vec<Provenance>) {
        let mut explainer = Explainer::new(self, source, market);
        let (customer, omitted) = self.customer_seen(source, market, &mut explainer);
        let mut found = explainer.finish(&self.card);
        if !self.options.is_empty() {
            let made = customer.get(options::FIELD).is_some();
            found.push(Provenance {
                field: options::FIELD.to_owned(),
                rule: "the [[option]] rules".to_owned(),
                reads: self
                    .options
                    .iter()
                    .map(|o| format!("{}.{}", super::CONTACT, o.voyado_keys.join(".")))
                    .collect(),
                codec: None,
                outcome: if made { Outcome::Made } else { Outcome::Empty },
                why: (!made).then(|| "no option the profile maps is set on the contact".into()),
            });
        }
        (customer, omitted, found)
    }

    /// [`Plan::receipt`] with the provenance of every receipt field.
    pub fn explain_receipt(
        &self,
        source: &Value,
        market: &MarketView<'_>,
    ) -> (Value, Vec<Provenance>) {
        let mut explainer = Explainer::new(self, source, market);
        let (receipt, _) = self.map_seen(&self.receipt, source, market, &mut explainer);
        (receipt, explainer.finish(&self.receipt))
    }

    /// For each contact field an SPI `body` names, the Voyado write it came to: whether
    /// `changes` (what [`Plan::contact_changes`] made of it) carry it, and if not, why.
    pub fn explain_write(
        &self,
        body: &Value,
        changes: &Map<String, Value>,
        policy: &WritePolicy<'_>,
    ) -> Vec<Provenance> {
        let at = |value: &Value, keys: &[String]| -> Option<Value> {
            keys.iter().try_fold(value, |v, k| v.get(k)).cloned()
        };
        let changes = Value::Object(changes.clone());
        let mut found = Vec::new();
        for field in &self.fields {
            let Some(sent) = at(body, &field.spi_keys) else {
                continue;
            };
            let why = if at(&changes, &field.voyado_keys).is_some() {
                None
            } else if !field.write {
                Some("the rule has write = false: the field is only read".to_owned())
            } else if policy.ignored.contains(&field.spi) {
                Some("read-only in this market (read_only_fields)".to_owned())
            } else if sent.is_null() && !policy.clearable.contains(&field.spi) {
                Some("null clears only the market's clearable_fields".to_owned())
            } else if sent.as_str().is_some_and(str::is_empty) {
                Some("an empty string changes nothing".to_owned())
            } else {
                Some("the contact has this already: nothing to send".to_owned())
            };
            // As the body is sent: the write_flatten object's keys at the top.
            let keys = match field.voyado_keys.split_first() {
                Some((first, rest)) if *first == self.write_flatten && !rest.is_empty() => rest,
                _ => &field.voyado_keys[..],
            };
            found.push(Provenance {
                field: keys.join("."),
                rule: field.at.to_string(),
                reads: vec![field.spi.clone()],
                codec: Some(field.codec.name()),
                outcome: if why.is_none() {
                    Outcome::Made
                } else {
                    Outcome::Empty
                },
                why,
            });
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const PROFILE: &str = include_str!("../../mappings/default.toml");

    /// The default profile and a rule that writes a flag only `when` the contact has one.
    fn plan() -> Plan {
        let text = format!(
            "{PROFILE}\n[[card]]\nto = \"flagged\"\nvalue = true\n\
             when = \"contact.attributes.workbenchFlag\"\n"
        );
        Plan::compile(&text, "mappings/default.toml").unwrap()
    }

    /// The 1-based line of the first line of the profile that is `text`.
    fn line(text: &str) -> usize {
        PROFILE.lines().position(|l| l == text).unwrap() + 1
    }

    fn source() -> Value {
        let path = format!(
            "{}/fixtures/mapping/card-source.json",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn explain(source: &Value) -> (Value, usize, Vec<Provenance>) {
        let plan = plan();
        crate::mapping::tests::with_market(&[], |view| {
            let (customer, omitted) = plan.customer(source, view);
            let explained = plan.explain_customer(source, view);
            // The explain path is the hot path with a witness: the card is the same.
            assert_eq!((&customer, omitted), (&explained.0, explained.1));
            explained
        })
    }

    fn of<'p>(found: &'p [Provenance], field: &str) -> &'p Provenance {
        found.iter().find(|p| p.field == field).unwrap()
    }

    #[test]
    fn each_card_field_names_its_rule_line_reads_and_codec() {
        let (_, _, found) = explain(&source());
        let first = of(&found, "name_first");
        let at = format!("mappings/default.toml:{}", line("spi = \"name_first\""));
        assert_eq!(first.rule, at);
        assert_eq!(first.reads, ["contact.attributes.firstName"]);
        assert_eq!(first.codec.as_deref(), Some("text"));
        assert_eq!(first.outcome, Outcome::Made);
        assert_eq!(first.why, None);
        let color = of(&found, "status.color");
        assert_eq!(
            color.rule,
            format!("mappings/default.toml:{}", line("to = \"status.color\""))
        );
    }

    #[test]
    fn an_empty_field_says_why_without_quoting_the_contact() {
        let mut source = source();
        source["contact"]["attributes"]
            .as_object_mut()
            .unwrap()
            .remove("firstName");
        source["status"] = Value::Null;
        source["contact"]["attributes"]["birthDay"] = json!("the 18th of December");
        let (customer, _, found) = explain(&source);
        assert!(customer.get("name_first").is_none());
        let first = of(&found, "name_first");
        assert_eq!(first.outcome, Outcome::Empty);
        assert_eq!(
            first.why.as_deref(),
            Some("no value at \"contact.attributes.firstName\"")
        );
        let birth = of(&found, "birth_date");
        assert_eq!(birth.outcome, Outcome::Empty);
        assert_eq!(
            birth.why.as_deref(),
            Some(
                "the value at \"contact.attributes.birthDay\" (a string) is not one the date \
                 codec reads"
            )
        );
        let color = of(&found, "status.color");
        assert_eq!(color.outcome, Outcome::Default);
        assert_eq!(
            color.why.as_deref(),
            Some("no value at \"status.statusColor\"")
        );
    }

    #[test]
    fn a_condition_that_does_not_hold_is_named() {
        let mut source = source();
        let (_, _, found) = explain(&source);
        let flagged = of(&found, "flagged");
        assert_eq!(flagged.outcome, Outcome::Skipped);
        assert_eq!(
            flagged.why.as_deref(),
            Some("when = \"contact.attributes.workbenchFlag\" does not hold")
        );
        let line = PROFILE.lines().count() + 3;
        assert_eq!(flagged.rule, format!("mappings/default.toml:{line}"));
        source["contact"]["attributes"]["workbenchFlag"] = json!(true);
        let (customer, _, found) = explain(&source);
        assert_eq!(customer["flagged"], true);
        assert_eq!(of(&found, "flagged").outcome, Outcome::Made);
    }

    #[test]
    fn a_write_names_what_it_sends_and_why_a_field_is_not_sent() {
        let plan = plan();
        let body = json!({"name_first": "Anne", "name_last": "", "email": null});
        let policy = WritePolicy {
            clearable: &[],
            ignored: &[],
            source: "POS",
            now: "2026-01-01T00:00:00Z",
        };
        let changes = Map::from_iter([("attributes".to_owned(), json!({"firstName": "Anne"}))]);
        let found = plan.explain_write(&body, &changes, &policy);
        let first = of(&found, "firstName");
        assert_eq!(first.outcome, Outcome::Made);
        assert_eq!(
            first.rule,
            format!("mappings/default.toml:{}", line("spi = \"name_first\""))
        );
        assert_eq!(
            of(&found, "lastName").why.as_deref(),
            Some("an empty string changes nothing")
        );
        assert_eq!(
            of(&found, "email").why.as_deref(),
            Some("null clears only the market's clearable_fields")
        );
    }
}
