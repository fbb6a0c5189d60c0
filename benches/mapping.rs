//! Micro benchmarks of the mapping engine: the customer card from a Voyado source document (a
//! contact alone, and the full fixture card), and the write plan of an edit. `cargo bench --bench mapping`; figures in BENCHMARKS.md.

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use sitoo_voyado_proxy::mapping::{MarketView, Plan, WritePolicy};

fn main() {
    // The first phone parse loads the metadata; the server does this at start too.
    sitoo_voyado_proxy::keys::warm_up_phone_metadata();
    divan::main();
}

fn plan() -> Plan {
    Plan::compile(include_str!("../mappings/default.toml"), "default.toml").unwrap()
}

fn card_source() -> Value {
    serde_json::from_str(include_str!("../fixtures/mapping/card-source.json")).unwrap()
}

fn sweden(tz: &TimeZone) -> MarketView<'_> {
    MarketView {
        currency: "SEK",
        timezone: tz,
        locale: "sv-SE",
        region: "SE",
        personal_id_region: "SE",
        consent_map: &[],
        now: jiff::Timestamp::now(),
    }
}

#[divan::bench]
fn compile_default_profile(bencher: divan::Bencher) {
    let text = include_str!("../mappings/default.toml");
    bencher.bench(|| Plan::compile(divan::black_box(text), "default.toml").unwrap());
}

#[divan::bench]
fn customer_card(bencher: divan::Bencher) {
    let plan = plan();
    let source = card_source();
    let tz = TimeZone::get("Europe/Stockholm").unwrap();
    let market = sweden(&tz);
    bencher.bench_local(|| plan.customer(divan::black_box(&source), &market));
}

/// The card of a contact alone (no promotions, bonus checks, points or status): the contact
/// fields, voucher passwords and defaults — issue 8's "5 µs for a contact".
#[divan::bench]
fn contact_card(bencher: divan::Bencher) {
    let plan = plan();
    let full = card_source();
    let source = json!({"contact": full["contact"], "market": full["market"]});
    let tz = TimeZone::get("Europe/Stockholm").unwrap();
    let market = sweden(&tz);
    bencher.bench_local(|| plan.customer(divan::black_box(&source), &market));
}

#[divan::bench]
fn edit_changes(bencher: divan::Bencher) {
    let plan = plan();
    let source = card_source();
    let current = &source["contact"];
    let body = json!({
        "name_first": "Anna", "name_last": "Berg", "email": "", "mobile": "0701112244",
        "invoice_address": {"city": "Malmö"}, "accepts_communication": ["email", "sms"],
        "consents": ["consent_personal_offers", "consent_sms_offers"]
    });
    let tz = TimeZone::get("Europe/Stockholm").unwrap();
    let market = sweden(&tz);
    let policy = WritePolicy {
        clearable: &[],
        ignored: &[],
        source: "POS",
        now: "2026-11-27T10:00:00Z",
    };
    bencher.bench_local(|| {
        plan.contact_changes(divan::black_box(&body), current, &policy, &market)
            .unwrap()
    });
}
