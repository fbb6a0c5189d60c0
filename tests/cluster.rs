//! The cluster engine against a real Redis: three handles (three replicas) on one
//! `redis-server`, sharing one Voyado budget, one pause, the redeem slots and the write
//! notifications; and what they do when that Redis is killed, frozen and started again.
//!
//! Real time (Redis keeps its own clock), so each test keeps its windows short. Without
//! `redis-server` on PATH each test says so and passes, unless `CI` is set.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use sitoo_voyado_proxy::cluster::{
    Change, Cluster, ClusterConfig, Decision, Down, Notice, Part, RedisUrl, SlotError, Subscription,
};
use sitoo_voyado_proxy::limiter::{Budget, Priority, Throttled};
use sitoo_voyado_proxy::telemetry::Metrics;
use support::redis_server::RedisServer;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

const TENANT: &str = "https://shop.voyado.com#0011223344556677";
const MS: Duration = Duration::from_millis(1);
/// Generous for a loopback Redis on a busy two-core machine; the failure tests measure
/// against it.
const CALL_TIMEOUT: Duration = Duration::from_millis(200);

fn config(redis: &RedisServer) -> ClusterConfig {
    ClusterConfig {
        timeout_ms: CALL_TIMEOUT.as_millis() as u64,
        ..ClusterConfig::new(RedisUrl::new(redis.url()))
    }
}

async fn replicas(redis: &RedisServer, n: usize) -> Vec<Cluster> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        let cluster = Cluster::start(&config(redis), Arc::new(Metrics::new())).unwrap();
        assert!(cluster.up_within(Duration::from_secs(5)).await);
        replicas.push(cluster);
    }
    replicas
}

/// Waits (up to `within`) until the handle's health reads `up`.
async fn health_becomes(cluster: &Cluster, up: bool, within: Duration) {
    let mut health = cluster.watch();
    timeout(within, health.wait_for(|now| *now == up))
        .await
        .unwrap_or_else(|_| panic!("health did not become {up} within {within:?}"))
        .unwrap();
}

/// A subscription that forwards what it hears; it listens as long as it is kept.
fn notices(cluster: &Cluster) -> (Subscription, mpsc::UnboundedReceiver<Notice>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let subscription = cluster.subscribe(move |notice| {
        let _ = sender.send(notice);
    });
    (subscription, receiver)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_hammering_one_key_stay_within_one_budget() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let budget = Budget {
        rate_per_second: 50,
        burst: 10,
        ..Budget::default()
    };
    let window = Duration::from_secs(1);
    let granted = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut callers = Vec::new();
    // Four callers per replica, each taking permits as fast as they are given.
    for replica in replicas(&redis, 3).await {
        for _ in 0..4 {
            let (replica, granted) = (replica.clone(), granted.clone());
            callers.push(tokio::spawn(async move {
                loop {
                    let wait = replica
                        .reserve(TENANT, &budget, Priority::UnderWay)
                        .await
                        .expect("redis is up")
                        .expect("work under way is never refused here");
                    sleep(wait).await;
                    if start.elapsed() > window {
                        return;
                    }
                    granted.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
    }
    for caller in callers {
        caller.await.unwrap();
    }
    let granted = granted.load(Ordering::Relaxed);
    println!("{granted} permits in {window:?} over three replicas");
    // Rate × window plus the burst, and one for the edges of the window.
    assert!(granted <= 50 + 10 + 1, "{granted} permits: over the budget");
    // Demand exceeded the budget throughout, so all of it was used.
    assert!(granted >= 50, "{granted} permits: the budget went unused");
}

#[tokio::test]
async fn new_work_is_refused_past_its_share_and_work_under_way_does_not_queue_behind_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = <[Cluster; 3]>::try_from(replicas(&redis, 3).await).unwrap();
    // 10/s with a burst of 10; new work gets half: 5 at once, then one every 200 ms.
    let budget = Budget {
        rate_per_second: 10,
        burst: 10,
        max_wait: Duration::from_millis(500),
        new_work_share: 0.5,
        ..Budget::default()
    };
    for _ in 0..5 {
        assert_eq!(
            a.reserve(TENANT, &budget, Priority::NewWork).await,
            Ok(Ok(Duration::ZERO))
        );
    }
    let impatient = Budget {
        max_wait: 100 * MS,
        ..budget
    };
    for replica in [&a, &b, &c] {
        assert_eq!(
            replica.reserve(TENANT, &impatient, Priority::NewWork).await,
            Ok(Err(Throttled {
                retry_after_secs: 1
            })),
            "new work's share is spent for every replica, and it would wait past its limit"
        );
    }
    // Searches wait their turn, on every replica, holding nothing while they wait...
    let waiting: Vec<_> = [&a, &b, &c]
        .into_iter()
        .map(|replica| {
            let replica = replica.clone();
            tokio::spawn(async move { replica.reserve(TENANT, &budget, Priority::NewWork).await })
        })
        .collect();
    sleep(20 * MS).await;
    // ...so the other half of the burst is there at once for work under way, on any replica...
    for replica in [&b, &c, &b, &c, &b] {
        assert_eq!(
            replica.reserve(TENANT, &budget, Priority::UnderWay).await,
            Ok(Ok(Duration::ZERO))
        );
    }
    // ...and past it, work under way is not refused: it is given its turn, 100 ms on, ahead
    // of every search still waiting.
    let wait = c
        .reserve(TENANT, &budget, Priority::UnderWay)
        .await
        .unwrap()
        .unwrap();
    assert!(wait > 50 * MS && wait <= 100 * MS, "{wait:?}");
    // The waiting searches get permits in the end or are refused at their limit, never more
    // than new work's rate allows in the time.
    let mut admitted = 0;
    for search in waiting {
        match search.await.unwrap() {
            Ok(Ok(wait)) => {
                assert_eq!(wait, Duration::ZERO);
                admitted += 1;
            }
            Ok(Err(_)) => {}
            Err(down) => panic!("{down:?}"),
        }
    }
    assert!(admitted <= 3, "{admitted}");
    // Another tenant's budget is its own.
    assert_eq!(
        a.reserve("https://other.voyado.com#ff", &budget, Priority::NewWork)
            .await,
        Ok(Ok(Duration::ZERO))
    );
}

#[tokio::test]
async fn a_pause_set_by_one_replica_stops_the_others() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = <[Cluster; 3]>::try_from(replicas(&redis, 3).await).unwrap();
    let budget = Budget::default();
    a.pause(TENANT, Duration::from_secs(2)).await.unwrap();
    // A shorter pause does not cut the longer one short.
    c.pause(TENANT, Duration::from_millis(100)).await.unwrap();
    assert_eq!(
        b.reserve(TENANT, &budget, Priority::NewWork).await,
        Ok(Err(Throttled {
            retry_after_secs: 2
        }))
    );
    let wait = c
        .reserve(TENANT, &budget, Priority::UnderWay)
        .await
        .unwrap()
        .unwrap();
    assert!(
        wait > 1800 * MS && wait <= 2000 * MS,
        "work under way is booked after the pause: {wait:?}"
    );
    assert_eq!(
        b.reserve("https://other.voyado.com#ff", &budget, Priority::NewWork)
            .await,
        Ok(Ok(Duration::ZERO)),
        "only the tenant that got the 429 is paused"
    );
}

fn redeem_body(check: &str) -> serde_json::Value {
    json!({"bonus_checks": [check]})
}

#[tokio::test]
async fn a_redeem_claimed_on_one_replica_is_waited_for_on_another_then_replayed() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = <[Cluster; 3]>::try_from(replicas(&redis, 3).await).unwrap();
    let body = redeem_body("check-1");
    let deadline = || Instant::now() + Duration::from_secs(3);
    let Ok(Decision::Run(pending)) = a
        .decide_redeem("demo/SE", "Cust-1", "req-1", Some(&body), deadline())
        .await
    else {
        panic!("the first redeem runs");
    };
    let repeat = {
        let (b, body) = (b.clone(), body.clone());
        tokio::spawn(async move {
            b.decide_redeem("demo/SE", "cust-1", "req-1", Some(&body), deadline())
                .await
        })
    };
    sleep(200 * MS).await;
    assert!(
        !repeat.is_finished(),
        "the repeat waits for the first redeem"
    );
    // Another body under the same id is refused at once, even while the first runs.
    assert_eq!(
        c.decide_redeem(
            "demo/SE",
            "cust-1",
            "req-1",
            Some(&redeem_body("check-2")),
            deadline()
        )
        .await
        .unwrap_err(),
        SlotError::Mismatch
    );
    pending
        .record(&Bytes::from_static(b"{\"redeemed\":1}"))
        .await
        .unwrap();
    let Ok(Decision::Replay(answer)) = repeat.await.unwrap() else {
        panic!("the repeat gets the first answer");
    };
    assert_eq!(answer, "{\"redeemed\":1}");
    // Later repeats anywhere replay too; another Request-ID or customer is another redeem.
    assert!(matches!(
        c.decide_redeem("demo/SE", "CUST-1", "req-1", Some(&body), deadline())
            .await,
        Ok(Decision::Replay(_))
    ));
    assert!(matches!(
        c.decide_redeem("demo/SE", "cust-1", "req-2", Some(&body), deadline())
            .await,
        Ok(Decision::Run(_))
    ));
    assert!(matches!(
        c.decide_redeem("demo/SE", "cust-2", "req-1", Some(&body), deadline())
            .await,
        Ok(Decision::Run(_))
    ));
}

/// A repeat that saw another replica's claim must not run the redeem itself when Redis goes:
/// the first may still be running.
#[tokio::test]
async fn a_repeat_waiting_for_another_replica_is_still_running_when_redis_goes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let [a, b] = <[Cluster; 2]>::try_from(replicas(&redis, 2).await).unwrap();
    let body = redeem_body("check-1");
    let deadline = Instant::now() + Duration::from_secs(5);
    let Ok(Decision::Run(_pending)) = a
        .decide_redeem("demo/SE", "c", "r", Some(&body), deadline)
        .await
    else {
        panic!("the first redeem runs");
    };
    let repeat = tokio::spawn(async move {
        b.decide_redeem("demo/SE", "c", "r", Some(&body), deadline)
            .await
    });
    sleep(200 * MS).await;
    assert!(!repeat.is_finished(), "the repeat waits for the first");
    redis.kill();
    let decided = timeout(Duration::from_secs(2), repeat)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.unwrap_err(), SlotError::StillRunning);
}

#[tokio::test]
async fn a_redeem_that_ends_without_an_answer_frees_its_slot_for_the_repeat() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b] = <[Cluster; 2]>::try_from(replicas(&redis, 2).await).unwrap();
    let body = redeem_body("check-1");
    let Ok(Decision::Run(pending)) = a
        .decide_redeem("demo/SE", "c", "r", Some(&body), Instant::now())
        .await
    else {
        panic!("the first redeem runs");
    };
    // A repeat whose deadline comes first is told the redeem still runs.
    let started = Instant::now();
    assert_eq!(
        b.decide_redeem("demo/SE", "c", "r", Some(&body), Instant::now() + 120 * MS)
            .await
            .unwrap_err(),
        SlotError::StillRunning
    );
    assert!(started.elapsed() <= 200 * MS, "{:?}", started.elapsed());
    let repeat = {
        let (b, body) = (b.clone(), body.clone());
        tokio::spawn(async move {
            b.decide_redeem(
                "demo/SE",
                "c",
                "r",
                Some(&body),
                Instant::now() + Duration::from_secs(3),
            )
            .await
        })
    };
    sleep(100 * MS).await;
    // The first attempt fails without an answer: dropping its slot frees it.
    drop(pending);
    let Ok(Decision::Run(again)) = repeat.await.unwrap() else {
        panic!("the waiting repeat runs the redeem itself");
    };
    again.release().await.unwrap();
}

#[tokio::test]
async fn a_write_notification_reaches_the_other_replicas_only() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a, b, c] = <[Cluster; 3]>::try_from(replicas(&redis, 3).await).unwrap();
    let (_a_kept, mut at_a) = notices(&a);
    let (_b_kept, mut at_b) = notices(&b);
    let (_c_kept, mut at_c) = notices(&c);
    redis.subscribers(3).await;
    let changes = vec![
        Change::Contact {
            identity: TENANT.into(),
            contact: "contact-1".into(),
            part: Part::Profile,
        },
        Change::Keys {
            identity: TENANT.into(),
        },
    ];
    a.publish(&changes).await.unwrap();
    for at in [&mut at_b, &mut at_c] {
        let heard = timeout(Duration::from_secs(2), at.recv()).await.unwrap();
        assert_eq!(heard, Some(Notice::Changed(changes.clone())));
    }
    // The publisher skips its own message.
    assert!(timeout(200 * MS, at_a.recv()).await.is_err());
}

#[tokio::test]
async fn a_killed_redis_fails_calls_fast_and_is_rejoined_when_it_is_back() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let [a, b] = <[Cluster; 2]>::try_from(replicas(&redis, 2).await).unwrap();
    let (_kept, mut at_b) = notices(&b);
    redis.subscribers(1).await;
    let budget = Budget::default();

    redis.kill();
    let started = Instant::now();
    let failed = a.reserve(TENANT, &budget, Priority::NewWork).await;
    assert!(
        matches!(failed, Err(Down::Lost | Down::Timeout)),
        "{failed:?}"
    );
    assert!(started.elapsed() <= CALL_TIMEOUT + 50 * MS);
    assert!(!a.is_up(), "a failed call sets the health down");
    // Known down: not even tried.
    let started = Instant::now();
    assert_eq!(
        a.pause(TENANT, Duration::from_secs(1)).await,
        Err(Down::Unreachable)
    );
    assert_eq!(
        a.publish(&[Change::Keys {
            identity: TENANT.into()
        }])
        .await,
        Err(Down::Unreachable)
    );
    assert!(started.elapsed() <= 5 * MS);
    // The other replica, idle, learns it from its probe.
    health_becomes(&b, false, Duration::from_secs(3)).await;

    redis.restart();
    health_becomes(&a, true, Duration::from_secs(5)).await;
    health_becomes(&b, true, Duration::from_secs(5)).await;
    assert_eq!(
        a.reserve(TENANT, &budget, Priority::NewWork).await,
        Ok(Ok(Duration::ZERO)),
        "the same handle shares the budget again"
    );
    // The subscriber came back by itself, and says that it may have missed writes.
    let heard = timeout(Duration::from_secs(5), at_b.recv()).await.unwrap();
    assert_eq!(heard, Some(Notice::Gap));
    redis.subscribers(1).await;
    let change = vec![Change::Keys {
        identity: TENANT.into(),
    }];
    a.publish(&change).await.unwrap();
    let heard = timeout(Duration::from_secs(2), at_b.recv()).await.unwrap();
    assert_eq!(heard, Some(Notice::Changed(change)));
}

#[tokio::test]
async fn a_frozen_redis_costs_a_call_no_more_than_its_timeout() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let [a] = <[Cluster; 1]>::try_from(replicas(&redis, 1).await).unwrap();
    let body = redeem_body("check-1");
    redis.freeze();
    let started = Instant::now();
    let failed = a
        .decide_redeem(
            "demo/SE",
            "c",
            "r",
            Some(&body),
            Instant::now() + Duration::from_secs(5),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(failed.unwrap_err(), SlotError::Down(Down::Timeout));
    assert!(
        took >= CALL_TIMEOUT && took <= CALL_TIMEOUT + 50 * MS,
        "{took:?}"
    );
    assert!(!a.is_up());
    redis.thaw();
    health_becomes(&a, true, Duration::from_secs(5)).await;
    assert!(matches!(
        a.decide_redeem("demo/SE", "c", "r", Some(&body), Instant::now())
            .await,
        Ok(Decision::Run(_))
    ));
}

#[tokio::test]
async fn a_replica_started_while_redis_is_down_joins_when_it_comes() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    redis.kill();
    let late = Cluster::start(&config(&redis), Arc::new(Metrics::new())).unwrap();
    let (_kept, mut at_late) = notices(&late);
    assert!(!late.up_within(Duration::from_millis(500)).await);
    assert_eq!(
        late.reserve(TENANT, &Budget::default(), Priority::NewWork)
            .await,
        Err(Down::Unreachable)
    );
    redis.restart();
    health_becomes(&late, true, Duration::from_secs(5)).await;
    // What it cached meanwhile may have missed writes: the subscriber says so once it listens.
    let heard = timeout(Duration::from_secs(5), at_late.recv())
        .await
        .unwrap();
    assert_eq!(heard, Some(Notice::Gap));
    assert_eq!(
        late.reserve(TENANT, &Budget::default(), Priority::NewWork)
            .await,
        Ok(Ok(Duration::ZERO))
    );
}
