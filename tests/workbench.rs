//! The mapping workbench over real sockets, in front of the demo's simulators: its JSON
//! endpoints over plain HTTP (token, paste and fetch, draft, edit and order previews, privacy),
//! then the page itself in headless chromium driven through chromedriver (WebDriver). Without
//! chromium and chromedriver on PATH the browser test says so in one line and passes, unless
//! `CI` is set (`.ci/run` installs both). With `SVP_WORKBENCH_SCREENSHOT=1` it also writes the
//! README's screenshot, `docs/workbench.png`.

#[path = "support/child.rs"]
mod child;
mod common;
use child::Killed;

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::Captured;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::Secret;
use sitoo_voyado_proxy::demo::{self, Simulators};
use sitoo_voyado_proxy::server::serve;
use tokio::net::TcpListener;

const ANNA: &str = "8f0c1d2e-0000-4000-8000-000000000001";
const TOKEN: &str = "workbench-test-token-0123";

/// The demo's proxy (with the admin token, or open as the demo is) on a free loopback port.
struct Running {
    base: String,
    sims: Simulators,
    _app: Arc<App>,
}

async fn start(token: Option<&str>) -> Running {
    let (sims, mut config) = demo::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    if let Some(token) = token {
        config.admin.token = Some(serde_json::from_value::<Secret>(json!(token)).unwrap());
    }
    let app = App::build(&config).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, app.clone(), std::future::pending()));
    Running {
        base,
        sims,
        _app: app,
    }
}

impl Running {
    async fn api(
        &self,
        name: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let client = reqwest::Client::new();
        let url = format!("{}/workbench/api/{name}", self.base);
        let mut request = match &body {
            Some(body) => client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
            None => client.get(url),
        };
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn ok(&self, name: &str, body: Value) -> Value {
        let (status, answer) = self.api(name, Some(TOKEN), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}

/// Anna as the demo's Voyado holds her.
fn anna() -> Value {
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/voyado.json")).unwrap();
    fixture["tenants"][0]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == ANNA)
        .unwrap()
        .clone()
}

/// The 1-based line of the built-in profile that is `text`.
fn profile_line(text: &str) -> usize {
    include_str!("../mappings/default.toml")
        .lines()
        .position(|l| l == text)
        .unwrap()
        + 1
}

fn row<'a>(provenance: &'a Value, field: &str) -> &'a Value {
    provenance
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == field)
        .unwrap_or_else(|| panic!("no provenance for {field}: {provenance}"))
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_refused_and_the_right_one_admitted() {
    let wb = start(Some(TOKEN)).await;
    for token in [None, Some("workbench-test-token-0124")] {
        let (status, answer) = wb.api("markets", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(answer["error"].as_str().unwrap().contains("Bearer"));
    }
    let (status, answer) = wb.api("markets", Some(TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
    let markets: Vec<&str> = answer["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["market"].as_str().unwrap())
        .collect();
    assert_eq!(markets, ["demo/SE", "demo/NO"]);
}

#[tokio::test]
async fn a_pasted_contact_becomes_the_card_with_each_fields_rule() {
    let wb = start(Some(TOKEN)).await;
    let answer = wb
        .ok("card", json!({"market": "demo/SE", "voyado": anna()}))
        .await;
    let card = &answer["card"];
    assert_eq!(card["document"]["name_first"], "Anna");
    let first = row(&card["provenance"], "name_first");
    assert_eq!(
        first["rule"],
        format!(
            "mappings/default.toml:{}",
            profile_line("spi = \"name_first\"")
        )
    );
    assert_eq!(first["reads"], json!(["contact.attributes.firstName"]));
    assert_eq!(first["codec"], "text");
    assert_eq!(first["outcome"], "made");
    // A bare contact has no answers beside it: the status takes its default, and says why.
    let color = row(&card["provenance"], "status.color");
    assert_eq!(color["outcome"], "default");
    assert_eq!(color["why"], "no value at \"status.statusColor\"");
    assert_eq!(
        answer["voyado"],
        anna(),
        "the Voyado side is what was pasted"
    );
}

#[tokio::test]
async fn a_contact_fetched_by_id_is_read_only_through_the_market_client() {
    let wb = start(Some(TOKEN)).await;
    let answer = wb
        .ok("card", json!({"market": "demo/SE", "contact_id": ANNA}))
        .await;
    assert_eq!(answer["voyado"]["contact"]["id"], ANNA);
    assert_eq!(answer["card"]["document"]["name_first"], "Anna");
    assert!(
        !answer["card"]["document"]["bonus_checks"]
            .as_array()
            .unwrap()
            .is_empty(),
        "the card's other reads came along: {answer}"
    );
    let seen = wb.sims.voyado.requests();
    assert!(!seen.is_empty());
    for request in &seen {
        assert_eq!(request.method, http::Method::GET, "{}", request.path);
        assert!(!request.path.contains("lookup"), "never a person lookup");
    }
    assert_eq!(wb.sims.voyado.writes(), 0);
    let (status, refused) = wb
        .api(
            "card",
            Some(TOKEN),
            Some(json!({"market": "demo/SE", "contact_id": "10012"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(refused["field"], "contact_id");
    let (status, refused) = wb
        .api(
            "card",
            Some(TOKEN),
            Some(
                json!({"market": "demo/SE", "contact_id": "00000000-0000-4000-8000-00000000beef"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
}

#[tokio::test]
async fn a_broken_draft_is_placed_at_its_line_and_a_changed_one_shows_both_cards() {
    let wb = start(Some(TOKEN)).await;
    let profile = wb.ok("profile", json!({"market": "demo/SE"})).await;
    let text = profile["text"].as_str().unwrap();
    assert_eq!(profile["file"], "mappings/default.toml");
    let line = profile_line("voyado = \"attributes.firstName\"");
    let broken = text.replace(
        "voyado = \"attributes.firstName\"",
        "voyado = \"attributes.firstName\"\ncodec = \"txet\"",
    );
    let answer = wb
        .ok("draft", json!({"market": "demo/SE", "profile": broken}))
        .await;
    assert_eq!(answer["compiles"], false);
    let first = &answer["diagnostics"][0];
    assert_eq!(first["line"], line + 1, "{answer}");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'text'")
    );

    let recoloured = text.replace(
        "from = \"status.statusColor\"\ndefault = \"green\"",
        "from = \"status.statusColor\"\ndefault = \"blue\"",
    );
    assert_ne!(recoloured, text);
    let answer = wb
        .ok(
            "draft",
            json!({"market": "demo/SE", "profile": recoloured, "voyado": anna()}),
        )
        .await;
    // The example that checks the colour says so, at its line; the others pass; the card under
    // the draft is shown all the same.
    assert_eq!(answer["compiles"], false);
    let broken = answer["diagnostics"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(
        broken[0]["message"]
            .as_str()
            .unwrap()
            .contains("expected \"green\", got \"blue\"")
    );
    assert!(!answer["examples"].as_array().unwrap().is_empty());
    assert_eq!(answer["draft"]["document"]["status"]["color"], "blue");
    assert_eq!(answer["in_service"]["document"]["status"]["color"], "green");
    // Nothing changed in service.
    let again = wb
        .ok("card", json!({"market": "demo/SE", "voyado": anna()}))
        .await;
    assert_eq!(again["card"]["document"]["status"]["color"], "green");
}

#[tokio::test]
async fn an_edit_shows_the_voyado_write_it_would_send_and_sends_nothing() {
    let wb = start(Some(TOKEN)).await;
    let answer = wb
        .ok(
            "write",
            json!({"market": "demo/SE", "spi": {"name_last": "Berg", "name_first": ""}, "current": anna()}),
        )
        .await;
    assert_eq!(answer["method"], "POST");
    assert_eq!(answer["path"], format!("/api/v2/contacts/{ANNA}"));
    assert_eq!(answer["write"]["document"], json!({"lastName": "Berg"}));
    let provenance = &answer["write"]["provenance"];
    assert_eq!(row(provenance, "lastName")["outcome"], "made");
    assert_eq!(
        row(provenance, "firstName")["why"],
        "an empty string changes nothing"
    );
    let create = wb
        .ok(
            "write",
            json!({"market": "demo/SE", "spi": {"email": "new@example.com", "name_first": "New"}}),
        )
        .await;
    assert_eq!(create["path"], "/api/v2/contacts");
    assert_eq!(create["write"]["document"]["firstName"], "New");
    assert_eq!(wb.sims.voyado.writes(), 0, "a preview is never sent");
}

#[tokio::test]
async fn an_order_shows_the_receipt_signs_and_all() {
    let wb = start(Some(TOKEN)).await;
    let fixture: Value = serde_json::from_str(include_str!("../fixtures/sitoo.json")).unwrap();
    let refund = fixture["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["orderid"] == 1002)
        .unwrap()
        .clone();
    let answer = wb
        .ok("receipt", json!({"market": "demo/SE", "order": refund}))
        .await;
    assert_eq!(answer["path"], "/api/v2/receipts");
    let receipt = &answer["receipt"]["document"];
    assert!(receipt.to_string().contains("-200"), "{receipt}");
    let provenance = answer["receipt"]["provenance"].as_array().unwrap();
    assert!(
        provenance.iter().all(|p| p["rule"]
            .as_str()
            .unwrap()
            .starts_with("mappings/default.toml:")),
        "{provenance:?}"
    );
    let (status, refused) = wb
        .api(
            "receipt",
            Some(TOKEN),
            Some(json!({"market": "demo/NO", "order": refund})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("no sitoo_account_id")
    );
}

#[tokio::test]
async fn nothing_the_workbench_is_sent_or_shows_is_logged() {
    let captured = Captured::default();
    captured.install_globally();
    let wb = start(Some(TOKEN)).await;
    wb.ok("card", json!({"market": "demo/SE", "contact_id": ANNA}))
        .await;
    wb.ok("card", json!({"market": "demo/SE", "voyado": anna()}))
        .await;
    wb.api("markets", Some("a-wrong-token-of-some-length"), None)
        .await;
    // The page as a deep link would fetch it.
    reqwest::get(format!(
        "{}/workbench/?market=demo/SE&contact={ANNA}",
        wb.base
    ))
    .await
    .unwrap();
    let logs = captured.text();
    for secret in [
        ANNA,
        "Anna",
        "anna.andersson",
        "0701112233",
        TOKEN,
        "a-wrong-token",
    ] {
        assert!(!logs.contains(secret), "{secret} was logged:\n{logs}");
    }
}

#[tokio::test]
async fn with_an_admin_listener_the_workbench_is_there_only() {
    let (_sims, mut config) = demo::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    config.admin_listen = Some(admin.local_addr().unwrap());
    let app = App::build(&config).unwrap();
    let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let main_at = main.local_addr().unwrap();
    tokio::spawn(serve(main, app.clone(), std::future::pending()));
    let admin_at = admin.local_addr().unwrap();
    tokio::spawn(sitoo_voyado_proxy::server::serve_admin(
        admin,
        app,
        std::future::pending(),
    ));
    let on_main = reqwest::get(format!("http://{main_at}/workbench/api/markets"))
        .await
        .unwrap();
    assert_eq!(on_main.status(), StatusCode::NOT_FOUND);
    let on_admin = reqwest::get(format!("http://{admin_at}/workbench/api/markets"))
        .await
        .unwrap();
    assert_eq!(
        on_admin.status(),
        StatusCode::OK,
        "the demo's is open on loopback"
    );
    let page = reqwest::get(format!("http://{admin_at}/workbench/"))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Mapping workbench"));
}

#[test]
fn the_demo_prints_where_its_workbench_is_and_opens_it() {
    use std::io::{BufRead, BufReader, Read};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let mut demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_sitoo-voyado-proxy"))
            .args(["demo", "--listen", &address])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("LOG_FORMAT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = demo.0.stderr.take().unwrap();
    let wanted = format!("the mapping workbench: http://{address}/workbench/");
    // The line comes before "ready"; the demo runs until it is killed.
    let found = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .take_while(|line| !line.contains("sitoo-voyado-proxy ready"))
        .any(|line| line.contains(&wanted));
    assert!(found, "the demo did not print {wanted}");
    // And it opens without a token.
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .write_all(
            b"GET /workbench/api/markets HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// chromedriver on a free loopback port; killed (and reaped) on drop.
struct Driver {
    _process: Killed,
    port: u16,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// chromedriver with chromium, or `None` (after one line on stderr) when either is missing
/// and `CI` is not set.
async fn driver() -> Option<Driver> {
    if !on_path("chromium") || !on_path("chromedriver") {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium or chromedriver is not on PATH, and CI must not skip the browser test \
             (.ci/run installs them)"
        );
        eprintln!("chromium or chromedriver is not on PATH: skipping the workbench's browser test");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        _process: Killed(child),
        port,
    };
    // Another process: poll in real time until it listens.
    for _ in 0..500 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Some(driver);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("chromedriver did not listen");
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1250"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .unwrap()
}

/// The text of the first element `css` finds, waiting for it up to a few seconds.
async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the page has loaded its markets (it marks the body ready).
async fn wait_ready(client: &Client) {
    let ready = Locator::Css("body[data-ready=yes]");
    let wait = client.wait().at_most(Duration::from_secs(10));
    wait.for_element(ready).await.unwrap();
}

/// Clicks the element `css` finds.
async fn click(client: &Client, css: &str) {
    let element = client.find(Locator::Css(css)).await.unwrap();
    element.click().await.unwrap();
}

/// Waits until the element `css` finds has text containing `wanted`.
async fn wait_text(client: &Client, css: &str, wanted: &str) {
    for _ in 0..200 {
        if let Ok(element) = client.find(Locator::Css(css)).await
            && element.text().await.is_ok_and(|t| t.contains(wanted))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{css} never showed {wanted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_a_real_browser() {
    let Some(driver) = driver().await else {
        return;
    };
    let wb = start(Some(TOKEN)).await;
    let client = browser(&driver).await;
    let checks = async {
        // The page loads and asks for the token; a wrong one is refused.
        client
            .goto(&format!("{}/workbench/", wb.base))
            .await
            .unwrap();
        let token = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css("#token-form:not([hidden]) #token"))
            .await
            .unwrap();
        token.send_keys("not-the-workbench-token").await.unwrap();
        click(&client, "#token-form button").await;
        wait_text(&client, "#error", "That token was refused").await;
        let token = client.find(Locator::Css("#token")).await.unwrap();
        token.send_keys(TOKEN).await.unwrap();
        click(&client, "#token-form button").await;
        wait_ready(&client).await;
        assert_eq!(text_of(&client, "#market option").await, "demo/SE");

        // A pasted fixture contact shows the card with its provenance.
        click(&client, "#paste-box summary").await;
        client
            .execute(
                "document.getElementById('voyado').value = arguments[0];",
                vec![json!(anna().to_string())],
            )
            .await
            .unwrap();
        click(&client, "#map").await;
        let rule = text_of(&client, "tr[data-field=name_first] td.rule").await;
        assert_eq!(
            rule,
            format!(
                "mappings/default.toml:{}",
                profile_line("spi = \"name_first\"")
            )
        );
        wait_text(&client, "#customer", "\"name_first\": \"Anna\"").await;

        // A deep link opens that contact's card.
        client
            .goto(&format!(
                "{}/workbench/?market=demo/SE&contact={ANNA}",
                wb.base
            ))
            .await
            .unwrap();
        wait_ready(&client).await;
        wait_text(&client, "#voyado-view", ANNA).await;
        wait_text(&client, "#customer", "\"member_number\"").await;
        wait_text(&client, "tr[data-field=bonus_checks] td.outcome", "made").await;
        if std::env::var_os("SVP_WORKBENCH_SCREENSHOT").is_some() {
            let png = client.screenshot().await.unwrap();
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/workbench.png");
            std::fs::write(path, png).unwrap();
        }

        // A broken draft shows the problem at its line.
        click(&client, "nav button[data-tab=draft]").await;
        wait_text(&client, "#diagnostics", "compiles: no problems").await;
        let line = profile_line("voyado = \"attributes.firstName\"");
        client
            .execute(
                "const d = document.getElementById('draft');
                 d.value = d.value.replace('voyado = \"attributes.firstName\"',
                                           'voyado = \"attributes.firstName\"\\ncodec = \"txet\"');
                 d.dispatchEvent(new Event('input'));",
                vec![],
            )
            .await
            .unwrap();
        let diagnostic = text_of(
            &client,
            &format!("#diagnostics li[data-line='{}']", line + 1),
        )
        .await;
        assert!(
            diagnostic.starts_with(&format!("mappings/default.toml:{}:", line + 1)),
            "{diagnostic}"
        );
    };
    // The browser is closed whatever the checks came to.
    let outcome = tokio::time::timeout(Duration::from_secs(60), checks).await;
    client.close().await.unwrap();
    outcome.expect("the browser checks took over a minute");
}
