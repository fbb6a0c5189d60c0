//! `sitoo-voyado-proxy bench` against a tiny server in the test (hyper on a loopback port): what
//! a load-tester relies on. A stall shows in the percentiles, the schedule keeps its rate when
//! answers are slow, a target gets no write without `--allow-writes`, and bad flags exit 2.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use parking_lot::Mutex;
use serde_json::Value;
use sitoo_voyado_proxy::bench;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_sitoo-voyado-proxy");

/// Until when the tiny server holds the answer to a request for this URI that arrived at `now`.
type Hold = Arc<dyn Fn(Instant, &http::Uri) -> Option<Instant> + Send + Sync>;

/// Every request the tiny server received: method, path and arrival.
type Seen = Arc<Mutex<Vec<(Method, String, Instant)>>>;

/// A tiny SPI: a search finds one customer (with a bonus check and a promotion to redeem), the
/// card is that customer, everything else is `{}`. Each answer waits until `hold` says.
async fn tiny_server(hold: Hold) -> (String, Seen) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (hold, log) = (hold.clone(), log.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let now = Instant::now();
                log.lock().push((
                    request.method().clone(),
                    request.uri().path().to_owned(),
                    now,
                ));
                let until = hold(now, request.uri());
                let search = request
                    .uri()
                    .query()
                    .is_some_and(|q| q.contains("key_type"));
                async move {
                    if let Some(until) = until {
                        tokio::time::sleep_until(until).await;
                    }
                    let customer = r#"{"customer_id": "c1",
                        "promotions": [{"promotion_id": "p1", "redeemed": false}],
                        "bonus_checks": [{"bonus_check_id": "b1", "redeemed": false}]}"#;
                    let body = if search {
                        format!("[{customer}]")
                    } else if request.uri().path().ends_with("/customers/c1") {
                        customer.to_owned()
                    } else {
                        "{}".to_owned()
                    };
                    let mut answer = Response::new(Full::new(Bytes::from(body)));
                    answer.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(answer)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (url, seen)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("svp-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A mix file in `dir`: one customer, found by member number, and these steps, each `after` the
/// one before (0ms puts a whole session inside a short run).
fn mix_file(dir: &std::path::Path, unknown: f64, chances: [f64; 6], after: &str) -> String {
    let [card, history, redeem, edit, consents, create] = chances;
    let text = format!(
        "[till]\nsessions_per_hour = 20\n\
         [customers]\ngenerate = 10\nzipf_s = 1.0\nunknown = {unknown}\n\
         [find]\nmobile = 0\nemail = 0\nmember_number = 1\n\
         [steps]\n\
         card = {{ chance = {card}, after = \"{after}\" }}\n\
         history = {{ chance = {history}, after = \"{after}\" }}\n\
         redeem = {{ chance = {redeem}, after = \"{after}\", promotion_share = 0.5 }}\n\
         edit = {{ chance = {edit}, after = \"{after}\" }}\n\
         consents = {{ chance = {consents}, after = \"{after}\" }}\n\
         create = {{ chance = {create}, after = \"{after}\" }}\n\
         [[customer]]\nmember_number = \"10012\"\n"
    );
    let path = dir.join("mix.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn args(url: &str, dir: &std::path::Path, mix: &str, extra: &str) -> bench::Args {
    let line = format!(
        "--target {url} --tenant t --market m --key k --warmup 0s --mix {mix} --out {} {extra}",
        dir.display()
    );
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    bench::parse(&words).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_second_stall_shows_in_the_p99_at_100_arrivals_a_second() {
    let dir = scratch("stall");
    let stall_end: Arc<Mutex<Option<Instant>>> = Arc::default();
    let first: Arc<Mutex<Option<Instant>>> = Arc::default();
    // One second after the first request, the server stops answering for one second: every
    // request that arrives meanwhile is answered when the stall ends.
    let hold: Hold = Arc::new(move |now, _| {
        let started = *first.lock().get_or_insert(now);
        let mut end = stall_end.lock();
        if end.is_none() && now >= started + Duration::from_secs(1) {
            *end = Some(now + Duration::from_secs(1));
        }
        end.filter(|end| now < *end)
    });
    let (url, seen) = tiny_server(hold).await;
    let mix = mix_file(&dir, 0.0, [0.0; 6], "0ms");
    let results = bench::run(&args(&url, &dir, &mix, "--rate 100 --duration 3s"))
        .await
        .unwrap();
    // About 100 of 300 requests waited for the stall's end, from 1 s down to nothing.
    assert!(seen.lock().len() > 250, "{}", seen.lock().len());
    assert!(
        results.overall.p99_ms >= 500.0,
        "p99 {} ms hides the stall",
        results.overall.p99_ms
    );
    assert!(
        results.overall.max_ms >= 900.0,
        "{}",
        results.overall.max_ms
    );
    assert_eq!(results.overall.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_keeps_its_rate_when_every_answer_takes_a_second() {
    let dir = scratch("slow");
    let hold: Hold = Arc::new(|now, _| Some(now + Duration::from_secs(1)));
    let (url, seen) = tiny_server(hold).await;
    let mix = mix_file(&dir, 0.0, [0.0; 6], "0ms");
    let results = bench::run(&args(&url, &dir, &mix, "--rate 100 --duration 2s"))
        .await
        .unwrap();
    // The SPI requests, not the two reads of /metrics around the measured window.
    let seen: Vec<_> = seen
        .lock()
        .iter()
        .filter(|s| s.1 != "/metrics")
        .cloned()
        .collect();
    let first = seen.iter().map(|s| s.2).min().unwrap();
    let in_first_second = seen
        .iter()
        .filter(|s| s.2 < first + Duration::from_secs(1))
        .count();
    // 100 a second were planned; answers taking a second must not slow the arrivals.
    assert!(
        in_first_second >= 75,
        "{in_first_second} arrived in the first second"
    );
    assert!(seen.len() >= 160, "{} arrived in 2 s", seen.len());
    assert_eq!(results.overall.count as usize, seen.len());
    // Every request waited a second for its answer, and that is what was measured.
    assert!(
        results.overall.p50_ms >= 1000.0,
        "{}",
        results.overall.p50_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_held_back_by_a_slow_answer_counts_from_its_planned_time() {
    let dir = scratch("held");
    // Searches take a second. The card, planned 100 ms after its search, can only go once the
    // search has named the customer; it is answered at once, but a till waited ~900 ms for it.
    let hold: Hold = Arc::new(|now, uri| {
        let search = uri.query().is_some_and(|q| q.contains("key_type"));
        search.then(|| now + Duration::from_secs(1))
    });
    let (url, _) = tiny_server(hold).await;
    let mix = mix_file(&dir, 0.0, [1.0, 0.0, 0.0, 0.0, 0.0, 0.0], "100ms");
    let results = bench::run(&args(&url, &dir, &mix, "--rate 40 --duration 1s"))
        .await
        .unwrap();
    let card = &results.operations["card"].stats;
    assert!(card.count >= 5, "{}", card.count);
    assert!(card.p50_ms >= 850.0, "card p50 {} ms", card.p50_ms);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_gets_no_write_without_allow_writes() {
    let dir = scratch("writes");
    // Every session would write if it could: half are unknown customers who sign up, the rest
    // redeem and are edited.
    let mix = mix_file(&dir, 0.5, [1.0, 0.0, 1.0, 1.0, 1.0, 1.0], "0ms");
    let (url, seen) = tiny_server(Arc::new(|_, _| None)).await;
    let results = bench::run(&args(&url, &dir, &mix, "--rate 100 --duration 1s"))
        .await
        .unwrap();
    let methods: Vec<Method> = seen
        .lock()
        .iter()
        .filter(|s| s.1 != "/metrics")
        .map(|s| s.0.clone())
        .collect();
    assert!(methods.len() > 50, "{}", methods.len());
    assert!(methods.iter().all(|m| m == Method::GET), "{methods:?}");
    assert!(!results.operations.contains_key("redeem"));

    // The same mix with --allow-writes does write: the check above can see writes.
    let (url, seen) = tiny_server(Arc::new(|_, _| None)).await;
    bench::run(&args(
        &url,
        &dir,
        &mix,
        "--rate 100 --duration 1s --allow-writes",
    ))
    .await
    .unwrap();
    let seen = seen.lock();
    for (method, path) in [
        (Method::POST, "/t/m/customers/c1/redeem"),
        (Method::PUT, "/t/m/customers/c1"),
        (Method::POST, "/t/m/customers"),
    ] {
        assert!(
            seen.iter().any(|s| s.0 == method && s.1 == path),
            "no {method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_json_from_a_target_has_the_documented_shape() {
    let dir = scratch("shape");
    let mix = mix_file(&dir, 0.0, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0], "0ms");
    let (url, _) = tiny_server(Arc::new(|_, _| None)).await;
    bench::run(&args(&url, &dir, &mix, "--rate 50 --duration 1s"))
        .await
        .unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let fields = [
        "count", "rate", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "errors",
    ];
    let keys = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    let mut expected: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
    expected.sort();
    assert_eq!(keys(&results["overall"]), expected);
    let operations = results["operations"].as_object().unwrap();
    let names: Vec<&String> = operations.keys().collect();
    assert_eq!(names, ["card", "find_by_member_number", "history"]);
    for op in operations.values() {
        for f in fields {
            assert!(op[f].is_number(), "{f} in {op}");
        }
        // A target's Voyado calls cannot be told apart per operation.
        assert!(op["voyado_calls_per_request"].is_null());
    }
    assert!(results["overall"]["count"].as_u64().unwrap() > 20);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.matches("<svg").count() >= 2);
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (line, says) in [
        ("bench", "--in-process or --target"),
        ("bench --in-process --rate -5", "--rate"),
        ("bench --in-process --duration 10", "--duration"),
        (
            "bench --in-process --voyado-latency p50=1s,p99=10ms",
            "--voyado-latency",
        ),
        ("bench --target http://127.0.0.1:9 --tenant t", "--market"),
        ("bench --in-process --color", "unknown flag --color"),
        ("bench --in-process --mix /nonexistent.toml", "--mix"),
    ] {
        let out = Command::new(BIN)
            .args(line.split_whitespace())
            .arg("--out")
            .arg(std::env::temp_dir().join("svp-bench-never-written"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{line}: {stderr}");
        assert!(stderr.contains(says), "{line}: {stderr}");
        assert!(!stderr.contains("panicked"), "{line}: {stderr}");
    }
}
