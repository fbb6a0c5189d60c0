//! Read rules: how one SPI document is built from a Voyado source document.
//!
//! A rule writes one target path from a source path (through a codec), a constant, a conditional
//! constant list (`collect`), an array (`each` with nested `fields`), a fixed list of objects (`items`)
//! or a `switch` on a source value. Rules are compiled from TOML once; applying them does no parsing.
//!
//! Each compiled rule keeps its [`Origin`] (its `file:line`, what it reads as written, its codec)
//! for the workbench's provenance. The explain path is the same [`apply`] with a [`Witness`] that
//! notes what each top-level rule did; the hot path's witness is `()`, which notes nothing.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;

use super::codec::{Codec, ReadContext, Table, timestamp};
use super::diagnostic::{At, FileId, Problems, did_you_mean};
use super::path::{Path, Scope, set};
use super::profile::InFile;

/// `from = "a.b"` or `from = ["a.b", "c"]`: the first present value wins.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One rule as written; the spans place its problems in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleSpec {
    pub(crate) to: Spanned<String>,
    pub(crate) from: Option<Spanned<OneOrMany>>,
    pub(crate) value: Option<toml::Value>,
    pub(crate) default: Option<toml::Value>,
    pub(crate) codec: Option<Spanned<String>>,
    pub(crate) each: Option<Spanned<String>>,
    pub(crate) filter: Option<Spanned<String>>,
    /// With `each`: items whose date at this path has passed are left out.
    pub(crate) skip_expired: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) fields: Vec<RuleSpec>,
    #[serde(default)]
    pub(crate) items: Vec<ItemSpec>,
    pub(crate) switch: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) cases: BTreeMap<String, Vec<RuleSpec>>,
    #[serde(default)]
    pub(crate) collect: Vec<CollectSpec>,
    pub(crate) when: Option<Spanned<String>>,
    pub(crate) unless: Option<Spanned<String>>,
    pub(crate) equals: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub(crate) required: bool,
}

impl RuleSpec {
    /// A rule that copies one value through a codec: how a `[[field]]` is read into the card.
    pub(crate) fn copy(
        to: Spanned<String>,
        from: Spanned<String>,
        codec: Option<Spanned<String>>,
    ) -> RuleSpec {
        let span = from.span();
        RuleSpec {
            to,
            from: Some(Spanned::new(span, OneOrMany::One(from.into_inner()))),
            value: None,
            default: None,
            codec,
            each: None,
            filter: None,
            skip_expired: None,
            fields: Vec::new(),
            items: Vec::new(),
            switch: None,
            cases: BTreeMap::new(),
            collect: Vec::new(),
            when: None,
            unless: None,
            equals: None,
            required: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ItemSpec {
    #[serde(default)]
    pub(crate) fields: Vec<RuleSpec>,
    pub(crate) when: Option<Spanned<String>>,
    pub(crate) unless: Option<Spanned<String>>,
    pub(crate) equals: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CollectSpec {
    pub(crate) value: toml::Value,
    pub(crate) when: Option<Spanned<String>>,
    pub(crate) unless: Option<Spanned<String>>,
    pub(crate) equals: Option<Spanned<toml::Value>>,
}

#[derive(Debug, Clone)]
struct Condition {
    path: Path,
    equals: Option<Value>,
    negate: bool,
    /// As written (`when = contact.x`): what provenance says did not hold.
    text: Box<str>,
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
    /// Boxed: the hot path never reads it, so a rule stays as small as it was but for a pointer.
    origin: Box<Origin>,
}

/// Where a rule is written and what it reads, as written: what the workbench shows beside the
/// field the rule made. Never read while a request is answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Origin {
    /// `file:line` of the rule's `to` (of a `[[field]]`'s `spi`).
    pub(crate) at: Arc<str>,
    /// The source paths it reads (`from`, `each` or `switch`), as written.
    pub(crate) reads: Vec<String>,
}

/// A TOML value as JSON: dates and times become their RFC 3339 text, a float JSON cannot hold
/// (NaN, infinity) becomes `null`.
pub(crate) fn json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        toml::Value::Table(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), json(v))).collect())
        }
    }
}

/// A path of plain keys, as output and write targets must be.
pub(crate) fn target(text: &str) -> Option<Vec<String>> {
    Path::parse(text)
        .ok()
        .and_then(|p| p.keys().map(|k| k.into_iter().map(str::to_owned).collect()))
        .filter(|k: &Vec<String>| !k.is_empty())
}

/// Notes a problem when a target (`keys`, written at `at`) collides with one written before it:
/// the same path, a path through a value another rule writes whole, or a value over another
/// rule's path. `side` names the document in the message ("" or "Voyado ").
pub(crate) fn check_overlap(
    problems: &mut Problems<'_>,
    side: &str,
    keys: &[String],
    at: At,
    earlier: &[(Vec<String>, At)],
) {
    // Found before anything is formatted: placing the other rule scans its file.
    let Some((other, other_at)) = earlier
        .iter()
        .find(|(other, _)| keys.starts_with(other) || other.starts_with(keys))
    else {
        return;
    };
    let (path, o) = (keys.join("."), other.join("."));
    let place = problems.place(*other_at, at.file);
    let message = if other == keys {
        format!("a second rule writing {side}'{path}' (the first is at {place})")
    } else if keys.starts_with(other) {
        format!("{side}'{path}' goes through '{o}', which the rule at {place} writes as one value")
    } else {
        format!("{side}'{path}' would overwrite '{o}', which the rule at {place} writes")
    };
    problems.push(at, message);
}

/// A rule group's source document: what messages call it and the roots it has.
#[derive(Clone, Copy)]
pub(crate) struct Group {
    pub(crate) name: &'static str,
    pub(crate) roots: &'static [&'static str],
}

/// Compiles one group's rules, noting every problem at its place.
pub(crate) struct Compiler<'c, 'p> {
    tables: &'c BTreeMap<String, Table>,
    problems: &'c mut Problems<'p>,
    group: Group,
    /// The file of the rule being compiled: nested rules are in their parent's.
    file: FileId,
    /// Roots (first path key) that the compiled rules read, outside `each` items.
    pub(crate) roots: Vec<String>,
}

impl<'c, 'p> Compiler<'c, 'p> {
    pub(crate) fn new(
        tables: &'c BTreeMap<String, Table>,
        problems: &'c mut Problems<'p>,
        group: Group,
    ) -> Compiler<'c, 'p> {
        Compiler {
            tables,
            problems,
            group,
            file: FileId::default(),
            roots: Vec::new(),
        }
    }

    /// A group's top-level rules, each from the file it was written in.
    pub(crate) fn group(&mut self, specs: &[InFile<RuleSpec>]) -> Vec<Rule> {
        self.level(specs.iter().map(|s| (s.file, &s.spec)), false)
    }

    /// The rules of one object: each target is checked against the others written before it.
    fn level<'s>(
        &mut self,
        specs: impl Iterator<Item = (FileId, &'s RuleSpec)>,
        nested: bool,
    ) -> Vec<Rule> {
        let mut written: Vec<(Vec<String>, At)> = Vec::new();
        let mut out = Vec::new();
        for (file, spec) in specs {
            self.file = file;
            let at = At::of(file, &spec.to);
            let Some(to) = target(spec.to.get_ref()) else {
                self.problems.push(at, "'to' must be dotted keys");
                continue;
            };
            check_overlap(self.problems, "", &to, at, &written);
            written.push((to.clone(), at));
            out.extend(self.rule(spec, to, nested));
        }
        out
    }

    /// Nested rules, in the file of the rule they belong to.
    fn nested(&mut self, specs: &[RuleSpec], nested: bool) -> Vec<Rule> {
        let file = self.file;
        self.level(specs.iter().map(|s| (file, s)), nested)
    }

    fn at<T>(&self, spanned: &Spanned<T>) -> At {
        At::of(self.file, spanned)
    }

    fn path(&mut self, text: &Spanned<String>, nested: bool) -> Option<Path> {
        self.path_at(text.get_ref(), self.at(text), nested)
    }

    /// Parses a source path; outside `each` items (or with `^`) its first key must be a root of
    /// the group's document.
    fn path_at(&mut self, text: &str, at: At, nested: bool) -> Option<Path> {
        let path = match Path::parse(text) {
            Ok(path) => path,
            Err(e) => {
                self.problems.push(at, e);
                return None;
            }
        };
        if (!nested || path.from_root)
            && let Some(root) = path.root_key()
        {
            let roots = self.group.roots;
            if !roots.contains(&root) {
                self.problems.push(
                    at,
                    format!(
                        "unknown source root '{root}'{}; {} roots: {}",
                        did_you_mean(root, roots.iter().copied()),
                        self.group.name,
                        roots.join(", ")
                    ),
                );
            } else if !self.roots.iter().any(|r| r == root) {
                self.roots.push(root.to_owned());
            }
        }
        Some(path)
    }

    fn condition(
        &mut self,
        when: &Option<Spanned<String>>,
        unless: &Option<Spanned<String>>,
        equals: &Option<Spanned<toml::Value>>,
        nested: bool,
    ) -> Option<Condition> {
        let (text, negate) = match (when, unless) {
            (Some(w), None) => (w, false),
            (None, Some(u)) => (u, true),
            (None, None) => {
                if let Some(equals) = equals {
                    let at = self.at(equals);
                    self.problems.push(at, "'equals' needs 'when' or 'unless'");
                }
                return None;
            }
            (Some(_), Some(u)) => {
                let at = self.at(u);
                self.problems
                    .push(at, "use either 'when' or 'unless', not both");
                return None;
            }
        };
        let equals = equals.as_ref().map(|e| json(e.get_ref()));
        let written = format!(
            "{} = \"{}\"{}",
            if negate { "unless" } else { "when" },
            text.get_ref(),
            equals
                .as_ref()
                .map_or_else(String::new, |e| format!(" (equals {e})"))
        );
        Some(Condition {
            path: self.path(text, nested)?,
            equals,
            negate,
            text: written.into(),
        })
    }

    fn origin(&self, spec: &RuleSpec) -> Origin {
        let reads = match (&spec.from, &spec.each, &spec.switch) {
            (Some(from), _, _) => match from.get_ref() {
                OneOrMany::One(t) => vec![t.clone()],
                OneOrMany::Many(list) => list.clone(),
            },
            (None, Some(path), _) | (None, None, Some(path)) => vec![path.get_ref().clone()],
            (None, None, None) => Vec::new(),
        };
        Origin {
            at: self.problems.line_of(self.at(&spec.to)).into(),
            reads,
        }
    }

    fn codec(&mut self, codec: &Option<Spanned<String>>) -> Option<Codec> {
        let Some(codec) = codec else {
            return Some(Codec::Text);
        };
        match Codec::parse(codec.get_ref(), self.tables) {
            Ok(c) => Some(c),
            Err(e) => {
                let at = self.at(codec);
                self.problems.push(at, e);
                None
            }
        }
    }

    fn rule(&mut self, spec: &RuleSpec, to: Vec<String>, nested: bool) -> Option<Rule> {
        let at = self.at(&spec.to);
        let when = self.condition(&spec.when, &spec.unless, &spec.equals, nested);
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
            self.problems.push(
                at,
                "a rule needs exactly one of 'from', 'value', 'each' (with 'fields'), 'fields', \
                 'items', 'switch' (with 'cases') or 'collect'",
            );
            return None;
        }
        if let (Some(codec), None) = (&spec.codec, &spec.from) {
            let at = self.at(codec);
            self.problems.push(at, "'codec' only goes with 'from'");
        }
        if spec.each.is_none() {
            for only in [&spec.filter, &spec.skip_expired].into_iter().flatten() {
                let at = self.at(only);
                self.problems
                    .push(at, "'filter' and 'skip_expired' only go with 'each'");
            }
        }
        let produce = if let Some(each) = &spec.each {
            let from = self.path(each, nested)?;
            let filter = match &spec.filter {
                Some(f) => Some(self.path(f, true)?),
                None => None,
            };
            let expires = match &spec.skip_expired {
                Some(f) => Some(self.path(f, true)?),
                None => None,
            };
            let fields = self.nested(&spec.fields, true);
            Produce::Each {
                from,
                filter,
                expires,
                fields,
            }
        } else if let Some(from) = &spec.from {
            let at = self.at(from);
            let texts = match from.get_ref() {
                OneOrMany::One(t) => std::slice::from_ref(t),
                OneOrMany::Many(list) => list.as_slice(),
            };
            let from: Vec<Path> = texts
                .iter()
                .filter_map(|t| self.path_at(t, at, nested))
                .collect();
            let codec = self.codec(&spec.codec)?;
            Produce::Copy { from, codec }
        } else if let Some(value) = &spec.value {
            Produce::Const(json(value))
        } else if let Some(on) = &spec.switch {
            let on = self.path(on, nested)?;
            let cases = spec
                .cases
                .iter()
                .map(|(key, rules)| (Value::String(key.clone()), self.nested(rules, nested)))
                .collect();
            Produce::Switch { on, cases }
        } else if !spec.items.is_empty() {
            let items = spec
                .items
                .iter()
                .map(|item| {
                    let when = self.condition(&item.when, &item.unless, &item.equals, nested);
                    (when, self.nested(&item.fields, nested))
                })
                .collect();
            Produce::List(items)
        } else if !spec.collect.is_empty() {
            let items = spec
                .collect
                .iter()
                .map(|c| {
                    let when = self.condition(&c.when, &c.unless, &c.equals, nested);
                    (when, json(&c.value))
                })
                .collect();
            Produce::Collect(items)
        } else {
            Produce::Object(self.nested(&spec.fields, nested))
        };
        Some(Rule {
            to,
            when,
            produce,
            default: spec.default.as_ref().map(json),
            required: spec.required,
            origin: Box::new(self.origin(spec)),
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

/// What applying one top-level rule came to.
pub(crate) enum Seen {
    /// Its `when`/`unless` did not hold.
    Skipped,
    Made,
    /// It found nothing and wrote its `default`.
    Defaulted,
    /// It found nothing and has no default.
    Empty,
    /// A required value inside it was missing: the rules after it are not applied.
    MissingInside,
}

/// Told what each top-level rule came to, in order. `()` is the hot path's: it notes nothing.
pub(crate) trait Witness {
    fn saw(&mut self, rule: &Rule, seen: Seen);
}

impl Witness for () {
    #[inline(always)]
    fn saw(&mut self, _: &Rule, _: Seen) {}
}

pub(crate) fn apply(
    rules: &[Rule],
    scope: Scope<'_>,
    ctx: &ReadContext<'_>,
    omitted: &Omitted,
    out: &mut Map<String, Value>,
) -> Result<(), MissingRequired> {
    apply_seen(rules, scope, ctx, omitted, out, &mut ())
}

/// [`apply`], telling `witness` what each rule came to.
pub(crate) fn apply_seen<W: Witness>(
    rules: &[Rule],
    scope: Scope<'_>,
    ctx: &ReadContext<'_>,
    omitted: &Omitted,
    out: &mut Map<String, Value>,
    witness: &mut W,
) -> Result<(), MissingRequired> {
    for rule in rules {
        if rule.when.as_ref().is_some_and(|c| !c.holds(scope)) {
            witness.saw(rule, Seen::Skipped);
            continue;
        }
        let found = produce(&rule.produce, scope, ctx, omitted).inspect_err(|_| {
            witness.saw(rule, Seen::MissingInside);
        })?;
        let value = match found {
            Some(v) => {
                witness.saw(rule, Seen::Made);
                Some(v)
            }
            None => {
                let default = rule.default.clone();
                let seen = if default.is_some() {
                    Seen::Defaulted
                } else {
                    Seen::Empty
                };
                witness.saw(rule, seen);
                default
            }
        };
        match value {
            Some(v) => set(out, &rule.to, v),
            None if rule.required => return Err(MissingRequired),
            None => {}
        }
    }
    Ok(())
}

impl Rule {
    /// The target, dotted.
    pub(crate) fn target(&self) -> String {
        self.to.join(".")
    }

    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The codec a copy reads through, by name.
    pub(crate) fn codec_name(&self) -> Option<String> {
        match &self.produce {
            Produce::Copy { codec, .. } => Some(codec.name()),
            _ => None,
        }
    }

    /// Why the rule made nothing from `scope` (after [`Seen::Skipped`], [`Seen::Empty`] or
    /// [`Seen::Defaulted`]), in the profile's own words.
    pub(crate) fn why_nothing(&self, scope: Scope<'_>, ctx: &ReadContext<'_>) -> String {
        if let Some(c) = self.when.as_ref().filter(|c| !c.holds(scope)) {
            return format!("{} does not hold", c.text);
        }
        let reads = self.origin.reads.join("\", \"");
        match &self.produce {
            Produce::Copy { from, codec } => match from.iter().find_map(|p| p.get(scope)) {
                None => format!("no value at \"{reads}\""),
                Some(found) if ctx.read(codec, found).is_none() => format!(
                    "the value at \"{reads}\" ({}) is not one the {} codec reads",
                    kind(found),
                    codec.name()
                ),
                Some(_) => format!("nothing readable at \"{reads}\""),
            },
            Produce::Switch { on, .. } => match on.get(scope) {
                None => format!("no value at \"{reads}\" to switch on"),
                Some(found) => format!("no case for {found} (switch on \"{reads}\")"),
            },
            _ => "it produced nothing".to_owned(),
        }
    }
}

/// A JSON value's kind, never its content (it may be personal).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
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
