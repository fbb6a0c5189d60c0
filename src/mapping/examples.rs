//! `[[example]]`: a profile's own test cases, run on every load. An example gives one mapping a
//! document and says what must come out; a profile whose rules disagree with one of its examples
//! does not load, and the problem names the first difference at its place in the example.
//!
//! `expect` is compared as a pattern: an object compares only the keys it lists (every key with
//! `exact = true`), an array item by item and by length, anything else by equality.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Map, Value};
use toml::Spanned;
use toml::de::DeValue;

use super::diagnostic::{At, FileId, Problems, did_you_mean};
use super::profile::Piece;
use super::rules::json;
use super::{MARKET, MarketView, Plan, WritePolicy};

/// The mappings an example can try: the read directions and the write.
const MAPS: &[&str] = &[
    "card",
    "transaction",
    "consent_definition",
    "person",
    "receipt",
    "write",
];

/// An example's market where it names nothing else: Swedish, and a fixed instant, so that an
/// expiry or a two-digit birth year reads the same on every load (2026-01-01T12:00:00Z).
const CURRENCY: &str = "SEK";
const TIMEZONE: &str = "Europe/Stockholm";
const LOCALE: &str = "sv-SE";
const REGION: &str = "SE";
const NOW: Timestamp = Timestamp::constant(1_767_268_800, 0);
const SOURCE: &str = "POS";

/// The longest a value is shown in a difference; an example's documents can be whole contacts.
const SHOWN: usize = 160;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExampleSpec {
    name: Spanned<String>,
    map: Spanned<String>,
    /// A read's source document (by its roots), or the SPI body of a write: a TOML table, or
    /// JSON text in a string.
    input: Spanned<toml::Value>,
    /// A write's Voyado contact as it is now; without it the write is a create.
    current: Option<Spanned<toml::Value>>,
    /// The SPI document a read gives, or the Voyado body a write sends.
    expect: Spanned<toml::Value>,
    #[serde(default)]
    exact: bool,
    #[serde(default)]
    market: MarketSpec,
    /// A write's market policy: fields a `null` may clear, fields ignored in the write.
    clearable: Option<Spanned<Vec<String>>>,
    read_only: Option<Spanned<Vec<String>>>,
}

/// The market facts an example runs in; each has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MarketSpec {
    currency: Option<String>,
    timezone: Option<Spanned<String>>,
    locale: Option<String>,
    region: Option<String>,
    personal_id_region: Option<String>,
    /// SPI consent id = Voyado consent id, as in the config.
    #[serde(default)]
    consent_map: BTreeMap<String, String>,
    /// When the example runs: RFC 3339.
    now: Option<Spanned<String>>,
    /// The `source` a write stamps on consents.
    source: Option<String>,
}

/// An example's market, read.
struct Market {
    currency: String,
    timezone: TimeZone,
    locale: String,
    region: String,
    personal_id_region: String,
    consent_map: Vec<(String, String)>,
    now: Timestamp,
    source: String,
}

/// Why an example failed, and where in the file.
type Failure = (At, String);

impl Market {
    fn read(spec: &MarketSpec, file: FileId) -> Result<Market, Failure> {
        let timezone = match &spec.timezone {
            // The bundled time zone database always has it.
            None => TimeZone::get(TIMEZONE).unwrap_or(TimeZone::UTC),
            Some(name) => TimeZone::get(name.get_ref()).map_err(|_| {
                (
                    At::of(file, name),
                    format!("unknown time zone '{}'", name.get_ref()),
                )
            })?,
        };
        let now = match &spec.now {
            None => NOW,
            Some(text) => text.get_ref().parse().map_err(|e| {
                (
                    At::of(file, text),
                    format!("'now' is an RFC 3339 instant, like \"2026-01-01T12:00:00Z\": {e}"),
                )
            })?,
        };
        let region = spec.region.clone().unwrap_or_else(|| REGION.to_owned());
        Ok(Market {
            currency: spec.currency.clone().unwrap_or_else(|| CURRENCY.to_owned()),
            timezone,
            locale: spec.locale.clone().unwrap_or_else(|| LOCALE.to_owned()),
            personal_id_region: spec
                .personal_id_region
                .clone()
                .unwrap_or_else(|| region.clone()),
            region,
            consent_map: spec
                .consent_map
                .iter()
                .map(|(s, v)| (s.clone(), v.clone()))
                .collect(),
            now,
            source: spec.source.clone().unwrap_or_else(|| SOURCE.to_owned()),
        })
    }

    fn view(&self) -> MarketView<'_> {
        MarketView {
            currency: &self.currency,
            timezone: &self.timezone,
            locale: &self.locale,
            region: &self.region,
            personal_id_region: &self.personal_id_region,
            consent_map: &self.consent_map,
            now: self.now,
        }
    }
}

/// Runs every example against the compiled plan; each failure is a problem at its place. The
/// names of those that passed come back.
pub(crate) fn run(
    plan: &Plan,
    examples: &[(Piece<'_>, ExampleSpec)],
    problems: &mut Problems<'_>,
) -> Vec<String> {
    let mut passed = Vec::with_capacity(examples.len());
    let mut seen: Vec<(&str, At)> = Vec::with_capacity(examples.len());
    for (piece, example) in examples {
        let name = example.name.get_ref().as_str();
        let at = At::of(piece.file, &example.name);
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
            let place = problems.place(*first, piece.file);
            problems.push(
                at,
                format!("a second example named '{name}' (the first is at {place})"),
            );
        }
        seen.push((name, at));
        let text = problems.text(piece.file);
        if let Err((at, message)) = try_example(plan, *piece, example, text) {
            // An inherited example checks the base's rules; the profile may have changed them.
            let inherited = if piece.file == FileId(0) {
                ""
            } else {
                " (inherited: a profile that changes what it checks gives an [[example]] of the \
                 same name, or removes it with remove = true)"
            };
            problems.push(at, format!("example '{name}': {message}{inherited}"));
        } else {
            passed.push(name.to_owned());
        }
    }
    passed
}

fn try_example(
    plan: &Plan,
    piece: Piece<'_>,
    example: &ExampleSpec,
    text: &str,
) -> Result<(), Failure> {
    let file = piece.file;
    let map = example.map.get_ref().as_str();
    if !MAPS.contains(&map) {
        return Err((
            At::of(file, &example.map),
            // Escaped: a diagnostic is one line, and a mistyped `map` may span several.
            format!(
                "unknown map '{}'{}; known: {}",
                map.escape_debug(),
                did_you_mean(map, MAPS.iter().copied()),
                MAPS.join(", ")
            ),
        ));
    }
    let write = map == "write";
    if !write {
        let only_for_writes = [
            ("current", example.current.as_ref().map(|c| At::of(file, c))),
            (
                "clearable",
                example.clearable.as_ref().map(|c| At::of(file, c)),
            ),
            (
                "read_only",
                example.read_only.as_ref().map(|c| At::of(file, c)),
            ),
        ];
        if let Some((key, Some(at))) = only_for_writes.into_iter().find(|(_, at)| at.is_some()) {
            return Err((at, format!("'{key}' only goes with map = \"write\"")));
        }
    }
    let market = Market::read(&example.market, file)?;
    let view = market.view();
    let input_at = At::of(file, &example.input);
    let mut input = document(&example.input, "input", file, text)?;
    let got = match map {
        "card" => {
            // The proxy adds the market's own root to what Voyado answered.
            if let Value::Object(roots) = &mut input {
                roots.entry(MARKET).or_insert_with(|| {
                    let mut market = Map::new();
                    market.insert("currency".to_owned(), Value::from(view.currency));
                    Value::Object(market)
                });
            }
            plan.customer(&input, &view).0
        }
        "transaction" => plan.transaction(&input, &view),
        "consent_definition" => plan.consent_definition(&input, &view),
        "person" => plan.person(&input, &view),
        "receipt" => plan.receipt(&input, &view),
        _ => {
            let current = match &example.current {
                Some(current) => document(current, "current", file, text)?,
                None => Value::Null,
            };
            let list = |l: &Option<Spanned<Vec<String>>>| {
                l.as_ref().map(|l| l.get_ref().clone()).unwrap_or_default()
            };
            let (clearable, ignored) = (list(&example.clearable), list(&example.read_only));
            let now = market.now.to_string();
            let policy = WritePolicy {
                clearable: &clearable,
                ignored: &ignored,
                source: &market.source,
                now: &now,
            };
            match plan.contact_changes(&input, &current, &policy, &view) {
                Ok(changes) => Value::Object(plan.voyado_body(changes)),
                Err(e) => {
                    return Err((
                        input_at,
                        format!("the write is refused: {}: {}", e.field, e.message),
                    ));
                }
            }
        }
    };
    let expect = document(&example.expect, "expect", file, text)?;
    let mut path = Vec::new();
    match difference(&expect, &got, example.exact, &mut path) {
        None => Ok(()),
        Some(message) => Err((
            locate(piece, &path),
            format!("at {}, {message}", shown_path(&path)),
        )),
    }
}

/// A document of an example: a TOML table, or JSON text in a string.
fn document(
    value: &Spanned<toml::Value>,
    what: &str,
    file: FileId,
    text: &str,
) -> Result<Value, Failure> {
    let document = match value.get_ref() {
        toml::Value::String(json_text) => serde_json::from_str(json_text).map_err(|e| {
            // serde_json ends its message with the place in the JSON text, which `at` names.
            let message = e.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(message.as_str(), |i| &message[..i]);
            (
                json_at(text, file, value, &e),
                format!("'{what}' is not JSON: {message}"),
            )
        })?,
        other => json(other),
    };
    if document.is_object() {
        Ok(document)
    } else {
        Err((
            At::of(file, value),
            format!("'{what}' is a document: a table, or a JSON object in a string"),
        ))
    }
}

/// Where in the file a JSON error is: exact inside a literal string (`'...'` or `'''...'''`),
/// whose text is the JSON byte for byte; at the string otherwise.
fn json_at(text: &str, file: FileId, value: &Spanned<toml::Value>, e: &serde_json::Error) -> At {
    let span = value.span();
    let raw = text.get(span.clone()).unwrap_or_default();
    let content = if raw.starts_with("'''") {
        // TOML drops a newline right after the opening quotes.
        let after = span.start + 3;
        let rest = &text[after..];
        after
            + if rest.starts_with("\r\n") {
                2
            } else {
                usize::from(rest.starts_with('\n'))
            }
    } else if raw.starts_with('\'') {
        span.start + 1
    } else {
        return At {
            file,
            offset: span.start,
        };
    };
    let mut offset = content;
    for _ in 1..e.line() {
        match text[offset..].find('\n') {
            Some(i) => offset += i + 1,
            None => break,
        }
    }
    At {
        file,
        offset: (offset + e.column().saturating_sub(1)).min(span.end),
    }
}

/// One step of a path into a JSON document.
enum Step<'v> {
    Key(&'v str),
    Index(usize),
}

fn shown_path(path: &[Step<'_>]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "the top".to_owned()
    } else {
        out
    }
}

/// A value as compact JSON, cut short if long.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The first place `got` does not match `expect`, as a message; `path` is left pointing at it.
fn difference<'v>(
    expect: &'v Value,
    got: &'v Value,
    exact: bool,
    path: &mut Vec<Step<'v>>,
) -> Option<String> {
    match (expect, got) {
        (Value::Object(expect), Value::Object(got)) => {
            for (key, e) in expect {
                path.push(Step::Key(key));
                let Some(g) = got.get(key) else {
                    return Some(format!("expected {}, got nothing", shown(e)));
                };
                if let Some(message) = difference(e, g, exact, path) {
                    return Some(message);
                }
                path.pop();
            }
            let extra = got
                .iter()
                .find(|(key, _)| exact && !expect.contains_key(*key));
            extra.map(|(key, g)| {
                path.push(Step::Key(key));
                format!("expected nothing, got {}", shown(g))
            })
        }
        (Value::Array(expected), Value::Array(items)) => {
            for (i, (e, g)) in expected.iter().zip(items).enumerate() {
                path.push(Step::Index(i));
                if let Some(message) = difference(e, g, exact, path) {
                    return Some(message);
                }
                path.pop();
            }
            (expected.len() != items.len()).then(|| {
                format!(
                    "expected {} items, got {}: {}",
                    expected.len(),
                    items.len(),
                    shown(got)
                )
            })
        }
        _ if expect == got => None,
        _ => Some(format!("expected {}, got {}", shown(expect), shown(got))),
    }
}

/// The place of a difference: the value in `expect` as deep along `path` as the file has it (a
/// JSON `expect` is one string, so its start).
fn locate(piece: Piece<'_>, path: &[Step<'_>]) -> At {
    let Some(mut node) = piece
        .node
        .get_ref()
        .as_table()
        .and_then(|t| t.get("expect"))
    else {
        return piece.at();
    };
    for step in path {
        let next = match (step, node.get_ref()) {
            (Step::Key(key), DeValue::Table(table)) => table.get(*key),
            (Step::Index(i), DeValue::Array(items)) => items.get(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => break,
        }
    }
    At::of(piece.file, node)
}
