//! Three replicas act as one (issue 17, contract §6.7): three proxies in one test, in front of one
//! Voyado simulator and one real `redis-server`, each configured with the same `[cluster]`. Each
//! test is one line of the issue's table: a burst spread over the replicas stays within one
//! budget (read from the simulator's call times), a Voyado 429 seen by one pauses all, a redeem
//! repeated on another replica redeems once, a write on one is on every replica's card, and a
//! Redis that is killed stops no till and is joined again without a restart.
//!
//! Every replica's `[voyado] replicas` is 1, so its fallback share is the whole budget: a replica
//! that did not share the budget through Redis would show as three times the calls. Real time
//! (Redis keeps its own clock); each test takes a few seconds at most. Without `redis-server` on
//! PATH each test says so in one line and passes, unless `CI` is set.

mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use common::{ANNA, Answer, CHECK_100, CHECK_SECOND, fault, request, sample, start_proxy};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::sim::{FIXTURE, FaultAction, Simulator};
use support::redis_server::RedisServer;
use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

const MS: Duration = Duration::from_millis(1);
const KEY: &str = "se-key";
/// Voyado's budget for the key: 20 calls a second and 10 at once, for all replicas together
/// (the issue's). New work — a till's first call — may use 0.8 of it: 8 at once, 16 a second.
const RATE: usize = 20;
const BURST: usize = 10;
const NEW_WORK_BURST: usize = 8;
const NEW_WORK_RATE: usize = 16;

/// `{redis}` and `{voyado}` filled in per test. A Redis call may take a second before it counts
/// as failed: on a two-core machine busy with other builds, a loopback Redis answered past 200 ms
/// and the replicas fell back to their own budgets (up to three times one key's), which is what
/// Redis being away means, not what these tests are about. A killed Redis refuses at once.
const CONFIG: &str = r#"
listen = "127.0.0.1:0"

[voyado]
rate_per_second = 20
burst = 10
replicas = 1

[cluster]
redis_url = "{redis}"
timeout_ms = 1000

[[market]]
tenant = "demo"
market = "SE"
crm_api_keys = ["se-key"]
voyado_url = "{voyado}"
voyado_api_key = "sim-demo-key"
default_country = "SE"
"#;

/// One proxy of the three.
struct Replica {
    app: Arc<App>,
    url: String,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Replica {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>, id: &str) -> Answer {
        let url = format!("{}/demo/SE{path}", self.url);
        let body = body.map(Value::to_string);
        let headers: Vec<(&str, &str)> = [("Request-ID", id)]
            .into_iter()
            .filter(|(_, id)| !id.is_empty())
            .collect();
        request(
            &self.client,
            method,
            &url,
            Some(KEY),
            body.as_deref(),
            &headers,
        )
        .await
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, "").await
    }

    async fn card(&self) -> Value {
        let card = self.get(&format!("/customers/{ANNA}")).await;
        assert_eq!(card.status, 200, "{}", card.body);
        card.body
    }

    async fn redeem(&self, check: &str, request_id: &str) -> Answer {
        let body = json!({"bonus_checks": [check]});
        let path = format!("/customers/{ANNA}/redeem");
        self.call(Method::POST, &path, Some(&body), request_id)
            .await
    }

    async fn admin(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    }

    async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        sample(&self.admin("/metrics").await.1, name, labels)
    }

    /// How often this replica fell back to `what` of its own.
    async fn fallbacks(&self, what: &str) -> f64 {
        let labels = [("what", what)];
        let fell_back = self.metric("svp_cluster_fallbacks_total", &labels).await;
        fell_back.unwrap_or(0.0)
    }
}

/// One simulator, one Redis, three replicas.
struct Replicas {
    sim: Simulator,
    redis: RedisServer,
    all: Vec<Replica>,
}

impl Replicas {
    /// Three replicas that share Redis and hear each other's writes; `None` without
    /// `redis-server` (after one line on stderr).
    async fn start() -> Option<Replicas> {
        let redis = RedisServer::start()?;
        let sim = Simulator::start(([127, 0, 0, 1], 0).into(), FIXTURE)
            .await
            .unwrap();
        let text = CONFIG
            .replace("{redis}", &redis.url())
            .replace("{voyado}", &sim.url());
        let config =
            Config::parse(&text, "replica.toml", |_| MappingSource::BuiltIn, |_| None).unwrap();
        let mut all = Vec::new();
        for _ in 0..3 {
            let (app, url, stop) = start_proxy(&config).await;
            let cluster = app.cluster.clone().expect("[cluster] is configured");
            assert!(cluster.up_within(Duration::from_secs(5)).await);
            all.push(Replica {
                app,
                url,
                client: reqwest::Client::new(),
                _stop: stop,
            });
        }
        let replicas = Replicas { sim, redis, all };
        replicas.redis.subscribers(3).await;
        Some(replicas)
    }

    /// When the simulator saw each key lookup (a search's one call for a key nobody has).
    fn lookups(&self) -> Vec<Instant> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method == Method::GET && r.path.contains("/contacts/id"))
            .map(|r| r.at)
            .collect()
    }

    fn redeems(&self, check: &str) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.method == Method::POST && r.path.contains(check))
            .count()
    }
}

/// A search for a key nobody has: one Voyado call, new work, answered `[]`.
fn search(n: usize) -> String {
    format!("/customers?key_type=email&key=nobody{n}%40example.com")
}

/// The most of `times` in any one second.
fn busiest_second(times: &[Instant]) -> usize {
    let mut times = times.to_vec();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| **t < times[i] + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// Searches for keys nobody has, `per_second` a second for `for_how_long`, replica after
/// replica; how many were answered 200 and how many 429.
async fn searches(
    replicas: &Replicas,
    from: usize,
    per_second: u32,
    for_how_long: Duration,
) -> (usize, usize) {
    let every = Duration::from_secs(1) / per_second;
    let count = (for_how_long.as_secs_f64() * f64::from(per_second)) as usize;
    let started = Instant::now();
    let mut answers = Vec::new();
    for n in 0..count {
        tokio::time::sleep_until(started + every * n as u32).await;
        let replica = &replicas.all[n % 3];
        let (client, url) = (replica.client.clone(), replica.url.clone());
        answers.push(tokio::spawn(async move {
            let url = format!("{url}/demo/SE{}", search(from + n));
            request(&client, Method::GET, &url, Some(KEY), None, &[])
                .await
                .status
        }));
    }
    let (mut ok, mut throttled) = (0, 0);
    for answer in answers {
        match answer.await.unwrap().as_u16() {
            200 => ok += 1,
            429 => throttled += 1,
            other => panic!("a search answered {other}"),
        }
    }
    (ok, throttled)
}

/// Asks until `done` holds, at most `within`; whether it did.
async fn eventually<F: Future<Output = bool>>(
    within: Duration,
    mut done: impl FnMut() -> F,
) -> bool {
    let until = Instant::now() + within;
    loop {
        if done().await {
            return true;
        }
        if Instant::now() > until {
            return false;
        }
        sleep(10 * MS).await;
    }
}

fn check_ids(card: &Value) -> Vec<String> {
    card["bonus_checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no bonus_checks: {card}"))
        .iter()
        .filter_map(|c| c["bonus_check_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_spread_over_three_replicas_stays_within_one_budget() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    // The issue's burst: 240 searches over two seconds, spread over the three replicas.
    let (ok, throttled) = searches(&replicas, 0, 120, Duration::from_secs(2)).await;
    let calls = replicas.lookups();
    let busiest = busiest_second(&calls);
    println!(
        "{ok} answered, {throttled} refused; {} Voyado calls, at most {busiest} in one second",
        calls.len()
    );
    // Within one key's budget (rate + burst), which a replica alone may spend in full: three
    // that do not share would make up to three times new work's share.
    assert!(busiest <= RATE + BURST, "{busiest} calls in one second");
    // The budget was there to be used, and the rest was refused with a 429, not queued.
    assert!(busiest >= NEW_WORK_BURST + NEW_WORK_RATE / 2, "{busiest}");
    assert_eq!(ok, calls.len());
    assert!(throttled > 150, "{throttled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voyado_429_seen_by_one_replica_pauses_all() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    replicas.sim.inject(fault(
        Method::GET,
        "/contacts/id",
        FaultAction::RateLimited(Some(1)),
        1,
    ));
    let [a, b, c] = &replicas.all[..] else {
        unreachable!()
    };
    a.get(&search(1))
        .await
        .assert_error(429, "too_many_requests");
    let paused = Instant::now();
    // The others are answered 429 at once for the rest of the pause: Voyado hears nothing.
    for (n, replica) in [(2, b), (3, c)] {
        let refused = replica.get(&search(n)).await;
        refused.assert_error(429, "too_many_requests");
        assert_eq!(refused.headers["retry-after"], "1");
    }
    assert!(paused.elapsed() < Duration::from_secs(1));
    assert_eq!(replicas.lookups().len(), 1, "a call during the pause");
    // Once it is over, they call again.
    tokio::time::sleep_until(paused + Duration::from_millis(1100)).await;
    let after = c.get(&search(4)).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(replicas.lookups().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redeem_repeated_on_another_replica_redeems_once_and_answers_200_twice() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, b, c] = &replicas.all[..] else {
        unreachable!()
    };
    let first = a.redeem(CHECK_100, "till-7-0001").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let again = b.redeem(CHECK_100, "till-7-0001").await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(replicas.redeems(CHECK_100), 1);
    // The same id for another redeem is refused on any replica, naming the header.
    c.redeem(CHECK_SECOND, "till-7-0001")
        .await
        .assert_field("Request-ID");

    // A repeat that reaches another replica while the first is still at Voyado waits for it.
    replicas.sim.set_latency("/redeem", 500 * MS);
    let (slow, repeat) = tokio::join!(a.redeem(CHECK_SECOND, "till-7-0002"), async {
        assert!(
            eventually(Duration::from_secs(2), || async {
                replicas.redeems(CHECK_SECOND) == 1
            })
            .await,
            "the first redeem never reached Voyado"
        );
        b.redeem(CHECK_SECOND, "till-7-0002").await
    });
    assert_eq!(slow.status, 200, "{}", slow.body);
    assert_eq!(repeat.status, 200, "{}", repeat.body);
    assert_eq!(repeat.body, slow.body);
    assert_eq!(replicas.redeems(CHECK_SECOND), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_and_a_redeem_on_one_replica_are_on_every_replicas_card() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, others @ ..] = &replicas.all[..] else {
        unreachable!()
    };
    for replica in &replicas.all {
        let card = replica.card().await;
        assert_eq!(card["name_last"], "Andersson");
        assert!(check_ids(&card).contains(&CHECK_100.to_owned()));
    }
    let cards_before = replicas.sim.requests().len();
    // Warm: the cards come from memory now.
    for replica in others {
        replica.card().await;
    }
    assert_eq!(replicas.sim.requests().len(), cards_before);

    let path = format!("/customers/{ANNA}");
    let edit = json!({"name_last": "Lindqvist"});
    let edited = a.call(Method::PUT, &path, Some(&edit), "").await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    // The write told the others before it answered; what remains is Redis handing the message
    // on, well under the 250 ms allowed here (the cards would otherwise be served for 10 s).
    for replica in others {
        let fresh = eventually(250 * MS, || async {
            replica.card().await["name_last"] == "Lindqvist"
        });
        assert!(fresh.await, "another replica still shows the old name");
    }

    let redeemed = a.redeem(CHECK_100, "").await;
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    for replica in others {
        let fresh = eventually(250 * MS, || async {
            !check_ids(&replica.card().await).contains(&CHECK_100.to_owned())
        });
        assert!(
            fresh.await,
            "another replica still offers the redeemed check"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_redis_stops_no_till_and_is_joined_again_without_a_restart() {
    let Some(mut replicas) = Replicas::start().await else {
        return;
    };
    // B's card is in its memory when Redis goes.
    assert_eq!(replicas.all[1].card().await["name_last"], "Andersson");

    replicas.redis.kill();
    let path = format!("/customers/{ANNA}");
    let edit = json!({"name_last": "Lindqvist"});
    let edited = replicas.all[0]
        .call(Method::PUT, &path, Some(&edit), "")
        .await;
    assert_eq!(edited.status, 200, "{}", edited.body);
    for (n, replica) in replicas.all.iter().enumerate() {
        let found = replica.get(&search(n)).await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert_eq!(replica.admin("/readyz").await.0, StatusCode::OK);
        let down = eventually(Duration::from_secs(3), || async {
            replica.metric("svp_cluster_up", &[]).await == Some(0.0)
        });
        assert!(down.await, "replica {n} never showed Redis down");
    }
    assert!(replicas.all[0].fallbacks("notify").await >= 1.0);
    assert!(replicas.all[2].fallbacks("budget").await >= 1.0);

    replicas.redis.restart();
    for (n, replica) in replicas.all.iter().enumerate() {
        let cluster = replica.app.cluster.as_ref().unwrap();
        assert!(
            cluster.up_within(Duration::from_secs(5)).await,
            "replica {n} did not rejoin"
        );
        let up = eventually(Duration::from_secs(1), || async {
            replica.metric("svp_cluster_up", &[]).await == Some(1.0)
        });
        assert!(up.await, "replica {n} does not show Redis up");
    }
    // B missed the edit's notice; back on Redis, it forgets what it held from before the gap.
    let b = &replicas.all[1];
    let fresh = eventually(Duration::from_secs(3), || async {
        b.card().await["name_last"] == "Lindqvist"
    });
    assert!(fresh.await, "the replica that missed a write kept its card");

    // One budget again: a burst of new work on all three books the one budget in Redis, at
    // most new work's burst and what comes within the 500 ms it may wait (each replica's own
    // share would let through as much on each).
    replicas.redis.subscribers(3).await;
    let before = replicas.lookups().len();
    let (ok, throttled) = searches(&replicas, 100, 600, Duration::from_millis(100)).await;
    let calls = replicas.lookups().len() - before;
    println!("after the restart: {ok} answered, {throttled} refused, {calls} Voyado calls");
    assert!(calls <= NEW_WORK_BURST + NEW_WORK_RATE, "{calls} calls");
    assert!(calls >= NEW_WORK_BURST, "{calls} calls");
}
