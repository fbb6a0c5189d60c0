//! Metrics live in a registry the app owns and hands around, not in statics, so two servers (or two
//! tests) in one process never count into each other. Labels are operation names, statuses,
//! endpoint templates and outcomes only: never tenant data, keys or personal data.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Upper bounds, in seconds, for SPI request durations. A till waits on every answer, so the range
/// that matters runs from a few milliseconds (answered without Voyado) to the request deadline of a
/// few seconds; a request cut off at its deadline still lands below the 10 s bound.
const REQUEST_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The same bounds for Voyado calls, so a request's time and the calls inside it can be compared
/// bucket by bucket; the Voyado timeout sits below the request deadline, hence below 10 s.
const VOYADO_BUCKETS: [f64; 11] = REQUEST_BUCKETS;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VoyadoLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    what: &'static str,
    result: &'static str,
}

/// A Voyado tenant by its identity: base URL and a short digest of its API key (operator config,
/// never customer data, never the key).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    voyado: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DigestLabels {
    digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

/// What the admission gate turned away.
#[derive(Clone, Copy, Debug)]
pub enum Shed {
    Requests,
    Connections,
}

impl Shed {
    const ALL: [Shed; 2] = [Shed::Requests, Shed::Connections];

    fn label(self) -> &'static str {
        match self {
            Shed::Requests => "requests",
            Shed::Connections => "connections",
        }
    }
}

/// What became of a redeem whose Voyado answer was unclear (a timeout, a reset, a 5xx), read
/// back after Voyado's redeem window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnclearRedeem {
    /// It had landed: the request went on as if answered.
    Landed,
    /// It had not: the item failed.
    NotLanded,
    /// The read-back failed too: its state is unknown; staff must check it.
    Unknown,
    /// Read back as redeemed, then a later item failed: not reactivated, since another till may
    /// have used it; staff must check it.
    LeftRedeemed,
}

impl UnclearRedeem {
    const ALL: [UnclearRedeem; 4] = [
        UnclearRedeem::Landed,
        UnclearRedeem::NotLanded,
        UnclearRedeem::Unknown,
        UnclearRedeem::LeftRedeemed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UnclearRedeem::Landed => "landed",
            UnclearRedeem::NotLanded => "not_landed",
            UnclearRedeem::Unknown => "unknown",
            UnclearRedeem::LeftRedeemed => "left_redeemed",
        }
    }
}

/// What became of a Sitoo event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventResult {
    Received,
    Processed,
    Duplicate,
    Skipped,
    Failed,
}

impl EventResult {
    const ALL: [EventResult; 5] = [
        EventResult::Received,
        EventResult::Processed,
        EventResult::Duplicate,
        EventResult::Skipped,
        EventResult::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            EventResult::Received => "received",
            EventResult::Processed => "processed",
            EventResult::Duplicate => "duplicate",
            EventResult::Skipped => "skipped",
            EventResult::Failed => "failed",
        }
    }
}

/// Rare events an operator must act on; each is its own counter so an alert can name it.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    PromotionUndoRefused,
    PromotionsRedeemedBeforeFailure,
    RedeemRollbackFailed,
    WriteTaskAbandoned,
    /// Not an alarm, but counted the same way: a repeated Request-ID answered from memory.
    RedeemReplayed,
}

/// The registry and every metric family in it. Families share their storage with the registry
/// (they are `Arc`s inside), so recording takes `&self` and the whole is shared by `Arc`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: Family<OperationLabels, Histogram>,
    in_flight: Gauge,
    shed: Family<ShedLabels, Counter>,
    voyado_calls: Family<VoyadoLabels, Counter>,
    voyado_duration: Family<VoyadoLabels, Histogram>,
    cache: Family<CacheLabels, Counter>,
    breaker_state: Family<TenantLabels, Gauge>,
    throttled: Family<TenantLabels, Counter>,
    redeem_replayed: Counter,
    redeem_unclear: Family<OutcomeLabels, Counter>,
    mappings_generation: Gauge,
    mappings_in_service: Family<DigestLabels, Gauge>,
    mappings_reloads: Family<ResultLabels, Counter>,
    events: Family<ResultLabels, Counter>,
    receipts_exported: Counter,
    promotion_undo_refused: Counter,
    promotions_redeemed_before_failure: Counter,
    redeem_rollback_failed: Counter,
    write_tasks_abandoned: Counter,
}

// `Metrics` is shared by `Arc` across connection tasks and `InFlight` is held across awaits: a
// field that stops being Send + Sync should fail the build here, not somewhere in the server.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Metrics>();
    shared::<InFlight>();
};

impl Metrics {
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn new() -> Metrics {
        let mut registry = Registry::default();

        // Names go in without `_total` (counters) or `_seconds` (histograms): the encoder appends
        // them, and a `# UNIT` line for the latter. Help texts get their final full stop there too.
        let requests = Family::default();
        registry.register(
            "svp_requests",
            "SPI requests answered, by operation and HTTP status",
            requests.clone(),
        );
        let request_duration: Family<OperationLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "svp_request_duration",
            "Time taken to answer an SPI request, by operation",
            Unit::Seconds,
            request_duration.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "svp_requests_in_flight",
            "SPI requests being handled right now",
            in_flight.clone(),
        );
        let shed: Family<ShedLabels, Counter> = Family::default();
        registry.register(
            "svp_shed",
            "Requests or connections turned away because the proxy was at capacity, by what was \
             turned away",
            shed.clone(),
        );
        // Both kinds show 0 from the start, so a rate or an alert on them has a series to work on
        // before the first overload.
        for what in Shed::ALL {
            shed.get_or_create_owned(&ShedLabels { what: what.label() });
        }
        let voyado_calls = Family::default();
        registry.register(
            "svp_voyado_calls",
            "Calls made to Voyado Engage, by endpoint template and outcome",
            voyado_calls.clone(),
        );
        let voyado_duration: Family<VoyadoLabels, Histogram> =
            Family::new_with_constructor(|| Histogram::new(VOYADO_BUCKETS));
        registry.register_with_unit(
            "svp_voyado_call_duration",
            "Time taken by one call to Voyado Engage, by endpoint template and outcome",
            Unit::Seconds,
            voyado_duration.clone(),
        );

        let cache = Family::default();
        registry.register(
            "svp_cache",
            "Reads answered from memory (hit) or from Voyado (miss), by endpoint template or \"card\" \
             for rendered customer cards",
            cache.clone(),
        );
        let breaker_state = Family::default();
        registry.register(
            "svp_voyado_breaker_state",
            "Fail-fast state per Voyado tenant: 0 closed (calls go through), 1 open (answered 503 at \
             once while cooling off), 2 half-open (one probe call out)",
            breaker_state.clone(),
        );
        let throttled = Family::default();
        registry.register(
            "svp_voyado_throttled",
            "Requests answered 429 because the Voyado API key's rate budget had no permit within \
             the wait limit, or Voyado itself asked to pause",
            throttled.clone(),
        );
        let redeem_replayed = Counter::default();
        registry.register(
            "svp_redeem_replayed",
            "Redeems answered from memory because the till repeated a Request-ID it had already \
             used for the same redeem (nothing was redeemed twice)",
            redeem_replayed.clone(),
        );

        // Plain counters are encoded from the moment they are registered, so each event shows 0
        // until it first happens and an alert on `> 0` needs no absent() special case.
        let promotion_undo_refused = Counter::default();
        registry.register(
            "svp_promotion_undo_refused",
            "Undo requests refused because they named a redeemed promotion, which Voyado cannot \
             revert; staff must re-issue the promotion",
            promotion_undo_refused.clone(),
        );
        let promotions_redeemed_before_failure = Counter::default();
        registry.register(
            "svp_promotions_redeemed_before_failure",
            "Redeem requests that failed after promotions were already redeemed in Voyado; those \
             cannot be reverted and staff must re-issue them (the log names them)",
            promotions_redeemed_before_failure.clone(),
        );
        let redeem_rollback_failed = Counter::default();
        registry.register(
            "svp_redeem_rollback_failed",
            "Bonus checks left in the wrong state because the compensating Voyado call after a \
             failed redeem or undo failed too (the log names them)",
            redeem_rollback_failed.clone(),
        );
        let redeem_unclear: Family<OutcomeLabels, Counter> = Family::default();
        registry.register(
            "svp_redeem_unclear",
            "Bonus-check or promotion redeems whose Voyado answer was unclear, by what reading \
             Voyado's state after its redeem window showed (unknown and left_redeemed need staff; \
             the log names the items)",
            redeem_unclear.clone(),
        );
        for outcome in UnclearRedeem::ALL {
            redeem_unclear.get_or_create_owned(&OutcomeLabels {
                outcome: outcome.label(),
            });
        }
        let mappings_generation = Gauge::default();
        registry.register(
            "svp_mappings_generation",
            "The generation of the mapping set in service: 0 at start, one more for each live \
             reload applied (the log line of each names the set's digest)",
            mappings_generation.clone(),
        );
        let mappings_in_service: Family<DigestLabels, Gauge> = Family::default();
        registry.register(
            "svp_mappings_in_service",
            "1 for the digest of the mapping files in service (replicas that agree show one series)",
            mappings_in_service.clone(),
        );
        let mappings_reloads: Family<ResultLabels, Counter> = Family::default();
        registry.register(
            "svp_mappings_reloads",
            "Live reloads of the mappings directory, by result: applied, or refused because the \
             new files do not compile (the last good mappings keep serving; the log has every \
             problem)",
            mappings_reloads.clone(),
        );
        for result in ["applied", "refused"] {
            mappings_reloads.get_or_create_owned(&ResultLabels { result });
        }
        let events: Family<ResultLabels, Counter> = Family::default();
        registry.register(
            "svp_events",
            "Sitoo events, by result: received; processed (a receipt exported); duplicate (its \
             receipt was already in Voyado); skipped (not a closed order, or no customer); failed \
             (refused for good; the log names the order)",
            events.clone(),
        );
        for result in EventResult::ALL {
            events.get_or_create_owned(&ResultLabels {
                result: result.label(),
            });
        }
        let receipts_exported = Counter::default();
        registry.register(
            "svp_receipts_exported",
            "Receipts Voyado accepted from Sitoo orders",
            receipts_exported.clone(),
        );
        let write_tasks_abandoned = Counter::default();
        registry.register(
            "svp_write_tasks_abandoned",
            "Voyado writes still running when shutdown stopped waiting for them; whether they \
             happened must be checked in Voyado",
            write_tasks_abandoned.clone(),
        );

        Metrics {
            registry,
            requests,
            request_duration,
            in_flight,
            shed,
            voyado_calls,
            voyado_duration,
            cache,
            breaker_state,
            throttled,
            redeem_replayed,
            redeem_unclear,
            mappings_generation,
            mappings_in_service,
            mappings_reloads,
            events,
            receipts_exported,
            promotion_undo_refused,
            promotions_redeemed_before_failure,
            redeem_rollback_failed,
            write_tasks_abandoned,
        }
    }

    /// One answered SPI request: counter `svp_requests_total{operation,status}` and histogram
    /// `svp_request_duration_seconds{operation}`.
    pub fn request(&self, operation: &'static str, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels { operation, status })
            .inc();
        self.request_duration
            .get_or_create(&OperationLabels { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// RAII guard: gauge `svp_requests_in_flight` +1 now, -1 on drop.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counter `svp_shed_total{what}`.
    pub fn shed(&self, what: Shed) {
        self.shed
            .get_or_create(&ShedLabels { what: what.label() })
            .inc();
    }

    /// One Voyado call: histogram `svp_voyado_call_duration_seconds{endpoint,outcome}` and counter
    /// `svp_voyado_calls_total{endpoint,outcome}`. `endpoint` is a path template such as
    /// `/api/v2/contacts/{}`, never a filled-in path, which would carry contact ids.
    pub fn voyado_call(&self, endpoint: &'static str, outcome: &'static str, elapsed: Duration) {
        let labels = VoyadoLabels { endpoint, outcome };
        self.voyado_calls.get_or_create(&labels).inc();
        self.voyado_duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// A read served from memory (`hit`) or not; `what` is an endpoint template or `"card"`.
    pub fn cache(&self, what: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels { what, result })
            .inc();
    }

    /// The fail-fast state of one Voyado tenant (0 closed, 1 open, 2 half-open).
    pub fn breaker_state(&self, voyado: &str, state: i64) {
        let labels = TenantLabels {
            voyado: voyado.to_owned(),
        };
        self.breaker_state.get_or_create(&labels).set(state);
    }

    /// A request refused locally for lack of a Voyado permit.
    pub fn throttled(&self, voyado: &str) {
        let labels = TenantLabels {
            voyado: voyado.to_owned(),
        };
        self.throttled.get_or_create(&labels).inc();
    }

    pub fn count(&self, event: Event) {
        self.count_by(event, 1);
    }

    pub fn count_by(&self, event: Event, n: u64) {
        let counter = match event {
            Event::PromotionUndoRefused => &self.promotion_undo_refused,
            Event::PromotionsRedeemedBeforeFailure => &self.promotions_redeemed_before_failure,
            Event::RedeemRollbackFailed => &self.redeem_rollback_failed,
            Event::WriteTaskAbandoned => &self.write_tasks_abandoned,
            Event::RedeemReplayed => &self.redeem_replayed,
        };
        counter.inc_by(n);
    }

    /// The mapping set now in service: its generation and the digest of its files.
    pub fn mappings_in_service(&self, generation: u64, digest: &str) {
        self.mappings_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        self.mappings_in_service.clear();
        self.mappings_in_service
            .get_or_create(&DigestLabels {
                digest: digest.to_owned(),
            })
            .set(1);
    }

    /// `n` Sitoo events that ended as `result`.
    pub fn events(&self, result: EventResult, n: u64) {
        self.events
            .get_or_create(&ResultLabels {
                result: result.label(),
            })
            .inc_by(n);
        if result == EventResult::Processed {
            self.receipts_exported.inc_by(n);
        }
    }

    /// A live reload, applied or refused.
    pub fn mappings_reload(&self, applied: bool) {
        let result = if applied { "applied" } else { "refused" };
        self.mappings_reloads
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// `n` redeems whose answer was unclear ended as `outcome`.
    pub fn redeem_unclear_by(&self, outcome: UnclearRedeem, n: u64) {
        self.redeem_unclear
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc_by(n);
    }

    /// OpenMetrics text for `GET /metrics`, served with [`Metrics::CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail and the label sets are derived, so an error would be an
        // encoder bug. An empty body then fails the scrape visibly (`up` drops to 0) instead of
        // serving a truncated exposition without its `# EOF`.
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(%e, "could not encode metrics");
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Counts one request in `svp_requests_in_flight` for as long as it lives, so an early return, an
/// error or a panic unwinding through the handler still takes the request back off the gauge.
#[derive(Debug)]
#[must_use = "the request counts as in flight only while the guard is alive"]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use prometheus_parse::{Sample, Scrape, Value};

    use super::{Event, Metrics, Shed};

    const CONTACT: &str = "/api/v2/contacts";

    fn scrape(metrics: &Metrics) -> Scrape {
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
    fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match sample(scrape, metric, labels)?.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        }
    }

    /// Cumulative bucket counts by upper bound.
    fn buckets(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        match sample(scrape, metric, labels).map(|s| &s.value) {
            Some(Value::Histogram(counts)) => {
                counts.iter().map(|c| (c.less_than, c.count)).collect()
            }
            other => panic!("{metric} {labels:?} is not a histogram: {other:?}"),
        }
    }

    fn count_at(buckets: &[(f64, f64)], bound: f64) -> f64 {
        buckets
            .iter()
            .find(|(le, _)| *le == bound)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no bucket le={bound} in {buckets:?}"))
    }

    #[test]
    fn every_family_has_help_and_type() {
        let metrics = Metrics::new();
        metrics.request("get_contact", 200, Duration::from_millis(20));
        metrics.voyado_call(CONTACT, "ok", Duration::from_millis(10));
        let text = metrics.render();
        let scrape = scrape(&metrics);
        for (family, kind) in [
            ("svp_requests", "counter"),
            ("svp_request_duration_seconds", "histogram"),
            ("svp_requests_in_flight", "gauge"),
            ("svp_shed", "counter"),
            ("svp_voyado_calls", "counter"),
            ("svp_voyado_call_duration_seconds", "histogram"),
            ("svp_promotion_undo_refused", "counter"),
            ("svp_promotions_redeemed_before_failure", "counter"),
            ("svp_redeem_rollback_failed", "counter"),
            ("svp_write_tasks_abandoned", "counter"),
        ] {
            let help = scrape.docs.get(family).map(String::as_str);
            // A sentence, not a placeholder: the encoder alone would leave ".".
            assert!(
                help.is_some_and(|h| h.split_whitespace().count() >= 4),
                "{family}: HELP {help:?}"
            );
            let type_line = format!("# TYPE {family} {kind}");
            assert!(text.lines().any(|l| l == type_line), "missing {type_line}");
        }
    }

    #[test]
    fn exposition_is_complete_openmetrics() {
        let metrics = Metrics::new();
        // A labelled family is left out of the exposition until it has a sample.
        metrics.request("get_contact", 200, Duration::from_millis(20));
        let text = metrics.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "# UNIT svp_request_duration_seconds seconds"),
            "{text}"
        );
    }

    #[test]
    fn request_is_counted_by_status_and_timed_in_buckets() {
        let metrics = Metrics::new();
        metrics.request("get_contact", 200, Duration::from_millis(30));
        metrics.request("get_contact", 200, Duration::from_millis(30));
        metrics.request("get_contact", 404, Duration::from_secs(3));
        let scrape = scrape(&metrics);

        let ok = [("operation", "get_contact"), ("status", "200")];
        let missing = [("operation", "get_contact"), ("status", "404")];
        assert_eq!(value(&scrape, "svp_requests_total", &ok), Some(2.0));
        assert_eq!(value(&scrape, "svp_requests_total", &missing), Some(1.0));

        let op = [("operation", "get_contact")];
        let b = buckets(&scrape, "svp_request_duration_seconds", &op);
        assert_eq!(count_at(&b, 0.005), 0.0);
        assert_eq!(count_at(&b, 0.05), 2.0);
        assert_eq!(count_at(&b, 2.5), 2.0);
        assert_eq!(count_at(&b, 5.0), 3.0);
        assert_eq!(count_at(&b, f64::INFINITY), 3.0);
        assert_eq!(
            value(&scrape, "svp_request_duration_seconds_count", &op),
            Some(3.0)
        );
        assert!(
            metrics
                .render()
                .lines()
                .any(|l| l.starts_with("svp_request_duration_seconds_bucket{")
                    && l.contains("le=\"")),
            "no _bucket sample with le"
        );
    }

    #[test]
    fn voyado_call_is_counted_and_timed_by_endpoint_and_outcome() {
        let metrics = Metrics::new();
        metrics.voyado_call(CONTACT, "ok", Duration::from_millis(40));
        metrics.voyado_call(CONTACT, "timeout", Duration::from_secs(3));
        metrics.voyado_call(CONTACT, "timeout", Duration::from_secs(3));
        let scrape = scrape(&metrics);

        let ok = [("endpoint", CONTACT), ("outcome", "ok")];
        let timeout = [("endpoint", CONTACT), ("outcome", "timeout")];
        assert_eq!(value(&scrape, "svp_voyado_calls_total", &ok), Some(1.0));
        assert_eq!(
            value(&scrape, "svp_voyado_calls_total", &timeout),
            Some(2.0)
        );

        let b = buckets(&scrape, "svp_voyado_call_duration_seconds", &timeout);
        assert_eq!(count_at(&b, 2.5), 0.0);
        assert_eq!(count_at(&b, 5.0), 2.0);
        let b = buckets(&scrape, "svp_voyado_call_duration_seconds", &ok);
        assert_eq!(count_at(&b, 0.05), 1.0);
    }

    #[test]
    fn endpoint_template_is_rendered_verbatim() {
        // prometheus-parse cannot read a `}` inside a label value, so this one is checked on the
        // text: the template's `{}` must reach the exposition unchanged (valid OpenMetrics).
        let metrics = Metrics::new();
        metrics.voyado_call("/api/v2/contacts/{}", "ok", Duration::from_millis(40));
        let text = metrics.render();
        assert!(
            text.lines()
                .any(|l| l
                    == r#"svp_voyado_calls_total{endpoint="/api/v2/contacts/{}",outcome="ok"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn shed_is_counted_by_what_and_both_start_at_zero() {
        let metrics = Metrics::new();
        let requests = [("what", "requests")];
        let connections = [("what", "connections")];
        let scrape_before = scrape(&metrics);
        assert_eq!(
            value(&scrape_before, "svp_shed_total", &requests),
            Some(0.0)
        );
        assert_eq!(
            value(&scrape_before, "svp_shed_total", &connections),
            Some(0.0)
        );

        metrics.shed(Shed::Requests);
        metrics.shed(Shed::Requests);
        metrics.shed(Shed::Connections);
        let scrape = scrape(&metrics);
        assert_eq!(value(&scrape, "svp_shed_total", &requests), Some(2.0));
        assert_eq!(value(&scrape, "svp_shed_total", &connections), Some(1.0));
    }

    const EVENTS: [(Event, &str); 5] = [
        (
            Event::PromotionUndoRefused,
            "svp_promotion_undo_refused_total",
        ),
        (
            Event::PromotionsRedeemedBeforeFailure,
            "svp_promotions_redeemed_before_failure_total",
        ),
        (
            Event::RedeemRollbackFailed,
            "svp_redeem_rollback_failed_total",
        ),
        (Event::WriteTaskAbandoned, "svp_write_tasks_abandoned_total"),
        (Event::RedeemReplayed, "svp_redeem_replayed_total"),
    ];

    #[test]
    fn event_counters_show_zero_before_the_first_event() {
        let scrape = scrape(&Metrics::new());
        for (_, name) in EVENTS {
            assert_eq!(value(&scrape, name, &[]), Some(0.0), "{name}");
        }
    }

    #[test]
    fn each_event_counts_under_its_own_name() {
        let metrics = Metrics::new();
        // A different number of each, so two events swapped or sharing a counter show up.
        for (times, (event, _)) in (1..).zip(EVENTS) {
            for _ in 0..times {
                metrics.count(event);
            }
        }
        let scrape = scrape(&metrics);
        for (times, (_, name)) in (1..).zip(EVENTS) {
            assert_eq!(value(&scrape, name, &[]), Some(f64::from(times)), "{name}");
        }
    }

    #[test]
    fn in_flight_gauge_follows_the_guard() {
        let metrics = Metrics::new();
        let gauge = |m: &Metrics| value(&scrape(m), "svp_requests_in_flight", &[]);
        assert_eq!(gauge(&metrics), Some(0.0));
        let guard = metrics.in_flight();
        assert_eq!(gauge(&metrics), Some(1.0));
        drop(guard);
        assert_eq!(gauge(&metrics), Some(0.0));
    }

    #[test]
    fn instances_do_not_share_counts() {
        let counted = Metrics::new();
        let other = Metrics::new();
        counted.request("get_contact", 200, Duration::from_millis(30));
        counted.voyado_call(CONTACT, "ok", Duration::from_millis(10));
        counted.shed(Shed::Requests);
        counted.count(Event::RedeemRollbackFailed);
        let _guard = counted.in_flight();

        let counted = scrape(&counted);
        let other = scrape(&other);
        let request = [("operation", "get_contact"), ("status", "200")];
        assert_eq!(value(&counted, "svp_requests_total", &request), Some(1.0));
        assert_eq!(value(&other, "svp_requests_total", &request), None);
        let call = [("endpoint", CONTACT), ("outcome", "ok")];
        assert_eq!(value(&counted, "svp_voyado_calls_total", &call), Some(1.0));
        assert_eq!(value(&other, "svp_voyado_calls_total", &call), None);
        let shed = [("what", "requests")];
        assert_eq!(value(&counted, "svp_shed_total", &shed), Some(1.0));
        assert_eq!(value(&other, "svp_shed_total", &shed), Some(0.0));
        let event = "svp_redeem_rollback_failed_total";
        assert_eq!(value(&counted, event, &[]), Some(1.0));
        assert_eq!(value(&other, event, &[]), Some(0.0));
        assert_eq!(value(&counted, "svp_requests_in_flight", &[]), Some(1.0));
        assert_eq!(value(&other, "svp_requests_in_flight", &[]), Some(0.0));
    }
}
