//! Read rules: how one SPI document is built from a Voyado source document.
//!
//! A rule writes one target path from a source path (through a codec), a constant, a conditional
//! constant list (`collect`), an array (`each` with nested `fields`), a fixed list of objects (`items`)
//! or a `switch` on a source value. Rules are compiled from TOML once; applying them does no parsing.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::codec::{Codec, ReadContext, Table, timestamp};
use super::path::{Path, Scope, set};

/// `from = "a.b"` or `from = ["a.b", "c"]`: the first present value wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub(crate) to: String,
    pub(crate) from: Option<OneOrMany>,
    pub(crate) value: Option<toml::Value>,
    pub(crate) default: Option<toml::Value>,
    pub(crate) codec: Option<String>,
    pub(crate) each: Option<String>,
    pub(crate) filter: Option<String>,
    /// With `each`: items whose date at this path has passed are left out.
    pub(crate) skip_expired: Option<String>,
    #[serde(default)]
    pub(crate) fields: Vec<RuleSpec>,
    #[serde(default)]
    pub(crate) items: Vec<ItemSpec>,
    pub(crate) switch: Option<String>,
    #[serde(default)]
    pub(crate) cases: BTreeMap<String, Vec<RuleSpec>>,
    #[serde(default)]
    pub(crate) collect: Vec<CollectSpec>,
    pub(crate) when: Option<String>,
    pub(crate) unless: Option<String>,
    pub(crate) equals: Option<toml::Value>,
    #[serde(default)]
    pub(crate) required: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemSpec {
    #[serde(default)]
    pub(crate) fields: Vec<RuleSpec>,
    pub(crate) when: Option<String>,
    pub(crate) unless: Option<String>,
    pub(crate) equals: Option<toml::Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectSpec {
    pub(crate) value: toml::Value,
    pub(crate) when: Option<String>,
    pub(crate) unless: Option<String>,
    pub(crate) equals: Option<toml::Value>,
}

#[derive(Debug, Clone)]
struct Condition {
    path: Path,
    equals: Option<Value>,
    negate: bool,
}

impl Condition {
    fn holds(&self, scope: Scope<'_>) -> bool {
        let found = self.path.get(scope);
        let pass = match (&self.equals, found) {
            (Some(expected), Some(v)) => v == expected,
            (Some(_), None) => false,
            (None, v) => v.is_some_and(|v| v != &Value::Bool(false)),
        };
        pass != self.negate
    }
}

#[derive(Debug, Clone)]
enum Produce {
    Copy {
        from: Vec<Path>,
        codec: Codec,
    },
    Const(Value),
    Each {
        from: Path,
        filter: Option<Path>,
        expires: Option<Path>,
        fields: Vec<Rule>,
    },
    Object(Vec<Rule>),
    List(Vec<(Option<Condition>, Vec<Rule>)>),
    Switch {
        on: Path,
        cases: Vec<(Value, Vec<Rule>)>,
    },
    Collect(Vec<(Option<Condition>, Value)>),
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    to: Vec<String>,
    when: Option<Condition>,
    produce: Produce,
    default: Option<Value>,
    required: bool,
}

pub(crate) fn json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Compiles rules, pushing every problem (with `at`, the rule's place in the file) into `errors`.
pub(crate) struct Compiler<'a> {
    pub(crate) tables: &'a BTreeMap<String, Table>,
    pub(crate) errors: &'a mut Vec<String>,
    /// Roots (first path key) that the compiled rules read, outside `each` items.
    pub(crate) roots: Vec<String>,
}

impl Compiler<'_> {
    pub(crate) fn rules(&mut self, specs: &[RuleSpec], at: &str, nested: bool) -> Vec<Rule> {
        let mut seen = Vec::new();
        specs
            .iter()
            .enumerate()
            .filter_map(|(i, spec)| {
                let here = format!("{at}[{i}] (to = \"{}\")", spec.to);
                if seen.contains(&spec.to) {
                    self.errors
                        .push(format!("{here}: a second rule for the same target"));
                }
                seen.push(spec.to.clone());
                self.rule(spec, &here, nested)
            })
            .collect()
    }

    fn path(&mut self, text: &str, at: &str, nested: bool) -> Option<Path> {
        match Path::parse(text) {
            Ok(path) => {
                if (!nested || path.from_root)
                    && let Some(root) = path.root_key()
                    && !self.roots.iter().any(|r| r == root)
                {
                    self.roots.push(root.to_owned());
                }
                Some(path)
            }
            Err(e) => {
                self.errors.push(format!("{at}: {e}"));
                None
            }
        }
    }

    fn condition(
        &mut self,
        when: &Option<String>,
        unless: &Option<String>,
        equals: &Option<toml::Value>,
        at: &str,
        nested: bool,
    ) -> Option<Condition> {
        let (text, negate) = match (when, unless) {
            (Some(w), None) => (w, false),
            (None, Some(u)) => (u, true),
            (None, None) => {
                if equals.is_some() {
                    self.errors
                        .push(format!("{at}: 'equals' needs 'when' or 'unless'"));
                }
                return None;
            }
            (Some(_), Some(_)) => {
                self.errors
                    .push(format!("{at}: use either 'when' or 'unless', not both"));
                return None;
            }
        };
        Some(Condition {
            path: self.path(text, at, nested)?,
            equals: equals.as_ref().map(json),
            negate,
        })
    }

    fn rule(&mut self, spec: &RuleSpec, at: &str, nested: bool) -> Option<Rule> {
        let to = Path::parse(&spec.to).ok().and_then(|p| {
            p.keys()
                .map(|k| k.into_iter().map(str::to_owned).collect::<Vec<_>>())
        });
        let Some(to) = to.filter(|k| !k.is_empty()) else {
            self.errors.push(format!("{at}: 'to' must be dotted keys"));
            return None;
        };
        let when = self.condition(&spec.when, &spec.unless, &spec.equals, at, nested);
        let kinds = [
            spec.from.is_some(),
            spec.value.is_some(),
            spec.each.is_some(),
            spec.each.is_none() && spec.switch.is_none() && !spec.fields.is_empty(),
            !spec.items.is_empty(),
            spec.switch.is_some(),
            !spec.collect.is_empty(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.errors.push(format!(
                "{at}: a rule needs exactly one of 'from', 'value', 'each' (with 'fields'), \
                 'fields', 'items', 'switch' (with 'cases') or 'collect'"
            ));
            return None;
        }
        if spec.codec.is_some() && spec.from.is_none() {
            self.errors
                .push(format!("{at}: 'codec' only goes with 'from'"));
        }
        if (spec.filter.is_some() || spec.skip_expired.is_some()) && spec.each.is_none() {
            self.errors.push(format!(
                "{at}: 'filter' and 'skip_expired' only go with 'each'"
            ));
        }
        let produce = if let Some(each) = &spec.each {
            let from = self.path(each, at, nested)?;
            let filter = match &spec.filter {
                Some(f) => Some(self.path(f, at, true)?),
                None => None,
            };
            let expires = match &spec.skip_expired {
                Some(f) => Some(self.path(f, at, true)?),
                None => None,
            };
            let fields = self.rules(&spec.fields, &format!("{at}.fields"), true);
            Produce::Each {
                from,
                filter,
                expires,
                fields,
            }
        } else if let Some(from) = &spec.from {
            let texts = match from {
                OneOrMany::One(t) => vec![t.clone()],
                OneOrMany::Many(list) => list.clone(),
            };
            let from: Vec<Path> = texts
                .iter()
                .filter_map(|t| self.path(t, at, nested))
                .collect();
            let codec = match Codec::parse(spec.codec.as_deref().unwrap_or("text"), self.tables) {
                Ok(codec) => codec,
                Err(e) => {
                    self.errors.push(format!("{at}: {e}"));
                    return None;
                }
            };
            Produce::Copy { from, codec }
        } else if let Some(value) = &spec.value {
            Produce::Const(json(value))
        } else if let Some(on) = &spec.switch {
            let on = self.path(on, at, nested)?;
            let cases = spec
                .cases
                .iter()
                .map(|(key, rules)| {
                    let rules = self.rules(rules, &format!("{at}.cases.{key}"), nested);
                    (Value::String(key.clone()), rules)
                })
                .collect();
            Produce::Switch { on, cases }
        } else if !spec.items.is_empty() {
            let items = spec
                .items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let here = format!("{at}.items[{i}]");
                    let when =
                        self.condition(&item.when, &item.unless, &item.equals, &here, nested);
                    (
                        when,
                        self.rules(&item.fields, &format!("{here}.fields"), nested),
                    )
                })
                .collect();
            Produce::List(items)
        } else if !spec.collect.is_empty() {
            let items = spec
                .collect
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let here = format!("{at}.collect[{i}]");
                    let when = self.condition(&c.when, &c.unless, &c.equals, &here, nested);
                    (when, json(&c.value))
                })
                .collect();
            Produce::Collect(items)
        } else {
            Produce::Object(self.rules(&spec.fields, &format!("{at}.fields"), nested))
        };
        Some(Rule {
            to,
            when,
            produce,
            default: spec.default.as_ref().map(json),
            required: spec.required,
        })
    }
}

/// Counts items left out because a required value was missing (e.g. money in another currency).
#[derive(Default)]
pub(crate) struct Omitted(Cell<usize>);

impl Omitted {
    pub(crate) fn count(&self) -> usize {
        self.0.get()
    }
}

/// A required rule produced nothing: the enclosing item is left out.
pub(crate) struct MissingRequired;

pub(crate) fn apply(
    rules: &[Rule],
    scope: Scope<'_>,
    ctx: &ReadContext<'_>,
    omitted: &Omitted,
    out: &mut Map<String, Value>,
) -> Result<(), MissingRequired> {
    for rule in rules {
        if rule.when.as_ref().is_some_and(|c| !c.holds(scope)) {
            continue;
        }
        let value = produce(&rule.produce, scope, ctx, omitted)?.or_else(|| rule.default.clone());
        match value {
            Some(v) => set(out, &rule.to, v),
            None if rule.required => return Err(MissingRequired),
            None => {}
        }
    }
    Ok(())
}

fn object(
    rules: &[Rule],
    scope: Scope<'_>,
    ctx: &ReadContext<'_>,
    omitted: &Omitted,
) -> Result<Value, MissingRequired> {
    let mut map = Map::new();
    apply(rules, scope, ctx, omitted, &mut map)?;
    Ok(Value::Object(map))
}

fn produce(
    produce: &Produce,
    scope: Scope<'_>,
    ctx: &ReadContext<'_>,
    omitted: &Omitted,
) -> Result<Option<Value>, MissingRequired> {
    Ok(match produce {
        Produce::Copy { from, codec } => from
            .iter()
            .filter_map(|p| p.get(scope))
            .find_map(|v| ctx.read(codec, v)),
        Produce::Const(v) => Some(v.clone()),
        Produce::Object(rules) => Some(object(rules, scope, ctx, omitted)?),
        Produce::Each {
            from,
            filter,
            expires,
            fields,
        } => {
            let items = from.get(scope).and_then(Value::as_array);
            let mut out = Vec::with_capacity(items.map_or(0, Vec::len));
            for item in items.into_iter().flatten() {
                let inner = Scope { item, ..scope };
                if filter.as_ref().is_some_and(|f| f.get(inner).is_none()) {
                    continue;
                }
                let passed = |p: &Path| {
                    p.get(inner)
                        .and_then(timestamp)
                        .is_some_and(|t| t < ctx.now)
                };
                if expires.as_ref().is_some_and(passed) {
                    continue;
                }
                match object(fields, inner, ctx, omitted) {
                    Ok(v) => out.push(v),
                    Err(MissingRequired) => omitted.0.set(omitted.0.get() + 1),
                }
            }
            Some(Value::Array(out))
        }
        Produce::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (when, rules) in items {
                if when.as_ref().is_none_or(|c| c.holds(scope)) {
                    out.push(object(rules, scope, ctx, omitted)?);
                }
            }
            Some(Value::Array(out))
        }
        Produce::Switch { on, cases } => match on.get(scope) {
            Some(key) => match cases.iter().find(|(k, _)| k == key) {
                Some((_, rules)) => Some(object(rules, scope, ctx, omitted)?),
                None => None,
            },
            None => None,
        },
        Produce::Collect(items) => Some(Value::Array(
            items
                .iter()
                .filter(|(when, _)| when.as_ref().is_none_or(|c| c.holds(scope)))
                .map(|(_, v)| v.clone())
                .collect(),
        )),
    })
}
