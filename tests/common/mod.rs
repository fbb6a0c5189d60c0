//! The black-box harness: the Voyado simulator and the proxy, each on its own loopback socket,
//! and a real HTTP client talking to the proxy the way Sitoo POS does.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::server::serve;
use sitoo_voyado_proxy::sim::{FIXTURE, Fault, FaultAction, Simulator};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ANNA: &str = "8f0c1d2e-0000-4000-8000-000000000001";
pub const BO: &str = "8f0c1d2e-0000-4000-8000-000000000002";
pub const ERIK: &str = "8f0c1d2e-0000-4000-8000-000000000003";
pub const NORA: &str = "8f0c1d2e-0000-4000-8000-000000000006";
pub const ULLA: &str = "8f0c1d2e-0000-4000-8000-000000000007";
pub const OLLE: &str = "8f0c1d2e-0000-4000-8000-000000000101";
/// Anna's bonus checks: available 100 kr, redeemed 75 kr, expired, EUR-only, and a second one.
pub const CHECK_100: &str = "8f0c1d2e-3000-4000-8000-000000000001";
pub const CHECK_REDEEMED: &str = "8f0c1d2e-3000-4000-8000-000000000002";
pub const CHECK_EXPIRED: &str = "8f0c1d2e-3000-4000-8000-000000000003";
pub const CHECK_SECOND: &str = "8f0c1d2e-3000-4000-8000-000000000005";
/// Nora's bonus check.
pub const CHECK_NORA: &str = "8f0c1d2e-3000-4000-8000-000000000006";
/// Anna's promotions: 10% (POS), 50 kr (POS), ECOM-only, redeemed, expired.
pub const PROMO_10: &str = "8f0c1d2e-1000-4000-8000-000000000001";
pub const PROMO_50: &str = "8f0c1d2e-1000-4000-8000-000000000002";
pub const PROMO_ECOM: &str = "8f0c1d2e-1000-4000-8000-000000000003";
pub const PROMO_REDEEMED: &str = "8f0c1d2e-1000-4000-8000-000000000004";
pub const PROMO_EXPIRED: &str = "8f0c1d2e-1000-4000-8000-000000000005";
pub const UNKNOWN_ID: &str = "00000000-0000-4000-8000-00000000beef";

pub const DEMO_KEY: &str = "sim-demo-key";
pub const OTHER_KEY: &str = "sim-other-key";

/// The markets the tests use; `{voyado}` is the simulator, `{extra}` extra keys for demo/SE.
const CONFIG: &str = r#"
listen = "127.0.0.1:0"

[[market]]
tenant = "demo"
market = "SE"
crm_api_keys = ["se-key", "se-key-rotated"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
lookup_enabled = true
clearable_fields = ["name_last", "invoice_address.address"]
required_fields = ["name_first"]
consent_defaults = { memberTerms = true }
voyado_timeout_ms = 400
request_timeout_ms = {deadline}
{extra}

[[market]]
tenant = "demo"
market = "NO"
crm_api_keys = ["no-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "NO"
voyado_timeout_ms = 400
request_timeout_ms = 1500
{no_extra}

[[market]]
tenant = "other"
market = "SE"
crm_api_keys = ["other-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-other-key"
default_country = "SE"
"#;

pub struct Harness {
    pub sim: Simulator,
    pub app: Arc<App>,
    pub proxy: String,
    pub client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The SPI error envelope's reason.
    pub fn reason(&self) -> &str {
        self.body["error_data"]["reason"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error_data"]["message"].as_str().unwrap_or("")
    }

    /// Asserts a complete SPI error envelope with this status and reason.
    #[track_caller]
    pub fn assert_error(&self, status: u16, reason: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.reason(), reason, "{}", self.body);
        assert_eq!(self.body["statuscode"], status, "{}", self.body);
        assert!(self.body["error_code"].is_string(), "{}", self.body);
        assert_eq!(self.body["errortext"], self.body["error_data"]["message"]);
        assert!(
            self.body["request_id"]
                .as_str()
                .is_some_and(|r| !r.is_empty()),
            "{}",
            self.body
        );
    }

    /// Asserts a 400 `invalid_input` whose message starts with the field name.
    #[track_caller]
    pub fn assert_field(&self, field: &str) {
        self.assert_error(400, "invalid_input");
        assert!(
            self.message().starts_with(field),
            "message should name {field}: {}",
            self.message()
        );
    }
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::with("").await
    }

    /// The usual markets with `extra` keys for demo/SE, mappings from `mappings`.
    pub async fn with_mappings(extra: &str, mappings: MappingSource) -> Harness {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        let text = CONFIG
            .replace("{voyado}", &sim.url())
            .replace("{extra}", extra)
            .replace("{no_extra}", "")
            .replace("{deadline}", "1500");
        Harness::serve_from(sim, &text, mappings).await
    }

    /// Starts with extra config keys for the demo/SE market.
    pub async fn with(extra: &str) -> Harness {
        Harness::configured(extra, "", 1500).await
    }

    /// Starts with extra config keys for the demo/NO market.
    pub async fn with_no_market(extra: &str) -> Harness {
        Harness::configured("", extra, 1500).await
    }

    /// demo/SE with this request deadline (the Voyado call timeout stays 400 ms).
    pub async fn with_deadline(deadline_ms: u64) -> Harness {
        Harness::configured("", "", deadline_ms).await
    }

    /// Starts with `top` between `listen` and the first market — more top-level keys (such as
    /// `admin_listen`) first, then tables such as `[limits]` — and `markets`, more `[[market]]`
    /// tables (`{voyado}` is the simulator's URL), after the usual ones. demo/SE's deadline is
    /// 1500 ms.
    pub async fn with_top(top: &str, markets: &str) -> Harness {
        Harness::with_top_and(top, "", markets).await
    }

    /// [`Harness::with_top`] with `extra` keys for the demo/SE market too.
    pub async fn with_top_and(top: &str, extra: &str, markets: &str) -> Harness {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        let text = format!("{CONFIG}\n{markets}")
            .replacen("\n[[market]]", &format!("\n{top}\n\n[[market]]"), 1)
            .replace("{voyado}", &sim.url())
            .replace("{extra}", extra)
            .replace("{no_extra}", "")
            .replace("{deadline}", "1500");
        Harness::serve(sim, &text).await
    }

    async fn configured(extra: &str, no_extra: &str, deadline_ms: u64) -> Harness {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        let text = CONFIG
            .replace("{voyado}", &sim.url())
            .replace("{extra}", extra)
            .replace("{no_extra}", no_extra)
            .replace("{deadline}", &deadline_ms.to_string());
        Harness::serve(sim, &text).await
    }

    pub async fn serve(sim: Simulator, config_text: &str) -> Harness {
        Harness::serve_from(sim, config_text, MappingSource::BuiltIn).await
    }

    /// Serves `config_text` with the mappings from `mappings`.
    pub async fn serve_from(sim: Simulator, config_text: &str, mappings: MappingSource) -> Harness {
        let config = Config::parse(config_text, "test config", |_| mappings, |_| None).unwrap();
        let (app, proxy, stop) = start_proxy(&config).await;
        Harness {
            sim,
            app,
            proxy,
            client: reqwest::Client::new(),
            _stop: stop,
        }
    }

    /// A request as the POS sends it: Basic auth with `key` (or none), an optional raw body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let url = format!("{}{path}", self.proxy);
        request(&self.client, method, &url, key, body, headers).await
    }

    /// A GET with Basic auth `key` on a full path (`/tenant/market/...`).
    pub async fn get_as(&self, path: &str, key: &str) -> Answer {
        self.call(Method::GET, path, Some(key), None, &[]).await
    }

    /// Whether the simulator holds the demo tenant's bonus check as redeemed.
    pub fn check_redeemed(&self, contact: &str, check: &str) -> Value {
        self.sim.bonus_check(DEMO_KEY, contact, check).unwrap()["redeemed"].clone()
    }

    /// GET on demo/SE with the right key.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(
            Method::GET,
            &format!("/demo/SE{path}"),
            Some("se-key"),
            None,
            &[],
        )
        .await
    }

    /// A write on demo/SE with the right key and a JSON body.
    pub async fn send(&self, method: Method, path: &str, body: &Value) -> Answer {
        self.call(
            method,
            &format!("/demo/SE{path}"),
            Some("se-key"),
            Some(&body.to_string()),
            &[],
        )
        .await
    }

    /// `GET /metrics` on the proxy, as text.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.proxy))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Requests the simulator saw whose path contains `part`.
    pub fn seen(&self, method: &str, part: &str) -> Vec<sitoo_voyado_proxy::sim::Seen> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method.as_str() == method && r.path.contains(part))
            .collect()
    }
}

/// A proxy serving `config` on a free loopback port, until the sender is dropped: its app and
/// its base URL.
pub async fn start_proxy(config: &Config) -> (Arc<App>, String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let app = App::build(config).unwrap();
    tokio::spawn(serve(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    (app, proxy, stop)
}

/// A request to `url` as the POS sends it: Basic auth with `key` (or none), an optional raw body.
pub async fn request(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    key: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = client.request(method, url);
    if let Some(key) = key {
        request = request.basic_auth("pos", Some(key));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        body,
    }
}

/// One sample of `/metrics` whose labels include `labels`.
pub async fn metric(h: &Harness, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sample(&h.metrics_text().await, name, labels)
}

/// One sample of the exposition `text` whose labels include `labels`.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        let wanted = metric == name
            && labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        wanted.then(|| value.parse().ok()).flatten()
    })
}

/// A simulator fault on the next `times` requests of `method` whose path contains `path`.
pub fn fault(method: Method, path: &'static str, action: FaultAction, times: usize) -> Fault {
    Fault {
        method,
        path_contains: path,
        action,
        times,
    }
}

/// Log output captured in memory, for tests that read what the proxy logged.
#[derive(Clone, Default)]
pub struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Log lines from this thread (a paused-time test runs on one) for as long as the guard lives.
    pub fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        )
    }

    /// Every thread's log lines, `debug` and up, from now on: what a test needs when the lines
    /// it checks come from spawned tasks (this must be its binary's only global subscriber).
    pub fn install_globally(&self) {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("this test binary installs the only global subscriber");
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
