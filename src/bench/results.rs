//! What a run measured: HDR histograms per operation while it runs (`Recorder`), then the
//! figures a person or a script reads (`Results`, written as `results.json`; every field carries
//! its unit). A later run reads `Results` back as its baseline.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::schedule::Operation;

/// The percentiles the report's curves are drawn through.
const CURVE: [f64; 14] = [
    0.0, 25.0, 50.0, 75.0, 90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Status(u16),
    /// No answer within the client's timeout.
    Timeout,
    /// The connection failed or broke.
    Failed,
}

impl Outcome {
    /// Only a 2xx is a success: a refusal, a shed request or a broken connection all count.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Status(200..=299))
    }

    fn label(self) -> String {
        match self {
            Outcome::Status(s) => s.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Failed => "connection_failed".into(),
        }
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, 1 µs to an hour, 3 significant digits; bounds that cannot fail.
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|e| unreachable!("{e}"))
}

#[derive(Debug)]
struct OperationRecord {
    latency: Histogram<u64>,
    statuses: BTreeMap<String, u64>,
    errors: u64,
}

impl OperationRecord {
    fn new() -> OperationRecord {
        OperationRecord {
            latency: histogram(),
            statuses: BTreeMap::new(),
            errors: 0,
        }
    }

    fn add(&mut self, latency: Duration, outcome: Outcome) {
        // Above an hour is clamped to the top bucket rather than lost.
        self.latency.saturating_record(latency.as_micros() as u64);
        *self.statuses.entry(outcome.label()).or_default() += 1;
        if outcome.is_error() {
            self.errors += 1;
        }
    }
}

/// Per second of the run, by the second the answer came in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
}

/// Collects the requests of one run. Only those planned in the measured window (after the
/// warm-up) count in the figures; the timeline has every second.
#[derive(Debug)]
pub struct Recorder {
    warmup: Duration,
    operations: BTreeMap<Operation, OperationRecord>,
    overall: OperationRecord,
    /// How late requests went out against their plan (the generator's own health).
    send_lag: Histogram<u64>,
    timeline: Vec<Second>,
    /// Steps not sent because an earlier answer lacked what they need (no customer found,
    /// nothing left to redeem).
    skipped: BTreeMap<Operation, u64>,
}

impl Recorder {
    pub fn new(warmup: Duration) -> Recorder {
        Recorder {
            warmup,
            operations: BTreeMap::new(),
            overall: OperationRecord::new(),
            send_lag: histogram(),
            timeline: Vec::new(),
            skipped: BTreeMap::new(),
        }
    }

    pub fn measured(&self, planned: Duration) -> bool {
        planned >= self.warmup
    }

    /// One request: planned at `planned` (from the start of the run), sent `lag` after that,
    /// answered `latency` after its plan.
    pub fn record(
        &mut self,
        operation: Operation,
        planned: Duration,
        lag: Duration,
        latency: Duration,
        outcome: Outcome,
    ) {
        let second = (planned + latency).as_secs() as usize;
        while self.timeline.len() <= second {
            let next = self.timeline.len() as u64;
            self.timeline.push(Second {
                second: next,
                ..Second::default()
            });
        }
        let slot = &mut self.timeline[second];
        slot.requests += 1;
        slot.errors += u64::from(outcome.is_error());
        if !self.measured(planned) {
            return;
        }
        self.send_lag.saturating_record(lag.as_micros() as u64);
        self.overall.add(latency, outcome);
        self.operations
            .entry(operation)
            .or_insert_with(OperationRecord::new)
            .add(latency, outcome);
    }

    pub fn skip(&mut self, operation: Operation, planned: Duration) {
        if self.measured(planned) {
            *self.skipped.entry(operation).or_default() += 1;
        }
    }

    pub fn count(&self) -> u64 {
        self.overall.latency.len()
    }

    /// The figures of the measured window of `window` length.
    pub fn results(&self, window: Duration, voyado: &VoyadoCalls) -> Results {
        let seconds = window.as_secs_f64().max(f64::EPSILON);
        let stats = |r: &OperationRecord| Stats {
            count: r.latency.len(),
            rate: round(r.latency.len() as f64 / seconds, 2),
            p50_ms: ms(r.latency.value_at_quantile(0.50)),
            p90_ms: ms(r.latency.value_at_quantile(0.90)),
            p99_ms: ms(r.latency.value_at_quantile(0.99)),
            p999_ms: ms(r.latency.value_at_quantile(0.999)),
            max_ms: ms(r.latency.max()),
            errors: r.errors,
        };
        let curve = |r: &OperationRecord| {
            CURVE
                .iter()
                .map(|p| CurvePoint {
                    percentile: *p,
                    ms: ms(r.latency.value_at_quantile(p / 100.0)),
                })
                .collect()
        };
        let mut operations = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        let mut curves = BTreeMap::new();
        statuses.insert("overall".to_owned(), self.overall.statuses.clone());
        curves.insert("overall".to_owned(), curve(&self.overall));
        for (op, record) in &self.operations {
            operations.insert(
                op.name().to_owned(),
                OperationResults {
                    stats: stats(record),
                    voyado_calls_per_request: voyado.per_operation.as_ref().map(|calls| {
                        let n = calls.get(op).copied().unwrap_or(0);
                        round(n as f64 / record.latency.len().max(1) as f64, 3)
                    }),
                    voyado_calls_by_route: voyado.per_route.as_ref().map(|calls| {
                        calls
                            .get(op)
                            .into_iter()
                            .flatten()
                            .map(|(route, n)| {
                                let per = *n as f64 / record.latency.len().max(1) as f64;
                                (route.clone(), round(per, 3))
                            })
                            .collect()
                    }),
                },
            );
            statuses.insert(op.name().to_owned(), record.statuses.clone());
            curves.insert(op.name().to_owned(), curve(record));
        }
        Results {
            overall: stats(&self.overall),
            operations,
            statuses,
            skipped: self
                .skipped
                .iter()
                .map(|(op, n)| (op.name().to_owned(), *n))
                .collect(),
            voyado: VoyadoSummary {
                calls: voyado.total,
                calls_per_request: voyado
                    .total
                    .map(|n| round(n as f64 / self.count().max(1) as f64, 3)),
                counted_by: voyado.counted_by.clone(),
            },
            send_lag_p99_ms: ms(self.send_lag.value_at_quantile(0.99)),
            curves,
            timeline: self.timeline.clone(),
            resources: None,
            run: None,
            ramp: None,
            replicas: None,
        }
    }
}

/// Voyado calls made for the measured requests, counted by the mode's own means.
#[derive(Debug, Clone, Default)]
pub struct VoyadoCalls {
    pub total: Option<u64>,
    pub per_operation: Option<BTreeMap<Operation, u64>>,
    /// The same calls by Voyado route (`GET /api/v2/contacts/{id}`), where they can be told apart.
    pub per_route: Option<BTreeMap<Operation, BTreeMap<String, u64>>>,
    pub counted_by: String,
}

fn ms(micros: u64) -> f64 {
    round(micros as f64 / 1000.0, 3)
}

pub fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

/// `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub overall: Stats,
    pub operations: BTreeMap<String, OperationResults>,
    /// Answers by HTTP status (or `timeout`, `connection_failed`), overall and per operation.
    pub statuses: BTreeMap<String, BTreeMap<String, u64>>,
    /// Planned steps not sent because an earlier answer lacked what they need.
    pub skipped: BTreeMap<String, u64>,
    pub voyado: VoyadoSummary,
    /// How late the generator sent against its plan; above a few ms the load generator itself
    /// was short of CPU, and the figures include that.
    pub send_lag_p99_ms: f64,
    /// Latency percentile curves (ms at each percentile), overall and per operation.
    pub curves: BTreeMap<String, Vec<CurvePoint>>,
    /// Answers and errors per second of the whole run, warm-up included.
    pub timeline: Vec<Second>,
    pub resources: Option<Resources>,
    pub run: Option<RunInfo>,
    pub ramp: Option<Ramp>,
    /// In-process: how many proxies, what they shared, and what that cost and saved. Absent
    /// from a target run and from results written before it existed.
    #[serde(default)]
    pub replicas: Option<ReplicaResults>,
}

/// The in-process proxies as a deployment of several replicas: Voyado's peak and the shared
/// Redis' round trips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaResults {
    pub replicas: u32,
    /// How the Voyado budget was held: `one replica`, `static share per replica` (each takes
    /// rate / replicas, `[voyado] replicas`) or `shared in Redis` (`[cluster]`).
    pub budget: String,
    /// Voyado's budget per API key: `40/s, burst 20`, or `unbounded` (the default, so that the
    /// bench measures the proxy).
    pub voyado_budget: String,
    /// The most Voyado calls of this run in any one second, warm-up included (a cold start is
    /// the burst), from the simulator's request times.
    pub peak_voyado_calls_per_second: u64,
    /// The proxies' Redis round trips of the measured window (scripts, script loads, write
    /// notifications) per measured SPI request; the background `PING`s left out. `null`
    /// without Redis.
    pub redis_round_trips_per_request: Option<f64>,
    /// What the proxies sent Redis in the measured window, by command (Redis' `INFO
    /// commandstats`; `ping` is the background probe's).
    pub redis_calls: BTreeMap<String, u64>,
    /// Redis' own time per call in the window, by command, in microseconds (server side: the
    /// network is not in it).
    pub redis_usec_per_call: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub count: u64,
    /// Answers per second over the measured window.
    pub rate: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Requests not answered 2xx (refusals, timeouts and failed connections included).
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperationResults {
    #[serde(flatten)]
    pub stats: Stats,
    /// `null` where the calls could not be told apart per operation (an external target).
    pub voyado_calls_per_request: Option<f64>,
    /// Those calls by Voyado route, per request of this operation: what the calls buy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voyado_calls_by_route: Option<BTreeMap<String, f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub percentile: f64,
    pub ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VoyadoSummary {
    /// Voyado calls made for the measured requests; `null` when they could not be counted.
    pub calls: Option<u64>,
    pub calls_per_request: Option<f64>,
    pub counted_by: String,
}

/// Costs of the proxy where it runs in this process (Linux `/proc`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU time of the proxy's own runtime threads per 1000 measured requests.
    pub proxy_cpu_seconds_per_1000_requests: f64,
    /// CPU time of the whole process (proxy, simulator and load generator) per 1000.
    pub process_cpu_seconds_per_1000_requests: f64,
    /// Resident memory of the process before the run, after the simulator was filled.
    pub rss_before_mib: f64,
    /// The process's peak resident memory (VmHWM), simulator and generator included.
    pub peak_rss_mib: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub mode: String,
    pub target: String,
    pub mix: String,
    pub rate: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub writes: bool,
    pub seed: u64,
    /// In-process: the simulated Voyado latency and whether the market caches.
    pub voyado_latency: Option<String>,
    pub cache: Option<String>,
    pub requests_per_session: f64,
    pub cores: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ramp {
    pub slo_p99_ms: f64,
    pub max_error_share: f64,
    pub steps: Vec<RampStep>,
    /// The highest rate whose p99 and errors stayed within bounds; `null` if the first did not.
    pub highest_rate_held: Option<f64>,
    pub till_requests_per_second: f64,
    pub tills_per_replica: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RampStep {
    pub rate: f64,
    pub count: u64,
    pub p99_ms: f64,
    pub errors: u64,
    pub error_share: f64,
    pub held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warmup_is_left_out_of_the_figures_but_not_the_timeline() {
        let mut r = Recorder::new(Duration::from_secs(1));
        let ms = Duration::from_millis;
        r.record(
            Operation::Card,
            ms(500),
            ms(0),
            ms(900),
            Outcome::Status(200),
        );
        r.record(
            Operation::Card,
            ms(1500),
            ms(0),
            ms(10),
            Outcome::Status(200),
        );
        r.record(
            Operation::Card,
            ms(1600),
            ms(0),
            ms(30),
            Outcome::Status(502),
        );
        let results = r.results(Duration::from_secs(1), &VoyadoCalls::default());
        assert_eq!(results.overall.count, 2);
        assert_eq!(results.overall.errors, 1);
        assert!(results.overall.max_ms < 31.0);
        assert_eq!(results.statuses["card"]["502"], 1);
        assert_eq!(results.timeline.iter().map(|s| s.requests).sum::<u64>(), 3);
        // Each counted in the second its answer came: all three in the second second.
        assert_eq!(results.timeline[1].second, 1);
        assert_eq!(results.timeline[1].requests, 3);
    }
}
