//! `sitoo-voyado-proxy bench --in-process` as a load-tester runs it: the binary, the proxy and the
//! simulator in its process, `results.json` in the documented shape with Voyado calls per
//! operation and the proxy's costs, and a second run compared with the first; and several
//! replicas, alone or sharing a Redis.

mod support;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sitoo-voyado-proxy");
const BUILT_IN_MIX: &str = include_str!("../src/bench/store.toml");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("svp-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bench(args: &[&str]) -> String {
    let out = Command::new(BIN).arg("bench").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_in_process_run_writes_results_json_in_the_documented_shape_and_compares_with_a_baseline() {
    let dir = scratch("in-process");
    // The store mix with fewer customers and steps close together, to fit a short run.
    let mix = BUILT_IN_MIX
        .replace("generate = 2000", "generate = 200")
        .replace("after = \"4s\"", "after = \"300ms\"")
        .replace("after = \"3s\"", "after = \"300ms\"")
        .replace("after = \"2s\"", "after = \"300ms\"")
        .replace("after = \"8s\"", "after = \"300ms\"")
        .replace("chance = 0.15", "chance = 0.5");
    let mix_path = dir.join("mix.toml");
    std::fs::write(&mix_path, mix).unwrap();
    let first = dir.join("first");
    let (mix_arg, first_arg) = (mix_path.to_str().unwrap(), first.to_str().unwrap());
    let common = [
        "--in-process",
        "--rate",
        "60",
        "--voyado-latency",
        "p50=5ms,p99=20ms",
        "--mix",
        mix_arg,
    ];
    let summary = bench(
        &[
            &common[..],
            &["--warmup", "1s", "--duration", "1s", "--out", first_arg],
        ]
        .concat(),
    );
    assert!(summary.contains("overall"), "{summary}");

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("results.json")).unwrap())
            .unwrap();
    let fields = [
        "count", "rate", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "errors",
    ];
    let overall = results["overall"].as_object().unwrap();
    assert_eq!(overall.len(), fields.len(), "{overall:?}");
    for f in fields {
        assert!(overall[f].is_number(), "overall.{f}");
    }
    assert!(overall["count"].as_u64().unwrap() > 30, "{overall:?}");
    assert_eq!(overall["errors"], 0, "{}", results["statuses"]);
    let operations = results["operations"].as_object().unwrap();
    for name in ["card", "find_by_mobile", "redeem"] {
        let op = &operations[name];
        for f in fields {
            assert!(op[f].is_number(), "{name}.{f}");
        }
        assert!(op["voyado_calls_per_request"].is_number(), "{name}");
    }
    // A redeem always asks Voyado (it never trusts memory); a search of a new customer does too.
    assert!(
        operations["redeem"]["voyado_calls_per_request"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    // ... and what it asked, by route: a redeem's calls include the redeem itself, and the
    // routes add up to the operation's calls.
    let redeem = &operations["redeem"];
    let routes = redeem["voyado_calls_by_route"].as_object().unwrap();
    assert!(
        routes
            .keys()
            .any(|r| r.starts_with("POST ") && r.ends_with("/redeem")),
        "{routes:?}"
    );
    let sum: f64 = routes.values().map(|n| n.as_f64().unwrap()).sum();
    let per_request = redeem["voyado_calls_per_request"].as_f64().unwrap();
    assert!(
        (sum - per_request).abs() < 0.01 * routes.len() as f64,
        "{routes:?}"
    );
    assert!(results["voyado"]["calls"].as_u64().unwrap() > 0);
    let resources = &results["resources"];
    assert!(
        resources["proxy_cpu_seconds_per_1000_requests"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(resources["peak_rss_mib"].as_f64().unwrap() > 1.0);

    let second = dir.join("second");
    bench(
        &[
            &common[..],
            &[
                "--cold",
                "--warmup",
                "0s",
                "--duration",
                "1s",
                "--out",
                second.to_str().unwrap(),
                "--baseline",
                first_arg,
            ],
        ]
        .concat(),
    );
    let html = std::fs::read_to_string(second.join("report.html")).unwrap();
    assert!(html.contains("Changes against"), "no comparison table");
    assert!(html.matches("<svg").count() >= 2);
    // The baseline is drawn too, beside this run.
    assert!(html.contains("answers, baseline"));
}

/// `--replicas 2` with a real budget: the run says how the budget was held and Voyado's busiest
/// second; with `--redis` (when `redis-server` is here) also the Redis round trips per request.
#[test]
fn in_process_replicas_report_the_budget_voyados_peak_and_redis_round_trips() {
    let dir = scratch("replicas");
    let run = |name: &str, extra: &[&str]| -> Value {
        let out = dir.join(name);
        let summary = bench(
            &[
                &[
                    "--in-process",
                    "--replicas",
                    "2",
                    "--voyado-budget",
                    "40/20",
                    "--rate",
                    "40",
                    "--voyado-latency",
                    "5ms",
                    "--warmup",
                    "0s",
                    "--duration",
                    "1s",
                    "--out",
                    out.to_str().unwrap(),
                ][..],
                extra,
            ]
            .concat(),
        );
        assert!(summary.contains("2 replicas ("), "{summary}");
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
    };
    let alone = run("static", &[]);
    let replicas = &alone["replicas"];
    assert_eq!(replicas["replicas"], 2);
    assert_eq!(replicas["budget"], "static share per replica");
    assert_eq!(replicas["voyado_budget"], "40/s, burst 20");
    assert!(replicas["peak_voyado_calls_per_second"].as_u64().unwrap() > 0);
    assert!(replicas["redis_round_trips_per_request"].is_null());

    let Some(redis) = support::redis_server::RedisServer::start() else {
        return;
    };
    let shared = run("shared", &["--redis", &redis.url()]);
    let replicas = &shared["replicas"];
    assert_eq!(replicas["budget"], "shared in Redis");
    // Every Voyado call took a permit from the script (one round trip each, at least).
    let calls = shared["voyado"]["calls_per_request"].as_f64().unwrap();
    let round_trips = replicas["redis_round_trips_per_request"].as_f64().unwrap();
    assert!(round_trips >= calls, "{round_trips} < {calls}");
    assert!(replicas["redis_calls"]["evalsha"].as_u64().unwrap() > 0);
}
