//! The access line — `request done`, one per request — written by hand into the log writer's
//! queue, in the text format the fmt layer would give it (`tests` here compare the two byte for
//! byte). Through `tracing` the line cost about a third of a warm card's time: the request's span
//! made and filled field by field, each field formatted as it was recorded, the span looked up
//! again for the event, the timestamp formatted from scratch. Here it is one buffer, filled from
//! the request's own data, with the date part of the timestamp kept per second.
//!
//! Only for text without colour: JSON and a terminal's colours stay with the fmt layer.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lines::Lines;
use crate::telemetry::events::server::{RequestFields, TARGET};

/// Writes the access line to the log writer.
pub struct AccessLog {
    lines: Lines,
}

thread_local! {
    /// The line being made, reused: a request allocates nothing for its line.
    static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    /// `YYYY-MM-DDTHH:MM:SS` of the second last formatted on this thread, and that second.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl AccessLog {
    pub(super) fn new(lines: Lines) -> AccessLog {
        AccessLog { lines }
    }

    /// Queues the `request done` line of `request`.
    pub fn write(&self, request: &RequestFields<'_>, status: u16, latency_ms: u64) {
        LINE.with_borrow_mut(|line| {
            line.clear();
            text(line, SystemTime::now(), request, status, latency_ms);
            self.lines.push(line);
        });
    }
}

/// The line as tracing-subscriber's `Full` text format writes the event inside the request's
/// span: timestamp, level, `request{fields}:`, target, message, the event's fields.
fn text(
    out: &mut Vec<u8>,
    at: SystemTime,
    request: &RequestFields<'_>,
    status: u16,
    latency_ms: u64,
) {
    timestamp(out, at);
    out.extend_from_slice(b"  INFO request{request_id=");
    // Recorded with `%`: written as it is (an id is `[A-Za-z0-9._-]`, `request_id.rs`).
    out.extend_from_slice(request.request_id.as_bytes());
    quoted(out, "trace_id", request.trace_id);
    if let Some((operation, route)) = request.route {
        quoted(out, "operation", Some(operation));
        quoted(out, "route", Some(route));
    }
    if let Some((tenant, market)) = request.market {
        quoted(out, "tenant", Some(tenant));
        quoted(out, "market", Some(market));
    }
    quoted(out, "store_id", request.store_id);
    quoted(out, "register_id", request.register_id);
    let (mut status_digits, mut latency_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
    let status = status_digits.format(status);
    let latency = latency_digits.format(latency_ms);
    // The span's status and latency, then the event's own: the server records both into the
    // span before the event, so the fmt layer prints them twice.
    let tail = [
        " status=",
        status,
        " latency_ms=",
        latency,
        "}: ",
        TARGET,
        ": request done status=",
        status,
        " latency_ms=",
        latency,
        "\n",
    ];
    for part in tail {
        out.extend_from_slice(part.as_bytes());
    }
}

/// ` name="value"`, the value as `Debug` prints a `str` (as the fmt layer records one); nothing
/// when there is no value.
fn quoted(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    let Some(value) = value else {
        return;
    };
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b'=');
    // What `Debug` leaves as it is — printable ASCII but the quote and the backslash — is copied;
    // anything else (a decoded Store-ID may hold any text) goes through `Debug` itself.
    if value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{value:?}");
    }
}

/// `2026-12-07T23:51:08.123456Z ` as tracing-subscriber's `SystemTime` timer writes it (UTC,
/// microseconds); the part up to the seconds is formatted once a second per thread.
fn timestamp(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since.as_secs();
    SECOND.with_borrow_mut(|(cached, text)| {
        if *cached != second {
            let civil = i64::try_from(second)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            *text = civil.strftime("%Y-%m-%dT%H:%M:%S").to_string();
            *cached = second;
        }
        out.extend_from_slice(text.as_bytes());
    });
    let micros = since.subsec_micros();
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(micros);
    out.push(b'.');
    for _ in digits.len()..6 {
        out.push(b'0');
    }
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(b"Z");
}

#[cfg(test)]
mod tests {

    use proptest::prelude::*;
    use tracing::field::Empty;

    use super::*;
    use crate::telemetry::Metrics;
    use crate::telemetry::events::server::RequestDone;
    use crate::telemetry::test_support::logged;

    /// The line the fmt layer writes, configured as `logging::init` configures it for text off a
    /// terminal: the span made empty and recorded field by field as the layers learn them (the
    /// order the server records them in), then the event emitted inside it.
    fn through_tracing(request: &RequestFields<'_>, status: u16, latency_ms: u64) -> String {
        logged(|| {
            let span = tracing::info_span!(
                "request",
                request_id = %request.request_id,
                trace_id = request.trace_id,
                operation = Empty,
                route = Empty,
                tenant = Empty,
                market = Empty,
                store_id = Empty,
                register_id = Empty,
                status = Empty,
                latency_ms = Empty,
            );
            if let Some((operation, route)) = request.route {
                span.record("operation", operation);
                span.record("route", route);
            }
            request.record_market(&span);
            span.record("status", status);
            span.record("latency_ms", latency_ms);
            span.in_scope(|| {
                Metrics::new().emit(RequestDone {
                    operation: "test",
                    status,
                    elapsed: std::time::Duration::from_millis(latency_ms),
                    request: *request,
                });
            });
        })
    }

    fn by_hand(request: &RequestFields<'_>, status: u16, latency_ms: u64) -> String {
        let mut line = Vec::new();
        text(&mut line, SystemTime::now(), request, status, latency_ms);
        String::from_utf8(line).expect("UTF-8")
    }

    /// A line's timestamp and the rest.
    fn split(line: &str) -> (jiff::Timestamp, &str) {
        let (at, rest) = line.split_once(' ').expect("a timestamp first");
        assert_eq!(at.len(), "2026-12-07T23:51:08.000042Z".len(), "{line}");
        (at.parse().expect("an RFC 3339 timestamp"), rest)
    }

    fn assert_same(request: &RequestFields<'_>, status: u16, latency_ms: u64) {
        let expected = through_tracing(request, status, latency_ms);
        let written = by_hand(request, status, latency_ms);
        let ((at, rest), (expected_at, expected_rest)) = (split(&written), split(&expected));
        assert_eq!(rest, expected_rest);
        let apart = at.duration_since(expected_at).unsigned_abs();
        assert!(
            apart < std::time::Duration::from_secs(1),
            "{written}\n{expected}"
        );
    }

    #[test]
    fn a_warm_card_line_is_the_fmt_layers_line() {
        assert_same(
            &RequestFields {
                request_id: "2f1c9a0b4d6e8f10a2b4c6d8e0f1a3b5",
                trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736"),
                route: Some(("get_customer", "/customers/{customer_id}")),
                market: Some(("demo", "SE")),
                store_id: Some("store 200"),
                register_id: Some("r-1"),
            },
            200,
            0,
        );
    }

    #[test]
    fn a_refused_request_says_only_what_is_known() {
        assert_same(
            &RequestFields {
                request_id: "abc-1.2_3",
                ..RequestFields::default()
            },
            404,
            12_345,
        );
    }

    #[test]
    fn the_timestamp_is_utc_to_the_microsecond_with_the_date_kept_per_second() {
        let at = UNIX_EPOCH + std::time::Duration::from_micros(1_796_687_468_000_042);
        let mut line = Vec::new();
        timestamp(&mut line, at);
        timestamp(&mut line, at + std::time::Duration::from_micros(999_900));
        timestamp(&mut line, at + std::time::Duration::from_secs(61));
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2026-12-07T23:51:08.000042Z2026-12-07T23:51:08.999942Z2026-12-07T23:52:09.000042Z"
        );
    }

    proptest! {
        #[test]
        fn any_store_and_register_text_is_written_as_the_fmt_layer_writes_it(
            store in proptest::option::of("\\PC{0,12}|[\"\\\\\u{7f}\u{a0}é]{1,4}"),
            register in proptest::option::of("\\PC{0,12}"),
            status in 100u16..600,
            latency_ms in any::<u64>(),
        ) {
            let request = RequestFields {
                request_id: "id",
                trace_id: None,
                route: Some(("search", "/customers")),
                market: Some(("t", "m")),
                store_id: store.as_deref(),
                register_id: register.as_deref(),
            };
            let expected = through_tracing(&request, status, latency_ms);
            let written = by_hand(&request, status, latency_ms);
            prop_assert_eq!(split(&written).1, split(&expected).1);
        }
    }
}
