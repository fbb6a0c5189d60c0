//! Each kind of load problem, reported at the file, line and column of what causes it, with its
//! hint. The broken profiles are mappings/default.toml with one thing changed.

use super::super::Plan;
use super::{places, right};

const DEFAULT: &str = include_str!("../../../mappings/default.toml");

/// The problems of `text`, one line each.
fn problems(text: &str) -> Vec<String> {
    match Plan::compile(text, "p.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

/// The default profile with the first `from` replaced by `to` (which must be there).
fn changed(from: &str, to: &str) -> String {
    assert!(DEFAULT.contains(from), "{from}");
    DEFAULT.replacen(from, to, 1)
}

/// Where `needle` first starts in `text`.
fn at(text: &str, needle: &str) -> String {
    places("p.toml", text, needle)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{needle} not in the text"))
}

/// The line `needle` first starts on.
fn line(text: &str, needle: &str) -> String {
    at(text, needle)
        .split(':')
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_default_profile_has_no_problem() {
    assert_eq!(problems(DEFAULT), Vec::<String>::new());
}

#[test]
fn syntax_errors_are_all_reported_where_the_parser_stopped() {
    let text = changed("[redeem]", "[redeem").replacen("[status]", "[status", 1);
    assert_eq!(
        problems(&text),
        [
            format!(
                "{}: unclosed table, expected `]`",
                right(&at(&text, "[status"), 7)
            ),
            format!(
                "{}: unclosed table, expected `]`",
                right(&at(&text, "[redeem"), 7)
            ),
        ]
    );
}

#[test]
fn an_unknown_codec_names_the_closest() {
    let text = changed("codec = \"table:gender\"", "codec = \"tabel:gender\"");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown codec 'tabel:gender' (did you mean 'table:gender'?); known: text, \
             string, int, bool, date, local_date, unix_seconds, decimal, money, consents, \
             consent_id, table:NAME, flags:NAME",
            at(&text, "\"tabel:gender\"")
        )]
    );
}

#[test]
fn an_unknown_table_names_the_closest() {
    let text = changed("codec = \"flags:channels\"", "codec = \"flags:chanels\"");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown table 'chanels' (did you mean 'channels'?)",
            at(&text, "\"flags:chanels\"")
        )]
    );
}

#[test]
fn an_unknown_source_root_names_the_roots() {
    let text = changed(
        "from = \"contact.attributes.memberNumber\"",
        "from = \"contcat.attributes.memberNumber\"",
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown source root 'contcat' (did you mean 'contact'?); card roots: contact, \
             promotions, bonus_checks, points, status, market",
            at(&text, "\"contcat.attributes")
        )]
    );
    // Each group has its own roots; inside `each` a path reads the item, unless it starts at ^.
    let text = changed(
        "from = \"^market.currency\"",
        "from = \"^markets.currency\"",
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown source root 'markets' (did you mean 'market'?); card roots: contact, \
             promotions, bonus_checks, points, status, market",
            at(&text, "\"^markets")
        )]
    );
    let text = changed(
        "from = \"person.firstName\"",
        "from = \"contact.firstName\"",
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown source root 'contact'; person roots: person, key",
            at(&text, "\"contact.firstName\"")
        )]
    );
}

#[test]
fn a_second_rule_on_one_target_points_at_the_first() {
    let text = format!("{DEFAULT}\n[[card]]\nto = \"gender\"\nvalue = \"x\"\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: a second rule writing 'gender' (the first is at line {})",
            at(&text, "\"gender\"\nvalue"),
            line(&text, "spi = \"gender\"")
        )]
    );
    // Two contact fields on one Voyado field would write it twice.
    let text = changed(
        "voyado = \"attributes.store\"",
        "voyado = \"attributes.firstName\"",
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{}: a second rule writing Voyado 'attributes.firstName' (the first is at line {})",
            at(
                &text,
                "\"attributes.firstName\"\n\n[[field]]\nspi = \"accepts"
            ),
            line(&text, "voyado = \"attributes.firstName\"")
        )]
    );
}

#[test]
fn a_path_through_a_value_another_rule_writes_is_refused() {
    let text = format!("{DEFAULT}\n[[card]]\nto = \"status.color.shade\"\nvalue = \"x\"\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: 'status.color.shade' goes through 'status.color', which the rule at line {} \
             writes as one value",
            at(&text, "\"status.color.shade\""),
            line(&text, "to = \"status.color\"")
        )]
    );
    let text = format!("{DEFAULT}\n[[card]]\nto = \"invoice_address\"\nvalue = {{}}\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: 'invoice_address' would overwrite 'invoice_address.address', which the rule at \
             line {} writes",
            at(&text, "\"invoice_address\"\nvalue"),
            line(&text, "spi = \"invoice_address.address\"")
        )]
    );
}

#[test]
fn unknown_keys_and_values_name_the_closest() {
    let text = changed("to = \"status.text\"\nfrom", "to = \"status.text\"\nform");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown field `form`, expected one of `to`, `from`, `value`, `default`, \
             `codec`, `each`, `filter`, `skip_expired`, `fields`, `items`, `switch`, `cases`, \
             `collect`, `when`, `unless`, `equals`, `required` (did you mean 'from'?)",
            at(&text, "form = ")
        )]
    );
    let text = changed("check = \"email\"", "check = \"emial\"");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown variant `emial`, expected one of `trim`, `email`, `phone`, \
             `personal_id`, `country`, `date` (did you mean 'email'?)",
            at(&text, "\"emial\"")
        )]
    );
    let text = changed("version = 1\n", "version = 1\ncrad = []\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unknown key 'crad' (did you mean 'card'?)",
            at(&text, "crad")
        )]
    );
}

#[test]
fn wrong_types_missing_sections_and_bad_references_are_placed() {
    let text = changed("write = false\n", "write = \"no\"\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: invalid type: string \"no\", expected a boolean",
            at(&text, "\"no\"")
        )]
    );
    let text = changed("version = 1", "version = 2");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: version 2 is not supported (1 is)",
            right(&at(&text, "version = 2"), 10)
        )]
    );
    let text = changed("[add]\nkey = \"email\"", "");
    assert_eq!(problems(&text), ["p.toml:1:1: missing the [add] section"]);
    let text = changed("key = \"email\"", "key = \"emails\"");
    let key = at(&text, "\"emails\"");
    assert_eq!(
        problems(&text),
        [
            format!("{key}: no [[field]] has spi = \"emails\" (did you mean 'email'?)"),
            format!("{key}: no [search.emails] to look it up"),
        ]
    );
    let text = changed(
        "pos_channel = \"redemptionChannels[type=POS]\"",
        "pos_channel = \"redemptionChannels[type=POS\"",
    );
    assert_eq!(
        problems(&text),
        [format!(
            "{}: unclosed '[' in path 'redemptionChannels[type=POS'",
            at(&text, "\"redemptionChannels[type=POS\"")
        )]
    );
    // `remove` is for a profile that extends another.
    let text = changed("spi = \"gender\"\n", "spi = \"gender\"\nremove = true\n");
    assert_eq!(
        problems(&text),
        [format!(
            "{}: 'remove' only goes in a profile that extends another",
            right(&at(&text, "remove = true"), 9)
        )]
    );
}
