//! The mapping engine against golden fixture pairs and hand-made edge cases.

use jiff::tz::TimeZone;
use serde_json::{Value, json};

use super::*;

mod diagnostics;
mod examples;
mod extends;
mod loader;

fn plan() -> Plan {
    Plan::compile(include_str!("../../mappings/default.toml"), "default.toml").unwrap()
}

pub(super) fn with_market<T>(
    consent_map: &[(String, String)],
    f: impl FnOnce(&MarketView<'_>) -> T,
) -> T {
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
    // The section's example shows the points too: without the rule, without them.
    let without_points = format!("{}{}", &text[..cut], &text[cut + end..])
        .replace("    { text = \"2451\", type = \"text\" },\n", "");
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

/// Where each occurrence of `needle` starts in `text`, as `file:line:col`: a test names the
/// place a problem must be reported at by the text written there.
pub(crate) fn places(file: &str, text: &str, needle: &str) -> Vec<String> {
    text.match_indices(needle)
        .map(|(offset, _)| {
            let before = &text[..offset];
            let line = before.matches('\n').count() + 1;
            let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
                .chars()
                .count()
                + 1;
            format!("{file}:{line}:{column}")
        })
        .collect()
}

/// A `file:line:col` place moved `by` columns to the right.
pub(crate) fn right(place: &str, by: usize) -> String {
    let (head, column) = place.rsplit_once(':').unwrap();
    format!("{head}:{}", column.parse::<usize>().unwrap() + by)
}

#[test]
fn load_errors_are_all_reported_at_their_lines() {
    let text = include_str!("../../mappings/default.toml")
        .replace("codec = \"table:gender\"", "codec = \"table:genders\"")
        .replace("codec = \"unix_seconds\"", "codec = \"unix_secs\"")
        .replace(
            "from = \"transaction.storeName\"",
            "from = \"transaction..storeName\"",
        );
    let error = Plan::compile(&text, "broken.toml").unwrap_err();
    let at = |needle| places("broken.toml", &text, needle);
    let genders = at("\"table:genders\"");
    assert_eq!(genders.len(), 2, "the field and the person lookup");
    let lines: Vec<String> = error.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            format!(
                "{}: unknown table 'genders' (did you mean 'gender'?)",
                genders[0]
            ),
            format!(
                "{}: unknown codec 'unix_secs' (did you mean 'unix_seconds'?); known: text, \
                 string, int, bool, date, local_date, unix_seconds, decimal, money, consents, \
                 consent_id, table:NAME, flags:NAME",
                at("\"unix_secs\"")[0]
            ),
            format!(
                "{}: empty segment in path 'transaction..storeName'",
                at("\"transaction..storeName\"")[0]
            ),
            format!(
                "{}: unknown table 'genders' (did you mean 'gender'?)",
                genders[1]
            ),
        ]
    );
    assert_eq!(error.to_string(), lines.join("\n"));
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

/// Property tests: the default profile over arbitrary Voyado JSON and arbitrary SPI bodies (§6.6,
/// "no input panics"). Every mapping answers a value or a typed error.
mod properties {
    use std::sync::LazyLock;

    use proptest::collection::vec;
    use proptest::option::weighted;
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};
    use serde_json::{Map, Number, Value};

    use super::super::path::get_keys;
    use super::super::*;

    static PLAN: LazyLock<Plan> = LazyLock::new(super::plan);

    /// Stands for the case's marker in generated text; `\PC` never generates a private-use char.
    const TOKEN: &str = "\u{E000}";

    /// Names the default profile reads (Voyado side) and writes (SPI side), and the source roots.
    #[rustfmt::skip]
    const NAMES: &[&str] = &[
        "id", "attributes", "firstName", "lastName", "email", "mobilePhone",
        "socialSecurityNumber", "birthDay", "street", "city", "zipCode", "countryCode",
        "gender", "store", "memberNumber", "meta", "approved", "contactType", "preferences",
        "acceptsEmail", "acceptsSms", "acceptsPostal", "consents", "value", "source", "date",
        "localValues", "amount", "currency", "items", "name", "redeemed", "expiresOn",
        "redemptionChannels", "type", "valueType", "statusColor", "statusText", "balance",
        "transactionNumber", "externalId", "createdDate", "storeName", "localCurrency",
        "localNetPriceSum", "numberOfItems", "totalCount", "metaData", "displayText",
        "conditionText", "sv-SE", "nb-NO", "mobilePhoneNumber", "phoneNumber", "country",
        "unregisteredFromOnlineRegisterInformation", "customer_id", "member_number",
        "name_first", "name_last", "mobile", "personal_id", "birth_date", "invoice_address",
        "address", "zip", "country_id", "store_id_home", "accepts_communication", "contact",
        "promotions", "bonus_checks", "points", "status", "market", "transaction", "definition",
        "default", "person", "key",
    ];

    /// Dates, money and keys as Voyado or a POS might send them, well-formed or nearly.
    #[rustfmt::skip]
    const TEXTS: &[&str] = &[
        "", " ", "2026-13-45", "2026-02-30", "2026-01-02", "2026-01-02T10:00:00+01:00",
        "2026-01-02T10:00:00", "2026-01-02T10:00:00Z", "9999-12-31T23:59:59Z",
        "-009999-01-01T00:00:00Z", "0000-00-00", "31/12/1999", "45/13/2026", "01/02/-5",
        "18/12/1981", "1981-12-18", "1970-01-01", "2999-01-01", "100.005", "-0", "0.005",
        "2.005", "-2.005", "1e3", "1E-28", "1e400", "-1e-400", "9e99999999999", "1e-4294967296",
        "79228162514264337593543950335", "79228162514264337593543950336",
        "-79228162514264337593543950336", "0.0000000000000000000000000001",
        "7922816251426433759354395033.5", "NaN", "inf", "SEK", "NOK", "EUR", "POS", "ECOM",
        "PERCENT", "MONEY", "MANUAL", "Member", "Male", "Female", "male", "female", "other",
        "email", "sms", "mail", "fax", "a@b.se", " Jane@Example.com ", "0701112233",
        "070-111 22 33", "41234567", "+4741234567", "0047 412 34 567", "811218-9876",
        "19811218-9876", "811218+9876", "131052-308T", "SE", "no", "Sweden", "v_offers",
        "offers", "a26d8975-3b86-43c0-9b12-a86401074770", "é", "日本", "\u{0}", "𝕏", "..%2F",
    ];

    // Built once per test thread: a debug build takes long to compile the `\PC` classes, and the
    // generators are cloned into every field below.
    thread_local! {
        static TEXT: BoxedStrategy<String> = prop_oneof![
            4 => select(TEXTS).prop_map(str::to_owned),
            2 => "\\PC{0,24}",
            1 => "-?[0-9]{1,30}(\\.[0-9]{0,30})?([eE]-?[0-9]{1,12})?",
            1 => concat!(
                "[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}",
                "(T[0-9]{2}:[0-9]{2}:[0-9]{2}([+-][0-9]{2}:[0-9]{2}|Z)?)?",
            ),
            1 => "[0-9]{1,3}/[0-9]{1,3}/-?[0-9]{1,6}",
            2 => dates(),
            // Text that holds the marker, alone or inside something plausible.
            2 => (select(TEXTS), select(TEXTS)).prop_map(|(a, b)| format!("{a}{TOKEN}{b}")),
        ]
        .boxed();

        static KEY: BoxedStrategy<String> = prop_oneof![
            6 => select(NAMES).prop_map(str::to_owned),
            2 => "\\PC{0,8}",
            1 => Just(TOKEN.to_owned()),
        ]
        .boxed();

        /// Any JSON, with keys mostly from the names the profile reads.
        static JSON: BoxedStrategy<Value> = scalar()
            .prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..6).prop_map(Value::Array),
                    vec((key(), inner), 0..6)
                        .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
                ]
            })
            .boxed();
    }

    /// Dates and date-times over jiff's whole range of years, valid or not, in the shapes Voyado
    /// and a POS use.
    fn dates() -> impl Strategy<Value = String> {
        (-9999i16..=9999, 0u8..=13, 0u8..=32, 0u8..5).prop_map(|(y, m, d, shape)| match shape {
            0 => format!("{y:04}-{m:02}-{d:02}"),
            1 => format!("{d:02}/{m:02}/{y:04}"),
            2 => format!("{y:04}-{m:02}-{d:02}T23:59:59+14:00"),
            3 => format!("{y:04}-{m:02}-{d:02}T00:00:00Z"),
            _ => format!("{y:04}-{m:02}-{d:02}T12:00:00"),
        })
    }

    /// A field that holds a date: usually one, else any scalar.
    fn date() -> BoxedStrategy<Value> {
        mostly(dates().prop_map(Value::String).boxed())
    }

    fn text() -> BoxedStrategy<String> {
        TEXT.with(Clone::clone)
    }

    fn key() -> BoxedStrategy<String> {
        KEY.with(Clone::clone)
    }

    pub(super) fn json() -> BoxedStrategy<Value> {
        JSON.with(Clone::clone)
    }

    fn number() -> BoxedStrategy<Value> {
        let float = |f: f64| Number::from_f64(f).map_or(Value::Null, Value::Number);
        let floats = &[
            0.0, -0.0, 0.1, 2.005, -2.005, 100.005, 1e28, 7.9e28, 1e308, -1e308, 5e-324,
        ];
        // Around jiff's timestamp range, and the ends of the integer types.
        let ints = &[
            i64::MIN,
            i64::MAX,
            253_402_207_200,
            253_402_207_201,
            -377_705_116_800,
        ];
        prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1000i64..1000).prop_map(Value::from),
            any::<f64>().prop_map(float),
            select(&floats[..]).prop_map(float),
            select(&ints[..]).prop_map(Value::from),
            Just(Value::from(u64::MAX)),
        ]
        .boxed()
    }

    fn scalar() -> BoxedStrategy<Value> {
        prop_oneof![
            1 => Just(Value::Null),
            1 => any::<bool>().prop_map(Value::Bool),
            2 => number(),
            4 => text().prop_map(Value::String),
        ]
        .boxed()
    }

    /// An object shaped like a Voyado one: each named field usually present, with arbitrary extra
    /// keys.
    fn shaped(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
        let fields: Vec<_> = fields
            .into_iter()
            .map(|(name, value)| weighted(0.85, value).prop_map(move |v| v.map(|v| (name, v))))
            .collect();
        (fields, vec((key(), json()), 0..2))
            .prop_map(|(named, extra)| {
                let mut map: Map<String, Value> = extra.into_iter().collect();
                for (name, value) in named.into_iter().flatten() {
                    map.insert(name.to_owned(), value);
                }
                Value::Object(map)
            })
            .boxed()
    }

    /// Mostly the expected shape, sometimes anything at all.
    fn or_any(shape: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
        prop_oneof![6 => shape, 1 => json()].boxed()
    }

    fn list(item: BoxedStrategy<Value>, max: usize) -> BoxedStrategy<Value> {
        or_any(vec(item, 0..max).prop_map(Value::Array).boxed())
    }

    /// One of a few strings the profile decides on.
    fn one_of(texts: &'static [&'static str]) -> BoxedStrategy<Value> {
        select(texts).prop_map(Value::from).boxed()
    }

    /// Usually a plausible value, else any scalar.
    fn mostly(plausible: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
        prop_oneof![3 => plausible, 1 => scalar()].boxed()
    }

    fn flag() -> BoxedStrategy<Value> {
        mostly(any::<bool>().prop_map(Value::Bool).boxed())
    }

    /// An expiry: none, passed, far ahead, or odd.
    fn expiry() -> BoxedStrategy<Value> {
        let dates = &[
            "2020-01-01T00:00:00Z",
            "2999-01-01",
            "2099-06-30T12:00:00",
            "2026-13-45",
        ];
        prop_oneof![2 => Just(Value::Null), 2 => one_of(dates), 1 => date()].boxed()
    }

    fn amount() -> BoxedStrategy<Value> {
        or_any(shaped(vec![
            ("amount", mostly(number())),
            (
                "currency",
                mostly(one_of(&["SEK", "NOK", "SEK", "NOK", "EUR", "sek"])),
            ),
        ]))
    }

    fn money_fields() -> Vec<(&'static str, BoxedStrategy<Value>)> {
        vec![("value", amount()), ("localValues", list(amount(), 4))]
    }

    /// A promotion's redemption channel: a POS percent, POS money, or some other mix.
    fn channel() -> BoxedStrategy<Value> {
        let pos = || mostly(one_of(&["POS"]));
        let percent = shaped(vec![
            ("type", pos()),
            ("valueType", mostly(one_of(&["PERCENT"]))),
            ("value", mostly((0i64..=100).prop_map(Value::from).boxed())),
        ]);
        let mut money = money_fields();
        money.push(("type", pos()));
        money.push(("valueType", mostly(one_of(&["MONEY"]))));
        let other = shaped(vec![
            ("type", mostly(one_of(&["POS", "ECOM", "pos"]))),
            ("valueType", mostly(one_of(&["PERCENT", "MONEY", "MANUAL"]))),
            ("value", prop_oneof![amount(), scalar()].boxed()),
        ]);
        or_any(prop_oneof![2 => percent, 2 => shaped(money), 1 => other].boxed())
    }

    /// A promotion, or a bonus check (which carries its money itself).
    fn voucher(promotion: bool) -> BoxedStrategy<Value> {
        let mut fields = vec![
            ("id", scalar()),
            ("name", scalar()),
            ("redeemed", flag()),
            ("expiresOn", expiry()),
        ];
        if promotion {
            fields.push(("redemptionChannels", list(channel(), 3)));
        } else {
            fields.extend(money_fields());
        }
        or_any(shaped(fields))
    }

    pub(super) fn contact() -> BoxedStrategy<Value> {
        let attributes = [
            "firstName",
            "lastName",
            "email",
            "mobilePhone",
            "socialSecurityNumber",
            "street",
            "city",
            "zipCode",
            "countryCode",
            "gender",
            "store",
            "memberNumber",
        ]
        .into_iter()
        .map(|name| (name, scalar()))
        .chain([("birthDay", date())])
        .collect();
        let flags = ["acceptsEmail", "acceptsSms", "acceptsPostal"]
            .into_iter()
            .map(|name| (name, flag()))
            .collect();
        let consent = shaped(vec![
            (
                "id",
                mostly(one_of(&["v_offers", "v_terms", "offers", "keep"])),
            ),
            ("value", flag()),
        ]);
        let meta = shaped(vec![
            ("approved", flag()),
            ("contactType", mostly(one_of(&["Member", "Contact"]))),
        ]);
        or_any(shaped(vec![
            ("id", scalar()),
            ("attributes", or_any(shaped(attributes))),
            ("meta", or_any(meta)),
            ("preferences", or_any(shaped(flags))),
            ("consents", list(consent, 4)),
        ]))
    }

    /// The card's source document: `{contact, promotions, bonus_checks, points, status, market}`.
    pub(super) fn card_source() -> BoxedStrategy<Value> {
        let points = shaped(vec![(
            "items",
            list(shaped(vec![("balance", scalar())]), 3),
        )]);
        let status = shaped(vec![("statusColor", scalar()), ("statusText", scalar())]);
        let market = shaped(vec![("currency", mostly(one_of(&["SEK", "NOK"])))]);
        let bonus_checks = shaped(vec![("items", list(voucher(false), 4))]);
        or_any(shaped(vec![
            (CONTACT, contact()),
            (PROMOTIONS, list(voucher(true), 4)),
            (BONUS_CHECKS, or_any(bonus_checks)),
            (POINTS, or_any(points)),
            (STATUS, or_any(status)),
            (MARKET, or_any(market)),
        ]))
    }

    /// What the POS might send for one SPI field: values the profile takes, and (in a dirty body)
    /// values it refuses, values holding the marker, and anything at all.
    struct SpiField {
        name: &'static str,
        good: &'static [&'static str],
        bad: &'static [&'static str],
        list: bool,
    }

    const NAME_TEXTS: &[&str] = &["Anna", "Street 1", "Göteborg", "411 01", "  ", "日本"];

    const SPI_FIELDS: &[SpiField] = &[
        SpiField {
            name: "customer_id",
            good: &["a26d8975-3b86-43c0-9b12-a86401074770"],
            bad: &["..%2F"],
            list: false,
        },
        SpiField {
            name: "member_number",
            good: &["12345"],
            bad: &[""],
            list: false,
        },
        SpiField {
            name: "email",
            good: &["a@b.se", " Jane@Example.com "],
            bad: &["x@y", "a b@c.se"],
            list: false,
        },
        SpiField {
            name: "name_first",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "name_last",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "mobile",
            good: &["0701112233", "070-111 22 33", "41234567", "+4741234567"],
            bad: &["12", "0701112233é"],
            list: false,
        },
        SpiField {
            name: "personal_id",
            good: &["811218-9876", "19811218-9876", "811218+9876"],
            bad: &["131052-308T", "811218-9877", "131052-30é"],
            list: false,
        },
        SpiField {
            name: "birth_date",
            good: &["1981-12-18", "18/12/1981", "1981-12-18T10:00:00Z"],
            bad: &["2026-13-45", "01/02/-5"],
            list: false,
        },
        SpiField {
            name: "gender",
            good: &["male", "female", "other"],
            bad: &["Female"],
            list: false,
        },
        SpiField {
            name: "store_id_home",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "accepts_communication",
            good: &["email", "sms", "mail"],
            bad: &["fax"],
            list: true,
        },
        SpiField {
            name: "consents",
            good: &["offers", "terms"],
            bad: &["consent_personal_offers"],
            list: true,
        },
    ];

    const ADDRESS_FIELDS: &[SpiField] = &[
        SpiField {
            name: "address",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "city",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "zip",
            good: NAME_TEXTS,
            bad: &[],
            list: false,
        },
        SpiField {
            name: "country_id",
            good: &["SE", "no"],
            bad: &["Sweden", "XX"],
            list: false,
        },
    ];

    fn spi_value(field: &SpiField, dirty: bool) -> BoxedStrategy<Value> {
        let good = select(field.good).prop_map(str::to_owned);
        let texts = if dirty {
            let known: Vec<&str> = field.good.iter().chain(field.bad).copied().collect();
            let marked = select(known.clone()).prop_map(|p| format!("{p}{TOKEN}"));
            prop_oneof![
                3 => good,
                2 => select(known).prop_map(str::to_owned),
                2 => marked,
                1 => text(),
            ]
            .boxed()
        } else {
            good.boxed()
        };
        let value = if field.list {
            vec(texts, 0..4)
                .prop_map(|l| Value::Array(l.into_iter().map(Value::from).collect()))
                .boxed()
        } else {
            texts.prop_map(Value::String).boxed()
        };
        if dirty {
            prop_oneof![6 => value, 1 => scalar(), 1 => json()].boxed()
        } else {
            value
        }
    }

    fn spi_object(fields: &'static [SpiField], dirty: bool) -> BoxedStrategy<Value> {
        let fields: Vec<_> = fields
            .iter()
            .map(|f| weighted(0.4, spi_value(f, dirty)).prop_map(move |v| v.map(|v| (f.name, v))))
            .collect();
        fields
            .prop_map(|named| {
                let pairs = named.into_iter().flatten();
                Value::Object(pairs.map(|(k, v)| (k.to_owned(), v)).collect())
            })
            .boxed()
    }

    /// An SPI customer body: clean (every value one the profile takes), dirty, or anything.
    pub(super) fn spi_body() -> BoxedStrategy<Value> {
        let body = |dirty: bool| {
            let address = if dirty {
                prop_oneof![4 => spi_object(ADDRESS_FIELDS, true), 1 => scalar()].boxed()
            } else {
                spi_object(ADDRESS_FIELDS, false)
            };
            (spi_object(SPI_FIELDS, dirty), weighted(0.4, address)).prop_map(
                |(mut body, address)| {
                    if let (Value::Object(map), Some(address)) = (&mut body, address) {
                        map.insert("invoice_address".to_owned(), address);
                    }
                    body
                },
            )
        };
        prop_oneof![3 => body(false), 4 => body(true), 1 => json()].boxed()
    }

    /// A Voyado transaction, consent definition and person: the fields the profile reads.
    fn transaction() -> BoxedStrategy<Value> {
        let names = [
            "id",
            "transactionNumber",
            "externalId",
            "storeName",
            "localCurrency",
            "localNetPriceSum",
            "numberOfItems",
        ];
        let mut fields: Vec<_> = names.into_iter().map(|n| (n, scalar())).collect();
        fields.push(("createdDate", date()));
        or_any(shaped(fields))
    }

    fn definition() -> BoxedStrategy<Value> {
        let text = shaped(vec![("sv-SE", scalar()), ("nb-NO", scalar())]);
        let meta = shaped(vec![("displayText", text.clone()), ("conditionText", text)]);
        or_any(shaped(vec![
            ("id", mostly(one_of(&["v_offers", "offers", ""]))),
            ("name", scalar()),
            ("metaData", or_any(meta)),
        ]))
    }

    fn person() -> BoxedStrategy<Value> {
        let names = [
            "firstName",
            "lastName",
            "mobilePhoneNumber",
            "phoneNumber",
            "gender",
            "street",
            "city",
            "zipCode",
            "country",
            "unregisteredFromOnlineRegisterInformation",
        ];
        let mut fields: Vec<_> = names.into_iter().map(|n| (n, scalar())).collect();
        fields.push(("birthDay", date()));
        or_any(shaped(fields))
    }

    /// SPI fields a market may let a `null` clear, or ignore in an edit.
    const CLEARABLE: &[&str] = &["name_last", "mobile", "email", "birth_date", "gender"];
    const IGNORED: &[&str] = &["email", "mobile", "consents", "invoice_address.city"];

    /// A marker no message of the engine could hold by chance: letters and digits alternating.
    fn marker() -> impl Strategy<Value = String> {
        "([A-Z][0-9]){5}"
    }

    /// Puts the marker wherever the generators left [`TOKEN`], in keys and in text.
    fn mark(value: &mut Value, marker: &str) {
        match value {
            Value::String(s) => *s = s.replace(TOKEN, marker),
            Value::Array(items) => items.iter_mut().for_each(|v| mark(v, marker)),
            Value::Object(map) => {
                *map = std::mem::take(map)
                    .into_iter()
                    .map(|(k, mut v)| {
                        mark(&mut v, marker);
                        (k.replace(TOKEN, marker), v)
                    })
                    .collect();
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn instants() -> impl Strategy<Value = jiff::Timestamp> {
        prop_oneof![
            4 => 1_700_000_000i64..1_900_000_000,
            1 => jiff::Timestamp::MIN.as_second()..=jiff::Timestamp::MAX.as_second(),
        ]
        .prop_map(|s| jiff::Timestamp::from_second(s).unwrap())
    }

    /// A Swedish or a Norwegian market, with or without a consent id map.
    fn in_market<T>(
        norway: bool,
        mapped: bool,
        now: jiff::Timestamp,
        f: impl FnOnce(&MarketView<'_>) -> T,
    ) -> T {
        let map = if mapped {
            vec![
                ("offers".to_owned(), "v_offers".to_owned()),
                ("terms".to_owned(), "v_terms".to_owned()),
            ]
        } else {
            Vec::new()
        };
        let (currency, zone, locale, region) = if norway {
            ("NOK", "Europe/Oslo", "nb-NO", "NO")
        } else {
            ("SEK", "Europe/Stockholm", "sv-SE", "SE")
        };
        let tz = TimeZone::get(zone).unwrap();
        f(&MarketView {
            currency,
            timezone: &tz,
            locale,
            region,
            personal_id_region: region,
            consent_map: &map,
            now,
        })
    }

    /// An error names a profile field (or a parent of one, or the body) and never carries input.
    fn check_field_error(e: &FieldError, marker: &str) -> Result<(), TestCaseError> {
        let names_a_field = e.field == "body"
            || PLAN
                .fields
                .iter()
                .any(|f| f.spi == e.field || f.spi.starts_with(&format!("{}.", e.field)));
        prop_assert!(names_a_field, "{e:?}");
        prop_assert!(!e.message.is_empty(), "{e:?}");
        prop_assert!(
            !e.message.contains(marker),
            "the message holds input: {e:?}"
        );
        prop_assert!(!e.field.contains(marker), "the field holds input: {e:?}");
        Ok(())
    }

    proptest! {
        // A debug build spends most of a case in the default ChaCha generator; XorShift and these
        // counts keep the whole module to a few seconds.
        #![proptest_config(ProptestConfig {
            cases: 192,
            rng_algorithm: proptest::test_runner::RngAlgorithm::XorShift,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_card_source_maps_to_an_object(
            source in card_source(),
            norway in any::<bool>(),
            mapped in any::<bool>(),
            now in instants(),
        ) {
            let (customer, omitted) = in_market(norway, mapped, now, |m| PLAN.customer(&source, m));
            prop_assert!(customer.is_object(), "{customer}");
            // Only items of a list (promotions, bonus checks) are ever left out.
            let items = |root: &str| PLAN.list_items(&source[root]).len()
                + source[root].as_array().map_or(0, Vec::len);
            prop_assert!(
                omitted <= items(PROMOTIONS) + items(BONUS_CHECKS),
                "{omitted} left out of {source}"
            );
        }

        #[test]
        fn any_transaction_definition_or_person_maps_to_an_object(
            transaction in transaction(),
            definition in definition(),
            default in json(),
            person in person(),
            key in json(),
            whole in json(),
            norway in any::<bool>(),
            now in instants(),
        ) {
            in_market(norway, false, now, |m| -> Result<(), TestCaseError> {
                let out = PLAN.transaction(&serde_json::json!({ TRANSACTION: transaction }), m);
                prop_assert!(out.is_object(), "{out}");
                let out = PLAN.consent_definition(
                    &serde_json::json!({ DEFINITION: definition, DEFAULT: default }), m);
                prop_assert!(out.is_object(), "{out}");
                let out = PLAN.person(&serde_json::json!({ PERSON: person, "key": key }), m);
                prop_assert!(out.is_object(), "{out}");
                for out in [
                    PLAN.transaction(&whole, m),
                    PLAN.consent_definition(&whole, m),
                    PLAN.person(&whole, m),
                    PLAN.customer(&whole, m).0,
                ] {
                    prop_assert!(out.is_object(), "{out}");
                }
                Ok(())
            })?;
        }

        #[test]
        fn any_body_gives_changes_or_a_field_error_without_the_value(
            mut body in spi_body(),
            mut current in contact(),
            marker in marker(),
            clearable in subsequence(CLEARABLE, 0..=CLEARABLE.len()),
            ignored in subsequence(IGNORED, 0..=IGNORED.len()),
            norway in any::<bool>(),
            mapped in any::<bool>(),
        ) {
            mark(&mut body, &marker);
            mark(&mut current, &marker);
            let clearable: Vec<String> = clearable.into_iter().map(str::to_owned).collect();
            let ignored: Vec<String> = ignored.into_iter().map(str::to_owned).collect();
            let policy = super::policy(&clearable, &ignored);
            let now = jiff::Timestamp::from_second(1_795_000_000).unwrap();
            let result = in_market(norway, mapped, now, |m| {
                PLAN.contact_changes(&body, &current, &policy, m)
            });
            match result {
                Ok(changes) => {
                    for f in &PLAN.fields {
                        if !f.write || ignored.contains(&f.spi) {
                            prop_assert!(
                                get_keys(&Value::Object(changes.clone()), &f.voyado_keys).is_none(),
                                "{} is not written here: {changes:?}", f.spi
                            );
                        }
                    }
                    let flat = PLAN.voyado_body(changes);
                    prop_assert!(!flat.contains_key(&PLAN.write_flatten), "{flat:?}");
                }
                Err(e) => check_field_error(&e, &marker)?,
            }
        }

        #[test]
        fn any_key_value_is_normalised_or_a_field_error(
            mut body in spi_body(),
            marker in marker(),
            key in select(&["email", "mobile", "personal_id", "member_number", "nope"][..]),
            norway in any::<bool>(),
        ) {
            mark(&mut body, &marker);
            let now = jiff::Timestamp::from_second(1_795_000_000).unwrap();
            match in_market(norway, false, now, |m| PLAN.key_value(key, &body, m)) {
                Ok(value) => {
                    prop_assert!(!value.is_empty() && value.trim() == value, "{value:?}");
                }
                Err(e) if key == "nope" => prop_assert_eq!(e.field, key),
                Err(e) => check_field_error(&e, &marker)?,
            }
        }

        #[test]
        fn list_accessors_never_panic(
            list in prop_oneof![
                shaped(vec![("items", list(voucher(true), 4)), ("totalCount", scalar())]),
                list(voucher(false), 4),
                json(),
            ],
            contact in contact(),
            now in instants(),
        ) {
            let p = &*PLAN;
            let total = p.transaction_total(&list);
            prop_assert!(total.is_none() || total == list["totalCount"].as_u64());
            let mut all: Vec<&Value> = vec![&list, &contact];
            all.extend(p.list_items(&list));
            all.extend(p.transaction_items(&list));
            for item in all {
                if let Some(id) = p.item_id(item) {
                    prop_assert_eq!(&item["id"], &Value::from(id));
                }
                if p.item_redeemed(item) {
                    prop_assert_eq!(&item["redeemed"], &Value::Bool(true));
                }
                // Expiry is monotonic in time: expired now means expired ever after.
                prop_assert!(!p.item_expired(item, jiff::Timestamp::MIN));
                if p.item_expired(item, now) {
                    prop_assert!(p.item_expired(item, jiff::Timestamp::MAX));
                }
                if p.has_pos_channel(item) {
                    let channels = item["redemptionChannels"].as_array();
                    prop_assert!(channels.is_some_and(|c| c.iter().any(|c| c["type"] == "POS")));
                }
                if let Some(number) = p.member_number(item) {
                    prop_assert!(!number.is_empty());
                }
                if !p.is_approved(item) {
                    prop_assert_eq!(&item["meta"]["approved"], &Value::Bool(false));
                }
                let t = p.transaction_time(item);
                prop_assert!(
                    t == i64::MIN
                        || (jiff::Timestamp::MIN.as_second()..=jiff::Timestamp::MAX.as_second())
                            .contains(&t),
                    "{t}"
                );
            }
        }
    }
}
