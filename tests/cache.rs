//! What the proxy remembers of Voyado and how it spends Voyado's budget, seen from outside: warm
//! cards cost no call, concurrent misses make one call, writes drop what they changed, tenants
//! never share an entry, the per-key rate limit, a Voyado 429's pause, the breaker, and the
//! idempotent redeem on the till's own `Request-ID`.
//!
//! Real time over real loopback sockets (see `upstream.rs` for why not paused time): the waits
//! are the few hundred milliseconds a TTL, a pause or a cool-off needs, and everything else is
//! polled with a bound.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sitoo_voyado_proxy::sim::FaultAction;
use tokio::time::{Instant, sleep, sleep_until};

const MS: Duration = Duration::from_millis(1);

/// Another market on the demo Voyado tenant (same API key: same cache entries, limiter and
/// breaker as demo/SE) whose Voyado calls may take 3 s and requests 8 s: demo/SE's 400 ms call
/// timeout leaves too little room for a deliberately slow Voyado on a busy machine.
const SLOW: &str = r#"
[[market]]
tenant = "demo"
market = "SLOW"
crm_api_keys = ["slow-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
"#;

const SLOW_KEY: &str = "slow-key";

/// Which Voyado endpoint a simulator path belongs to (the card's five, the search lookup).
fn endpoint(path: &str) -> &'static str {
    if path == "/api/v2/contacts/id" {
        "key_to_id"
    } else if path.ends_with("/promotions") {
        "promotions"
    } else if path.ends_with("/bonuschecks/available") {
        "available_bonus_checks"
    } else if path.starts_with("/api/v2/point-accounts") {
        "point_accounts"
    } else if path.starts_with("/api/v2/memberstatus") {
        "member_status"
    } else if path.starts_with("/api/v2/contacts/") && path.matches('/').count() == 4 {
        "contact"
    } else {
        "other"
    }
}

/// Voyado GETs so far, by endpoint.
fn calls(h: &Harness) -> BTreeMap<&'static str, usize> {
    calls_since(h, 0)
}

/// Voyado GETs after the first `skip` requests, by endpoint.
fn calls_since(h: &Harness, skip: usize) -> BTreeMap<&'static str, usize> {
    let mut calls = BTreeMap::new();
    for seen in h.sim.requests().into_iter().skip(skip) {
        if seen.method == Method::GET {
            *calls.entry(endpoint(&seen.path)).or_insert(0) += 1;
        }
    }
    calls
}

/// The five calls of a card, each `n` times.
fn card_calls(n: usize) -> BTreeMap<&'static str, usize> {
    [
        "available_bonus_checks",
        "contact",
        "member_status",
        "point_accounts",
        "promotions",
    ]
    .into_iter()
    .map(|e| (e, n))
    .collect()
}

/// Waits (bounded) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        sleep(2 * MS).await;
    }
}

/// A GET on a full path with its own client handle, for a task that may be aborted.
async fn get_with(client: reqwest::Client, url: String, key: &'static str) -> Answer {
    let response = client
        .get(url)
        .basic_auth("pos", Some(key))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// The answer's Retry-After in seconds; panics when there is none.
#[track_caller]
fn retry_after(a: &Answer) -> u64 {
    a.headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After: {}", a.body))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// How metrics name a Voyado tenant: its URL and the first 8 bytes of its API key's SHA-256.
fn tenant_label(url: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(key)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{}#{digest}", url::Url::parse(url).unwrap())
}

fn check_ids(card: &Value) -> Vec<&str> {
    card["bonus_checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no bonus_checks: {card}"))
        .iter()
        .filter_map(|c| c["bonus_check_id"].as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. A warm card

#[tokio::test]
async fn a_warm_card_makes_no_voyado_call() {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    let cold = h.get(&card).await;
    assert_eq!(cold.status, 200, "{}", cold.body);
    assert_eq!(calls(&h), card_calls(1));
    let before = h.sim.requests().len();

    let warm = h.get(&card).await;
    assert_eq!(warm.status, 200, "{}", warm.body);
    assert_eq!(warm.body, cold.body);
    assert_eq!(h.sim.requests().len(), before, "{:?}", calls(&h));
    // Served as the rendered bytes, not re-rendered from remembered answers (one hit); the cold
    // card's miss is counted once, by the render, not again by the warm check before it.
    for result in ["hit", "miss"] {
        let labels = [("what", "card"), ("result", result)];
        let count = metric(&h, "svp_cache_total", &labels).await;
        assert_eq!(count, Some(1.0), "{result}");
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Concurrent misses

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_cards_make_one_call_per_endpoint() {
    let h = Harness::start().await;
    // Every call takes a while, so the 50 requests overlap at Voyado.
    h.sim.set_latency("", 50 * MS);
    let card = format!("/customers/{ANNA}");
    let answers = join_all((0..50).map(|_| h.get(&card))).await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.body, answers[0].body);
    }
    assert_eq!(answers[0].body["customer_id"], ANNA);
    assert_eq!(calls(&h), card_calls(1));
}

// ---------------------------------------------------------------------------------------------
// 3. A caller that goes away

/// Voyado takes `LATENCY` a call; a card request starts, a second joins it, and the first is
/// dropped while its first round is at Voyado. The second's answer and how long it took.
async fn second_caller_after_a_cancelled_first(h: &Harness) -> (Answer, Duration) {
    const LATENCY: Duration = Duration::from_millis(300);
    h.sim.set_latency("", LATENCY);
    let url = format!("{}/demo/SLOW/customers/{ANNA}", h.proxy);
    let first = tokio::spawn(get_with(h.client.clone(), url.clone(), SLOW_KEY));
    until("the first caller's first round at Voyado", || {
        h.sim.requests().len() >= 4
    })
    .await;
    let start = Instant::now();
    let second = tokio::spawn(get_with(h.client.clone(), url, SLOW_KEY));
    // Once the second is at the proxy too (the scrape counts itself), the first goes away.
    let mut polls = 0;
    while metric(h, "svp_requests_in_flight", &[]).await < Some(3.0) {
        polls += 1;
        assert!(polls < 500, "the second request never reached the proxy");
        sleep(2 * MS).await;
    }
    first.abort();
    let answer = second.await.unwrap();
    (answer, start.elapsed())
}

#[tokio::test]
async fn a_cancelled_first_caller_does_not_stall_the_rest() {
    let h = Harness::with_top("", SLOW).await;
    let (a, took) = second_caller_after_a_cancelled_first(&h).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["customer_id"], ANNA);
    // Two rounds of 300 ms, and slack for a busy machine; far below the 3 s Voyado timeout
    // and the 8 s deadline, which a stalled caller would run into.
    assert!(took < Duration::from_millis(1600), "took {took:?}");
}

#[tokio::test]
async fn a_cancelled_first_callers_calls_still_serve_the_rest() {
    let h = Harness::with_top("", SLOW).await;
    let (a, _) = second_caller_after_a_cancelled_first(&h).await;
    assert_eq!(a.status, 200, "{}", a.body);
    // The first round was already under way at Voyado: the second caller gets its answers.
    assert_eq!(calls(&h), card_calls(1));
}

#[tokio::test]
async fn a_cancelled_probe_does_not_keep_the_tenant_cooling_off() {
    let h = Harness::with_top(
        "[voyado]\nbreaker_failures = 1\nbreaker_cool_off_ms = 300",
        SLOW,
    )
    .await;
    let history = format!("{}/demo/SLOW/customers/{ANNA}/transactions", h.proxy);
    let get = || get_with(h.client.clone(), history.clone(), SLOW_KEY);
    h.sim.inject(fault(
        Method::GET,
        "/transactions",
        FaultAction::Status(500, None),
        1,
    ));
    get().await.assert_error(502, "bad_gateway");
    let opened = Instant::now();
    get().await.assert_error(503, "upstream_unavailable");

    // After the cool-off the probe (history is never cached: the call runs in the request's
    // own task) meets a Voyado that takes 2.5 s, and the till gives up on it.
    h.sim.inject(fault(
        Method::GET,
        "/transactions",
        FaultAction::Delay(Duration::from_millis(2500)),
        1,
    ));
    sleep_until(opened + 400 * MS).await;
    let probe = tokio::spawn(get());
    until("the probe at Voyado", || {
        h.seen("GET", "/transactions").len() == 2
    })
    .await;
    probe.abort();
    let aborted = Instant::now();

    // The next request probes in its place, long before the abandoned probe could have ended.
    let mut answer = get().await;
    for _ in 0..20 {
        if answer.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        sleep(25 * MS).await;
        answer = get().await;
    }
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(aborted.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn a_request_that_gives_up_waiting_for_a_permit_leaves_the_line() {
    // One permit a second; a new request may wait 1.5 s for one.
    let h = Harness::with_top(
        "[voyado]\nrate_per_second = 1\nburst = 1\nnew_work_share = 1.0\npermit_wait_ms = 1500",
        SLOW,
    )
    .await;
    let in_flight = async || {
        metric(&h, "svp_requests_in_flight", &[])
            .await
            .expect("no in-flight gauge")
    };
    // History is never cached: the permit is waited for in the request's own task.
    let history = format!(
        "{}/demo/SLOW/customers/{ANNA}/transactions?limit=100",
        h.proxy
    );
    let get = || get_with(h.client.clone(), history.clone(), SLOW_KEY);
    assert_eq!(get().await.status, 200);

    // The next request waits for the permit due in a second, and its till gives up.
    let waiting = tokio::spawn(get());
    let mut polls = 0;
    // The scrape counts itself.
    while in_flight().await < 2.0 {
        polls += 1;
        assert!(polls < 500, "the request never reached the proxy");
        sleep(2 * MS).await;
    }
    waiting.abort();
    while in_flight().await > 1.0 {
        polls += 1;
        assert!(polls < 1000, "the proxy never saw the till go");
        sleep(2 * MS).await;
    }

    // Alone in line, the next request waits for that permit (it would wait two intervals behind
    // a caller still counted, over the 1.5 s limit, and be refused at once).
    let a = get().await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(h.seen("GET", "/transactions").len(), 2);
}

// ---------------------------------------------------------------------------------------------
// 4. Writes drop what they changed

#[tokio::test]
async fn an_update_is_seen_on_the_next_card() {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    assert_eq!(h.get(&card).await.body["name_last"], "Andersson");
    let a = h
        .send(Method::PUT, &card, &json!({"name_last": "Lindqvist"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["name_last"], "Lindqvist");
    let after = h.get(&card).await;
    assert_eq!(after.body["name_last"], "Lindqvist", "{}", after.body);
    // ... and in every market of the tenant.
    let no = h
        .get_as(&format!("/demo/NO/customers/{ANNA}"), "no-key")
        .await;
    assert_eq!(no.body["name_last"], "Lindqvist", "{}", no.body);
}

#[tokio::test]
async fn a_create_drops_the_not_found_its_search_left() {
    let h = Harness::start().await;
    let search = "/customers?key_type=email&key=nils.ny%40example.com";
    let none = h.get(search).await;
    assert_eq!(none.status, 200, "{}", none.body);
    assert_eq!(none.body, json!([]));
    let created = h
        .send(
            Method::POST,
            "/customers",
            &json!({"email": "nils.ny@example.com", "name_first": "Nils", "name_last": "Ny"}),
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id = created.body["customer_id"].as_str().unwrap();
    let found = h.get(search).await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body[0]["customer_id"], id, "{}", found.body);
}

/// An edit makes stale what it changed, not every customer's key: after Anna's edit, Bo is found
/// again from memory (no key lookup), and Anna's old email no longer finds her.
#[tokio::test]
async fn an_edit_forgets_only_the_keys_of_its_contact() {
    let h = Harness::start().await;
    let find = |email: &str| {
        format!(
            "/customers?key_type=email&key={}",
            email.replace('@', "%40")
        )
    };
    let (anna, bo) = ("anna.andersson@example.com", "bo.berg@example.com");
    for email in [anna, bo] {
        let found = h.get(&find(email)).await;
        assert_eq!(
            found.body.as_array().map(Vec::len),
            Some(1),
            "{}",
            found.body
        );
    }
    let lookups = || h.seen("GET", "/contacts/id").len();
    let before = lookups();
    let edit = json!({"email": "anna.ny@example.com"});
    let edited = h
        .send(Method::PUT, &format!("/customers/{ANNA}"), &edit)
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    let bo_again = h.get(&find(bo)).await;
    assert_eq!(bo_again.body[0]["customer_id"], BO, "{}", bo_again.body);
    assert_eq!(
        lookups(),
        before,
        "Bo's key was asked again after Anna's edit"
    );
    let old = h.get(&find(anna)).await;
    assert_eq!(old.body, json!([]), "the old email still finds Anna");
    let new = h.get(&find("anna.ny@example.com")).await;
    assert_eq!(new.body[0]["customer_id"], ANNA, "{}", new.body);
}

/// The Voyado calls after the first `skip` requests, each as its method and endpoint.
fn made_since(h: &Harness, skip: usize) -> Vec<(String, &'static str)> {
    let seen = h.sim.requests().into_iter().skip(skip);
    seen.map(|s| (s.method.to_string(), endpoint(&s.path)))
        .collect()
}

/// An edit changes the contact, not what the contact may spend: the card it answers with takes
/// the contact from the edit's own answer and the offers and status from memory, so the edit
/// costs the read it is diffed against and the write. A redeem changes the offers, not the
/// contact: the next card reads the offers again and nothing else.
#[tokio::test]
async fn an_edit_rereads_nothing_it_did_not_change_nor_a_redeem() {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    assert_eq!(h.get(&card).await.status, 200);
    let before_edit = h.sim.requests().len();
    let edit = json!({"name_last": "Lindqvist"});
    let edited = h.send(Method::PUT, &card, &edit).await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    assert_eq!(edited.body["name_last"], "Lindqvist", "{}", edited.body);
    let get = |e| ("GET".to_owned(), e);
    let post = ("POST".to_owned(), "contact");
    assert_eq!(made_since(&h, before_edit), [get("contact"), post]);
    let after = h.get(&card).await;
    assert_eq!(after.body["name_last"], "Lindqvist", "{}", after.body);

    let body = json!({"bonus_checks": [CHECK_100]});
    let redeemed = h.send(Method::POST, &format!("{card}/redeem"), &body).await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    let after_redeem = h.sim.requests().len();
    let card_now = h.get(&card).await;
    assert!(!check_ids(&card_now.body).contains(&CHECK_100));
    assert_eq!(card_now.body["name_last"], "Lindqvist", "{}", card_now.body);
    let offers: BTreeMap<_, _> = [
        ("available_bonus_checks", 1),
        ("point_accounts", 1),
        ("promotions", 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(calls_since(&h, after_redeem), offers);
}

/// A create answers with the contact it made: the card that follows reads it from there.
#[tokio::test]
async fn the_card_after_a_create_takes_the_contact_from_its_answer() {
    let h = Harness::start().await;
    let body = json!({"email": "nils.ny@example.com", "name_first": "Nils", "name_last": "Ny"});
    let created = h.send(Method::POST, "/customers", &body).await;
    assert_eq!(created.status, 200, "{}", created.body);
    assert_eq!(created.body["name_first"], "Nils", "{}", created.body);
    let id = created.body["customer_id"].as_str().unwrap();
    let path = format!("/api/v2/contacts/{id}");
    let contact_reads = h.seen("GET", &path).into_iter().filter(|s| s.path == path);
    assert_eq!(contact_reads.count(), 0, "the new contact was read again");
}

#[tokio::test]
async fn redeem_and_undo_are_seen_on_the_next_card() {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    assert!(check_ids(&h.get(&card).await.body).contains(&CHECK_100));
    let body = json!({"bonus_checks": [CHECK_100]});
    let redeemed = h.send(Method::POST, &format!("{card}/redeem"), &body).await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    let after = h.get(&card).await;
    assert!(
        !check_ids(&after.body).contains(&CHECK_100),
        "{}",
        after.body
    );

    let undone = h
        .send(Method::DELETE, &format!("{card}/redeem"), &body)
        .await;
    assert_eq!(undone.status, 200, "{}", undone.body);
    let again = h.get(&card).await;
    assert!(
        check_ids(&again.body).contains(&CHECK_100),
        "{}",
        again.body
    );
}

#[tokio::test]
async fn a_card_read_under_way_during_an_update_is_not_kept() {
    let h = Harness::with_top("", SLOW).await;
    let card = format!("{}/demo/SLOW/customers/{ANNA}", h.proxy);
    // A card read whose first round Voyado answers late — with the contact as it was then.
    h.sim.inject(fault(
        Method::GET,
        "/api/v2/contacts/8f0c1d2e-0000-4000-8000-000000000001",
        FaultAction::ApplyThenHang(Duration::from_millis(400)),
        3,
    ));
    let read = tokio::spawn(get_with(h.client.clone(), card.clone(), SLOW_KEY));
    until("the read's first round at Voyado", || {
        h.sim.requests().len() >= 4
    })
    .await;
    let update = h
        .call(
            Method::PUT,
            &format!("/demo/SLOW/customers/{ANNA}"),
            Some(SLOW_KEY),
            Some(&json!({"name_last": "Lindqvist"}).to_string()),
            &[],
        )
        .await;
    assert_eq!(update.status, 200, "{}", update.body);
    assert_eq!(h.sim.writes(), 1);
    assert_eq!(read.await.unwrap().status, 200);
    // The update's own answer, and the next card.
    let after = get_with(h.client.clone(), card, SLOW_KEY).await;
    assert_eq!(
        (&update.body["name_last"], &after.body["name_last"]),
        (&json!("Lindqvist"), &json!("Lindqvist"))
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Tenants

#[tokio::test]
async fn two_voyado_tenants_never_share_an_entry() {
    let h = Harness::start().await;
    // Calls with this tenant's key to exactly this path.
    let saw = |key: &str, path: &str| {
        h.sim
            .requests()
            .into_iter()
            .filter(|r| r.path == path && r.headers["apikey"] == key)
            .count()
    };

    // The same search key, the same Voyado path: Anna in demo, Olle in other.
    let search = "/customers?key_type=email&key=anna.andersson%40example.com";
    let demo = h.get(search).await;
    assert_eq!(demo.body[0]["customer_id"], ANNA, "{}", demo.body);
    let other = h.get_as(&format!("/other/SE{search}"), "other-key").await;
    assert_eq!(other.body[0]["customer_id"], OLLE, "{}", other.body);
    assert_eq!(saw(OTHER_KEY, "/api/v2/contacts/id"), 1);

    // Anna's card, warm in demo, is not other's to see.
    assert_eq!(h.get(&format!("/customers/{ANNA}")).await.status, 200);
    let other = h
        .get_as(&format!("/other/SE/customers/{ANNA}"), "other-key")
        .await;
    other.assert_error(404, "not_found");
    assert_eq!(saw(OTHER_KEY, &format!("/api/v2/contacts/{ANNA}")), 1);

    // The other way round: Olle's card warm in other, and other's "not found" for Bo.
    let olle = h
        .get_as(&format!("/other/SE/customers/{OLLE}"), "other-key")
        .await;
    assert_eq!(olle.status, 200, "{}", olle.body);
    h.get_as(&format!("/other/SE/customers/{BO}"), "other-key")
        .await
        .assert_error(404, "not_found");
    h.get(&format!("/customers/{OLLE}"))
        .await
        .assert_error(404, "not_found");
    let bo = h.get(&format!("/customers/{BO}")).await;
    assert_eq!(bo.status, 200, "{}", bo.body);
    assert_eq!(bo.body["customer_id"], BO);
    assert_eq!(saw(DEMO_KEY, &format!("/api/v2/contacts/{OLLE}")), 1);
    assert_eq!(saw(DEMO_KEY, &format!("/api/v2/contacts/{BO}")), 1);
}

// ---------------------------------------------------------------------------------------------
// 6. Voyado's budget

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rush_of_searches_stays_within_voyados_budget() {
    // The default budget: 40/s and a burst of 20 per key, new work waits at most 500 ms. (On
    // demo/SLOW: with 240 requests on two busy cores a call can take longer than demo/SE's
    // 400 ms timeout.)
    let h = Harness::with_top("", SLOW).await;
    const SEARCHES: usize = 240;
    let answers = join_all((0..SEARCHES).map(|i| {
        let h = &h;
        async move {
            let start = Instant::now();
            let a = h
                .get_as(
                    &format!("/demo/SLOW/customers?key_type=email&key=rush.{i}%40example.com"),
                    SLOW_KEY,
                )
                .await;
            (a, start.elapsed())
        }
    }))
    .await;

    let (mut ok, mut throttled) = (0, 0);
    for (a, took) in &answers {
        match a.status.as_u16() {
            200 => {
                assert_eq!(a.body, json!([]));
                ok += 1;
            }
            429 => {
                a.assert_error(429, "too_many_requests");
                assert!(retry_after(a) >= 1);
                throttled += 1;
            }
            _ => panic!("{} {}", a.status, a.body),
        }
        // About a second at most (a new request waits 500 ms for a permit); slack for 2 cores.
        assert!(*took < Duration::from_millis(2500), "took {took:?}");
    }
    let mut at: Vec<Instant> = h.sim.requests().into_iter().map(|r| r.at).collect();
    at.sort();
    let busiest = (0..at.len())
        .map(|i| at[i..].partition_point(|t| *t < at[i] + Duration::from_secs(1)))
        .max()
        .unwrap_or(0);
    let slowest = answers.iter().map(|(_, took)| *took).max();
    println!(
        "{ok} answered, {throttled} throttled, {} Voyado calls, at most {busiest} in a second, \
         slowest answer {slowest:?}",
        at.len()
    );
    assert!(busiest <= 60, "{busiest} Voyado calls in one second");
    assert_eq!(at.len(), ok, "one lookup per answered search");
    // The burst at least went through; the rest was turned away, not queued.
    assert!(ok >= 16, "{ok}");
    assert!(throttled > 0);
}

// ---------------------------------------------------------------------------------------------
// 7. A Voyado 429

#[tokio::test]
async fn a_voyado_429_pauses_the_key() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::GET,
        "/promotions",
        FaultAction::RateLimited(Some(2)),
        1,
    ));
    let a = h.get(&format!("/customers/{ANNA}")).await;
    a.assert_error(429, "too_many_requests");
    assert_eq!(retry_after(&a), 2);
    let paused = Instant::now();
    let quiet = h.sim.requests().len();

    // New requests within the pause are answered here, and Voyado hears nothing.
    let bo = format!("/customers/{BO}");
    let mut resumed = None;
    for _ in 0..20 {
        let a = h.get(&bo).await;
        if a.status == 200 {
            resumed = Some(paused.elapsed());
            break;
        }
        a.assert_error(429, "too_many_requests");
        let wait = retry_after(&a);
        assert!((1..=2).contains(&wait), "Retry-After {wait}");
        assert_eq!(h.sim.requests().len(), quiet, "a call during the pause");
        sleep(200 * MS).await;
    }
    // After the pause, requests go through again.
    let resumed = resumed.expect("still refused after the pause");
    assert!(resumed >= Duration::from_millis(1500), "{resumed:?}");
    assert_eq!(h.get(&format!("/customers/{ANNA}")).await.status, 200);
}

// ---------------------------------------------------------------------------------------------
// 8. The breaker

#[tokio::test]
async fn a_failing_tenant_is_answered_at_once_then_probed() {
    let h = Harness::with_top(
        "[voyado]\nbreaker_failures = 3\nbreaker_cool_off_ms = 1000",
        "",
    )
    .await;
    let demo = tenant_label(&h.sim.url(), DEMO_KEY);
    let gauge = async || metric(&h, "svp_voyado_breaker_state", &[("voyado", &demo)]).await;
    // Voyado slow and failing: three failures, each after 150 ms.
    h.sim.set_latency("/transactions", 150 * MS);
    h.sim.inject(fault(
        Method::GET,
        "/transactions",
        FaultAction::Status(500, None),
        3,
    ));
    // Anna's 30 purchases fit one page: one call a request.
    let history = format!("/customers/{ANNA}/transactions?limit=100");
    for _ in 0..3 {
        h.get(&history).await.assert_error(502, "bad_gateway");
    }
    let opened = Instant::now();
    assert_eq!(h.seen("GET", "/transactions").len(), 3);
    let quiet = h.sim.requests().len();

    // Open: 503 at once, for every market of the tenant, without a call.
    for path in [
        format!("/demo/SE{history}"),
        format!("/demo/SE/customers/{BO}"),
        format!("/demo/NO/customers/{NORA}"),
    ] {
        let key = if path.starts_with("/demo/NO") {
            "no-key"
        } else {
            "se-key"
        };
        let start = Instant::now();
        let a = h.get_as(&path, key).await;
        let took = start.elapsed();
        a.assert_error(503, "upstream_unavailable");
        assert_eq!(retry_after(&a), 1, "{path}");
        assert!(took < Duration::from_millis(100), "{path}: {took:?}");
    }
    assert_eq!(h.sim.requests().len(), quiet, "a call while open");
    assert_eq!(gauge().await, Some(1.0));

    // Another tenant is not affected.
    let olle = h
        .get_as(&format!("/other/SE/customers/{OLLE}"), "other-key")
        .await;
    assert_eq!(olle.status, 200, "{}", olle.body);
    assert!(
        h.sim.requests()[quiet..]
            .iter()
            .all(|r| r.headers["apikey"] == OTHER_KEY)
    );

    // Voyado is healthy again (the fault is spent). After the cool-off one probe goes; while it
    // is out the rest are still answered at once.
    sleep_until(opened + 1100 * MS).await;
    let calls_before = h.seen("GET", "/transactions").len();
    let probe = h.get(&history);
    let others = async {
        until("the probe at Voyado", || {
            h.seen("GET", "/transactions").len() > calls_before
        })
        .await;
        join_all((0..3).map(|_| h.get(&history))).await
    };
    let (probe, others) = tokio::join!(probe, others);
    assert_eq!(probe.status, 200, "{}", probe.body);
    for a in others {
        a.assert_error(503, "upstream_unavailable");
        assert_eq!(retry_after(&a), 1);
    }
    assert_eq!(h.seen("GET", "/transactions").len(), calls_before + 1);
    assert_eq!(gauge().await, Some(0.0));
    // Service resumed.
    assert_eq!(h.get(&history).await.status, 200);
    assert_eq!(h.get(&format!("/customers/{BO}")).await.status, 200);
}

#[tokio::test]
async fn the_breaker_gauge_shows_an_open_tenant_while_another_is_fine() {
    let h = Harness::with_top(
        "[voyado]\nbreaker_failures = 1\nbreaker_cool_off_ms = 60000",
        "",
    )
    .await;
    h.sim.inject(fault(
        Method::GET,
        "/transactions",
        FaultAction::Status(500, None),
        1,
    ));
    h.get(&format!("/customers/{ANNA}/transactions"))
        .await
        .assert_error(502, "bad_gateway");
    h.get(&format!("/customers/{BO}"))
        .await
        .assert_error(503, "upstream_unavailable");
    let olle = h
        .get_as(&format!("/other/SE/customers/{OLLE}"), "other-key")
        .await;
    assert_eq!(olle.status, 200);
    // demo is still open: some series must say so.
    let text = h.metrics_text().await;
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("svp_voyado_breaker_state{"))
        .collect();
    assert!(series.iter().any(|l| l.ends_with(" 1")), "{series:?}");
    let demo = tenant_label(&h.sim.url(), DEMO_KEY);
    let other = tenant_label(&h.sim.url(), OTHER_KEY);
    assert_eq!(
        metric(&h, "svp_voyado_breaker_state", &[("voyado", &demo)]).await,
        Some(1.0)
    );
    assert_eq!(
        metric(&h, "svp_voyado_breaker_state", &[("voyado", &other)]).await,
        Some(0.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 9. Idempotent redeem

async fn redeem(h: &Harness, request_id: Option<&str>, body: &Value) -> Answer {
    let headers: Vec<(&str, &str)> = request_id
        .map(|id| ("Request-ID", id))
        .into_iter()
        .collect();
    h.call(
        Method::POST,
        &format!("/demo/SLOW/customers/{ANNA}/redeem"),
        Some(SLOW_KEY),
        Some(&body.to_string()),
        &headers,
    )
    .await
}

#[tokio::test]
async fn a_redeem_repeated_under_the_tills_request_id_is_answered_once() {
    let h = Harness::with_top("", SLOW).await;
    let redeems = |check: &str| {
        h.seen("POST", "/redeem")
            .iter()
            .filter(|r| r.path.contains(check))
            .count()
    };
    let body = json!({"bonus_checks": [CHECK_100]});
    let first = redeem(&h, Some("till-7-0001"), &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = redeem(&h, Some("till-7-0001"), &body).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(h.sim.writes(), 1);
    assert_eq!(redeems(CHECK_100), 1);

    // The same id for another redeem is refused, naming the header.
    let other = json!({"bonus_checks": [CHECK_SECOND]});
    redeem(&h, Some("till-7-0001"), &other)
        .await
        .assert_field("Request-ID");
    // Without the till's own id a repeat is just another redeem, refused on its merits.
    redeem(&h, None, &body)
        .await
        .assert_error(400, "already_redeemed");
    assert_eq!(h.sim.writes(), 1);

    // A repeat that arrives while the first is still at Voyado waits for it.
    h.sim.set_latency("/redeem", 400 * MS);
    let (slow, repeat) = tokio::join!(redeem(&h, Some("till-7-0002"), &other), async {
        until("the first redeem at Voyado", || redeems(CHECK_SECOND) == 1).await;
        redeem(&h, Some("till-7-0002"), &other).await
    });
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(repeat.status, 200, "{}", repeat.body);
    assert_eq!(repeat.body, slow.body);
    assert_eq!(redeems(CHECK_SECOND), 1);
    assert_eq!(h.sim.writes(), 2);
    assert_eq!(
        metric(&h, "svp_redeem_replayed_total", &[]).await,
        Some(2.0)
    );
}

// ---------------------------------------------------------------------------------------------
// 10. TTLs

/// Anna's card, then the same card after the offers expired but the contact did not (counting
/// the calls after the first `skip`).
async fn offers_expire_before_the_contact(h: &Harness, skip: usize) {
    let card = format!("/customers/{ANNA}");
    assert_eq!(h.get(&card).await.status, 200);
    assert_eq!(calls_since(h, skip), card_calls(1));
    sleep(400 * MS).await;
    assert_eq!(h.get(&card).await.status, 200);
    let mut expected = card_calls(1);
    for offers in ["promotions", "available_bonus_checks", "point_accounts"] {
        expected.insert(offers, 2);
    }
    assert_eq!(calls_since(h, skip), expected);
}

#[tokio::test]
async fn offers_are_read_again_after_their_ttl_and_the_contact_is_not() {
    let (global, market) = tokio::join!(
        Harness::with_top("[cache]\noffers_ms = 300", ""),
        Harness::with("cache = { offers_ms = 300 }"),
    );
    // The override is demo/SE's alone: demo/NO keeps the default 10 s.
    let no = format!("/demo/NO/customers/{NORA}");
    assert_eq!(market.get_as(&no, "no-key").await.status, 200);
    let nora = market.sim.requests().len();
    tokio::join!(
        offers_expire_before_the_contact(&global, 0),
        offers_expire_before_the_contact(&market, nora),
    );
    let before = market.sim.requests().len();
    assert_eq!(market.get_as(&no, "no-key").await.status, 200);
    assert_eq!(market.sim.requests().len(), before);
}

// ---------------------------------------------------------------------------------------------
// 11. What a card is made of, compensation and the breaker (from a review)

fn promotion_calls(h: &Harness) -> usize {
    h.seen("GET", "/promotions").len()
}

/// A card lives no longer than the answers it was rendered from: one rendered in another market
/// from offers loaded earlier expires with those offers.
#[tokio::test]
async fn a_card_expires_with_the_answers_it_was_made_of() {
    let h = Harness::with_top("[cache]\noffers_ms = 300", "").await;
    assert_eq!(h.get(&format!("/customers/{ANNA}")).await.status, 200);
    assert_eq!(promotion_calls(&h), 1);
    sleep(200 * MS).await;
    // demo/NO renders its card from demo/SE's offers, loaded 200 ms ago.
    let no = format!("/demo/NO/customers/{ANNA}");
    assert_eq!(h.get_as(&no, "no-key").await.status, 200);
    assert_eq!(promotion_calls(&h), 1);
    sleep(250 * MS).await;
    // The offers are 450 ms old, past offers_ms: the card is not served from memory.
    assert_eq!(h.get_as(&no, "no-key").await.status, 200);
    assert_eq!(promotion_calls(&h), 2, "a card outlived its offers");
}

/// A market's shorter TTL holds for answers another market on the same tenant loaded.
#[tokio::test]
async fn a_markets_shorter_ttl_holds_for_shared_answers() {
    let h = Harness::with("cache = { offers_ms = 300 }").await;
    // demo/NO (default 10 s) loads Anna's offers.
    let no = format!("/demo/NO/customers/{ANNA}");
    assert_eq!(h.get_as(&no, "no-key").await.status, 200);
    assert_eq!(promotion_calls(&h), 1);
    sleep(400 * MS).await;
    // demo/SE keeps offers 300 ms; they are 400 ms old.
    assert_eq!(h.get(&format!("/customers/{ANNA}")).await.status, 200);
    assert_eq!(
        promotion_calls(&h),
        2,
        "demo/SE served offers older than its offers_ms"
    );
}

/// Voyado's `Retry-After: 0` reaches the till as at least 1.
#[tokio::test]
async fn a_voyado_retry_after_of_zero_reaches_the_till_as_one() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::GET,
        "/promotions",
        FaultAction::RateLimited(Some(0)),
        1,
    ));
    let a = h.get(&format!("/customers/{ANNA}")).await;
    a.assert_error(429, "too_many_requests");
    assert_eq!(retry_after(&a), 1);
}

/// A redeem that fails half-way reactivates the first bonus check; a card read while that was
/// under way is not kept, so the next card shows the check again.
#[tokio::test]
async fn a_compensated_redeem_leaves_no_stale_card() {
    let h = Harness::start().await;
    let card = format!("/customers/{ANNA}");
    assert!(check_ids(&h.get(&card).await.body).contains(&CHECK_100));
    h.sim.set_latency("/reactivate", 250 * MS);
    h.sim.inject(fault(
        Method::POST,
        CHECK_SECOND,
        FaultAction::Status(400, Some("Nope")),
        1,
    ));
    let body = json!({"bonus_checks": [CHECK_100, CHECK_SECOND]});
    let redeem_path = format!("{card}/redeem");
    let (redeem, _) = tokio::join!(h.send(Method::POST, &redeem_path, &body), async {
        until("the reactivation at Voyado", || {
            h.seen("POST", "/reactivate").len() == 1
        })
        .await;
        h.get(&card).await
    });
    assert_ne!(redeem.status, 200, "{}", redeem.body);
    let after = h.get(&card).await;
    assert!(
        check_ids(&after.body).contains(&CHECK_100),
        "reactivated in Voyado but the card still hides it: {}",
        after.body
    );
}

/// A redeem whose answer never came opens the breaker; the read-back that settles it and the
/// compensation still reach Voyado, so the check is not left redeemed behind an error.
#[tokio::test]
async fn the_breaker_never_stands_between_a_redeem_and_its_settling() {
    let h = Harness::with_top_and(
        "[voyado]\nbreaker_failures = 1\nbreaker_cool_off_ms = 60000",
        "redeem_timeout_ms = 400\nredeem_window_ms = 600",
        "",
    )
    .await;
    let card = format!("/customers/{ANNA}");
    assert!(check_ids(&h.get(&card).await.body).contains(&CHECK_100));
    // Voyado redeems it, then does not answer within the 400 ms redeem timeout.
    h.sim.inject(fault(
        Method::POST,
        "/redeem",
        FaultAction::ApplyThenHang(Duration::from_millis(1000)),
        1,
    ));
    let a = h
        .send(
            Method::POST,
            &format!("{card}/redeem"),
            &json!({"bonus_checks": [CHECK_100]}),
        )
        .await;
    // The read-back found it redeemed: the redeem answered as if Voyado had.
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        h.seen("GET", "/bonuschecks/redeemed").len() == 1,
        "the read-back was refused by the open breaker"
    );
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), true);
}
