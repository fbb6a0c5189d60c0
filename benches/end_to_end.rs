//! End-to-end load on loopback: the proxy in front of the Voyado simulator, against the simulator
//! alone, in one run so that only ratios are compared. `cargo bench --bench end_to_end`;
//! figures and the machine in BENCHMARKS.md.
//!
//! Each scenario runs a fixed number of client tasks for a fixed time (bounded loops, loopback only)
//! and reports requests per second and latency percentiles. The one-call and card scenarios go
//! through a market that caches nothing; the warm card is compared with a minimal hyper server
//! answering the same bytes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::server::serve;
use sitoo_voyado_proxy::sim::{FIXTURE, Simulator};
use support::minimal_server;
use tokio::time::Instant;

mod support;

const CLIENTS: usize = 16;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);
const ANNA: &str = "8f0c1d2e-0000-4000-8000-000000000001";

struct Result {
    requests: usize,
    rps: f64,
    p50_us: u128,
    p99_us: u128,
}

async fn load(
    client: &reqwest::Client,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Result {
    let request = Arc::new(request);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(200_000)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, request, latencies) = (client.clone(), request.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let sent = Instant::now();
                if sent - start > WARM_UP + MEASURE {
                    break;
                }
                let response = request(&client).send().await.expect("loopback request");
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await;
                if sent - start >= WARM_UP {
                    mine.push(sent.elapsed().as_micros());
                }
            }
            latencies.lock().extend(mine);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut all = std::mem::take(&mut *latencies.lock());
    all.sort_unstable();
    let pick = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    Result {
        requests: all.len(),
        rps: all.len() as f64 / MEASURE.as_secs_f64(),
        p50_us: pick(0.50),
        p99_us: pick(0.99),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        // Two markets on one tenant: "cold" keeps nothing in memory (every request makes its
        // Voyado calls), "SE" caches as configured by default. The rate budget is opened wide:
        // this measures the proxy, not Voyado's budget.
        let config = format!(
            "[voyado]\nrate_per_second = 1000000\nburst = 1000000\n\
             [[market]]\ntenant = \"demo\"\nmarket = \"SE\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"{url}\"\nvoyado_api_key = \"sim-demo-key\"\ndefault_country = \"SE\"\n\
             [[market]]\ntenant = \"demo\"\nmarket = \"cold\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"{url}\"\nvoyado_api_key = \"sim-demo-key\"\ndefault_country = \"SE\"\n\
             cache = {{ key_to_id_ms = 0, contact_ms = 0, definitions_ms = 0, offers_ms = 0, not_found_ms = 0 }}\n",
            url = sim.url()
        );
        let config = Config::parse(&config, "bench", |_| MappingSource::BuiltIn, |_| None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let proxy = format!("http://{proxy_addr}/demo/cold");
        let warm = format!("http://{proxy_addr}/demo/SE");
        tokio::spawn(serve(
            listener,
            App::build(&config).unwrap(),
            std::future::pending(),
        ));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .build()
            .unwrap();
        let voyado = sim.url();

        let direct_consents = {
            let url = format!("{voyado}/api/v2/consents");
            load(&client, move |c| voyado_get(c, &url)).await
        };
        let proxy_consents = {
            let url = format!("{proxy}/consents");
            load(&client, move |c| c.get(&url).basic_auth("pos", Some("k"))).await
        };
        let direct_contact = {
            let url = format!("{voyado}/api/v2/contacts/{ANNA}");
            load(&client, move |c| voyado_get(c, &url)).await
        };
        let proxy_card = {
            let url = format!("{proxy}/customers/{ANNA}");
            load(&client, move |c| c.get(&url).basic_auth("pos", Some("k"))).await
        };
        let proxy_search = {
            let url = format!("{proxy}/customers?key_type=mobile&key=0701112233");
            load(&client, move |c| c.get(&url).basic_auth("pos", Some("k"))).await
        };
        // The warm card against the wire: a minimal hyper server answering the same bytes.
        let card_url = format!("{warm}/customers/{ANNA}");
        let card_bytes = client
            .get(&card_url)
            .basic_auth("pos", Some("k"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let wire = format!("http://{}/", minimal_server(card_bytes).await);
        let direct_wire = load(&client, move |c| c.get(&wire)).await;
        let warm_card = load(&client, move |c| {
            c.get(&card_url).basic_auth("pos", Some("k"))
        })
        .await;
        println!(
            "{CLIENTS} clients, {}s warm-up, {}s measured, loopback, one process",
            WARM_UP.as_secs(),
            MEASURE.as_secs()
        );
        println!(
            "{:<38} {:>9} {:>10} {:>9} {:>9}",
            "scenario", "requests", "req/s", "p50 µs", "p99 µs"
        );
        for (name, r) in [
            ("simulator: GET consents (1 call)", &direct_consents),
            ("proxy: consents (1 Voyado call)", &proxy_consents),
            ("simulator: GET contact (1 call)", &direct_contact),
            ("proxy: customer card (5 calls)", &proxy_card),
            ("proxy: search by mobile (6 calls)", &proxy_search),
            ("minimal hyper: the card's bytes", &direct_wire),
            ("proxy: warm card (0 calls)", &warm_card),
        ] {
            println!(
                "{name:<38} {:>9} {:>10.0} {:>9} {:>9}",
                r.requests, r.rps, r.p50_us, r.p99_us
            );
        }
        println!(
            "ratio proxy consents / simulator consents: {:.2}",
            proxy_consents.rps / direct_consents.rps
        );
        println!(
            "ratio proxy card / simulator contact:      {:.2}",
            proxy_card.rps / direct_contact.rps
        );
        println!(
            "ratio proxy warm card / minimal hyper:     {:.2}",
            warm_card.rps / direct_wire.rps
        );
    });
}

fn voyado_get(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    client
        .get(url)
        .header("apikey", "sim-demo-key")
        .header("user-agent", "bench/1")
        .header("content-type", "application/json")
}
