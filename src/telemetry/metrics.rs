//! Metrics live in a registry the app owns and hands around, not in statics, so two servers (or two
//! tests) in one process never count into each other. Labels are operation names, statuses,
//! endpoint templates and outcomes only: never tenant data, keys or personal data.
//!
//! This file declares the families and the few measurements that have no log line (the in-flight
//! gauge, cache reads, the breaker gauge, throttled, shed and replayed requests); everything that
//! is logged is recorded through an event in `events/`, which writes these families directly.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use super::events::InternalEvent;

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
pub(super) struct RequestLabels {
    pub(super) operation: &'static str,
    pub(super) status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OperationLabels {
    pub(super) operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShedLabels {
    what: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct VoyadoLabels {
    pub(super) endpoint: &'static str,
    pub(super) outcome: &'static str,
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
pub(super) struct DigestLabels {
    pub(super) digest: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ResultLabels {
    pub(super) result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct OutcomeLabels {
    pub(super) outcome: &'static str,
}

/// No labels, for a family that is left out of the exposition until it has its one series:
/// `svp_cluster_up` shows only on a replica with `[cluster]` (a plain gauge would read 0, down,
/// on every replica without one).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub(super) struct Unlabelled;

impl EncodeLabelSet for Unlabelled {
    fn encode(&self, _: &mut prometheus_client::encoding::LabelSetEncoder) -> std::fmt::Result {
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FallbackLabels {
    pub(super) what: &'static str,
}

/// What a replica with `[cluster]` did on its own because Redis could not answer, as
/// `svp_cluster_fallbacks_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// A permit from this replica's share of the budget (`[voyado] replicas`).
    Budget,
    /// A Voyado 429 paused this replica only.
    Pause,
    /// A redeem's `Request-ID` slot in this replica's memory only.
    Redeem,
    /// A write the other replicas were not told of (their cache TTLs bound what they serve).
    Notify,
}

impl Fallback {
    pub(super) const ALL: [Fallback; 4] = [
        Fallback::Budget,
        Fallback::Pause,
        Fallback::Redeem,
        Fallback::Notify,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Fallback::Budget => "budget",
            Fallback::Pause => "pause",
            Fallback::Redeem => "redeem",
            Fallback::Notify => "notify",
        }
    }
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

/// What became of a redeem whose Voyado answer was unclear, as `svp_redeem_unclear_total` labels
/// it (the events that count it say when each happens).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum UnclearRedeem {
    Landed,
    NotLanded,
    Unknown,
    LeftRedeemed,
}

impl UnclearRedeem {
    const ALL: [UnclearRedeem; 4] = [
        UnclearRedeem::Landed,
        UnclearRedeem::NotLanded,
        UnclearRedeem::Unknown,
        UnclearRedeem::LeftRedeemed,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            UnclearRedeem::Landed => "landed",
            UnclearRedeem::NotLanded => "not_landed",
            UnclearRedeem::Unknown => "unknown",
            UnclearRedeem::LeftRedeemed => "left_redeemed",
        }
    }
}

/// What became of a Sitoo event, as `svp_events_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EventResult {
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

    pub(super) fn label(self) -> &'static str {
        match self {
            EventResult::Received => "received",
            EventResult::Processed => "processed",
            EventResult::Duplicate => "duplicate",
            EventResult::Skipped => "skipped",
            EventResult::Failed => "failed",
        }
    }
}

/// The registry and every metric family in it. Families share their storage with the registry
/// (they are `Arc`s inside), so recording takes `&self` and the whole is shared by `Arc`. The
/// families the events record into are open to the rest of `telemetry` (`pub(super)`); outside it,
/// only [`Metrics::emit`] and the methods below write them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(super) requests: Family<RequestLabels, Counter>,
    pub(super) request_duration: Family<OperationLabels, Histogram>,
    in_flight: Gauge,
    shed: Family<ShedLabels, Counter>,
    pub(super) voyado_calls: Family<VoyadoLabels, Counter>,
    pub(super) voyado_duration: Family<VoyadoLabels, Histogram>,
    cache: Family<CacheLabels, Counter>,
    /// `svp_cache_total{what="card"}`'s miss and hit series, resolved once: every warm card
    /// counts one, and a family look-up hashes its labels under a lock.
    card_reads: [Counter; 2],
    breaker_state: Family<TenantLabels, Gauge>,
    throttled: Family<TenantLabels, Counter>,
    redeem_replayed: Counter,
    pub(super) promotion_undo_refused: Counter,
    pub(super) promotions_redeemed_before_failure: Counter,
    pub(super) redeem_rollback_failed: Counter,
    pub(super) redeem_unclear: Family<OutcomeLabels, Counter>,
    pub(super) mappings_generation: Gauge,
    pub(super) mappings_in_service: Family<DigestLabels, Gauge>,
    pub(super) mappings_reloads: Family<ResultLabels, Counter>,
    pub(super) events: Family<ResultLabels, Counter>,
    pub(super) receipts_exported: Counter,
    pub(super) write_tasks_abandoned: Counter,
    pub(super) cluster_up: Family<Unlabelled, Gauge>,
    pub(super) cluster_fallbacks: Family<FallbackLabels, Counter>,
}

// `Metrics` is shared by `Arc` across connection tasks and `InFlight` is held across awaits: a
// field that stops being Send + Sync should fail the build here, not somewhere in the server.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<Metrics>();
    shared::<InFlight>();
};

/// The registry while `Metrics::new` fills it: each method registers one family and hands it
/// back, so a family is declared in one expression. Names go in
/// without `_total` (counters) or `_seconds` (histograms): the encoder appends them, and a `# UNIT`
/// line for the latter. Help texts get their final full stop there too.
struct Registering<'a>(&'a mut Registry);

impl Registering<'_> {
    /// A counter, a gauge, or a family of either, starting empty. An unlabelled one is encoded
    /// from the moment it is registered, so it shows 0 until it first happens and an alert on
    /// `> 0` needs no absent() special case; a labelled family shows a series once it has one.
    fn plain<M: Metric + Clone + Default>(&mut self, name: &str, help: &str) -> M {
        self.with(name, help, M::default())
    }

    /// `metric` as it was built (a family with its series at 0 already, say).
    fn with<M: Metric + Clone>(&mut self, name: &str, help: &str, metric: M) -> M {
        self.0.register(name, help, metric.clone());
        metric
    }

    /// A histogram family in seconds, each series with the buckets `new` gives it.
    fn seconds<L>(&mut self, name: &str, help: &str, new: fn() -> Histogram) -> Family<L, Histogram>
    where
        L: Clone + std::hash::Hash + Eq,
        Family<L, Histogram>: Metric,
    {
        let family = Family::new_with_constructor(new);
        self.0
            .register_with_unit(name, help, Unit::Seconds, family.clone());
        family
    }
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

fn voyado_histogram() -> Histogram {
    Histogram::new(VOYADO_BUCKETS)
}

/// A counter family with a series at 0 for each of `labels`, so a rate or an alert on any of them
/// has a series to work on before the first time it happens.
fn counters_from_zero<L>(labels: impl IntoIterator<Item = L>) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq,
{
    let family = Family::default();
    for label in labels {
        family.get_or_create_owned(&label);
    }
    family
}

impl Metrics {
    pub const CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let mut add = Registering(&mut registry);
        // Fields are evaluated, hence registered, in the order written: the exposition's order.
        let mut metrics = Metrics {
            requests: add.plain(
                "svp_requests",
                "SPI requests answered, by operation and HTTP status",
            ),
            request_duration: add.seconds(
                "svp_request_duration",
                "Time taken to answer an SPI request, by operation",
                request_histogram,
            ),
            in_flight: add.plain(
                "svp_requests_in_flight",
                "SPI requests being handled right now",
            ),
            shed: add.with(
                "svp_shed",
                "Requests or connections turned away because the proxy was at capacity, by what \
                 was turned away",
                counters_from_zero(Shed::ALL.map(|what| ShedLabels { what: what.label() })),
            ),
            voyado_calls: add.plain(
                "svp_voyado_calls",
                "Calls made to Voyado Engage, by endpoint template and outcome",
            ),
            voyado_duration: add.seconds(
                "svp_voyado_call_duration",
                "Time taken by one call to Voyado Engage, by endpoint template and outcome",
                voyado_histogram,
            ),
            cache: add.plain(
                "svp_cache",
                "Reads answered from memory (hit) or from Voyado (miss), by endpoint template or \
                 \"card\" for rendered customer cards",
            ),
            breaker_state: add.plain(
                "svp_voyado_breaker_state",
                "Fail-fast state per Voyado tenant: 0 closed (calls go through), 1 open (answered \
                 503 at once while cooling off), 2 half-open (one probe call out)",
            ),
            throttled: add.plain(
                "svp_voyado_throttled",
                "Requests answered 429 because the Voyado API key's rate budget had no permit \
                 within the wait limit, or Voyado itself asked to pause",
            ),
            redeem_replayed: add.plain(
                "svp_redeem_replayed",
                "Redeems answered from memory because the till repeated a Request-ID it had \
                 already used for the same redeem (nothing was redeemed twice)",
            ),
            promotion_undo_refused: add.plain(
                "svp_promotion_undo_refused",
                "Undo requests refused because they named a redeemed promotion, which Voyado \
                 cannot revert; staff must re-issue the promotion",
            ),
            promotions_redeemed_before_failure: add.plain(
                "svp_promotions_redeemed_before_failure",
                "Redeem requests that failed after promotions were already redeemed in Voyado; \
                 those cannot be reverted and staff must re-issue them (the log names them)",
            ),
            redeem_rollback_failed: add.plain(
                "svp_redeem_rollback_failed",
                "Bonus checks left in the wrong state because the compensating Voyado call after \
                 a failed redeem or undo failed too (the log names them)",
            ),
            redeem_unclear: add.with(
                "svp_redeem_unclear",
                "Bonus-check or promotion redeems whose Voyado answer was unclear, by what \
                 reading Voyado's state after its redeem window showed (unknown and left_redeemed \
                 need staff; the log names the items)",
                counters_from_zero(UnclearRedeem::ALL.map(|outcome| OutcomeLabels {
                    outcome: outcome.label(),
                })),
            ),
            mappings_generation: add.plain(
                "svp_mappings_generation",
                "The generation of the mapping set in service: 0 at start, one more for each live \
                 reload applied (the log line of each names the set's digest)",
            ),
            mappings_in_service: add.plain(
                "svp_mappings_in_service",
                "1 for the digest of the mapping files in service (replicas that agree show one \
                 series)",
            ),
            mappings_reloads: add.with(
                "svp_mappings_reloads",
                "Live reloads of the mappings directory, by result: applied, or refused because \
                 the new files do not compile (the last good mappings keep serving; the log has \
                 every problem)",
                counters_from_zero(["applied", "refused"].map(|result| ResultLabels { result })),
            ),
            events: add.with(
                "svp_events",
                "Sitoo events, by result: received; processed (a receipt exported); duplicate \
                 (its receipt was already in Voyado); skipped (not a closed order, or no \
                 customer); failed (refused for good; the log names the order)",
                counters_from_zero(EventResult::ALL.map(|result| ResultLabels {
                    result: result.label(),
                })),
            ),
            receipts_exported: add.plain(
                "svp_receipts_exported",
                "Receipts Voyado accepted from Sitoo orders",
            ),
            write_tasks_abandoned: add.plain(
                "svp_write_tasks_abandoned",
                "Voyado writes still running when shutdown stopped waiting for them; whether they \
                 happened must be checked in Voyado",
            ),
            cluster_up: add.plain(
                "svp_cluster_up",
                "1 while the [cluster] Redis answers (budget, redeem slots and write notifications \
                 shared with the other replicas), 0 while this replica runs on its local \
                 fallbacks; absent without [cluster]",
            ),
            cluster_fallbacks: add.plain(
                "svp_cluster_fallbacks",
                "Times this replica used a local fallback because Redis did not answer, by what: \
                 budget (its replicas share), pause (a Voyado 429 paused only this replica), \
                 redeem (a Request-ID slot in its own memory), notify (a write the other \
                 replicas were not told of)",
            ),
            card_reads: Default::default(),
            registry,
        };
        metrics.card_reads = [false, true].map(|hit| {
            let result = if hit { "hit" } else { "miss" };
            let labels = CacheLabels {
                what: "card",
                result,
            };
            metrics.cache.get_or_create(&labels).clone()
        });
        metrics
    }

    /// Records `event`: its log line and its series at once (the events and what each writes are
    /// listed in `telemetry/events/`).
    pub fn emit(&self, event: impl InternalEvent) {
        event.emit(self);
    }

    /// RAII guard: gauge `svp_requests_in_flight` +1 now, -1 on drop.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// Counter `svp_shed_total{what}`. No log line: a line per refusal would add work exactly
    /// when the proxy has none to spare.
    pub fn shed(&self, what: Shed) {
        self.shed
            .get_or_create(&ShedLabels { what: what.label() })
            .inc();
    }

    /// A read served from memory (`hit`) or not; `what` is an endpoint template or `"card"`.
    pub fn cache(&self, what: &'static str, hit: bool) {
        let result = if hit { "hit" } else { "miss" };
        self.cache
            .get_or_create(&CacheLabels { what, result })
            .inc();
    }

    /// A rendered card served from memory (`hit`) or not: `svp_cache_total{what="card"}`.
    pub fn card(&self, hit: bool) {
        self.card_reads[usize::from(hit)].inc();
    }

    /// The fail-fast state of one Voyado tenant (0 closed, 1 open, 2 half-open).
    pub fn breaker_state(&self, voyado: &str, state: i64) {
        let labels = TenantLabels {
            voyado: voyado.to_owned(),
        };
        self.breaker_state.get_or_create(&labels).set(state);
    }

    /// A request refused locally for lack of a Voyado permit. No log line, for the same reason
    /// as [`Metrics::shed`]: it happens in bursts, when Voyado's budget is spent.
    pub fn throttled(&self, voyado: &str) {
        let labels = TenantLabels {
            voyado: voyado.to_owned(),
        };
        self.throttled.get_or_create(&labels).inc();
    }

    /// A redeem answered from memory because the till repeated its Request-ID: counted, not
    /// logged, since it is no alarm (nothing was redeemed twice).
    pub fn redeem_replayed(&self) {
        self.redeem_replayed.inc();
    }

    /// Counter `svp_cluster_fallbacks_total{what}`: Redis could not answer and this replica did
    /// `what` on its own. No log line: while Redis is down every request falls back, and the
    /// change of state is logged once (`events::cluster`).
    pub fn cluster_fallback(&self, what: Fallback) {
        self.cluster_fallbacks
            .get_or_create(&FallbackLabels { what: what.label() })
            .inc();
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

    use super::{Metrics, Shed};
    use crate::telemetry::events::server::{RequestDone, RequestFields};
    use crate::telemetry::events::voyado::{VoyadoAnswer, VoyadoCall};
    use crate::telemetry::test_support::{scrape, value};

    const CONTACT: &str = "/api/v2/contacts";

    fn request(metrics: &Metrics) {
        metrics.emit(RequestDone {
            operation: "get_contact",
            status: 200,
            elapsed: Duration::from_millis(20),
            request: RequestFields::default(),
        });
    }

    fn voyado_call(metrics: &Metrics, endpoint: &'static str) {
        metrics.emit(VoyadoCall {
            endpoint,
            elapsed: Duration::from_millis(10),
            answer: VoyadoAnswer::Answered { status: 200 },
        });
    }

    #[test]
    fn every_family_has_help_and_type() {
        let metrics = Metrics::new();
        request(&metrics);
        voyado_call(&metrics, CONTACT);
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
        request(&metrics);
        let text = metrics.render();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "# UNIT svp_request_duration_seconds seconds"),
            "{text}"
        );
    }

    /// The card's series are resolved once and are the family's own: what `card` counts is what
    /// a scrape reads, beside the endpoints' series in the same family.
    #[test]
    fn card_reads_count_into_the_cache_family() {
        let metrics = Metrics::new();
        metrics.card(true);
        metrics.card(true);
        metrics.card(false);
        metrics.cache("/api/v2/contacts/{}", true);
        let text = metrics.render();
        for line in [
            r#"svp_cache_total{what="card",result="hit"} 2"#,
            r#"svp_cache_total{what="card",result="miss"} 1"#,
            r#"svp_cache_total{what="/api/v2/contacts/{}",result="hit"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn endpoint_template_is_rendered_verbatim() {
        // prometheus-parse cannot read a `}` inside a label value, so this one is checked on the
        // text: the template's `{}` must reach the exposition unchanged (valid OpenMetrics).
        let metrics = Metrics::new();
        voyado_call(&metrics, "/api/v2/contacts/{}");
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

    /// Every series an alert reads with `> 0` or `increase()`, present at 0 before it happens.
    #[test]
    fn alarm_series_show_zero_before_the_first_event() {
        let scrape = scrape(&Metrics::new());
        let plain = [
            "svp_promotion_undo_refused_total",
            "svp_promotions_redeemed_before_failure_total",
            "svp_redeem_rollback_failed_total",
            "svp_write_tasks_abandoned_total",
            "svp_redeem_replayed_total",
            "svp_receipts_exported_total",
        ];
        for name in plain {
            assert_eq!(value(&scrape, name, &[]), Some(0.0), "{name}");
        }
        let labelled = [
            ("svp_redeem_unclear_total", "outcome", "landed"),
            ("svp_redeem_unclear_total", "outcome", "not_landed"),
            ("svp_redeem_unclear_total", "outcome", "unknown"),
            ("svp_redeem_unclear_total", "outcome", "left_redeemed"),
            ("svp_mappings_reloads_total", "result", "applied"),
            ("svp_mappings_reloads_total", "result", "refused"),
            ("svp_events_total", "result", "received"),
            ("svp_events_total", "result", "processed"),
            ("svp_events_total", "result", "duplicate"),
            ("svp_events_total", "result", "skipped"),
            ("svp_events_total", "result", "failed"),
        ];
        for (name, label, v) in labelled {
            assert_eq!(
                value(&scrape, name, &[(label, v)]),
                Some(0.0),
                "{name}{{{label}={v}}}"
            );
        }
    }

    #[test]
    fn redeem_replayed_counts() {
        let metrics = Metrics::new();
        metrics.redeem_replayed();
        metrics.redeem_replayed();
        let scrape = scrape(&metrics);
        assert_eq!(value(&scrape, "svp_redeem_replayed_total", &[]), Some(2.0));
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
        request(&counted);
        voyado_call(&counted, CONTACT);
        counted.shed(Shed::Requests);
        counted.redeem_replayed();
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
        let replayed = "svp_redeem_replayed_total";
        assert_eq!(value(&counted, replayed, &[]), Some(1.0));
        assert_eq!(value(&other, replayed, &[]), Some(0.0));
        assert_eq!(value(&counted, "svp_requests_in_flight", &[]), Some(1.0));
        assert_eq!(value(&other, "svp_requests_in_flight", &[]), Some(0.0));
    }
}
