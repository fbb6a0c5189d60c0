//! One `emit` writes both halves: the series move (the registry rendered and parsed back) and the
//! log line is written at its level with its fields (a subscriber capturing the text format).

use std::time::Duration;

use super::cluster::{RedisLost, RedisReachable};
use super::mappings::{MappingReloadRefused, MappingsLoaded, MappingsReloaded};
use super::orders::{
    ReceiptDuplicate, ReceiptExported, SitooEventFailed, SitooEventSkipped, SitooEventsReceived,
};
use super::redeem::{
    BonusChecksLeftRedeemed, Compensating, PromotionUndoRefused, PromotionsRedeemedBeforeFailure,
    ReadBack, RedeemReadBack, RedeemRollbackFailed,
};
use super::server::{RequestDone, RequestFields, WriteTasksAbandoned};
use super::voyado::{VoyadoAnswer, VoyadoCall};
use super::{Guid, Guids};
use crate::telemetry::test_support::{buckets, count_at, line, logged, scrape, value};
use crate::telemetry::{Fallback, Metrics};

const CUSTOMER: &str = "8f0c1d2e-0000-4000-8000-000000000001";
const CHECK: &str = "8f0c1d2e-3000-4000-8000-000000000001";
const PROMOTION: &str = "8f0c1d2e-1000-4000-8000-000000000001";
const CONTACT: &str = "/api/v2/contacts/{}";

/// The crate's errors stand behind `&dyn Error`; any error shows the field is written.
fn error(text: &str) -> std::io::Error {
    std::io::Error::other(text.to_owned())
}

#[test]
fn request_done_logs_its_line_counts_by_status_and_times_in_buckets() {
    let metrics = Metrics::new();
    let done = |status, millis| RequestDone {
        operation: "get_contact",
        status,
        elapsed: Duration::from_millis(millis),
        request: RequestFields::default(),
    };
    let logs = logged(|| {
        metrics.emit(done(200, 30));
        metrics.emit(done(200, 30));
        metrics.emit(done(404, 3000));
    });
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("request done"))
        .collect();
    assert_eq!(lines.len(), 3, "{logs}");
    assert!(
        lines[2].contains(" INFO ") && lines[2].contains("status=404 latency_ms=3000"),
        "{logs}"
    );

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
}

#[test]
fn voyado_call_logs_at_debug_and_is_counted_and_timed_by_endpoint_and_outcome() {
    let metrics = Metrics::new();
    let timeout = error("Voyado did not answer in time");
    let logs = logged(|| {
        metrics.emit(VoyadoCall {
            endpoint: CONTACT,
            elapsed: Duration::from_millis(40),
            answer: VoyadoAnswer::Answered { status: 200 },
        });
        for _ in 0..2 {
            metrics.emit(VoyadoCall {
                endpoint: CONTACT,
                elapsed: Duration::from_secs(3),
                answer: VoyadoAnswer::Failed {
                    outcome: "timeout",
                    error: &timeout,
                },
            });
        }
    });
    let answered = line(&logs, "voyado call endpoint");
    assert!(answered.contains("DEBUG"), "{logs}");
    assert!(
        answered.contains(r#"endpoint="/api/v2/contacts/{}" status=200 elapsed_ms=40"#),
        "{logs}"
    );
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("voyado call failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{logs}");
    assert!(
        failed[0].contains("DEBUG")
            && failed[0].contains("error=Voyado did not answer in time elapsed_ms=3000"),
        "{logs}"
    );

    // prometheus-parse cannot read the `}` in the template: the calls are counted on a
    // template without one, in a second registry.
    let metrics = Metrics::new();
    let plain = "/api/v2/contacts";
    metrics.emit(VoyadoCall {
        endpoint: plain,
        elapsed: Duration::from_millis(40),
        answer: VoyadoAnswer::Answered { status: 201 },
    });
    for _ in 0..2 {
        metrics.emit(VoyadoCall {
            endpoint: plain,
            elapsed: Duration::from_secs(3),
            answer: VoyadoAnswer::Failed {
                outcome: "timeout",
                error: &timeout,
            },
        });
    }
    let scrape = scrape(&metrics);
    let ok = [("endpoint", plain), ("outcome", "ok")];
    let timed_out = [("endpoint", plain), ("outcome", "timeout")];
    assert_eq!(value(&scrape, "svp_voyado_calls_total", &ok), Some(1.0));
    assert_eq!(
        value(&scrape, "svp_voyado_calls_total", &timed_out),
        Some(2.0)
    );
    let b = buckets(&scrape, "svp_voyado_call_duration_seconds", &timed_out);
    assert_eq!(count_at(&b, 2.5), 0.0);
    assert_eq!(count_at(&b, 5.0), 2.0);
    let b = buckets(&scrape, "svp_voyado_call_duration_seconds", &ok);
    assert_eq!(count_at(&b, 0.05), 1.0);
}

/// Each staff alarm counts under its own name (a different number of each, so two sharing a
/// counter would show) and names what staff must fix, at its level.
#[test]
fn staff_alarms_count_under_their_own_names_and_log_the_items() {
    let metrics = Metrics::new();
    let promotions = [PROMOTION.to_owned()];
    let refused = error("Voyado answered 500");
    let logs = logged(|| {
        metrics.emit(PromotionUndoRefused {
            customer_id: Guid(CUSTOMER),
            promotions: Guids(&promotions),
        });
        for _ in 0..2 {
            metrics.emit(PromotionsRedeemedBeforeFailure {
                customer_id: Guid(CUSTOMER),
                promotions: Guids(&promotions),
            });
        }
        for after in [
            Compensating::Redeem,
            Compensating::Undo,
            Compensating::Redeem,
        ] {
            metrics.emit(RedeemRollbackFailed {
                bonus_check_id: Guid(CHECK),
                e: &refused,
                after,
            });
        }
        metrics.emit(WriteTasksAbandoned { count: 4 });
    });
    let scrape = scrape(&metrics);
    for (name, times) in [
        ("svp_promotion_undo_refused_total", 1.0),
        ("svp_promotions_redeemed_before_failure_total", 2.0),
        ("svp_redeem_rollback_failed_total", 3.0),
        ("svp_write_tasks_abandoned_total", 4.0),
    ] {
        assert_eq!(value(&scrape, name, &[]), Some(times), "{name}");
    }

    let undo = line(&logs, "undo of a promotion refused");
    assert!(undo.contains(" WARN "), "{logs}");
    assert!(
        undo.contains(&format!(
            r#"customer_id={CUSTOMER} promotions=["{PROMOTION}"]"#
        )),
        "{logs}"
    );
    let before = logs
        .lines()
        .filter(|l| l.contains("promotions redeemed before a failure cannot be reverted"))
        .collect::<Vec<_>>();
    assert_eq!(before.len(), 2, "{logs}");
    assert!(before[0].contains("ERROR") && before[0].contains(PROMOTION));
    let reactivate = logs
        .lines()
        .filter(|l| l.contains("could not reactivate a bonus check after a failed redeem"))
        .count();
    assert_eq!(reactivate, 2, "{logs}");
    let again = line(
        &logs,
        "could not redeem a bonus check again after a failed undo",
    );
    assert!(
        again.contains("ERROR")
            && again.contains(&format!("bonus_check_id={CHECK} e=Voyado answered 500")),
        "{logs}"
    );
    let abandoned = line(
        &logs,
        "write tasks still running at the end of the grace period",
    );
    assert!(
        abandoned.contains("ERROR") && abandoned.contains("abandoned=4"),
        "{logs}"
    );
}

#[test]
fn unclear_redeems_count_by_outcome_and_an_unknown_one_logs_an_error_first() {
    let metrics = Metrics::new();
    let read = error("Voyado answered 502");
    let checks = [CHECK.to_owned(), PROMOTION.to_owned()];
    let logs = logged(|| {
        metrics.emit(RedeemReadBack {
            item: "bonus check",
            outcome: ReadBack::Landed,
        });
        metrics.emit(RedeemReadBack {
            item: "promotion",
            outcome: ReadBack::NotLanded,
        });
        metrics.emit(RedeemReadBack {
            item: "bonus check",
            outcome: ReadBack::Unknown { read: &read },
        });
        metrics.emit(BonusChecksLeftRedeemed {
            customer_id: Guid(CUSTOMER),
            bonus_checks: Guids(&checks),
        });
    });
    let scrape = scrape(&metrics);
    for (outcome, n) in [
        ("landed", 1.0),
        ("not_landed", 1.0),
        ("unknown", 1.0),
        ("left_redeemed", 2.0),
    ] {
        let labels = [("outcome", outcome)];
        assert_eq!(
            value(&scrape, "svp_redeem_unclear_total", &labels),
            Some(n),
            "{outcome}"
        );
    }

    let lines: Vec<&str> = logs.lines().collect();
    let still = lines
        .iter()
        .position(|l| {
            l.contains("ERROR")
                && l.contains("bonus check redeem still unclear: its read-back failed too")
                && l.contains("read=Voyado answered 502")
        })
        .unwrap_or_else(|| panic!("no error line for the unknown read-back:\n{logs}"));
    assert!(
        lines[still + 1].contains(" INFO ")
            && lines[still + 1].contains("bonus check redeem read back outcome=\"unknown\""),
        "{logs}"
    );
    assert!(
        line(&logs, "promotion redeem read back").contains("outcome=\"not_landed\""),
        "{logs}"
    );
    let left = line(&logs, "bonus checks read back as redeemed");
    assert!(
        left.contains("ERROR") && left.contains(&format!(r#"["{CHECK}", "{PROMOTION}"]"#)),
        "{logs}"
    );
}

#[test]
fn sitoo_events_count_by_result_and_log_why() {
    let metrics = Metrics::new();
    let unbookable = error("orderitems[0].quantity 1.5 is not a whole number");
    let logs = logged(|| {
        metrics.emit(SitooEventsReceived { count: 7 });
        metrics.emit(ReceiptExported {
            order_id: 1001,
            customer_id: Guid(CUSTOMER),
        });
        metrics.emit(ReceiptDuplicate);
        metrics.emit(SitooEventSkipped::NotAnOrder);
        metrics.emit(SitooEventSkipped::NotClosed {
            order_id: 1008,
            state: "Open",
        });
        metrics.emit(SitooEventFailed::NotInSitoo { order_id: 1010 });
        metrics.emit(SitooEventFailed::Unbookable {
            order_id: 1011,
            e: &unbookable,
        });
        metrics.emit(SitooEventFailed::NoState { order_id: 1012 });
    });
    let scrape = scrape(&metrics);
    for (result, n) in [
        ("received", 7.0),
        ("processed", 1.0),
        ("duplicate", 1.0),
        ("skipped", 2.0),
        ("failed", 3.0),
    ] {
        let labels = [("result", result)];
        assert_eq!(
            value(&scrape, "svp_events_total", &labels),
            Some(n),
            "{result}"
        );
    }
    assert_eq!(
        value(&scrape, "svp_receipts_exported_total", &[]),
        Some(1.0)
    );

    let exported = line(&logs, "receipt exported");
    assert!(
        exported.contains(" INFO ")
            && exported.contains(&format!("order_id=1001 customer_id={CUSTOMER}")),
        "{logs}"
    );
    assert!(
        line(&logs, "the order is not closed; not exported").contains("order_id=1008 state=Open"),
        "{logs}"
    );
    let cannot = line(&logs, "an order Voyado cannot book as it stands");
    assert!(
        cannot.contains("ERROR") && cannot.contains("order_id=1011 e=orderitems[0].quantity 1.5"),
        "{logs}"
    );
    assert!(line(&logs, "not in Sitoo").contains("order_id=1010"));
    assert_eq!(
        logs.lines().count(),
        5,
        "received, duplicate and a non-order event write no line:\n{logs}"
    );
}

#[test]
fn mapping_events_name_the_set_in_service_and_count_reloads() {
    let metrics = Metrics::new();
    let problems = error("default.toml:3: unknown codec table:genders");
    let logs = logged(|| {
        metrics.emit(MappingsLoaded { digest: "aaaa" });
        metrics.emit(MappingReloadRefused {
            digest: "bbbb",
            problems: &problems,
        });
        metrics.emit(MappingsReloaded {
            generation: 1,
            digest: "cccc",
        });
    });
    let scrape = scrape(&metrics);
    assert_eq!(value(&scrape, "svp_mappings_generation", &[]), Some(1.0));
    assert_eq!(
        value(&scrape, "svp_mappings_in_service", &[("digest", "cccc")]),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "svp_mappings_in_service", &[("digest", "aaaa")]),
        None,
        "the old set's series goes"
    );
    let reloads = |result| value(&scrape, "svp_mappings_reloads_total", &[("result", result)]);
    assert_eq!(reloads("applied"), Some(1.0));
    assert_eq!(reloads("refused"), Some(1.0));

    assert!(line(&logs, "mappings loaded").contains("generation=0 mappings=aaaa"));
    let refused = line(
        &logs,
        "mapping reload refused; the mappings in service stay",
    );
    assert!(
        refused.contains("ERROR")
            && refused.contains("mappings=bbbb problems=default.toml:3: unknown codec"),
        "{logs}"
    );
    assert!(line(&logs, "mappings reloaded").contains("generation=1 mappings=cccc"));
}

#[test]
fn cluster_state_changes_log_a_line_each_and_move_the_up_gauge() {
    let metrics = Metrics::new();
    // Without [cluster] neither family has a series: no replica reads as down for want of one.
    let before = scrape(&metrics);
    assert_eq!(value(&before, "svp_cluster_up", &[]), None);
    assert_eq!(
        value(
            &before,
            "svp_cluster_fallbacks_total",
            &[("what", "budget")]
        ),
        None
    );
    let logs = logged(|| {
        metrics.emit(RedisLost {
            reason: "connection refused",
        });
    });
    let lost = line(&logs, "redis unreachable");
    assert!(
        lost.contains(" WARN ") && lost.contains("reason=\"connection refused\""),
        "{logs}"
    );
    let down = scrape(&metrics);
    assert_eq!(value(&down, "svp_cluster_up", &[]), Some(0.0));
    for what in ["budget", "pause", "redeem", "notify"] {
        let fallbacks = value(&down, "svp_cluster_fallbacks_total", &[("what", what)]);
        assert_eq!(fallbacks, Some(0.0), "{what}");
    }
    metrics.cluster_fallback(Fallback::Budget);
    metrics.cluster_fallback(Fallback::Budget);
    let logs = logged(|| metrics.emit(RedisReachable));
    assert!(line(&logs, "redis reachable").contains(" INFO "), "{logs}");
    let up = scrape(&metrics);
    assert_eq!(value(&up, "svp_cluster_up", &[]), Some(1.0));
    let budget = value(&up, "svp_cluster_fallbacks_total", &[("what", "budget")]);
    assert_eq!(budget, Some(2.0));
}

/// An id field prints only a GUID: whatever else is put there by mistake never reaches the log.
#[test]
fn an_id_that_is_not_a_guid_is_never_logged() {
    let metrics = Metrics::new();
    let promotions = ["0701112233".to_owned(), PROMOTION.to_owned()];
    let logs = logged(|| {
        metrics.emit(PromotionUndoRefused {
            customer_id: Guid("anna.andersson@example.com"),
            promotions: Guids(&promotions),
        });
    });
    let undo = line(&logs, "undo of a promotion refused");
    assert!(!undo.contains("anna.andersson"), "{logs}");
    assert!(!undo.contains("0701112233"), "{logs}");
    assert!(
        undo.contains(&format!(
            r#"customer_id=<not a GUID> promotions=["<not a GUID>", "{PROMOTION}"]"#
        )),
        "{logs}"
    );
    assert_eq!(Guid(CUSTOMER).to_string(), CUSTOMER);
    assert_eq!(Guid(&CUSTOMER[..35]).to_string(), "<not a GUID>");
}
