//! Caches and Voyado's budget, on loopback: `cargo bench --bench cache`; figures and the machine in
//! BENCHMARKS.md.
//!
//! 1. Voyado calls per operation, cold and warm, counted in the simulator's request log (the
//!    default caching market).
//! 2. The cold card, open loop: the simulator answers every call after 50 ms, a market that caches
//!    nothing, requests sent at a fixed rate and each latency taken from the request's intended
//!    send time (so a late client does not hide queueing). A ladder of rates; the floor is two
//!    Voyado rounds, 2 × 50 ms.
//! 3. The hit ratio under a mix of cards (mostly), searches and updates drawn with a skewed
//!    distribution from 1,000 customers, read from `/metrics`.
//! 4. Resident memory with 100,000 customers cached: the proxy in a child process of its own (so
//!    the simulator's data and request log are not counted), its cache filled with 100,000
//!    distinct cards through its own code path, from a second child process that plays Voyado
//!    (the simulator's answers for Anna, with the contact id and member number swapped in); then
//!    every customer asked again, counting cards from memory and Voyado calls.
//!
//! Every phase is bounded in time or in requests; nothing leaves loopback.
//!
//! `SVP_CACHE_BENCH_PHASES=memory` runs phase 4 alone, `=traffic` phases 1–3 alone (default:
//! all): the memory phase takes minutes, and memory is what it measures, not time.
//! `SVP_CACHE_BENCH_BOUNDS` lists the memory runs' `max_bytes` (see `RSS_BOUNDS`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{Value, json};
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::server::serve;
use sitoo_voyado_proxy::sim::{FIXTURE, Simulator};
use tokio::time::Instant;

const ANNA: &str = "8f0c1d2e-0000-4000-8000-000000000001";
/// Anna's member number in the fixture.
const ANNA_MEMBER: &str = "10012";
/// Bo: searched by mobile in the calls-per-operation table.
const BO_MOBILE: &str = "0702223344";
const LATENCY: Duration = Duration::from_millis(50);
/// The cold card's floor: two Voyado rounds.
const FLOOR: Duration = Duration::from_millis(100);
/// Open-loop rates for the cold card, requests per second; 2,000/s keeps 200 cards in flight at
/// the floor.
const RATES: [u32; 6] = [250, 500, 750, 1000, 1500, 2000];
const OPEN_WARM_UP: Duration = Duration::from_secs(1);
const OPEN_MEASURE: Duration = Duration::from_secs(5);
/// The mix: customers, rate, warm-up and measured window.
const MIX_CUSTOMERS: usize = 1000;
const MIX_ZIPF_S: f64 = 1.0;
const MIX_RATE: u32 = 100;
const MIX_WARM_UP: Duration = Duration::from_secs(10);
const MIX_MEASURE: Duration = Duration::from_secs(10);
/// The memory run.
const RSS_CUSTOMERS: usize = 100_000;
const RSS_CHECKPOINTS: [usize; 4] = [25_000, 50_000, 75_000, 100_000];
const RSS_CLIENTS: usize = 32;
/// Contact ids made up for the mix and the memory run: this prefix and 12 digits.
const MADE_UP: &str = "c0ffee00-0000-4000-8000-";
const ROLE: &str = "SVP_CACHE_BENCH_ROLE";
/// Which phases run: `all` (the default), `traffic` (1–3) or `memory` (4).
const PHASES: &str = "SVP_CACHE_BENCH_PHASES";

fn made_up_id(n: usize) -> String {
    format!("{MADE_UP}{n:012}")
}

fn made_up_member(n: usize) -> String {
    format!("7{n:08}")
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("voyado") => return voyado_process(),
        Ok("rss") => return rss_process(),
        _ => {}
    }
    let phases = std::env::var(PHASES).unwrap_or_else(|_| "all".into());
    assert!(
        ["all", "traffic", "memory"].contains(&phases.as_str()),
        "{PHASES} is all, traffic or memory"
    );
    if phases != "memory" {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(parent());
    }
    if phases != "traffic" {
        eprintln!("[memory] load {}", load_average());
        print_memory(&memory_runs());
    }
}

async fn parent() {
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
        .await
        .unwrap();
    let mix_sim = Simulator::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &mix_fixture(MIX_CUSTOMERS),
    )
    .await
    .unwrap();
    sim.set_latency("", LATENCY);
    mix_sim.set_latency("", LATENCY);
    // "SE" and "mix" cache as configured by default. The rate budget is opened wide: the bench
    // counts calls, it does not test the limiter.
    let market = |tenant: &str, market: &str, url: &str, extra: &str| {
        format!(
            "[[market]]\ntenant = \"{tenant}\"\nmarket = \"{market}\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"{url}\"\nvoyado_api_key = \"sim-demo-key\"\ndefault_country = \"SE\"\n{extra}"
        )
    };
    let config = format!(
        "[voyado]\nrate_per_second = 1000000\nburst = 1000000\n{}{}",
        market("demo", "SE", &sim.url(), ""),
        market("mix", "SE", &mix_sim.url(), ""),
    );
    let config = Config::parse(&config, "bench", |_| MappingSource::BuiltIn, |_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        App::build(&config).unwrap(),
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    eprintln!("[calls per operation] load {}", load_average());
    let (calls, card_calls) = calls_per_operation(&client, &sim, &format!("{proxy}/demo/SE")).await;

    // Each rate gets fresh simulators (their request log grows with every call, and a long log
    // costs time under their lock) and a fresh proxy with one market that keeps nothing. "direct":
    // the client makes the card's own calls straight to a simulator in the same two rounds
    // (everything but the member status together, then the member status): the floor as this
    // machine reaches it, without the proxy.
    let (first, second): (Vec<String>, Vec<String>) = card_calls
        .iter()
        .cloned()
        .partition(|target| !target.contains("memberstatus"));
    let mut open = Vec::new();
    for rate in RATES {
        eprintln!("[cold card, {rate}/s] load {}", load_average());
        let direct_sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        direct_sim.set_latency("", LATENCY);
        let at = |targets: &[String]| -> Arc<[String]> {
            targets
                .iter()
                .map(|t| format!("{}{t}", direct_sim.url()))
                .collect()
        };
        let (first, second) = (at(&first), at(&second));
        let direct = open_loop(&client, rate, move |client| {
            let (first, second) = (first.clone(), second.clone());
            Box::pin(async move {
                let round = |urls: Arc<[String]>, client: reqwest::Client| async move {
                    let calls = urls.iter().map(|url| {
                        let request = voyado_get(&client, url);
                        async move { outcome(request.send().await).await }
                    });
                    futures_util::future::join_all(calls)
                        .await
                        .into_iter()
                        .find(|o| *o != Outcome::Ok)
                        .unwrap_or(Outcome::Ok)
                };
                match round(first, client.clone()).await {
                    Outcome::Ok => round(second, client).await,
                    failed => failed,
                }
            })
        })
        .await;
        drop(direct_sim);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let cold_sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        cold_sim.set_latency("", LATENCY);
        let card: Arc<str> =
            format!("{}/customers/{ANNA}", cold_proxy(&cold_sim.url()).await).into();
        let proxied = open_loop(&client, rate, move |client| {
            let request = client.get(&*card).basic_auth("pos", Some("k"));
            Box::pin(async move { outcome(request.send().await).await })
        })
        .await;
        drop(cold_sim);
        open.push((direct, proxied));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    eprintln!("[mix] load {}", load_average());
    let mix = mix(&client, &proxy).await;

    print_report(&calls, &card_calls, &open, &mix);
}

// ---------------------------------------------------------------------------------------------
// 1. Voyado calls per operation

struct Counted {
    what: &'static str,
    calls: usize,
}

/// The calls each operation makes, and the targets (path and query) of the cold card's calls.
async fn calls_per_operation(
    client: &reqwest::Client,
    sim: &Simulator,
    market: &str,
) -> (Vec<Counted>, Vec<String>) {
    let card = format!("{market}/customers/{ANNA}");
    let search = format!("{market}/customers?key_type=mobile&key={BO_MOBILE}");
    let consents = format!("{market}/consents");
    let steps: [(&'static str, reqwest::Method, &str, Option<Value>); 9] = [
        ("card, cold", reqwest::Method::GET, &card, None),
        ("card, warm", reqwest::Method::GET, &card, None),
        (
            "search by mobile, cold",
            reqwest::Method::GET,
            &search,
            None,
        ),
        (
            "search by mobile, warm",
            reqwest::Method::GET,
            &search,
            None,
        ),
        ("consents, cold", reqwest::Method::GET, &consents, None),
        ("consents, warm", reqwest::Method::GET, &consents, None),
        (
            "update (name_last), warm",
            reqwest::Method::PUT,
            &card,
            Some(json!({"name_last": "Anderberg"})),
        ),
        ("card after the update", reqwest::Method::GET, &card, None),
        (
            "search (other customer) after the update",
            reqwest::Method::GET,
            &search,
            None,
        ),
    ];
    let mut counted = Vec::new();
    let mut card_calls = Vec::new();
    for (what, method, url, body) in steps {
        let before = sim.requests().len();
        let mut request = client.request(method, url).basic_auth("pos", Some("k"));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("loopback request");
        assert!(
            response.status().is_success(),
            "{what}: {}",
            response.status()
        );
        let _ = response.bytes().await;
        let seen = sim.requests().split_off(before);
        if counted.is_empty() {
            card_calls = seen
                .iter()
                .map(|s| match s.query.as_str() {
                    "" => s.path.clone(),
                    query => format!("{}?{query}", s.path),
                })
                .collect();
        }
        counted.push(Counted {
            what,
            calls: seen.len(),
        });
    }
    (counted, card_calls)
}

// ---------------------------------------------------------------------------------------------
// 2. The cold card, open loop

struct OpenLoop {
    rate: u32,
    sent: usize,
    /// Answered 503 (the proxy's admission limit) / failed otherwise (other status, timeout).
    shed: usize,
    failed: usize,
    /// Microseconds from the intended send time (coordinated omission corrected).
    intended: Percentiles,
    /// Microseconds from the moment the client actually sent.
    actual: Percentiles,
    /// Little's law: requests in flight on average.
    in_flight: f64,
}

#[derive(Default, Clone, Copy)]
struct Percentiles {
    p50: u128,
    p90: u128,
    p99: u128,
    max: u128,
}

fn percentiles(mut v: Vec<u128>) -> Percentiles {
    v.sort_unstable();
    let pick = |q: f64| {
        if v.is_empty() {
            return 0;
        }
        let rank = ((v.len() as f64) * q).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
    };
    Percentiles {
        p50: pick(0.50),
        p90: pick(0.90),
        p99: pick(0.99),
        max: v.last().copied().unwrap_or(0),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Outcome {
    Ok,
    Status(u16),
    Error,
}

/// A response read to its end.
async fn outcome(response: reqwest::Result<reqwest::Response>) -> Outcome {
    match response {
        Ok(response) if response.status().is_success() => match response.bytes().await {
            Ok(_) => Outcome::Ok,
            Err(_) => Outcome::Error,
        },
        Ok(response) => Outcome::Status(response.status().as_u16()),
        Err(_) => Outcome::Error,
    }
}

type Work = std::pin::Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Starts `work` at `rate` per second for the warm-up and the measured window, each in its own
/// task started at its intended time; only the measured window's requests are reported.
async fn open_loop(
    client: &reqwest::Client,
    rate: u32,
    work: impl Fn(reqwest::Client) -> Work,
) -> OpenLoop {
    let period_ns = 1_000_000_000 / u64::from(rate);
    let total = u64::from(rate) * (OPEN_WARM_UP + OPEN_MEASURE).as_secs();
    let measured_from = u64::from(rate) * OPEN_WARM_UP.as_secs();
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + Duration::from_nanos(period_ns * i);
        tokio::time::sleep_until(intended).await;
        let work = work(client.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let outcome = work.await;
            let done = Instant::now();
            (
                i,
                (done - intended).as_micros(),
                (done - sent).as_micros(),
                outcome,
            )
        }));
    }
    let (mut from_intended, mut from_sent, mut shed, mut failed) = (Vec::new(), Vec::new(), 0, 0);
    for task in tasks {
        let (i, intended, sent, outcome) = task.await.unwrap();
        if i < measured_from {
            continue;
        }
        match outcome {
            Outcome::Ok => {}
            Outcome::Status(503) => shed += 1,
            _ => failed += 1,
        }
        from_intended.push(intended);
        from_sent.push(sent);
    }
    let sum: u128 = from_intended.iter().sum();
    OpenLoop {
        rate,
        sent: from_intended.len(),
        shed,
        failed,
        in_flight: sum as f64 / 1e6 / OPEN_MEASURE.as_secs_f64(),
        intended: percentiles(from_intended),
        actual: percentiles(from_sent),
    }
}

/// A proxy with one market, `demo/cold`, that keeps nothing in memory (every card makes its
/// Voyado calls) and a rate budget opened wide; its base URL.
async fn cold_proxy(voyado: &str) -> String {
    let config = format!(
        "[voyado]\nrate_per_second = 1000000\nburst = 1000000\n\
         [[market]]\ntenant = \"demo\"\nmarket = \"cold\"\ncrm_api_keys = [\"k\"]\n\
         voyado_url = \"{voyado}\"\nvoyado_api_key = \"sim-demo-key\"\ndefault_country = \"SE\"\n\
         cache = {{ key_to_id_ms = 0, contact_ms = 0, definitions_ms = 0, offers_ms = 0, not_found_ms = 0 }}\n"
    );
    let config = Config::parse(&config, "bench", |_| MappingSource::BuiltIn, |_| None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/demo/cold", listener.local_addr().unwrap());
    tokio::spawn(serve(
        listener,
        App::build(&config).unwrap(),
        std::future::pending(),
    ));
    base
}

fn voyado_get(client: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    client
        .get(url)
        .header("apikey", "sim-demo-key")
        .header("user-agent", "bench/1")
        .header("content-type", "application/json")
}

// ---------------------------------------------------------------------------------------------
// 3. The mix

/// The fixture with the demo tenant's contacts replaced by `n` copies of Anna (her promotions,
/// bonus checks, points and status; no purchase history), each with its own id, member number,
/// e-mail and mobile.
fn mix_fixture(n: usize) -> String {
    let mut fixture: Value = serde_json::from_str(FIXTURE).unwrap();
    let tenant = &mut fixture["tenants"][0];
    let anna = tenant["contacts"][0].clone();
    assert_eq!(anna["id"], ANNA);
    let contacts: Vec<Value> = (0..n)
        .map(|i| {
            let mut c = anna.clone();
            c["id"] = made_up_id(i).into();
            c["attributes"]["memberNumber"] = made_up_member(i).into();
            c["attributes"]["email"] = format!("mix{i}@example.com").into();
            c["attributes"]["mobilePhone"] = format!("+46705{i:06}").into();
            c.as_object_mut().unwrap().remove("_transactions");
            c
        })
        .collect();
    tenant["contacts"] = Value::Array(contacts);
    fixture.to_string()
}

/// splitmix64: a small, seeded, dependency-free generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf over ranks 0..n: rank k drawn with weight 1 / (k + 1)^s.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 0..n {
            total += 1.0 / ((k + 1) as f64).powf(s);
            cdf.push(total);
        }
        Zipf(cdf.into_iter().map(|c| c / total).collect())
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum MixOp {
    Card,
    Search,
    Update,
}

struct Mix {
    requests: HashMap<MixOp, usize>,
    failed: usize,
    latency: HashMap<MixOp, Percentiles>,
    /// (what, hits, misses) over the measured window.
    cache: Vec<(String, f64, f64)>,
    voyado_calls: f64,
    distinct: usize,
}

async fn mix(client: &reqwest::Client, proxy: &str) -> Mix {
    let base: Arc<str> = format!("{proxy}/mix/SE").into();
    let zipf = Zipf::new(MIX_CUSTOMERS, MIX_ZIPF_S);
    let mut rng = Rng(0x5EED_CA5E);
    let _ = run_mix(client, &base, &zipf, &mut rng, MIX_WARM_UP).await;
    let before = scrape(client, proxy).await;
    let (latencies, failed, distinct) = run_mix(client, &base, &zipf, &mut rng, MIX_MEASURE).await;
    let after = scrape(client, proxy).await;
    let delta = |name: &str, labels: &[(&str, &str)]| -> f64 {
        sum(&after, name, labels) - sum(&before, name, labels)
    };
    let mut whats: Vec<String> = after
        .iter()
        .filter(|s| s.metric == "svp_cache_total")
        .filter_map(|s| s.labels.get("what").cloned())
        .collect();
    whats.sort();
    whats.dedup();
    let cache = whats
        .into_iter()
        .map(|what| {
            let hits = delta("svp_cache_total", &[("what", &what), ("result", "hit")]);
            let misses = delta("svp_cache_total", &[("what", &what), ("result", "miss")]);
            (what, hits, misses)
        })
        .collect();
    let mut requests = HashMap::new();
    let mut latency = HashMap::new();
    for (op, list) in latencies {
        requests.insert(op, list.len());
        latency.insert(op, percentiles(list));
    }
    Mix {
        requests,
        failed,
        latency,
        cache,
        voyado_calls: delta("svp_voyado_calls_total", &[]),
        distinct,
    }
}

/// One open-loop stretch of the mix: 85 % cards, 10 % searches by mobile, 5 % updates of the last
/// name, each customer drawn by Zipf.
async fn run_mix(
    client: &reqwest::Client,
    base: &Arc<str>,
    zipf: &Zipf,
    rng: &mut Rng,
    length: Duration,
) -> (HashMap<MixOp, Vec<u128>>, usize, usize) {
    let period = Duration::from_secs(1) / MIX_RATE;
    let total = MIX_RATE as usize * length.as_secs() as usize;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut seen = std::collections::HashSet::new();
    for i in 0..total {
        let intended = start + period * i as u32;
        tokio::time::sleep_until(intended).await;
        let roll = rng.unit();
        let who = zipf.draw(rng);
        seen.insert(who);
        let (op, request) = if roll < 0.85 {
            let url = format!("{base}/customers/{}", made_up_id(who));
            (MixOp::Card, client.get(url))
        } else if roll < 0.95 {
            let url = format!("{base}/customers?key_type=mobile&key=0705{who:06}");
            (MixOp::Search, client.get(url))
        } else {
            let url = format!("{base}/customers/{}", made_up_id(who));
            let body = json!({"name_last": format!("Mix{}", rng.next() % 100_000)});
            (
                MixOp::Update,
                client
                    .put(url)
                    .header("content-type", "application/json")
                    .body(body.to_string()),
            )
        };
        let request = request.basic_auth("pos", Some("k"));
        tasks.push(tokio::spawn(async move {
            let ok = match request.send().await {
                Ok(response) => {
                    let ok = response.status().is_success();
                    ok && response.bytes().await.is_ok()
                }
                Err(_) => false,
            };
            (op, intended.elapsed().as_micros(), ok)
        }));
    }
    let mut latencies: HashMap<MixOp, Vec<u128>> = HashMap::new();
    let mut failed = 0;
    for task in tasks {
        let (op, micros, ok) = task.await.unwrap();
        if !ok {
            failed += 1;
        }
        latencies.entry(op).or_default().push(micros);
    }
    (latencies, failed, seen.len())
}

/// One sample of a `/metrics` scrape.
struct Sample {
    metric: String,
    labels: HashMap<String, String>,
    value: f64,
}

/// `/metrics`, parsed here: label values such as `/api/v2/contacts/{}` hold braces, which
/// prometheus-parse's sample pattern does not take (it drops those lines).
async fn scrape(client: &reqwest::Client, proxy: &str) -> Vec<Sample> {
    let text = client
        .get(format!("{proxy}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().filter_map(parse_sample).collect()
}

/// `name{a="x",b="y"} 1` or `name 1`; comments and anything else give `None`.
fn parse_sample(line: &str) -> Option<Sample> {
    if line.starts_with('#') {
        return None;
    }
    let name_end = line.find(['{', ' '])?;
    let metric = line[..name_end].to_owned();
    let mut labels = HashMap::new();
    let mut rest = &line[name_end..];
    if let Some(mut inner) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = inner.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = inner.find("=\"")?;
            let key = inner[..eq].trim_start_matches(',').to_owned();
            inner = &inner[eq + 2..];
            let mut value = String::new();
            let mut chars = inner.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key, value);
            inner = inner[end + 1..].trim_start_matches(',');
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        metric,
        labels,
        value,
    })
}

/// The sum of a metric's samples whose labels include `labels`.
fn sum(scrape: &[Sample], metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

// ---------------------------------------------------------------------------------------------
// 4. Resident memory with 100,000 customers cached

#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct MemoryRun {
    max_bytes: u64,
    baseline_kb: u64,
    checkpoints: Vec<Checkpoint>,
    peak_kb: u64,
    card_bytes: usize,
    /// Every customer asked again: cards from memory, cards rendered again, Voyado calls.
    again_hits: f64,
    again_misses: f64,
    again_voyado_calls: f64,
    again_secs: f64,
}

/// The memory run after so many customers: VmRSS, seconds since the fill began, and what the
/// caches weigh by their own count (bytes).
#[derive(serde::Serialize, serde::Deserialize, Debug)]
struct Checkpoint {
    customers: usize,
    rss_kb: u64,
    secs: f64,
    cards_weight: u64,
    answers_weight: u64,
}

/// The cache bounds of the memory runs, unless `SVP_CACHE_BENCH_BOUNDS` lists others (bytes,
/// comma-separated): the default, one that holds every customer's card, and one that evicts
/// nothing at all (every answer kept too).
const RSS_BOUNDS: [u64; 3] = [128 << 20, 256 << 20, 16 << 30];

/// Starts the Voyado stand-in, then one proxy process per cache bound.
fn memory_runs() -> Vec<MemoryRun> {
    let bounds: Vec<u64> = match std::env::var("SVP_CACHE_BENCH_BOUNDS") {
        Ok(list) => list.split(',').map(|b| b.trim().parse().unwrap()).collect(),
        Err(_) => RSS_BOUNDS.to_vec(),
    };
    let exe = std::env::current_exe().unwrap();
    let mut voyado = Command::new(&exe)
        .env(ROLE, "voyado")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(voyado.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_owned();
    assert!(
        url.starts_with("http://"),
        "the Voyado stand-in did not start"
    );
    let mut runs = Vec::new();
    for max_bytes in bounds {
        eprintln!("[memory, max_bytes {max_bytes}] load {}", load_average());
        let output = Command::new(&exe)
            .env(ROLE, "rss")
            .env("SVP_CACHE_BENCH_VOYADO", &url)
            .env("SVP_CACHE_BENCH_MAX_BYTES", max_bytes.to_string())
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(output.status.success(), "memory run failed");
        let text = String::from_utf8(output.stdout).unwrap();
        let json = text.lines().rfind(|l| l.starts_with('{')).unwrap();
        runs.push(serde_json::from_str(json).unwrap());
    }
    // Closing its stdin ends the stand-in; kill it (by its handle) only if it lingers.
    drop(voyado.stdin.take());
    for _ in 0..50 {
        if voyado.try_wait().unwrap().is_some() {
            return runs;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = voyado.kill();
    let _ = voyado.wait();
    runs
}

fn vm_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// The proxy alone in this process: one market whose TTLs keep everything for an hour, filled
/// with `RSS_CUSTOMERS` distinct cards; VmRSS at each checkpoint; then every customer asked
/// again, to see how many are still served from memory.
fn rss_process() {
    let url = std::env::var("SVP_CACHE_BENCH_VOYADO").unwrap();
    let max_bytes: u64 = std::env::var("SVP_CACHE_BENCH_MAX_BYTES")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = runtime.block_on(async move {
        let hour = 3_600_000;
        let config = format!(
            "[cache]\nmax_bytes = {max_bytes}\n\
             [voyado]\nrate_per_second = 1000000\nburst = 1000000\n\
             [[market]]\ntenant = \"demo\"\nmarket = \"SE\"\ncrm_api_keys = [\"k\"]\n\
             voyado_url = \"{url}\"\nvoyado_api_key = \"sim-demo-key\"\ndefault_country = \"SE\"\n\
             cache = {{ key_to_id_ms = {hour}, contact_ms = {hour}, definitions_ms = {hour}, \
             offers_ms = {hour}, not_found_ms = {hour} }}\n"
        );
        let config = Config::parse(&config, "bench", |_| MappingSource::BuiltIn, |_| None).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = format!("http://{}", listener.local_addr().unwrap());
        let app = App::build(&config).unwrap();
        let cards = app.cards.clone();
        tokio::spawn(serve(listener, app, std::future::pending()));
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(RSS_CLIENTS)
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let card = |n: usize| format!("{proxy}/demo/SE/customers/{}", made_up_id(n));
        // A card of someone outside the filled range and a scrape, so that lazy set-up is done.
        let card_bytes = get_ok(&client, &card(RSS_CUSTOMERS + 1)).await.len();
        let _ = scrape(&client, &proxy).await;
        let baseline_kb = vm_kb("VmRSS:");
        let next = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut checkpoints = Vec::new();
        for upto in RSS_CHECKPOINTS {
            ask_cards(&client, &proxy, &next, upto).await;
            let rss = vm_kb("VmRSS:");
            let secs = started.elapsed().as_secs_f64();
            let (cards, answers) = cards.weighed().await;
            eprintln!(
                "  {upto} customers: VmRSS {} MiB, {secs:.0} s; weighed: cards {} MiB, answers {} MiB",
                rss / 1024,
                cards >> 20,
                answers >> 20
            );
            checkpoints.push(Checkpoint {
                customers: upto,
                rss_kb: rss,
                secs,
                cards_weight: cards,
                answers_weight: answers,
            });
        }
        // Every customer again, in the same order: held or not, each card is asked once more.
        let before = scrape(&client, &proxy).await;
        let again = Instant::now();
        ask_cards(&client, &proxy, &Arc::new(AtomicUsize::new(0)), RSS_CUSTOMERS).await;
        let again_secs = again.elapsed().as_secs_f64();
        eprintln!(
            "  every customer asked again: VmRSS {} MiB, {again_secs:.0} s",
            vm_kb("VmRSS:") / 1024
        );
        let after = scrape(&client, &proxy).await;
        let delta = |name: &str, labels: &[(&str, &str)]| {
            sum(&after, name, labels) - sum(&before, name, labels)
        };
        MemoryRun {
            max_bytes,
            baseline_kb,
            checkpoints,
            peak_kb: vm_kb("VmHWM:"),
            card_bytes,
            again_hits: delta("svp_cache_total", &[("what", "card"), ("result", "hit")]),
            again_misses: delta("svp_cache_total", &[("what", "card"), ("result", "miss")]),
            again_voyado_calls: delta("svp_voyado_calls_total", &[]),
            again_secs,
        }
    });
    println!("{}", serde_json::to_string(&run).unwrap());
}

/// The cards of customers `next..upto`, asked by `RSS_CLIENTS` tasks, each customer once.
async fn ask_cards(client: &reqwest::Client, proxy: &str, next: &Arc<AtomicUsize>, upto: usize) {
    let mut workers = Vec::new();
    for _ in 0..RSS_CLIENTS {
        let (client, next, proxy) = (client.clone(), next.clone(), proxy.to_owned());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= upto {
                    next.fetch_min(upto, Ordering::Relaxed);
                    break;
                }
                let url = format!("{proxy}/demo/SE/customers/{}", made_up_id(n));
                get_ok(&client, &url).await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

async fn get_ok(client: &reqwest::Client, url: &str) -> Bytes {
    let response = client
        .get(url)
        .basic_auth("pos", Some("k"))
        .send()
        .await
        .expect("loopback request");
    assert!(response.status().is_success(), "{}", response.status());
    response.bytes().await.unwrap()
}

/// Plays Voyado for the memory run: every made-up contact is Anna with her id and member number
/// swapped. The first request of each shape is asked of a real simulator (as Anna) and its
/// answer kept; later ones are answered from that copy. Runs until its stdin closes.
fn voyado_process() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
            .await
            .unwrap();
        let upstream = sim.url();
        // The proxy's own client builder installs the TLS provider reqwest needs.
        let client = sitoo_voyado_proxy::voyado::build_http_client();
        let memo: Arc<Mutex<HashMap<String, (u16, Bytes)>>> = Arc::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("http://{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (client, memo, upstream) = (client.clone(), memo.clone(), upstream.clone());
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let (client, memo, upstream) =
                            (client.clone(), memo.clone(), upstream.clone());
                        async move {
                            let target = request
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_owned())
                                .unwrap_or_default();
                            let (status, body) = stand_in(&client, &memo, &upstream, &target).await;
                            let mut response = http::Response::new(http_body_util::Full::new(body));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert(
                                http::header::CONTENT_TYPE,
                                http::HeaderValue::from_static("application/json"),
                            );
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let _ = tokio::task::spawn_blocking(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
        })
        .await;
        drop(sim);
    });
}

/// One GET of the stand-in: `target` with the made-up id and member number turned into Anna's,
/// answered from the memo (asking the simulator once), and turned back.
async fn stand_in(
    client: &reqwest::Client,
    memo: &Mutex<HashMap<String, (u16, Bytes)>>,
    upstream: &str,
    target: &str,
) -> (u16, Bytes) {
    let mut shape = target.to_owned();
    let mut n = None;
    if let Some(at) = shape.find(MADE_UP) {
        let id = shape[at..at + 36].to_owned();
        n = id[24..].parse::<usize>().ok();
        shape = shape.replace(&id, ANNA);
    }
    if let Some(at) = shape.find("memberNumber") {
        let rest = &shape[at + "memberNumber".len()..];
        let rest = rest
            .strip_prefix(':')
            .or_else(|| rest.strip_prefix("%3A"))
            .unwrap_or(rest);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if digits.len() == 9 && digits.starts_with('7') {
            n = digits[1..].parse().ok();
            shape = shape.replace(&digits, ANNA_MEMBER);
        }
    }
    let known = memo.lock().get(&shape).cloned();
    let (status, body) = match known {
        Some(answer) => answer,
        None => {
            let response = client
                .get(format!("{upstream}{shape}"))
                .header("apikey", "sim-demo-key")
                .header("user-agent", "bench/1")
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap();
            memo.lock().insert(shape, (status, body.clone()));
            (status, body)
        }
    };
    let Some(n) = n else {
        return (status, body);
    };
    let text = std::str::from_utf8(&body).unwrap_or_default();
    let text = text.replace(ANNA, &made_up_id(n)).replace(
        &format!("\"{ANNA_MEMBER}\""),
        &format!("\"{}\"", made_up_member(n)),
    );
    (status, Bytes::from(text))
}

// ---------------------------------------------------------------------------------------------
// The report

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn ms(micros: u128) -> String {
    format!("{:.1}", micros as f64 / 1000.0)
}

fn print_report(
    calls: &[Counted],
    card_calls: &[String],
    open: &[(OpenLoop, OpenLoop)],
    mix: &Mix,
) {
    println!("\n== Voyado calls per operation (market demo/SE, default caching) ==");
    for c in calls {
        println!("{:<44} {:>3}", c.what, c.calls);
    }
    println!("the cold card's calls: {}", card_calls.join(", "));

    println!(
        "\n== Cold card, open loop: simulator {} ms per call, no cache, floor {} ms; latency from \
         the intended send time (\"p99 sent\": from the actual send) ==",
        LATENCY.as_millis(),
        FLOOR.as_millis()
    );
    println!(
        "{:<7} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8}",
        "who",
        "rate/s",
        "sent",
        "shed",
        "failed",
        "in fl.",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "p99-floor",
        "p99 sent"
    );
    for (direct, proxied) in open {
        for (who, o) in [("direct", direct), ("proxy", proxied)] {
            println!(
                "{who:<7} {:>6} {:>6} {:>6} {:>6} {:>7.0} {:>7} {:>7} {:>7} {:>7} {:>9} {:>8}",
                o.rate,
                o.sent,
                o.shed,
                o.failed,
                o.in_flight,
                ms(o.intended.p50),
                ms(o.intended.p90),
                ms(o.intended.p99),
                ms(o.intended.max),
                ms(o.intended.p99.saturating_sub(FLOOR.as_micros())),
                ms(o.actual.p99),
            );
        }
    }
    println!(
        "(direct: the client makes the card's calls to the simulator itself, in the same two rounds)"
    );

    println!(
        "\n== Mix: {MIX_RATE}/s open loop, {}s warm-up, {}s measured, Zipf s={MIX_ZIPF_S} over \
         {MIX_CUSTOMERS} customers ({} distinct in the window), simulator {} ms ==",
        MIX_WARM_UP.as_secs(),
        MIX_MEASURE.as_secs(),
        mix.distinct,
        LATENCY.as_millis()
    );
    let total: usize = mix.requests.values().sum();
    for op in [MixOp::Card, MixOp::Search, MixOp::Update] {
        let p = mix.latency.get(&op).copied().unwrap_or_default();
        println!(
            "{:<8} requests {:>5}  p50 {:>7} ms  p99 {:>7} ms",
            format!("{op:?}"),
            mix.requests.get(&op).copied().unwrap_or(0),
            ms(p.p50),
            ms(p.p99)
        );
    }
    println!("failed: {}", mix.failed);
    println!(
        "{:<44} {:>7} {:>7} {:>7}",
        "svp_cache_total what", "hit", "miss", "ratio"
    );
    let (mut hits, mut misses) = (0.0, 0.0);
    for (what, h, m) in &mix.cache {
        if what != "card" {
            hits += h;
            misses += m;
        }
        println!("{what:<44} {h:>7} {m:>7} {:>7.3}", h / (h + m).max(1.0));
    }
    println!(
        "{:<44} {hits:>7} {misses:>7} {:>7.3}",
        "all Voyado answers",
        hits / (hits + misses).max(1.0)
    );
    println!(
        "Voyado calls: {} = {:.2} per request, {:.1} per second",
        mix.voyado_calls,
        mix.voyado_calls / total.max(1) as f64,
        mix.voyado_calls / MIX_MEASURE.as_secs_f64()
    );
    println!(
        "(Voyado's default budget: 40 calls per second per API key; at these calls per request it \
         carries {:.0} requests per second of this mix)",
        40.0 * total as f64 / mix.voyado_calls.max(1.0)
    );
}

fn print_memory(memory: &[MemoryRun]) {
    println!("\n== Resident memory, proxy alone in a process, {RSS_CUSTOMERS} distinct cards ==");
    for run in memory {
        println!(
            "max_bytes {} (cards and answers together); one card {} bytes; baseline VmRSS {} MiB",
            run.max_bytes,
            run.card_bytes,
            run.baseline_kb / 1024
        );
        for c in &run.checkpoints {
            println!(
                "  {:>7} customers: VmRSS {:>5} MiB (+{:>5} MiB), {:.0} s; weighed: cards {} MiB, \
                 answers {} MiB",
                c.customers,
                c.rss_kb / 1024,
                c.rss_kb.saturating_sub(run.baseline_kb) / 1024,
                c.secs,
                c.cards_weight >> 20,
                c.answers_weight >> 20
            );
        }
        if let Some(c) = run.checkpoints.last() {
            println!(
                "  growth: {:.1} KiB per customer",
                c.rss_kb.saturating_sub(run.baseline_kb) as f64 / c.customers as f64
            );
        }
        println!(
            "  peak VmHWM {} MiB; all {RSS_CUSTOMERS} asked again ({:.0} s): {} cards from \
             memory, {} rendered again, {} Voyado calls",
            run.peak_kb / 1024,
            run.again_secs,
            run.again_hits,
            run.again_misses,
            run.again_voyado_calls
        );
    }
}
