//! The `bench` command line: flags parsed and checked together with the files they name (the
//! mix, the baseline), so a run never starts on input it would refuse later. Every refusal is a
//! message for the person at the terminal; the binary answers it with exit code 2.

use std::path::PathBuf;
use std::time::Duration;

use super::mix::Mix;
use super::results::Results;
use crate::cluster::{ClusterConfig, ClusterKey, RedisUrl};

/// Where the traffic goes.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The proxy and the Voyado simulator in this process.
    InProcess {
        voyado_latency: Latency,
        /// A market that keeps nothing in memory: every request makes its Voyado calls.
        cold: bool,
        /// How many proxies, and what they share.
        scale: Scale,
    },
    /// A proxy that runs elsewhere (a staging deployment, or `sitoo-voyado-proxy demo`).
    Target(Target),
}

#[derive(Clone)]
pub struct Target {
    /// The proxy's root (`https://host:port`), where `/metrics` answers.
    pub url: String,
    pub tenant: String,
    pub market: String,
    /// The market's CRM API key, sent as the Basic-auth password.
    pub key: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("tenant", &self.tenant)
            .field("market", &self.market)
            .field("key", &"***")
            .finish()
    }
}

/// The in-process proxies: how many, whether they share a Redis, and Voyado's budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Scale {
    /// Proxies in the process, in front of the one simulator; the tills' requests go to them in
    /// turn (`--replicas`, default 1).
    pub replicas: u32,
    /// The Redis they share (`[cluster]`, `--redis`); without it each takes its static share of
    /// the budget (`[voyado] replicas`).
    pub redis: Option<RedisUrl>,
    /// Voyado's budget per API key, calls a second and burst (`--voyado-budget 40/20`); without
    /// it the budget is opened wide, so that the bench measures the proxy.
    pub budget: Option<(u32, u32)>,
}

/// How long the simulated Voyado takes to answer a call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Latency {
    Fixed(Duration),
    /// Log-normal through these two percentiles (a long right tail, as real APIs have).
    Percentiles {
        p50: Duration,
        p99: Duration,
    },
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Latency::Fixed(d) => write!(f, "{} ms", d.as_millis()),
            Latency::Percentiles { p50, p99 } => {
                write!(f, "p50 {} ms, p99 {} ms", p50.as_millis(), p99.as_millis())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    /// Requests per second (sessions start at this rate divided by the mix's requests per
    /// session).
    pub rate: f64,
    pub duration: Duration,
    pub warmup: Duration,
    pub mix: Mix,
    /// Where the mix came from, for the report: a file, or "built-in".
    pub mix_name: String,
    pub out: PathBuf,
    pub baseline: Option<Baseline>,
    pub ramp: bool,
    /// The p99 a ramp step must stay within.
    pub slo: Duration,
    pub allow_writes: bool,
    pub seed: u64,
}

/// A previous run's results, to draw beside this one.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub dir: PathBuf,
    pub results: Results,
}

impl Args {
    /// Writes go out in-process (the simulator is ours) and to a target only when allowed.
    pub fn writes(&self) -> bool {
        matches!(self.mode, Mode::InProcess { .. }) || self.allow_writes
    }
}

const SWITCHES: [&str; 4] = ["--in-process", "--ramp", "--allow-writes", "--cold"];
const VALUED: [&str; 16] = [
    "--voyado-latency",
    "--replicas",
    "--redis",
    "--voyado-budget",
    "--target",
    "--tenant",
    "--market",
    "--key",
    "--rate",
    "--duration",
    "--warmup",
    "--mix",
    "--out",
    "--baseline",
    "--slo",
    "--seed",
];

/// Parses the words after `bench`.
pub fn parse(words: &[String]) -> Result<Args, String> {
    let mut switches: Vec<&str> = Vec::new();
    let mut values: Vec<(&str, &str)> = Vec::new();
    let mut rest = words.iter();
    while let Some(word) = rest.next() {
        let word = word.as_str();
        let seen = switches.contains(&word) || values.iter().any(|(n, _)| *n == word);
        if seen {
            return Err(format!("bench: {word} given twice"));
        }
        if SWITCHES.contains(&word) {
            switches.push(word);
        } else if VALUED.contains(&word) {
            let value = rest
                .next()
                .ok_or_else(|| format!("bench: {word} takes a value"))?;
            values.push((word, value));
        } else {
            return Err(format!("bench: unknown flag {word}"));
        }
    }
    let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
    let switch = |name: &str| switches.contains(&name);

    let in_process = switch("--in-process");
    let target_only = ["--tenant", "--market", "--key"];
    let mode = match (in_process, value("--target")) {
        (true, Some(_)) => return Err("bench: --in-process or --target, not both".into()),
        (false, None) => return Err("bench: --in-process or --target URL is needed".into()),
        (true, None) => {
            if cfg!(not(feature = "simulator")) {
                return Err("bench: --in-process needs the Voyado simulator, which this build leaves out (--no-default-features); use --target".into());
            }
            if let Some(flag) = target_only.iter().find(|f| value(f).is_some()) {
                return Err(format!("bench: {flag} goes with --target"));
            }
            if switch("--allow-writes") {
                return Err("bench: --allow-writes goes with --target (in-process writes reach only the simulator)".into());
            }
            Mode::InProcess {
                voyado_latency: match value("--voyado-latency") {
                    Some(text) => parse_latency(text)?,
                    None => Latency::Fixed(Duration::from_millis(50)),
                },
                cold: switch("--cold"),
                scale: Scale {
                    replicas: match value("--replicas") {
                        Some(text) => parse_replicas(text)?,
                        None => 1,
                    },
                    redis: value("--redis").map(parse_redis).transpose()?,
                    budget: value("--voyado-budget").map(parse_budget).transpose()?,
                },
            }
        }
        (false, Some(url)) => {
            for flag in [
                "--voyado-latency",
                "--cold",
                "--replicas",
                "--redis",
                "--voyado-budget",
            ] {
                if value(flag).is_some() || switch(flag) {
                    return Err(format!("bench: {flag} goes with --in-process"));
                }
            }
            let required = |name: &str| {
                value(name)
                    .map(str::to_owned)
                    .ok_or_else(|| format!("bench: --target needs {name}"))
            };
            Mode::Target(Target {
                url: parse_target(url)?,
                tenant: required("--tenant")?,
                market: required("--market")?,
                key: required("--key")?,
            })
        }
    };

    let rate = match value("--rate") {
        Some(text) => text
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0 && *r <= 100_000.0)
            .ok_or_else(|| {
                format!("bench: --rate takes requests per second, above 0 and at most 100000 (got {text})")
            })?,
        None => 100.0,
    };
    let duration = duration_flag("--duration", value("--duration"), Duration::from_secs(60))?;
    if duration.is_zero() {
        return Err("bench: --duration must be above 0".into());
    }
    let warmup = duration_flag("--warmup", value("--warmup"), Duration::from_secs(10))?;
    let slo = duration_flag("--slo", value("--slo"), Duration::from_millis(300))?;
    if value("--slo").is_some() && !switch("--ramp") {
        return Err("bench: --slo goes with --ramp".into());
    }
    let seed = match value("--seed") {
        Some(text) => text
            .parse()
            .map_err(|_| format!("bench: --seed takes a whole number (got {text})"))?,
        None => 1,
    };
    let (mix, mix_name) = match value("--mix") {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| format!("bench: --mix {file}: cannot read it: {e}"))?;
            (Mix::parse(&text, file)?, file.to_owned())
        }
        None => (Mix::built_in(), "built-in store mix".to_owned()),
    };
    if let Mode::Target(_) = mode
        && mix.customers.is_empty()
    {
        return Err(format!(
            "bench: {mix_name} lists no [[customer]]: --target needs customers the target knows"
        ));
    }
    let baseline = match value("--baseline") {
        Some(dir) => {
            let file = PathBuf::from(dir).join("results.json");
            let text = std::fs::read_to_string(&file).map_err(|e| {
                format!(
                    "bench: --baseline {dir}: cannot read {}: {e}",
                    file.display()
                )
            })?;
            let results = serde_json::from_str(&text).map_err(|e| {
                format!(
                    "bench: --baseline {dir}: {} is not a bench results.json: {e}",
                    file.display()
                )
            })?;
            Some(Baseline {
                dir: dir.into(),
                results,
            })
        }
        None => None,
    };
    Ok(Args {
        mode,
        rate,
        duration,
        warmup,
        mix,
        mix_name,
        out: value("--out").unwrap_or("bench-out").into(),
        baseline,
        ramp: switch("--ramp"),
        slo,
        allow_writes: switch("--allow-writes"),
        seed,
    })
}

fn duration_flag(name: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        Some(text) => parse_duration(text).map_err(|e| format!("bench: {name}: {e}")),
        None => Ok(default),
    }
}

/// `500ms`, `10s`, `2m`: a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let complaint = || format!("expected a duration such as 500ms, 10s or 2m (got {text:?})");
    let number: u64 = number.parse().map_err(|_| complaint())?;
    let millis = match unit {
        "ms" => Some(number),
        "s" => number.checked_mul(1_000),
        "m" => number.checked_mul(60_000),
        _ => None,
    }
    .filter(|ms| *ms <= 24 * 3_600_000)
    .ok_or_else(complaint)?;
    Ok(Duration::from_millis(millis))
}

/// `50ms` (every call) or `p50=40ms,p99=200ms` (a log-normal distribution through both).
pub fn parse_latency(text: &str) -> Result<Latency, String> {
    let complaint = |why: &str| {
        format!("bench: --voyado-latency {text:?}: {why} (50ms, or p50=40ms,p99=200ms)")
    };
    if !text.contains('=') {
        return parse_duration(text)
            .map(Latency::Fixed)
            .map_err(|e| complaint(&e));
    }
    let (mut p50, mut p99) = (None, None);
    for part in text.split(',') {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| complaint("each part is NAME=DURATION"))?;
        let value = parse_duration(value).map_err(|e| complaint(&e))?;
        let slot = match name.trim() {
            "p50" => &mut p50,
            "p99" => &mut p99,
            other => return Err(complaint(&format!("{other} is not p50 or p99"))),
        };
        if slot.replace(value).is_some() {
            return Err(complaint(&format!("{name} given twice")));
        }
    }
    match (p50, p99) {
        (Some(p50), Some(p99)) if !p50.is_zero() && p99 >= p50 => {
            Ok(Latency::Percentiles { p50, p99 })
        }
        (Some(_), Some(_)) => Err(complaint("p50 must be above 0 and p99 at least p50")),
        _ => Err(complaint("both p50 and p99 are needed")),
    }
}

/// The most in-process replicas: they share the process' cores with the simulator and the
/// load generator.
const REPLICAS_MAX: u32 = 16;

fn parse_replicas(text: &str) -> Result<u32, String> {
    text.parse()
        .ok()
        .filter(|n| (1..=REPLICAS_MAX).contains(n))
        .ok_or_else(|| format!("bench: --replicas takes 1 to {REPLICAS_MAX} (got {text})"))
}

/// A Redis URL as `[cluster] redis_url` takes it; the refusal never repeats it (it may hold a
/// password).
fn parse_redis(text: &str) -> Result<RedisUrl, String> {
    let url = RedisUrl::new(text);
    let problems = ClusterConfig::new(url.clone()).validate();
    match problems.iter().find(|p| p.key == ClusterKey::RedisUrl) {
        Some(problem) => Err(format!("bench: --redis {}", problem.problem)),
        None => Ok(url),
    }
}

/// `40/20`: calls a second and burst, both above 0.
fn parse_budget(text: &str) -> Result<(u32, u32), String> {
    let parsed = text.split_once('/').and_then(|(rate, burst)| {
        let (rate, burst): (u32, u32) = (rate.parse().ok()?, burst.parse().ok()?);
        (rate > 0 && burst > 0).then_some((rate, burst))
    });
    parsed.ok_or_else(|| {
        format!("bench: --voyado-budget takes calls a second and burst, such as 40/20 (got {text})")
    })
}

/// The target's root URL: http(s) with a host, no path (tenant and market are flags).
fn parse_target(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("bench: --target {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "bench: --target {text:?}: an http(s) URL with a host"
        ));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "bench: --target {text:?}: the proxy's root, without a path (tenant and market are --tenant and --market)"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn durations_take_ms_s_and_m() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "5", "ms", "1.5s", "-1s", "10h", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn latency_is_fixed_or_two_percentiles() {
        assert_eq!(
            parse_latency("50ms"),
            Ok(Latency::Fixed(Duration::from_millis(50)))
        );
        assert_eq!(
            parse_latency("p50=40ms,p99=200ms"),
            Ok(Latency::Percentiles {
                p50: Duration::from_millis(40),
                p99: Duration::from_millis(200)
            })
        );
        for bad in [
            "p50=40ms",
            "p50=200ms,p99=40ms",
            "p90=1s,p99=2s",
            "p50=0ms,p99=1s",
        ] {
            assert!(parse_latency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_target_needs_tenant_market_and_key_and_keeps_the_key_out_of_debug() {
        let err = parse(&words("--target http://127.0.0.1:8080 --tenant demo")).unwrap_err();
        assert!(err.contains("--market"), "{err}");
        let args = parse(&words(
            "--target http://127.0.0.1:8080/ --tenant demo --market SE --key secret-key --rate 5",
        ))
        .unwrap();
        assert!(!args.writes());
        assert!(!format!("{args:?}").contains("secret-key"));
        let Mode::Target(target) = &args.mode else {
            panic!("a target run");
        };
        assert_eq!(target.url, "http://127.0.0.1:8080");
    }

    #[test]
    fn refusals_name_the_flag() {
        for (line, names) in [
            ("", "--in-process"),
            ("--in-process --target http://x", "not both"),
            ("--in-process --rate 0", "--rate"),
            ("--in-process --rate fast", "--rate"),
            ("--in-process --duration 10", "--duration"),
            ("--in-process --warmup", "--warmup"),
            ("--in-process --frobnicate", "--frobnicate"),
            ("--in-process --ramp --ramp", "twice"),
            ("--in-process --allow-writes", "--allow-writes"),
            ("--in-process --slo 100ms", "--slo"),
            ("--in-process --mix /nonexistent/mix.toml", "--mix"),
            ("--in-process --baseline /nonexistent", "--baseline"),
            ("--target ftp://x --tenant t --market m --key k", "--target"),
            (
                "--target http://x/t/m --tenant t --market m --key k",
                "--target",
            ),
            (
                "--target http://x --tenant t --market m --key k --cold",
                "--cold",
            ),
            (
                "--target http://x --tenant t --market m --key k --replicas 3",
                "--replicas",
            ),
            ("--in-process --replicas 0", "--replicas"),
            ("--in-process --replicas 17", "--replicas"),
            (
                "--in-process --redis http://h",
                "--redis must start with redis://",
            ),
            ("--in-process --voyado-budget 40", "--voyado-budget"),
            ("--in-process --voyado-budget 0/20", "--voyado-budget"),
        ] {
            let err = parse(&words(line)).unwrap_err();
            assert!(err.contains(names), "{line}: {err}");
        }
    }

    #[test]
    fn in_process_replicas_share_a_redis_and_a_budget_if_asked() {
        let args = parse(&words(
            "--in-process --replicas 3 --redis redis://:hunter2@127.0.0.1:6379 --voyado-budget 40/20",
        ))
        .unwrap();
        let Mode::InProcess { scale, .. } = &args.mode else {
            panic!("in-process");
        };
        assert_eq!(scale.replicas, 3);
        assert_eq!(scale.budget, Some((40, 20)));
        assert!(scale.redis.is_some());
        assert!(!format!("{args:?}").contains("hunter2"));
        let alone = parse(&words("--in-process")).unwrap();
        let Mode::InProcess { scale, .. } = &alone.mode else {
            panic!("in-process");
        };
        assert_eq!(
            scale,
            &Scale {
                replicas: 1,
                redis: None,
                budget: None
            }
        );
    }
}
