//! Test helpers for this room: the registry's exposition parsed back, and the log lines an
//! event writes captured.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_parse::{Sample, Scrape, Value};

use super::Metrics;

pub fn scrape(metrics: &Metrics) -> Scrape {
    let text = metrics.render();
    // prometheus-parse reads Prometheus text; the OpenMetrics extras (`# UNIT`, `# EOF`) match
    // none of its patterns and are skipped, so the exposition goes in as it is.
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("lines are in memory")
}

/// The sample named `metric` whose labels are exactly `labels`.
fn sample<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    scrape.samples.iter().find(|s| {
        s.metric == metric
            && s.labels.len() == labels.len()
            && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

/// A counter, gauge or untyped value. OpenMetrics names a counter's family without `_total`
/// (`# TYPE svp_requests counter`, sample `svp_requests_total`), which prometheus-parse does
/// not connect, so counter samples come back untyped.
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    match sample(scrape, metric, labels)?.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
        _ => None,
    }
}

/// Cumulative bucket counts by upper bound.
pub fn buckets(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
    match sample(scrape, metric, labels).map(|s| &s.value) {
        Some(Value::Histogram(counts)) => counts.iter().map(|c| (c.less_than, c.count)).collect(),
        other => panic!("{metric} {labels:?} is not a histogram: {other:?}"),
    }
}

pub fn count_at(buckets: &[(f64, f64)], bound: f64) -> f64 {
    buckets
        .iter()
        .find(|(le, _)| *le == bound)
        .map(|(_, n)| *n)
        .unwrap_or_else(|| panic!("no bucket le={bound} in {buckets:?}"))
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The log lines `work` writes, at every level, as the text format prints them (no colours).
pub fn logged(work: impl FnOnce()) -> String {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, work);
    let bytes = captured
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    String::from_utf8(bytes).expect("the text format writes UTF-8")
}

/// The one line that says `message`, or a panic showing them all.
pub fn line<'a>(logs: &'a str, message: &str) -> &'a str {
    let mut found = logs.lines().filter(|l| l.contains(message));
    match (found.next(), found.next()) {
        (Some(line), None) => line,
        _ => panic!("not exactly one line saying {message:?}:\n{logs}"),
    }
}
