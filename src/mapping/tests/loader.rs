//! Property tests of the loader (§6.6, "no input panics"): any text — garbage, TOML made of the
//! profile's own words, or mappings/default.toml with lines deleted, values swapped, the file
//! cut short — loads or is refused with problems placed inside its files, never a panic; and a
//! profile that does load maps any JSON without one.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::Value;

use super::super::{MappingError, Plan};
use super::properties::{card_source, contact, json, spi_body};
use super::{policy, with_market};

const DEFAULT: &str = include_str!("../../../mappings/default.toml");

/// Keys and values a profile uses, and near misses of them.
#[rustfmt::skip]
const KEYS: &[&str] = &[
    "version", "extends", "tables", "voyado", "money", "consent", "status", "add", "redeem",
    "transactions", "search", "lookup", "field", "option", "card", "transaction",
    "consent_definition", "person", "example", "to", "from", "value", "default", "codec", "each",
    "filter", "skip_expired", "fields", "items", "switch", "cases", "collect", "when", "unless",
    "equals", "required", "spi", "check", "write", "id", "kind", "values", "name", "map", "input",
    "current", "expect", "exact", "market", "clearable", "read_only", "remove", "gender", "key",
    "param", "normalize", "timezone", "now", "crad",
];

#[rustfmt::skip]
const VALUES: &[&str] = &[
    "1", "2", "-1", "true", "false", "[]", "{}", "\"\"", "\"default\"", "\"contact.id\"",
    "\"contact.attributes.firstName\"", "\"^market.currency\"", "\"a..b\"", "\"[0]\"", "\"x[\"",
    "\"$locale\"", "\"promotions\"", "\"status.statusColor\"", "\"text\"", "\"money\"",
    "\"table:gender\"", "\"flags:channels\"", "\"table:nope\"", "\"x:y\"", "\"card\"", "\"write\"",
    "\"person\"", "\"single\"", "\"multi\"", "\"email\"", "\"Europe/Stockholm\"", "\"Mars/X\"",
    "'''{\"contact\": {\"id\": \"c\"}}'''", "'''{\"a\": [1, null]}'''", "'''{'''", "\"[1]\"",
    "{ contact = { id = \"c\" } }", "{ to = \"a\", value = 1 }", "[{ to = \"a\", from = \"b\" }]",
    "{ currency = \"NOK\", now = \"2030-01-01T00:00:00Z\" }", "1979-05-27T07:32:00Z", "nan",
];

/// A line of a TOML-ish profile: a header, or a key and a value.
fn line() -> impl Strategy<Value = String> {
    let key = || select(KEYS);
    prop_oneof![
        (key(), key()).prop_map(|(a, b)| format!("[{a}.{b}]")),
        key().prop_map(|k| format!("[{k}]")),
        (key(), proptest::option::of(key())).prop_map(|(a, b)| match b {
            Some(b) => format!("[[{a}.{b}]]"),
            None => format!("[[{a}]]"),
        }),
        (key(), select(VALUES)).prop_map(|(k, v)| format!("{k} = {v}")),
        (key(), select(VALUES)).prop_map(|(k, v)| format!("{k} = {v}")),
        (key(), select(VALUES)).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

/// What is done to default.toml: each picks its lines by an index into the file's lines.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    /// The values of two `key = value` lines change places.
    Swap(usize, usize),
    /// A line of the profile's words put in.
    Insert(usize, String),
    /// The file as an editor might leave it half-saved.
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = || any::<usize>();
    prop_oneof![
        3 => at().prop_map(Mutation::Delete),
        1 => at().prop_map(Mutation::Duplicate),
        3 => (at(), at()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        2 => (at(), line()).prop_map(|(a, l)| Mutation::Insert(a, l)),
        1 => at().prop_map(Mutation::Cut),
    ]
}

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for m in mutations {
        if lines.is_empty() {
            break;
        }
        let n = lines.len();
        match m {
            Mutation::Delete(i) => {
                lines.remove(i % n);
            }
            Mutation::Duplicate(i) => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Mutation::Swap(a, b) => {
                let assignments: Vec<usize> =
                    (0..n).filter(|i| lines[*i].contains(" = ")).collect();
                if assignments.len() > 1 {
                    let (a, b) = (
                        assignments[a % assignments.len()],
                        assignments[b % assignments.len()],
                    );
                    let split = |l: &str| {
                        l.split_once(" = ")
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .unwrap_or_default()
                    };
                    let ((ka, va), (kb, vb)) = (split(&lines[a]), split(&lines[b]));
                    lines[a] = format!("{ka} = {vb}");
                    lines[b] = format!("{kb} = {va}");
                }
            }
            Mutation::Insert(i, line) => lines.insert(i % (n + 1), line.clone()),
            Mutation::Cut(i) => {
                let text = lines.join("\n");
                let mut cut = i % (text.len() + 1);
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                lines = text[..cut].lines().map(str::to_owned).collect();
            }
        }
    }
    lines.join("\n")
}

/// A refused profile's problems are each placed in one of its files, on one of its lines.
fn check_problems(error: &MappingError, files: &[(&str, &str)]) -> Result<(), TestCaseError> {
    prop_assert!(!error.diagnostics.is_empty());
    for d in &error.diagnostics {
        let text = files
            .iter()
            .find(|(name, _)| *name == d.file)
            .map(|(_, t)| *t);
        prop_assert!(text.is_some(), "{d} names a file not in the profile");
        let lines = text.unwrap_or_default().split('\n').count();
        prop_assert!(
            (1..=lines).contains(&d.line),
            "{d}: the file has {lines} lines"
        );
        prop_assert!(d.column >= 1, "{d}");
        prop_assert!(!d.message.is_empty() && !d.message.contains('\n'), "{d}");
    }
    Ok(())
}

/// A profile that loads maps anything: the card, the other reads and a write.
fn check_plan(plan: &Plan, source: &Value, any: &Value, body: &Value, current: &Value) {
    with_market(&[], |m| {
        for doc in [source, any] {
            assert!(plan.customer(doc, m).0.is_object());
            assert!(plan.transaction(doc, m).is_object());
            assert!(plan.consent_definition(doc, m).is_object());
            assert!(plan.person(doc, m).is_object());
        }
        let clearable = vec!["name_last".to_owned(), "additional_options".to_owned()];
        if let Ok(changes) = plan.contact_changes(body, current, &policy(&clearable, &[]), m) {
            plan.voyado_body(changes);
        }
    });
}

proptest! {
    // Each case compiles a profile (a few milliseconds in a debug build).
    #![proptest_config(ProptestConfig {
        cases: 160,
        rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_text_loads_or_is_refused_with_placed_problems(text in prop_oneof![
        "\\PC{0,200}",
        vec(line(), 0..30).prop_map(|lines| lines.join("\n")),
    ]) {
        match Plan::compile(&text, "any.toml") {
            Ok(_) => {}
            Err(e) => check_problems(&e, &[("any.toml", &text)])?,
        }
    }

    #[test]
    fn a_mutated_default_loads_and_maps_anything_or_is_refused_with_placed_problems(
        mutations in vec(mutation(), 1..4),
        source in card_source(),
        any in json(),
        body in spi_body(),
        current in contact(),
    ) {
        let text = mutate(DEFAULT, &mutations);
        match Plan::compile(&text, "default.toml") {
            Ok(plan) => check_plan(&plan, &source, &any, &body, &current),
            Err(e) => check_problems(&e, &[("default.toml", &text)])?,
        }
    }

    /// An override of the profile's words over a (mutated) default: problems of either file
    /// are placed in that file.
    #[test]
    fn an_override_of_anything_loads_or_is_refused_with_placed_problems(
        lines in vec(line(), 0..12),
        mutations in subsequence(vec![Mutation::Delete(7), Mutation::Swap(40, 41)], 0..=2),
        any in json(),
        body in spi_body(),
    ) {
        let top = format!("extends = \"default\"\n{}", lines.join("\n"));
        let base = mutate(DEFAULT, &mutations);
        let read = |name: &str| match name {
            "default" => Ok((base.clone(), "default.toml".to_owned())),
            _ => Err("no such profile".to_owned()),
        };
        match Plan::compile_with(&top, "top.toml", &read) {
            Ok(plan) => check_plan(&plan, &any, &any, &body, &Value::Null),
            Err(e) => check_problems(&e, &[("top.toml", &top), ("default.toml", &base)])?,
        }
    }
}
