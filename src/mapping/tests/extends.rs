//! Profiles that extend another: what is inherited, replaced, appended and removed, where a
//! problem of either file is reported, and chains that cannot be resolved.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::{MappingError, Plan};
use super::{fixture, places, plan, policy, right, with_market};

const DEFAULT: &str = include_str!("../../../mappings/default.toml");
const OVERRIDE: &str = include_str!("../../../fixtures/mapping/override.toml");

/// Compiles `top` (named `top.toml`) with these other profiles to extend, by name; each is
/// reported as `NAME.toml`. `default` is always there.
fn compile(top: &str, others: &[(&str, &str)]) -> Result<Plan, MappingError> {
    let mut profiles: BTreeMap<&str, &str> = others.iter().copied().collect();
    profiles.entry("default").or_insert(DEFAULT);
    let read = |name: &str| match profiles.get(name) {
        Some(text) => Ok(((*text).to_owned(), format!("{name}.toml"))),
        None => Err(format!("no profile '{name}'")),
    };
    Plan::compile_with(top, "top.toml", &read)
}

fn problems(top: &str, others: &[(&str, &str)]) -> Vec<String> {
    match compile(top, others) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(ToString::to_string).collect(),
    }
}

fn card(plan: &Plan, source: &Value) -> Value {
    with_market(&[], |m| plan.customer(source, m).0)
}

#[test]
fn an_override_changes_one_field_rule_and_one_table_entry_and_inherits_the_rest() {
    let over = compile(OVERRIDE, &[]).unwrap();
    let mut source = fixture("card-source.json");
    source["contact"]["attributes"]["gender"] = json!("F");
    source["contact"]["attributes"]["createdInStore"] = json!("300");
    let mut expected = card(&plan(), &source);
    assert!(expected.get("gender").is_none(), "the default knows no 'F'");
    assert_eq!(expected["store_id_home"], "200");
    expected["gender"] = json!("female");
    expected["store_id_home"] = json!("300");
    assert_eq!(card(&over, &source), expected);
    // Both ways: the till's "female" is written as this market's "F", "male" as the default's.
    let write = |body: Value| {
        with_market(&[], |m| {
            over.contact_changes(&body, &Value::Null, &policy(&[], &[]), m)
                .map(|c| Value::Object(over.voyado_body(c)))
        })
    };
    assert_eq!(
        write(json!({"gender": "female"})),
        Ok(json!({"gender": "F"}))
    );
    assert_eq!(
        write(json!({"gender": "male"})),
        Ok(json!({"gender": "Male"}))
    );
    // The rest is the default's: sections, search keys, redeem names.
    assert_eq!(over.card_needs(), plan().card_needs());
    assert_eq!(
        over.search_key("email").map(|k| &k.param),
        Some(&"email".to_owned())
    );
    assert_eq!(over.redeem().channel, "POS");
}

#[test]
fn rules_are_replaced_in_place_appended_or_removed_by_their_key() {
    let top = r#"extends = "default"

[[card]]
to = "status.text"
from = "status.statusText"
default = "Member"

[[card]]
to = "loyalty_level"
from = "contact.attributes.level"

[[card]]
to = "voucher_passwords"
remove = true

[[example]]
name = "a member's voucher passwords"
remove = true

[[example]]
name = "a contact with nothing else"
map = "card"
input = { contact = { id = "c-1", attributes = { level = "gold" } } }
expect = { status = { text = "Member" }, loyalty_level = "gold" }

[search.personal_id]
remove = true
"#;
    let p = compile(top, &[]).unwrap();
    let source = json!({"contact": {"id": "c-1", "meta": {"contactType": "Member"},
                        "attributes": {"level": "gold"}}});
    let customer = card(&p, &source);
    assert_eq!(
        customer["status"],
        json!({"color": "green", "text": "Member"})
    );
    assert_eq!(customer["loyalty_level"], "gold");
    assert!(customer.get("voucher_passwords").is_none(), "{customer}");
    assert!(p.search_key("personal_id").is_none());
    assert!(p.search_key("mobile").is_some());
    // A [[field]] is matched by its spi; a second one in the same file is a second rule.
    let top = "extends = \"default\"\n[[field]]\nspi = \"mobile\"\nvoyado = \"attributes.phone\"\n\
               \n[[field]]\nspi = \"mobile\"\nvoyado = \"attributes.cell\"\n";
    assert_eq!(
        problems(top, &[]),
        [format!(
            "{}: a second rule writing 'mobile' (the first is at line 3)",
            places("top.toml", top, "\"mobile\"")[1]
        )]
    );
}

#[test]
fn a_section_is_replaced_whole() {
    let redeem = DEFAULT
        .split("\n[redeem]\n")
        .nth(1)
        .and_then(|rest| rest.split("\n[transactions]").next())
        .unwrap();
    let top = format!(
        "extends = \"default\"\n[redeem]\n{}",
        redeem.replace("channel = \"POS\"", "channel = \"STORE\"")
    );
    assert_eq!(compile(&top, &[]).unwrap().redeem().channel, "STORE");
    // Only one key of it is no section: the others are not taken from the default.
    let top = "extends = \"default\"\n\n[redeem]\nchannel = \"STORE\"\n";
    assert_eq!(
        problems(top, &[]),
        [format!(
            "{}: missing field `bonus_checks`",
            places("top.toml", top, "[redeem]")[0]
        )]
    );
}

#[test]
fn problems_are_reported_in_the_file_that_has_them() {
    let base = DEFAULT.replacen("codec = \"table:gender\"", "codec = \"table:gendr\"", 1);
    let top = "extends = \"base\"\n\n[[card]]\nto = \"name_first\"\nvalue = \"x\"\n\
               \n[[field]]\nspi = \"mobile\"\nvoyado = \"attributes.mobilePhone\"\ncodec = \"phone\"\n";
    assert_eq!(
        problems(top, &[("base", &base)]),
        [
            format!(
                "{}: a second rule writing 'name_first' (the first is at base.toml:{})",
                places("top.toml", top, "\"name_first\"")[0],
                places("base.toml", &base, "spi = \"name_first\"")[0]
                    .split(':')
                    .nth(1)
                    .unwrap()
            ),
            format!(
                "{}: unknown codec 'phone'; known: text, string, int, bool, date, local_date, \
                 unix_seconds, decimal, money, consents, consent_id, table:NAME, flags:NAME",
                places("top.toml", top, "\"phone\"")[0]
            ),
            format!(
                "{}: unknown table 'gendr' (did you mean 'gender'?)",
                places("base.toml", &base, "\"table:gendr\"")[0]
            ),
        ]
    );
    // A syntax error in a base is the base's, at its line.
    let base = DEFAULT.replacen("[status]", "[status", 1);
    assert_eq!(
        problems("extends = \"base\"\n", &[("base", &base)]),
        [format!(
            "{}: unclosed table, expected `]`",
            right(&places("base.toml", &base, "[status")[0], 7)
        )]
    );
}

#[test]
fn an_inherited_example_the_override_breaks_says_how_to_mend_it() {
    let top = "extends = \"default\"\n\n[tables.gender]\nfemale = \"F\"\n";
    let example = places("default.toml", DEFAULT, "gender = \"female\"");
    let value = |place: &str| right(place, 9);
    let mend = "(inherited: a profile that changes what it checks gives an [[example]] of the same \
                name, or removes it with remove = true)";
    assert_eq!(
        problems(top, &[]),
        [
            format!(
                "{}: example 'contact fields': at gender, expected \"female\", got nothing {mend}",
                value(&example[0])
            ),
            format!(
                "{}: example 'a person found by personal id': at gender, expected \"female\", got \
                 nothing {mend}",
                value(&example[1])
            ),
        ]
    );
}

#[test]
fn removing_what_is_not_inherited_is_refused() {
    let top = "extends = \"default\"\n\n[[card]]\nto = \"loyalty\"\nremove = true\n\
               \n[search.passport]\nremove = true\n\n[[person]]\nto = \"gender\"\nremove = 1\n\
               \n[[card]]\nto = \"sections\"\nvalue = []\nremove = true\n";
    let at = |needle, n: usize| places("top.toml", top, needle)[n].clone();
    assert_eq!(
        problems(top, &[]),
        [
            format!(
                "{}: remove = true: no inherited [[card]] with to = \"loyalty\" to remove",
                at("[[card]]", 0)
            ),
            format!(
                "{}: remove = true: no inherited [search.passport] to remove",
                at("[search.passport]", 0)
            ),
            format!(
                "{}: 'remove' takes true (leave it out to keep the element)",
                at("1\n", 0)
            ),
            format!(
                "{}: an element with remove = true holds nothing else ('value' is here too)",
                at("true\n", 2)
            ),
        ]
    );
}

#[test]
fn chains_that_go_round_or_lead_nowhere_are_refused_at_their_extends() {
    let top = "extends = \"b\"\n";
    let b = "# b\nextends = \"top\"\n";
    assert_eq!(
        problems(top, &[("top", top), ("b", b)]),
        ["b.toml:2:11: extends = \"top\" goes round in a circle: top.toml -> b.toml -> top.toml"]
    );
    // A profile that extends itself:
    assert_eq!(
        problems("extends = \"top\"\n", &[("top", "extends = \"top\"\n")]),
        ["top.toml:1:11: extends = \"top\" goes round in a circle: top.toml -> top.toml"]
    );
    assert_eq!(
        problems("\nextends = \"nope\"\n", &[]),
        ["top.toml:2:11: extends = \"nope\": no profile 'nope'"]
    );
    assert_eq!(
        problems("extends = 1\n", &[]),
        ["top.toml:1:11: 'extends' names a profile: extends = \"default\""]
    );
    // Without a resolver there is nothing to extend.
    let error = Plan::compile(OVERRIDE, "override.toml").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{}: extends = \"default\": no mapping profiles to read 'default' from here",
            places("override.toml", OVERRIDE, "\"default\"\n")[0]
        )
    );
}
