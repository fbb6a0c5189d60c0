//! `[[example]]`: a profile whose rules disagree with an example does not load, and the problem
//! shows the first difference at its place; an example's own mistakes are placed too.

use super::super::Plan;
use super::{places, right};

const DEFAULT: &str = include_str!("../../../mappings/default.toml");
const OPTIONS: &str = include_str!("../../../fixtures/mapping/options.toml");

fn problems(text: &str) -> Vec<String> {
    match Plan::compile(text, "p.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

fn at(text: &str, needle: &str) -> String {
    places("p.toml", text, needle)[0].clone()
}

/// The default profile with one more example.
fn with_example(example: &str) -> String {
    format!("{DEFAULT}\n[[example]]\n{example}")
}

#[test]
fn a_rule_that_disagrees_with_an_example_refuses_the_profile_with_the_difference() {
    // The edit example's `expect` is JSON: the difference is placed at the string.
    let text = DEFAULT.replacen("sms = \"acceptsSms\"", "sms = \"acceptsSMS\"", 1);
    assert_eq!(
        problems(&text),
        [format!(
            "{}: example 'an edit writes only what changed': at preferences.acceptsSms, expected \
             true, got nothing",
            right(&at(&text, "expect = '''\n{\"lastName\""), 9)
        )]
    );
    // A TOML `expect` places it at the value that differs; a list that differs in length shows
    // what came out.
    let text = DEFAULT.replacen("skip_expired = \"expiresOn\"\n", "", 1);
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    let prefix = format!(
        "{}: example 'promotions the till can redeem': at promotions, expected 3 items, got 4: \
         [{{\"name\":\"10% Off\"",
        at(&text, "[[example.expect.promotions]]")
    );
    assert!(found[0].starts_with(&prefix), "{found:?}");
    assert!(
        found[0].ends_with('…'),
        "a long value is cut short: {found:?}"
    );
    let text = DEFAULT.replacen("value = \"Member number\"", "value = \"Member no\"", 1);
    assert_eq!(
        problems(&text),
        [format!(
            "{}: example 'bonus points and member number in a section': at \
             sections[0].values[1].title, expected \"Member number\", got \"Member no\"",
            right(&at(&text, "title = \"Member number\""), 8)
        )]
    );
}

#[test]
fn exact_compares_every_key_and_a_pattern_only_those_it_lists() {
    let example = "name = \"bare\"\nmap = \"card\"\ninput = { contact = { id = \"c-1\" } }\n\
                   expect = { customer_id = \"c-1\", status = { color = \"green\" } }\n";
    assert_eq!(problems(&with_example(example)), Vec::<String>::new());
    let text = with_example(&format!("{example}exact = true\n"));
    assert_eq!(
        problems(&text),
        [format!(
            "{}: example 'bare': at status.text, expected nothing, got \"\"",
            at(&text, "{ color = \"green\" } }\nexact")
        )]
    );
    let text = with_example(&example.replace("color = \"green\"", "color = \"green\", shade = 1"));
    assert_eq!(
        problems(&text),
        [format!(
            "{}: example 'bare': at status.shade, expected 1, got nothing",
            at(&text, "1 } }")
        )]
    );
}

#[test]
fn the_market_of_an_example_decides_what_it_sees() {
    let example = "name = \"euro\"\nmap = \"card\"\ninput = { bonus_checks = { items = [{ id = \
                   \"b\", value = { amount = 10, currency = \"EUR\" } }] } }\nexpect = { \
                   bonus_checks = [{ value = \"10.00\", currency_code = \"EUR\" }] }\n";
    let text = with_example(&format!("{example}market = {{ currency = \"EUR\" }}\n"));
    assert_eq!(problems(&text), Vec::<String>::new());
    // In the default market (SEK) a euro bonus check has nothing to show.
    let text = with_example(example);
    assert_eq!(
        problems(&text),
        [format!(
            "{}: example 'euro': at bonus_checks, expected 1 items, got 0: []",
            at(&text, "[{ value = \"10.00\"")
        )]
    );
    // `now` decides what has expired.
    let expiring = example.replace(
        "currency = \"EUR\" } }]",
        "currency = \"EUR\" }, expiresOn = \"2029-12-31\" }]",
    );
    let market = |now: &str| format!("market = {{ currency = \"EUR\", now = \"{now}\" }}\n");
    let text = with_example(&format!("{expiring}{}", market("2029-12-30T00:00:00Z")));
    assert_eq!(problems(&text), Vec::<String>::new());
    let text = with_example(&format!("{expiring}{}", market("2030-01-01T00:00:00Z")));
    assert_eq!(problems(&text).len(), 1, "{:?}", problems(&text));
}

#[test]
fn an_examples_own_mistakes_are_placed() {
    let cases = [
        (
            "name = \"x\"\nmap = \"crad\"\ninput = {}\nexpect = {}\n",
            "\"crad\"",
            0,
            "unknown map 'crad' (did you mean 'card'?); known: card, transaction, \
             consent_definition, person, receipt, write",
        ),
        (
            "name = \"x\"\nmap = \"card\"\ninput = {}\ncurrent = {}\nexpect = {}\n",
            "{}\nexpect",
            0,
            "'current' only goes with map = \"write\"",
        ),
        (
            "name = \"x\"\nmap = \"card\"\ninput = '''\n{\"contact\": {\"id\": \"c-1\",}}\n'''\n\
             expect = {}\n",
            ",}}",
            1,
            "'input' is not JSON: trailing comma",
        ),
        (
            "name = \"x\"\nmap = \"card\"\ninput = '{\"contact\": {\"id\": 1,}}'\nexpect = {}\n",
            ",}}",
            1,
            "'input' is not JSON: trailing comma",
        ),
        // A basic string's escapes move the text about: its start is the place.
        (
            "name = \"x\"\nmap = \"card\"\ninput = \"{\\\"contact\\\": {,}}\"\nexpect = {}\n",
            "\"{\\\"contact",
            0,
            "'input' is not JSON: key must be a string",
        ),
        (
            "name = \"x\"\nmap = \"card\"\ninput = \"[1]\"\nexpect = {}\n",
            "\"[1]\"",
            0,
            "'input' is a document: a table, or a JSON object in a string",
        ),
        (
            "name = \"x\"\nmap = \"card\"\ninput = {}\nexpect = {}\n\
             market = { timezone = \"Mars/Olympus\" }\n",
            "\"Mars/Olympus\"",
            0,
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            "name = \"x\"\nmap = \"write\"\ninput = { gender = \"robot\" }\nexpect = {}\n",
            "{ gender",
            0,
            "the write is refused: gender: must be one of female, male, other",
        ),
    ];
    for (example, needle, by, message) in cases {
        let text = with_example(example);
        assert_eq!(
            problems(&text),
            [format!(
                "{}: example 'x': {message}",
                right(&at(&text, needle), by)
            )],
            "{example}"
        );
    }
    let text = with_example("name = \"member status\"\nmap = \"card\"\ninput = {}\nexpect = {}\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: a second example named 'member status' (the first is at line {})",
            places("p.toml", &text, "\"member status\"")[1],
            at(&text, "name = \"member status\"")
                .split(':')
                .nth(1)
                .unwrap()
        )]
    );
    // A misspelt key of an example is a problem like any other.
    let text = with_example("name = \"x\"\nmap = \"card\"\ninput = {}\nexpected = {}\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown field `expected`, expected one of `name`, `map`, `input`, `current`, \
             `expect`, `exact`, `market`, `clearable`, `read_only` (did you mean 'expect'?)",
            at(&text, "expected = ")
        )]
    );
}

#[test]
fn a_profile_that_maps_options_carries_examples_of_them() {
    let profile = format!("{DEFAULT}\n{OPTIONS}");
    assert_eq!(problems(&profile), Vec::<String>::new());
    let text = profile.replacen("\ntennis = \"Tennis\"", "\ntennis = \"Tenis\"", 1);
    assert_eq!(
        problems(&text),
        [
            format!(
                "{}: example 'options on the card': at additional_options[1].enum_values[0], \
                 expected \"tennis\", got \"hockey\"",
                right(&at(&text, "enum_values = [\"tennis\", \"hockey\"]"), 15)
            ),
            format!(
                "{}: example 'options from the till': at sports[1], expected \"Tennis\", got \
                 \"Tenis\"",
                right(&at(&text, "[\"Curling\", \"Tennis\"] }"), 12)
            ),
        ]
    );
}
