//! `sitoo-voyado-proxy bench`: store-like till traffic, open loop, against the proxy in this
//! process (with the Voyado simulator; `--replicas N` proxies, sharing a Redis with `--redis`)
//! or a deployed one (`--target`), and what it cost: latency percentiles per operation, answers
//! by status, Voyado calls per request and at their busiest second, Redis round trips, the
//! proxy's CPU and memory where it is local. Writes `results.json` and `report.html` (charts) to `--out`; with
//! `--ramp`, the highest rate that keeps p99 within the SLO, as tills per replica.
//!
//! Rooms: `args` (the flags), `mix` (the traffic file), `schedule` (who arrives when, drawn up
//! front), `runner` (the open-loop driver), `results` (histograms and `results.json`), `report`
//! (summary and charts), `in_process` (simulator and proxy here; needs the `simulator` feature).

mod args;
#[cfg(feature = "simulator")]
mod in_process;
mod mix;
mod report;
mod results;
mod runner;
mod schedule;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

pub use args::{Args, Latency, Mode, Scale, Target, parse, parse_duration};
pub use mix::{KnownCustomer, Mix};
pub use results::Results;
pub use schedule::{Operation, Schedule};

use results::{Ramp, RampStep, Recorder, RunInfo, VoyadoCalls, round};
use runner::{Till, drive, progress_bar};

/// The ramp stops at the first step over either bound.
const RAMP_MAX_ERROR_SHARE: f64 = 0.001;
/// The ramp raises the rate by `--rate` a step, at most this many steps.
const RAMP_MAX_STEPS: u32 = 30;
/// The gap between starting the clock and the first planned request: set-up is not latency.
const LEAD: Duration = Duration::from_millis(100);

/// Runs the command on a runtime of its own; 1 when the run could not be made.
pub fn main(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("svp-bench")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The customers sessions draw from, and what the in-process simulator is seeded with.
struct Population {
    customers: Vec<KnownCustomer>,
    #[cfg(feature = "simulator")]
    fixture: Option<Arc<str>>,
}

/// Runs once or ramps, writes `results.json` and `report.html` to `--out`, prints the summary.
pub async fn run(args: &Args) -> Result<Results, String> {
    std::fs::create_dir_all(&args.out).map_err(|e| format!("--out {}: {e}", args.out.display()))?;
    let population = populate(args)?;
    let mut results = if args.ramp {
        ramp(args, &population).await?
    } else {
        once(args, &population, args.rate, "bench").await?
    };
    results.run = Some(run_info(args));
    write(&args.out, &results, args.baseline.as_ref())?;
    print!("{}", report::summary(&results, args.baseline.as_ref()));
    println!("written: {}", args.out.join("report.html").display());
    Ok(results)
}

fn populate(args: &Args) -> Result<Population, String> {
    match &args.mode {
        Mode::Target(_) => Ok(Population {
            customers: args.mix.customers.clone(),
            #[cfg(feature = "simulator")]
            fixture: None,
        }),
        #[cfg(feature = "simulator")]
        Mode::InProcess { .. } => {
            let (fixture, customers) = in_process::fixture(args.mix.generate)?;
            Ok(Population {
                customers,
                fixture: Some(fixture.into()),
            })
        }
        #[cfg(not(feature = "simulator"))]
        Mode::InProcess { .. } => Err(
            "--in-process needs the simulator, which this build leaves out; use --target".into(),
        ),
    }
}

/// Where the proxy is, and how its Voyado calls and costs are read.
enum Site {
    #[cfg(feature = "simulator")]
    Local {
        local: in_process::Local,
        rss_before_mib: Option<f64>,
    },
    Remote {
        metrics: String,
        http: reqwest::Client,
    },
}

/// What is read at the start and at the end of the measured window.
struct Mark {
    voyado_calls: Option<f64>,
    #[cfg(feature = "simulator")]
    usage: Option<in_process::Usage>,
    #[cfg(feature = "simulator")]
    redis: Option<in_process::RedisCounts>,
}

impl Site {
    /// The site, the SPI root of each replica, and the market's key.
    async fn start(
        args: &Args,
        population: &Population,
    ) -> Result<(Site, Vec<String>, String), String> {
        match &args.mode {
            Mode::Target(target) => Ok((
                Site::Remote {
                    metrics: format!("{}/metrics", target.url),
                    http: crate::voyado::build_http_client(),
                },
                vec![format!(
                    "{}/{}/{}",
                    target.url, target.tenant, target.market
                )],
                target.key.clone(),
            )),
            #[cfg(feature = "simulator")]
            Mode::InProcess {
                voyado_latency,
                cold,
                scale,
            } => {
                let fixture = population.fixture.as_deref().unwrap_or_default();
                let local =
                    in_process::Local::start(fixture, *voyado_latency, *cold, args.seed, scale)
                        .await?;
                let spis = local
                    .roots
                    .iter()
                    .map(|root| format!("{root}/{}/{}", in_process::TENANT, in_process::MARKET))
                    .collect();
                Ok((
                    Site::Local {
                        local,
                        rss_before_mib: in_process::status_mib("VmRSS:"),
                    },
                    spis,
                    in_process::CRM_KEY.into(),
                ))
            }
            #[cfg(not(feature = "simulator"))]
            Mode::InProcess { .. } => {
                let _ = population;
                Err("--in-process needs the simulator, which this build leaves out".into())
            }
        }
    }

    async fn mark(&self) -> Mark {
        match self {
            #[cfg(feature = "simulator")]
            Site::Local { local, .. } => Mark {
                voyado_calls: None,
                usage: in_process::usage(),
                redis: local.redis_counts().await,
            },
            Site::Remote { metrics, http } => Mark {
                voyado_calls: scrape_voyado_calls(http, metrics).await,
                #[cfg(feature = "simulator")]
                usage: None,
                #[cfg(feature = "simulator")]
                redis: None,
            },
        }
    }

    fn voyado_calls(
        &self,
        before: &Mark,
        after: &Mark,
        run: u64,
        traces: &runner::Traces,
    ) -> VoyadoCalls {
        match self {
            #[cfg(feature = "simulator")]
            Site::Local { local, .. } => {
                let _ = (before, after);
                local.voyado_calls(run, traces)
            }
            Site::Remote { .. } => {
                let _ = (run, traces);
                match (before.voyado_calls, after.voyado_calls) {
                    (Some(b), Some(a)) => VoyadoCalls {
                        total: Some((a - b).max(0.0) as u64),
                        per_operation: None,
                        per_route: None,
                        counted_by: "the target's /metrics (svp_voyado_calls_total) before and \
                                     after the measured window: every call of the replica, not \
                                     per operation"
                            .into(),
                    },
                    _ => VoyadoCalls {
                        total: None,
                        per_operation: None,
                        per_route: None,
                        counted_by: "not counted: the target's /metrics did not answer with \
                                     svp_voyado_calls_total"
                            .into(),
                    },
                }
            }
        }
    }

    /// In-process: Voyado's busiest second and Redis' round trips of the measured window.
    fn replicas(
        &self,
        before: &Mark,
        after: &Mark,
        run: u64,
        requests: u64,
    ) -> Option<results::ReplicaResults> {
        match self {
            #[cfg(feature = "simulator")]
            Site::Local { local, .. } => Some(local.replica_results(
                run,
                before.redis.as_ref(),
                after.redis.as_ref(),
                requests,
            )),
            Site::Remote { .. } => {
                let _ = (before, after, run, requests);
                None
            }
        }
    }

    fn finish(self, before: &Mark, after: &Mark, requests: u64) -> Option<results::Resources> {
        match self {
            #[cfg(feature = "simulator")]
            Site::Local {
                local,
                rss_before_mib,
            } => {
                local.stop();
                in_process::resources(before.usage, after.usage, rss_before_mib, requests)
            }
            Site::Remote { .. } => {
                let _ = (before, after, requests);
                None
            }
        }
    }
}

/// The sum of `svp_voyado_calls_total` over its label sets. Parsed by hand: a label value such
/// as `/api/v2/contacts/{}` holds braces, which the usual sample patterns do not take.
async fn scrape_voyado_calls(http: &reqwest::Client, url: &str) -> Option<f64> {
    let response = http
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    sum_metric(&text, "svp_voyado_calls_total")
}

fn sum_metric(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let value = match rest.chars().next() {
            Some('{') => rest.rsplit_once('}').map(|(_, v)| v),
            Some(' ') => Some(rest),
            _ => None,
        };
        if let Some(v) = value.and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// A per-run id: the first half of every trace id and request id, and what makes the e-mails of
/// creates unique, so two runs against one staging tenant never collide.
fn run_id(seed: u64, rate: f64) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    now ^ seed.rotate_left(17) ^ rate.to_bits()
}

/// One run at `rate`: warm-up, then the measured window.
async fn once(
    args: &Args,
    population: &Population,
    rate: f64,
    label: &str,
) -> Result<Results, String> {
    let (site, spis, key) = Site::start(args, population).await?;
    let till = Arc::new(Till::new(spis, key, run_id(args.seed, rate)));
    let end = args.warmup + args.duration;
    let schedule = Schedule::new(
        &args.mix,
        population.customers.clone(),
        rate,
        end,
        args.writes(),
        args.seed,
        till.run,
    );
    let bar = progress_bar(label, end.as_secs());
    let start = Instant::now() + LEAD;
    let measuring = async {
        tokio::time::sleep_until(start + args.warmup).await;
        site.mark().await
    };
    let (driven, before) = tokio::join!(
        drive(
            till.clone(),
            schedule,
            start,
            Recorder::new(args.warmup),
            &bar
        ),
        measuring
    );
    let after = site.mark().await;
    bar.finish_and_clear();
    let calls = site.voyado_calls(&before, &after, till.run, &driven.traces);
    let mut results = driven.recorder.results(args.duration, &calls);
    let requests = driven.recorder.count();
    results.replicas = site.replicas(&before, &after, till.run, requests);
    results.resources = site.finish(&before, &after, requests);
    Ok(results)
}

/// Raises the rate by `--rate` a step until p99 passes the SLO or errors pass 0.1 %; each step
/// is a run of its own (a fresh simulator and proxy in-process). The results are those of the
/// highest step that held (or the first, if none did), with the ramp added.
async fn ramp(args: &Args, population: &Population) -> Result<Results, String> {
    let mut steps = Vec::new();
    let mut held: Option<Results> = None;
    let mut first: Option<Results> = None;
    for k in 1..=RAMP_MAX_STEPS {
        let rate = args.rate * f64::from(k);
        let results = once(args, population, rate, &format!("ramp {rate}/s")).await?;
        let share = results.overall.errors as f64 / results.overall.count.max(1) as f64;
        let ok = results.overall.count > 0
            && results.overall.p99_ms <= args.slo.as_secs_f64() * 1000.0
            && share <= RAMP_MAX_ERROR_SHARE;
        eprintln!(
            "ramp {rate}/s: p99 {} ms, errors {} of {}{}",
            results.overall.p99_ms,
            results.overall.errors,
            results.overall.count,
            if ok { "" } else { " — over" }
        );
        steps.push(RampStep {
            rate,
            count: results.overall.count,
            p99_ms: results.overall.p99_ms,
            errors: results.overall.errors,
            error_share: round(share, 6),
            held: ok,
        });
        if first.is_none() {
            first = Some(results.clone());
        }
        if !ok {
            break;
        }
        held = Some(results);
    }
    let highest = steps.iter().filter(|s| s.held).map(|s| s.rate).next_back();
    let till_rate = args.mix.till_rate(args.writes());
    let mut results = held.or(first).ok_or("the ramp made no step")?;
    results.ramp = Some(Ramp {
        slo_p99_ms: args.slo.as_secs_f64() * 1000.0,
        max_error_share: RAMP_MAX_ERROR_SHARE,
        steps,
        highest_rate_held: highest,
        till_requests_per_second: round(till_rate, 6),
        tills_per_replica: highest.map(|r| (r / till_rate).floor()),
    });
    Ok(results)
}

fn run_info(args: &Args) -> RunInfo {
    let (mode, target, voyado_latency, cache) = match &args.mode {
        Mode::InProcess {
            voyado_latency,
            cold,
            ..
        } => (
            "in-process".to_owned(),
            "the proxy and the Voyado simulator in this process".to_owned(),
            Some(voyado_latency.to_string()),
            Some(
                if *cold {
                    "off (cold)"
                } else {
                    "on (default TTLs)"
                }
                .to_owned(),
            ),
        ),
        Mode::Target(t) => (
            "target".to_owned(),
            format!("{}/{}/{}", t.url, t.tenant, t.market),
            None,
            None,
        ),
    };
    RunInfo {
        mode,
        target,
        mix: args.mix_name.clone(),
        rate: args.rate,
        duration_s: args.duration.as_secs_f64(),
        warmup_s: args.warmup.as_secs_f64(),
        writes: args.writes(),
        seed: args.seed,
        voyado_latency,
        cache,
        requests_per_session: round(args.mix.requests_per_session(args.writes()), 3),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
    }
}

/// `results.json`, `report.html` and the two charts as SVG files of their own.
fn write(out: &Path, results: &Results, baseline: Option<&args::Baseline>) -> Result<(), String> {
    let old = baseline.map(|b| &b.results);
    let warmup = results.run.as_ref().map_or(0.0, |r| r.warmup_s);
    let latency = report::latency_chart(results, old)?;
    let timeline = report::timeline_chart(results, old, warmup)?;
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    let files = [
        ("results.json", json),
        ("latency.svg", latency.clone()),
        ("throughput.svg", timeline.clone()),
        (
            "report.html",
            report::html(results, baseline, &latency, &timeline),
        ),
    ];
    for (name, text) in files {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voyado_calls_are_summed_over_label_sets_with_braces() {
        let text = "# TYPE svp_voyado_calls counter\n\
                    svp_voyado_calls_total{endpoint=\"/api/v2/contacts/{}\",outcome=\"ok\"} 12\n\
                    svp_voyado_calls_total{endpoint=\"/api/v2/consents\",outcome=\"ok\"} 3\n\
                    svp_voyado_call_duration_seconds_count{endpoint=\"x\",outcome=\"ok\"} 99\n";
        assert_eq!(sum_metric(text, "svp_voyado_calls_total"), Some(15.0));
        assert_eq!(sum_metric("", "svp_voyado_calls_total"), None);
    }
}
