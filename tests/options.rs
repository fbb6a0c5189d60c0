//! Additional options end to end: a market whose profile maps two options — the default profile
//! with `fixtures/mapping/options.toml` appended: `fav-nhl-team` (single choice, Voyado
//! `favNhlTeam`) and `sports` (multi choice, Voyado `sports`) — the proxy and the Voyado simulator
//! each on its own socket.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{ANNA, Answer, BO, DEMO_KEY, Harness};
use reqwest::Method;
use serde_json::{Value, json};
use sitoo_voyado_proxy::app;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::sim::{FIXTURE, Simulator};

const OPTIONS: &str = include_str!("../fixtures/mapping/options.toml");
const OPENAPI: &str = include_str!("../docs/openapi.yaml");

/// demo/SE on the `options` profile; `{extra}` adds market keys.
const CONFIG: &str = r#"
listen = "127.0.0.1:0"

[[market]]
tenant = "demo"
market = "SE"
crm_api_keys = ["se-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
mapping = "options"
{extra}
"#;

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A mappings directory with the repository's error and route tables and the `options` profile.
fn mappings_dir() -> PathBuf {
    let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("svp-options-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    for name in ["errors.toml", "routes.toml"] {
        std::fs::copy(repo.join(name), dir.join(name)).unwrap();
    }
    let default = std::fs::read_to_string(repo.join("default.toml")).unwrap();
    std::fs::write(dir.join("options.toml"), format!("{default}\n{OPTIONS}")).unwrap();
    dir
}

/// The simulator's fixture with these attributes added to contacts of the demo tenant.
fn seeded(attributes: &[(&str, Value)]) -> String {
    let mut fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    for tenant in fixture["tenants"].as_array_mut().unwrap() {
        if tenant["api_key"] != DEMO_KEY {
            continue;
        }
        for contact in tenant["contacts"].as_array_mut().unwrap() {
            for (id, values) in attributes {
                if contact["id"] == *id {
                    for (k, v) in values.as_object().unwrap() {
                        contact["attributes"][k] = v.clone();
                    }
                }
            }
        }
    }
    fixture.to_string()
}

/// The proxy on the `options` profile in front of the simulator.
struct Proxy(Harness);

impl std::ops::Deref for Proxy {
    type Target = Harness;

    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl Proxy {
    async fn start() -> Proxy {
        Proxy::with("", &[]).await
    }

    /// With extra market keys, and attributes seeded on contacts (`(contact id, {name: value})`).
    async fn with(extra: &str, attributes: &[(&str, Value)]) -> Proxy {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), &seeded(attributes))
            .await
            .unwrap();
        let text = CONFIG
            .replace("{voyado}", &sim.url())
            .replace("{extra}", extra);
        let dir = mappings_dir();
        let harness = Harness::serve_from(sim, &text, MappingSource::Dir(dir.clone())).await;
        // The plan is compiled: the files are not read again.
        std::fs::remove_dir_all(&dir).unwrap();
        Proxy(harness)
    }

    async fn card(&self, id: &str) -> Value {
        let a = self.get(&format!("/customers/{id}")).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.body
    }

    async fn edit(&self, id: &str, options: Value) -> Answer {
        let body = json!({ "additional_options": options });
        self.send(Method::PUT, &format!("/customers/{id}"), &body)
            .await
    }

    fn attributes(&self, id: &str) -> Value {
        self.sim.contact(DEMO_KEY, id).unwrap()["attributes"].clone()
    }

    /// The bodies of the contact updates Voyado received.
    fn updates(&self, id: &str) -> Vec<Value> {
        let path = format!("/api/v2/contacts/{id}");
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::POST && r.path == path)
            .map(|r| r.body)
            .collect()
    }
}

#[tokio::test]
async fn a_customer_created_with_options_shows_them_on_its_card() {
    let p = Proxy::start().await;
    let body = json!({
        "email": "jane.roe@example.com", "name_first": "Jane",
        "additional_options": [
            {"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]},
            {"id": "sports", "enum_values": ["hockey", "tennis"]},
            {"id": "fav-mlb-team", "enum_values": ["seattle-mariners"]}
        ]
    });
    let a = p.send(Method::POST, "/customers", &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let shown = json!([
        {"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]},
        {"id": "sports", "enum_values": ["hockey", "tennis"]}
    ]);
    assert_eq!(a.body["additional_options"], shown);
    let id = a.body["customer_id"].as_str().unwrap();
    let attributes = p.attributes(id);
    assert_eq!(attributes["favNhlTeam"], "SEA");
    assert_eq!(attributes["sports"], json!(["Hockey", "Tennis"]));
    // The option with no rule reached Voyado in no form.
    let create = p
        .sim
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v2/contacts");
    let sent = create.unwrap().body.to_string();
    assert!(
        !sent.contains("mlb") && !sent.contains("mariners"),
        "{sent}"
    );
    assert_eq!(p.card(id).await["additional_options"], shown);
}

#[tokio::test]
async fn an_edit_writes_only_the_option_that_changed() {
    let seed = json!({"favNhlTeam": "SEA", "sports": ["Hockey"]});
    let p = Proxy::with("", &[(ANNA, seed)]).await;
    let options = json!([
        {"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]},
        {"id": "sports", "enum_values": ["hockey", "tennis"]}
    ]);
    let a = p.edit(ANNA, options.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["additional_options"], options);
    assert_eq!(p.updates(ANNA), [json!({"sports": ["Hockey", "Tennis"]})]);
    assert_eq!(p.attributes(ANNA)["favNhlTeam"], "SEA");
    assert_eq!(p.attributes(ANNA)["sports"], json!(["Hockey", "Tennis"]));

    // The same options again, the list in another order: nothing to write.
    let writes = p.sim.writes();
    let reordered = json!([{"id": "sports", "enum_values": ["tennis", "hockey"]}]);
    assert_eq!(p.edit(ANNA, reordered).await.status, 200);
    assert_eq!(p.sim.writes(), writes);
    assert_eq!(p.updates(ANNA).len(), 1);
}

#[tokio::test]
async fn a_voyado_value_the_table_does_not_know_is_left_out_and_kept() {
    let p = Proxy::with(
        "",
        &[
            (
                ANNA,
                json!({"favNhlTeam": "XYZ", "sports": ["Curling", "Hockey"]}),
            ),
            (BO, json!({"favNhlTeam": "XYZ"})),
        ],
    )
    .await;
    let anna = p.card(ANNA).await;
    assert_eq!(
        anna["additional_options"],
        json!([{"id": "sports", "enum_values": ["hockey"]}])
    );
    // No option with a value the table knows: no additional_options at all.
    let bo = p.card(BO).await;
    assert!(bo.get("additional_options").is_none(), "{bo}");
    assert_eq!(bo["name_first"], "Bo");

    // Curling was never shown to the POS, so an edit of the list keeps it.
    let a = p
        .edit(ANNA, json!([{"id": "sports", "enum_values": ["tennis"]}]))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(p.attributes(ANNA)["sports"], json!(["Curling", "Tennis"]));
    assert_eq!(p.attributes(ANNA)["favNhlTeam"], "XYZ");
}

#[tokio::test]
async fn an_option_id_with_no_rule_is_ignored() {
    let p = Proxy::with("", &[(ANNA, json!({"favNhlTeam": "SEA"}))]).await;
    let a = p
        .edit(
            ANNA,
            json!([{"id": "fav-mlb-team", "enum_values": ["seattle-mariners", "7"]}]),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(p.sim.writes(), 0);
    assert_eq!(
        a.body["additional_options"],
        json!([{"id": "fav-nhl-team", "enum_values": ["seattle-kraken"]}])
    );
    // Ignored, but still an item of the document's shape.
    let b = p
        .edit(
            ANNA,
            json!([{"id": "fav-mlb-team", "enum_values": ["seattle-mariners", 7]}]),
        )
        .await;
    b.assert_error(400, "invalid_input");
    assert_eq!(
        b.message(),
        "additional_options[0].enum_values[1] must be a string"
    );
    assert_eq!(p.sim.writes(), 0);
}

#[tokio::test]
async fn bad_options_are_refused_naming_the_field_before_voyado_is_asked() {
    let p = Proxy::start().await;
    let cases = [
        (json!({"id": "sports"}), "additional_options"),
        (json!(["sports"]), "additional_options[0]"),
        (
            json!([{"enum_values": ["hockey"]}]),
            "additional_options[0].id",
        ),
        (
            json!([{"id": "sports", "enum_values": "hockey"}]),
            "additional_options[0].enum_values",
        ),
        (
            json!([{"id": "sports", "enum_values": ["hockey", "cricket"]}]),
            "additional_options[0].enum_values[1]",
        ),
        (
            json!([{"id": "x"}, {"id": "sports", "enum_values": [["hockey"]]}]),
            "additional_options[1].enum_values[0]",
        ),
        (
            json!([{"id": "fav-nhl-team", "enum_values": ["seattle-kraken", "vancouver-canucks"]}]),
            "additional_options[0].enum_values",
        ),
    ];
    for (options, field) in cases {
        let edit = p.edit(ANNA, options.clone()).await;
        let create = json!({"email": "new@example.com", "additional_options": options});
        let add = p.send(Method::POST, "/customers", &create).await;
        for a in [edit, add] {
            a.assert_field(field);
            // Exactly this field is named; the caller's value never comes back.
            assert_eq!(
                a.message().split(' ').next(),
                Some(field),
                "{}",
                a.message()
            );
            assert!(!a.message().contains("cricket"), "{}", a.message());
        }
    }
    assert!(p.sim.requests().is_empty(), "Voyado was asked");
    assert_eq!(p.sim.writes(), 0);
}

#[tokio::test]
async fn an_empty_enum_values_clears_only_where_the_market_allows() {
    let seed = || [(ANNA, json!({"favNhlTeam": "SEA", "sports": ["Hockey"]}))];
    let clear = json!([{"id": "fav-nhl-team", "enum_values": []}]);

    let kept = Proxy::with("", &seed()).await;
    let a = kept.edit(ANNA, clear.clone()).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(kept.sim.writes(), 0);
    assert_eq!(kept.attributes(ANNA)["favNhlTeam"], "SEA");

    let clearable = Proxy::with(r#"clearable_fields = ["additional_options"]"#, &seed()).await;
    let a = clearable.edit(ANNA, clear).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(clearable.updates(ANNA), [json!({"favNhlTeam": null})]);
    assert!(clearable.attributes(ANNA).get("favNhlTeam").is_none());
    assert_eq!(
        a.body["additional_options"],
        json!([{"id": "sports", "enum_values": ["hockey"]}])
    );
}

#[test]
fn additional_options_is_clearable_only_on_a_profile_that_maps_options() {
    let text = CONFIG
        .replace("{voyado}", "http://127.0.0.1:9")
        .replace("mapping = \"options\"", "")
        .replace("{extra}", r#"clearable_fields = ["additional_options"]"#);
    let config =
        Config::parse(&text, "options test", |_| MappingSource::BuiltIn, |_| None).unwrap();
    let error = app::compile(&config).err().unwrap().to_string();
    assert!(
        error.contains("'additional_options' is not a customer field of the mapping"),
        "{error}"
    );
}

/// The card with options matches the `Customer` schema of `docs/openapi.yaml`.
#[tokio::test]
async fn a_card_with_options_matches_the_openapi_customer_schema() {
    let seed = json!({"favNhlTeam": "TOR", "sports": ["Hockey", "Tennis"]});
    let p = Proxy::with("", &[(ANNA, seed)]).await;
    let card = p.card(ANNA).await;
    assert!(card["additional_options"].is_array(), "{card}");

    let doc: Value = serde_saphyr::from_str(OPENAPI).unwrap();
    let schema = json!({
        "components": {"schemas": doc["components"]["schemas"].clone()},
        "$ref": "#/components/schemas/Customer",
    });
    let mut compiler = boon::Compiler::new();
    compiler.set_default_draft(boon::Draft::V2020_12);
    compiler.enable_format_assertions();
    let mut schemas = boon::Schemas::new();
    let loc = "file:///openapi-customer.json";
    compiler.add_resource(loc, schema).unwrap();
    let index = compiler.compile(loc, &mut schemas).unwrap();
    if let Err(e) = schemas.validate(&card, index) {
        panic!("{e:#}\n{card}");
    }
}
