//! The mapping engine against golden fixture pairs and hand-made edge cases.

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::*;

fn plan() -> Plan {
    Plan::compile(include_str!("../../mappings/default.toml"), "default.toml").unwrap()
}

fn with_market<T>(consent_map: &[(String, String)], f: impl FnOnce(&MarketView<'_>) -> T) -> T {
    let tz = TimeZone::get("Europe/Stockholm").unwrap();
    let view = MarketView {
        currency: "SEK",
        timezone: &tz,
        locale: "sv-SE",
        region: "SE",
        personal_id_region: "SE",
        consent_map,
        now: jiff::Timestamp::now(),
    };
    f(&view)
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/mapping/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn card_matches_the_golden_fixture() {
    let source = fixture("card-source.json");
    let (customer, omitted) = with_market(&[], |m| plan().customer(&source, m));
    assert_eq!(customer, fixture("card-expected.json"));
    // The EUR-only bonus check and the ECOM promotion with a MANUAL value have nothing to show.
    assert_eq!(omitted, 1);
}

#[test]
fn card_needs_follow_the_rules() {
    let needs = plan().card_needs();
    assert!(needs.promotions && needs.bonus_checks && needs.points && needs.status);
    let text = include_str!("../../mappings/default.toml");
    let cut = text
        .find("[[card.items.fields.items]]\nwhen = \"points")
        .unwrap();
    let end = text[cut..]
        .find("[[card.items.fields.items]]\nwhen = \"contact")
        .unwrap();
    let without_points = format!("{}{}", &text[..cut], &text[cut + end..]);
    let needs = Plan::compile(&without_points, "x").unwrap().card_needs();
    assert!(
        !needs.points,
        "no rule reads points: no point-accounts call"
    );
}

#[test]
fn consents_go_through_the_market_map() {
    let contact = json!({"contact": {"consents": [
        {"id": "v_offers", "value": true}, {"id": "v_terms", "value": false}, {"id": "unmapped", "value": true}
    ]}});
    let map = vec![
        ("offers".to_owned(), "v_offers".to_owned()),
        ("terms".to_owned(), "v_terms".to_owned()),
    ];
    let (customer, _) = with_market(&map, |m| plan().customer(&contact, m));
    assert_eq!(customer["consents"], json!(["offers"]));
}

fn policy<'a>(clearable: &'a [String], ignored: &'a [String]) -> WritePolicy<'a> {
    WritePolicy {
        clearable,
        ignored,
        source: "POS",
        now: "2026-11-27T10:00:00Z",
    }
}

#[test]
fn create_body_is_flat_and_normalised() {
    let body = json!({
        "customer_id": "ignored", "member_number": "ignored", "promotions": [1],
        "email": " Jane@Example.com ", "name_first": "Jane", "name_last": "",
        "mobile": "070-111 22 33", "birth_date": "01/02/1990", "gender": "female",
        "invoice_address": {"address": "Street 1", "country_id": "se"},
        "accepts_communication": ["email"], "consents": ["consent_personal_offers"],
        "unknown_field": true
    });
    let changes = with_market(&[], |m| {
        plan()
            .contact_changes(&body, &Value::Null, &policy(&[], &[]), m)
            .unwrap()
    });
    let voyado = Value::Object(plan().voyado_body(changes));
    assert_eq!(
        voyado,
        json!({
            "email": "Jane@Example.com", "firstName": "Jane", "mobilePhone": "+46701112233",
            "birthDay": "1990-02-01", "gender": "Female", "street": "Street 1", "countryCode": "SE",
            "preferences": {"acceptsEmail": true},
            "consents": [{"id": "consent_personal_offers", "value": true, "source": "POS",
                          "date": "2026-11-27T10:00:00Z"}]
        })
    );
}

#[test]
fn update_sends_only_changes_and_never_resets_consents() {
    let current = json!({
        "id": "x", "attributes": {"firstName": "Anna", "lastName": "A", "birthDay": "18/12/1981", "email": "a@b.se"},
        "preferences": {"acceptsEmail": true, "acceptsSms": false, "acceptsPostal": true},
        "consents": [{"id": "keep", "value": true}, {"id": "drop", "value": true}, {"id": "never", "value": false}]
    });
    let body = json!({
        "name_first": "Anna", "name_last": null, "birth_date": "1981-12-18", "email": "",
        "mobile": null, "accepts_communication": ["email", "sms"], "consents": ["keep", "new"]
    });
    let clearable = vec!["name_last".to_owned(), "mobile".to_owned()];
    let changes = with_market(&[], |m| {
        plan()
            .contact_changes(&body, &current, &policy(&clearable, &[]), m)
            .unwrap()
    });
    assert_eq!(
        Value::Object(changes),
        json!({
            "attributes": {"lastName": null},
            "preferences": {"acceptsSms": true, "acceptsPostal": false},
            "consents": [
                {"id": "new", "value": true, "source": "POS", "date": "2026-11-27T10:00:00Z"},
                {"id": "drop", "value": false, "source": "POS", "date": "2026-11-27T10:00:00Z"}
            ]
        })
    );
}

#[test]
fn nothing_to_write_when_body_matches() {
    let current =
        json!({"attributes": {"firstName": "Anna"}, "preferences": {"acceptsEmail": true}});
    let body = json!({"name_first": "Anna", "accepts_communication": ["email"]});
    let changes = with_market(&[], |m| {
        plan()
            .contact_changes(&body, &current, &policy(&[], &[]), m)
            .unwrap()
    });
    assert!(changes.is_empty());
}

#[test]
fn read_only_fields_for_edits_are_ignored() {
    let body = json!({"email": "new@example.com", "name_first": "New"});
    let ignored = vec!["email".to_owned()];
    let changes = with_market(&[], |m| {
        plan()
            .contact_changes(&body, &json!({}), &policy(&[], &ignored), m)
            .unwrap()
    });
    assert_eq!(
        Value::Object(changes),
        json!({"attributes": {"firstName": "New"}})
    );
}

#[test]
fn bad_values_name_their_field() {
    let cases = [
        (json!([1]), "body"),
        (json!({"email": "nope"}), "email"),
        (json!({"email": 7}), "email"),
        (json!({"mobile": "12"}), "mobile"),
        (json!({"personal_id": "19811218-9877"}), "personal_id"),
        (json!({"birth_date": "1981-13-01"}), "birth_date"),
        (json!({"gender": "robot"}), "gender"),
        (json!({"invoice_address": "Street"}), "invoice_address"),
        (
            json!({"invoice_address": {"country_id": "Sweden"}}),
            "invoice_address.country_id",
        ),
        (
            json!({"accepts_communication": ["fax"]}),
            "accepts_communication",
        ),
        (
            json!({"accepts_communication": "email"}),
            "accepts_communication",
        ),
        (json!({"consents": [1]}), "consents"),
    ];
    for (body, field) in cases {
        let error = with_market(&[], |m| {
            plan()
                .contact_changes(&body, &Value::Null, &policy(&[], &[]), m)
                .unwrap_err()
        });
        assert_eq!(error.field, field, "{body}");
    }
}

#[test]
fn key_value_is_required_and_normalised() {
    with_market(&[], |m| {
        let p = plan();
        assert_eq!(
            p.key_value("email", &json!({"email": " a@b.se"}), m)
                .unwrap(),
            "a@b.se"
        );
        assert_eq!(
            p.key_value("email", &json!({"name_first": "x"}), m)
                .unwrap_err()
                .field,
            "email"
        );
        assert_eq!(
            p.key_value("email", &json!({"email": ""}), m)
                .unwrap_err()
                .field,
            "email"
        );
    });
}

#[test]
fn load_errors_are_all_reported() {
    let text = include_str!("../../mappings/default.toml")
        .replace("codec = \"table:gender\"", "codec = \"table:genders\"")
        .replace("codec = \"unix_seconds\"", "codec = \"unix_secs\"")
        .replace(
            "from = \"transaction.storeName\"",
            "from = \"transaction..storeName\"",
        );
    let error = Plan::compile(&text, "broken.toml").unwrap_err();
    let all = error.to_string();
    assert_eq!(error.errors.len(), 4, "{all}");
    assert!(all.contains("unknown table 'genders'"), "{all}");
    assert!(all.contains("unknown codec 'unix_secs'"), "{all}");
    assert!(all.contains("empty segment"), "{all}");
    assert!(all.starts_with("broken.toml: "), "{all}");
}

#[test]
fn transactions_money_and_dates() {
    let source = json!({"transaction": {"id": 7, "transactionNumber": "R1", "externalId": "o-1",
        "createdDate": "2026-01-02T10:00:00+01:00", "storeName": "S", "localCurrency": "SEK",
        "localNetPriceSum": 99.5, "numberOfItems": 2.0}});
    let out = with_market(&[], |m| plan().transaction(&source, m));
    assert_eq!(
        out,
        json!({"transaction_id": "7", "receipt_number": "R1", "external_id": "o-1",
               "date": 1_767_344_400, "store_name": "S", "currency_code": "SEK",
               "total": "99.50", "items_count": 2})
    );
}
