//! `--in-process`: the Voyado simulator, filled with made-up customers, and the proxy in front of
//! it, both in this process. The proxy runs on a tokio runtime of its own whose threads are named
//! `svp-proxy`, so its CPU time can be read apart from the simulator's and the load generator's
//! (Linux `/proc`; elsewhere those figures are left out). Voyado calls are told apart per
//! operation by the trace id each request carries, which the proxy passes on to Voyado.
//!
//! With `--replicas N` there are N proxies on that runtime, in front of the one simulator, each
//! on its own port; with `--redis` they share that Redis (`[cluster]`, under a key prefix of
//! their own), whose `INFO commandstats` is read before and after the measured window.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::distr::Distribution;
use rand::rngs::SmallRng;
use rand_distr::LogNormal;
use serde_json::Value;
use tokio::net::TcpListener;

use super::args::{Latency, Scale};
use super::mix::KnownCustomer;
use super::results::{ReplicaResults, Resources, VoyadoCalls, round};
use super::runner::Traces;
use crate::app::App;
use crate::cluster::RedisUrl;
use crate::config::{Config, MappingSource};
use crate::sim::{FIXTURE, Seen, Simulator};

pub const TENANT: &str = "bench";
pub const MARKET: &str = "SE";
pub const CRM_KEY: &str = "bench-key";
/// The simulator's demo tenant, which the made-up customers join.
const VOYADO_KEY: &str = "sim-demo-key";
const PROXY_THREADS: &str = "svp-proxy";
/// The z-score of the 99th percentile of a normal distribution.
const Z99: f64 = 2.326_347_874;

/// The simulator's fixture with `n` made-up customers added to the demo tenant, and the keys a
/// cashier would type for them. Each is Anna's shape (contact, member status, points) with its own
/// ids and keys, 4 promotions and 4 bonus checks to redeem at the till, and 3 purchases.
pub fn fixture(n: usize) -> Result<(String, Vec<KnownCustomer>), String> {
    let mut file: Value =
        serde_json::from_str(FIXTURE).map_err(|e| format!("simulator fixture: {e}"))?;
    let tenant = &mut file["tenants"][0];
    let anna = tenant["contacts"][0].clone();
    let pos_promotions: Vec<Value> = anna["_promotions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["redeemed"] == false && p.to_string().contains("\"POS\""))
        .cloned()
        .collect();
    let check = anna["_bonus_checks"][0].clone();
    if pos_promotions.is_empty() || check.is_null() {
        return Err(
            "simulator fixture: the first contact has no POS promotion or bonus check".into(),
        );
    }
    let guid =
        |kind: u32, n: usize, k: usize| format!("b3c4e{kind:03}-0000-4000-8000-{n:08}{k:04}");
    let mut known = Vec::with_capacity(n);
    let contacts = tenant["contacts"]
        .as_array_mut()
        .ok_or("simulator fixture: no contacts")?;
    for i in 0..n {
        let id = guid(0, i, 0);
        let member_number = (5_000_000 + i).to_string();
        let email = format!("till{i}@example.com");
        let mut c = anna.clone();
        c["id"] = id.clone().into();
        let attributes = &mut c["attributes"];
        attributes["memberNumber"] = member_number.clone().into();
        attributes["email"] = email.clone().into();
        attributes["mobilePhone"] = format!("+46706{i:06}").into();
        attributes["firstName"] = "Kund".into();
        attributes["lastName"] = format!("Nummer{i}").into();
        if let Some(a) = attributes.as_object_mut() {
            // Personal ids are unique in a register; these customers have none.
            a.remove("socialSecurityNumber");
        }
        c["_promotions"] = (0..4)
            .map(|k| {
                let mut p = pos_promotions[k % pos_promotions.len()].clone();
                p["id"] = guid(1, i, k).into();
                p["promotionId"] = guid(2, i, k).into();
                p
            })
            .collect();
        c["_bonus_checks"] = (0..4)
            .map(|k| {
                let mut b = check.clone();
                b["id"] = guid(3, i, k).into();
                b["checkNumber"] = format!("BB{i:08}{k}").into();
                b
            })
            .collect();
        c["_transactions"] = anna["_transactions"]
            .as_array()
            .into_iter()
            .flatten()
            .take(3)
            .enumerate()
            .map(|(k, t)| {
                let mut t = t.clone();
                t["id"] = guid(4, i, k).into();
                t
            })
            .collect();
        c["_points"]["items"][0]["contactId"] = id.into();
        contacts.push(c);
        known.push(KnownCustomer {
            member_number: Some(member_number),
            email: Some(email),
            mobile: Some(format!("0706{i:06}")),
        });
    }
    Ok((file.to_string(), known))
}

/// The simulator, what stands between it and the proxies, and the proxies' runtime.
pub struct Local {
    sim: Simulator,
    /// The root of each proxy, which the tills call in turn.
    pub roots: Vec<String>,
    proxy: tokio::runtime::Runtime,
    shim: Option<tokio::task::JoinHandle<()>>,
    scale: Scale,
}

/// Redis' counts by command (`INFO commandstats`): calls and microseconds spent.
pub type RedisCounts = BTreeMap<String, (u64, u64)>;

/// What the proxy sends Redis for a request: a script (the budget, a redeem slot; Redis counts
/// the commands a script runs as well, which are not round trips), loading a script after
/// `NOSCRIPT`, a write notification. The background `PING`s are reported beside them.
const ROUND_TRIPS: [&str; 4] = ["evalsha", "eval", "script|load", "publish"];
const BACKGROUND: &str = "ping";

impl Local {
    /// Starts the simulator on `fixture`, the latency shim when the latency is a distribution,
    /// and `scale.replicas` proxies with one market (`bench/SE`) each. Voyado's budget is opened
    /// wide unless `scale.budget` says otherwise: the bench measures the proxy, and its calls per
    /// request say what the real budget would carry.
    pub async fn start(
        fixture: &str,
        latency: Latency,
        cold: bool,
        seed: u64,
        scale: &Scale,
    ) -> Result<Local, String> {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let sim = Simulator::start(loopback, fixture)
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        let (voyado, shim) = match latency {
            Latency::Fixed(d) => {
                sim.set_latency("", d);
                (sim.url(), None)
            }
            Latency::Percentiles { p50, p99 } => {
                let mu = p50.as_secs_f64().ln();
                let sigma = (p99.as_secs_f64().ln() - mu) / Z99;
                let spread = LogNormal::new(mu, sigma).map_err(|e| format!("latency: {e}"))?;
                let (url, task) = latency_shim(sim.url(), spread, seed).await?;
                (url, Some(task))
            }
        };
        let cache = if cold {
            "cache = { key_to_id_ms = 0, contact_ms = 0, definitions_ms = 0, offers_ms = 0, not_found_ms = 0 }\n"
        } else {
            ""
        };
        let (rate, burst) = scale.budget.unwrap_or((1_000_000, 1_000_000));
        // Each replica's own share without Redis (today's static split); the fallback share
        // with it.
        let replicas = scale.replicas;
        let cluster = match &scale.redis {
            // A prefix of this run's own: another run's buckets and slots are not in its way.
            Some(url) => format!(
                "[cluster]\nredis_url = \"{}\"\nkey_prefix = \"bench-{}:\"\n",
                url.expose(),
                &uuid::Uuid::new_v4().simple().to_string()[..8]
            ),
            None => String::new(),
        };
        let text = format!(
            "[voyado]\nrate_per_second = {rate}\nburst = {burst}\nreplicas = {replicas}\n{cluster}\
             [[market]]\ntenant = \"{TENANT}\"\nmarket = \"{MARKET}\"\ncrm_api_keys = [\"{CRM_KEY}\"]\n\
             voyado_url = \"{voyado}\"\nvoyado_api_key = \"{VOYADO_KEY}\"\ndefault_country = \"SE\"\n{cache}"
        );
        let config = Config::parse(&text, "bench config", |_| MappingSource::BuiltIn, |_| None)
            .map_err(|e| e.to_string())?;
        let proxy = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(PROXY_THREADS)
            .enable_all()
            .build()
            .map_err(|e| format!("proxy runtime: {e}"))?;
        let mut roots = Vec::new();
        for _ in 0..replicas {
            // Built on the proxies' runtime: the Redis handle's background work runs there.
            let app = {
                let _on_proxy_runtime = proxy.enter();
                App::build(&config).map_err(|e| e.to_string())?
            };
            if let Some(cluster) = &app.cluster
                && !cluster.up_within(std::time::Duration::from_secs(2)).await
            {
                return Err("--redis did not answer within 2 s".into());
            }
            roots.push(serve(&proxy, app, loopback)?);
        }
        Ok(Local {
            sim,
            roots,
            proxy,
            shim,
            scale: scale.clone(),
        })
    }

    /// The requests the simulator saw for this run's SPI requests, each with the sequence
    /// number of its trace id.
    fn seen(&self, run: u64) -> Vec<(u64, Seen)> {
        let prefix = format!("{run:016x}");
        self.sim
            .requests()
            .into_iter()
            .filter_map(|seen| {
                let seq = seen
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.get(3..35))
                    .filter(|trace| trace.starts_with(&prefix))
                    .and_then(|trace| u64::from_str_radix(&trace[16..], 16).ok())?;
                Some((seq, seen))
            })
            .collect()
    }

    /// Redis' counts by command now, when the proxies share one.
    pub async fn redis_counts(&self) -> Option<RedisCounts> {
        let url = self.scale.redis.as_ref()?;
        redis_counts(url).await
    }

    /// The replicas' side of the run: Voyado's busiest second (warm-up included) and Redis'
    /// commands between `before` and `after` per measured request.
    pub fn replica_results(
        &self,
        run: u64,
        before: Option<&RedisCounts>,
        after: Option<&RedisCounts>,
        requests: u64,
    ) -> ReplicaResults {
        let mut times: Vec<tokio::time::Instant> = self
            .seen(run)
            .into_iter()
            .map(|(_, seen)| seen.at)
            .collect();
        times.sort();
        let second = std::time::Duration::from_secs(1);
        let peak = (0..times.len())
            .map(|i| times[i..].partition_point(|t| *t < times[i] + second))
            .max()
            .unwrap_or(0);
        let mut calls = BTreeMap::new();
        let mut usec_per_call = BTreeMap::new();
        if let (Some(before), Some(after)) = (before, after) {
            let sent = after
                .iter()
                .filter(|(c, _)| ROUND_TRIPS.contains(&c.as_str()) || *c == BACKGROUND);
            for (command, (n, usec)) in sent {
                let (n0, usec0) = before.get(command).copied().unwrap_or_default();
                let n = n.saturating_sub(n0);
                if n > 0 {
                    calls.insert(command.clone(), n);
                    usec_per_call.insert(
                        command.clone(),
                        round(usec.saturating_sub(usec0) as f64 / n as f64, 2),
                    );
                }
            }
        }
        let round_trips: u64 = calls
            .iter()
            .filter(|(command, _)| ROUND_TRIPS.contains(&command.as_str()))
            .map(|(_, n)| n)
            .sum();
        let scale = &self.scale;
        ReplicaResults {
            replicas: scale.replicas,
            budget: match (&scale.redis, scale.replicas) {
                (Some(_), _) => "shared in Redis",
                (None, 1) => "one replica",
                (None, _) => "static share per replica",
            }
            .into(),
            voyado_budget: match scale.budget {
                Some((rate, burst)) => format!("{rate}/s, burst {burst}"),
                None => "unbounded".into(),
            },
            peak_voyado_calls_per_second: peak as u64,
            redis_round_trips_per_request: scale
                .redis
                .as_ref()
                .map(|_| round(round_trips as f64 / requests.max(1) as f64, 3)),
            redis_calls: calls,
            redis_usec_per_call: usec_per_call,
        }
    }

    /// Voyado calls per operation, from the simulator's request log: each call carries the
    /// trace id of the SPI request it was made for.
    pub fn voyado_calls(&self, run: u64, traces: &Traces) -> VoyadoCalls {
        let mut per_operation = BTreeMap::new();
        let mut per_route: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
        let mut total = 0;
        for (seq, seen) in self.seen(run) {
            if let Some((operation, true)) = traces.get(&seq) {
                *per_operation.entry(*operation).or_default() += 1;
                *per_route
                    .entry(*operation)
                    .or_default()
                    .entry(route_of(&seen))
                    .or_default() += 1;
                total += 1;
            }
        }
        VoyadoCalls {
            total: Some(total),
            per_operation: Some(per_operation),
            per_route: Some(per_route),
            counted_by: "simulator request log, each call by the trace id of its SPI request"
                .into(),
        }
    }

    pub fn stop(self) {
        if let Some(shim) = self.shim {
            shim.abort();
        }
        // Not awaited: its connections may still be open, and this may run on an async thread.
        self.proxy.shutdown_background();
        drop(self.sim);
    }
}

/// A call's route as Voyado documents it: the method and the path with ids as `{id}`.
fn route_of(seen: &Seen) -> String {
    let path: Vec<&str> = seen
        .path
        .split('/')
        .map(|segment| match crate::keys::guid(segment) {
            Ok(_) => "{id}",
            Err(_) => segment,
        })
        .collect();
    format!("{} {}", seen.method, path.join("/"))
}

/// Serves `app` on a fresh loopback port on the proxies' runtime; its root.
fn serve(
    proxy: &tokio::runtime::Runtime,
    app: Arc<App>,
    loopback: SocketAddr,
) -> Result<String, String> {
    let listener =
        std::net::TcpListener::bind(loopback).map_err(|e| format!("proxy listener: {e}"))?;
    let root = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("proxy listener: {e}"))?
    );
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("proxy listener: {e}"))?;
    proxy.spawn(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                let _ = crate::server::serve(listener, app, std::future::pending()).await;
            }
            Err(e) => eprintln!("bench: the proxy cannot listen: {e}"),
        }
    });
    Ok(root)
}

/// `INFO commandstats` of the Redis at `url`, by command; `None` when it does not answer.
async fn redis_counts(url: &RedisUrl) -> Option<RedisCounts> {
    let client = redis::Client::open(url.expose()).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let text: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .ok()?;
    Some(commandstats(&text))
}

/// `cmdstat_evalsha:calls=10,usec=123,usec_per_call=12.30,...` lines, by command.
fn commandstats(text: &str) -> RedisCounts {
    text.lines()
        .filter_map(|line| {
            let (command, fields) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |name: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))?
                    .parse::<u64>()
                    .ok()
            };
            Some((command.to_owned(), (field("calls")?, field("usec")?)))
        })
        .collect()
}

/// Forwards every call to the simulator after a latency drawn from `spread` (the simulator's
/// own latency setting is one fixed value).
async fn latency_shim(
    upstream: String,
    spread: LogNormal<f64>,
    seed: u64,
) -> Result<(String, tokio::task::JoinHandle<()>), String> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| format!("latency shim: {e}"))?;
    let url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("latency shim: {e}"))?
    );
    let client = crate::voyado::build_http_client();
    let rng = Arc::new(Mutex::new(SmallRng::seed_from_u64(seed)));
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let (client, rng, upstream) = (client.clone(), rng.clone(), upstream.clone());
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let wait = spread.sample(&mut *rng.lock());
                let (client, upstream) = (client.clone(), upstream.clone());
                async move {
                    tokio::time::sleep(std::time::Duration::from_secs_f64(wait.min(60.0))).await;
                    Ok::<_, Infallible>(forward(&client, &upstream, request).await)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok((url, task))
}

async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut headers = parts.headers;
    headers.remove(http::header::HOST);
    let sent = client
        .request(parts.method, format!("{upstream}{target}"))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let mut answer = Response::new(Full::new(Bytes::new()));
    match sent {
        Ok(reply) => {
            *answer.status_mut() = reply.status();
            *answer.headers_mut() = reply.headers().clone();
            answer.headers_mut().remove(http::header::CONTENT_LENGTH);
            answer.headers_mut().remove(http::header::TRANSFER_ENCODING);
            *answer.body_mut() = Full::new(reply.bytes().await.unwrap_or_default());
        }
        Err(_) => *answer.status_mut() = http::StatusCode::BAD_GATEWAY,
    }
    answer
}

/// CPU time so far, in clock ticks: the proxy's runtime threads and the whole process.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    proxy_ticks: u64,
    process_ticks: u64,
}

/// `/proc` counts CPU time in USER_HZ ticks, 100 a second on every Linux architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// utime + stime of a `/proc/.../stat` line, and its thread name.
fn cpu_ticks(stat: &str) -> Option<(&str, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = &stat[open + 1..close];
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the name: state is field 3 of the line, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// Reads the CPU time of this process and of its `svp-proxy` threads (Linux only).
pub fn usage() -> Option<Usage> {
    let process = std::fs::read_to_string("/proc/self/stat").ok()?;
    let (_, process_ticks) = cpu_ticks(&process)?;
    let mut proxy_ticks = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        if let Ok(stat) = std::fs::read_to_string(task.path().join("stat"))
            && let Some((PROXY_THREADS, ticks)) = cpu_ticks(&stat)
        {
            proxy_ticks += ticks;
        }
    }
    Some(Usage {
        proxy_ticks,
        process_ticks,
    })
}

/// A `kB` line of `/proc/self/status` (`VmRSS:`, `VmHWM:`), in MiB.
pub fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(round(kib / 1024.0, 1))
}

/// The proxy's costs over the measured window of `requests` requests.
pub fn resources(
    before: Option<Usage>,
    after: Option<Usage>,
    rss_before_mib: Option<f64>,
    requests: u64,
) -> Option<Resources> {
    let (before, after) = (before?, after?);
    let per_1000 = |ticks: u64| {
        round(
            ticks as f64 / TICKS_PER_SECOND * 1000.0 / requests.max(1) as f64,
            4,
        )
    };
    Some(Resources {
        proxy_cpu_seconds_per_1000_requests: per_1000(
            after.proxy_ticks.saturating_sub(before.proxy_ticks),
        ),
        process_cpu_seconds_per_1000_requests: per_1000(
            after.process_ticks.saturating_sub(before.process_ticks),
        ),
        rss_before_mib: rss_before_mib?,
        peak_rss_mib: status_mib("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn made_up_customers_have_their_own_ids_and_keys() {
        let (text, known) = fixture(3).unwrap();
        let file: Value = serde_json::from_str(&text).unwrap();
        let contacts = file["tenants"][0]["contacts"].as_array().unwrap();
        let made: Vec<&Value> = contacts
            .iter()
            .filter(|c| c["id"].as_str().unwrap().starts_with("b3c4e000"))
            .collect();
        assert_eq!(made.len(), 3);
        assert_eq!(made[2]["attributes"]["memberNumber"], "5000002");
        assert_eq!(made[2]["_bonus_checks"].as_array().unwrap().len(), 4);
        assert_ne!(
            made[1]["_bonus_checks"][0]["id"],
            made[2]["_bonus_checks"][0]["id"]
        );
        assert_eq!(known[1].mobile.as_deref(), Some("0706000001"));
        assert_eq!(json!(made[0]["_promotions"][0]["redeemed"]), json!(false));
    }

    #[test]
    fn redis_commandstats_are_read_by_command() {
        let text = "# Commandstats\r\n\
                    cmdstat_evalsha:calls=10,usec=123,usec_per_call=12.30,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_ping:calls=4,usec=2,usec_per_call=0.50,rejected_calls=0,failed_calls=0\r\n";
        let counts = commandstats(text);
        assert_eq!(counts["evalsha"], (10, 123));
        assert_eq!(counts["ping"], (4, 2));
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn cpu_ticks_read_past_a_thread_name_with_spaces() {
        let line = "42 (svp proxy) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(cpu_ticks(line), Some(("svp proxy", 280)));
    }
}
