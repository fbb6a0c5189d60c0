//! Sitoo's Events SPI: a batch of up to 10 events, in order. An `order` event (`add` or
//! `update`) may book a receipt: the order is read from Sitoo's REST API and exported only when
//! its own state is closed (`orderstateid` 10) — never open or cancelled, whatever the event says.
//! The event's `order_state_changed` only saves the read when it says `open` or `cancelled`; a
//! till sale Sitoo creates closed may come as an `add` without it. The customer is resolved in
//! Voyado (`resolve.rs`), and the receipt built from the order's facts (`receipt.rs`) through the
//! mapping's `[[receipt]]` rules.
//!
//! Sitoo drops a batch on any answer but `200`, `429`, `503` and `504`, so: `200` when every event
//! is done (a duplicate too: the receipt id comes from the order, and Voyado ignores a second
//! one); `503` when Sitoo or Voyado is temporarily unavailable, so the whole batch comes again
//! (what was done is then a duplicate); `400` only for a batch that can never succeed. An order
//! refused for good (a row Voyado cannot book, its receipt invalid, the order gone) is logged and
//! counted, and the batch goes on.

use serde_json::{Value, json};

use super::receipt::{self, OrderState};
use super::resolve::{Identity, resolve};
use super::{OpRequest, upstream};
use crate::market::Market;
use crate::sitoo::{SitooClient, SitooError};
use crate::spi::{ProxyError, Reason};
use crate::telemetry::Metrics;
use crate::telemetry::events::Guid;
use crate::telemetry::events::orders::{
    ReceiptDuplicate, ReceiptExported, SitooEventFailed, SitooEventSkipped, SitooEventsReceived,
};
use crate::voyado::{Endpoint, Read, VoyadoError};

/// Sitoo sends at most this many events in one request.
const MAX_BATCH: usize = 10;

/// An order event whose order is to be read: as much of it as decides what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderEvent {
    account_id: u64,
    eshop_id: u64,
    order_id: u64,
}

/// An event of the batch: an order to read, or one acknowledged and ignored (another type, an
/// order event that cannot book, or one whose order is open or cancelled by the event's word).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Order(OrderEvent),
    Other,
}

/// Reads the batch: a JSON array of at most 10 event objects, each with `event_id`,
/// `event_type` and `data`; an `order` event that may book (`order_event_type` `add` or
/// `update`, not open or cancelled by its word) with `account_id`, `eshop_id` and `order_id`.
fn parse_batch(body: &Value) -> Result<Vec<Event>, ProxyError> {
    let Some(list) = body.as_array() else {
        return Err(ProxyError::field("body", "must be a JSON array of events"));
    };
    if list.len() > MAX_BATCH {
        return Err(ProxyError::field(
            "body",
            &format!(
                "holds {} events; Sitoo sends at most {MAX_BATCH}",
                list.len()
            ),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(i, event)| {
            let field = |name: &str| format!("[{i}].{name}");
            let text = |name: &str| event.get(name).and_then(Value::as_str);
            if text("event_id").is_none_or(str::is_empty) {
                return Err(ProxyError::field(&field("event_id"), "must be a string"));
            }
            let Some(kind) = text("event_type") else {
                return Err(ProxyError::field(&field("event_type"), "must be a string"));
            };
            let data = event
                .get("data")
                .filter(|d| d.is_object())
                .ok_or_else(|| ProxyError::field(&field("data"), "must be an object"))?;
            if kind != "order" {
                return Ok(Event::Other);
            }
            // Sitoo always sends it; an event without it is not one that books (a 400 would drop
            // the batch's other events with it).
            let order_event = data.get("order_event_type").and_then(Value::as_str);
            let state = data.get("order_state_changed").and_then(Value::as_str);
            if !matches!(order_event, Some("add" | "update"))
                || matches!(state, Some("open" | "cancelled"))
            {
                return Ok(Event::Other);
            }
            let number = |value: Option<&Value>, name: &str| {
                value
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ProxyError::field(name, "must be a whole number"))
            };
            Ok(Event::Order(OrderEvent {
                account_id: number(event.get("account_id"), &field("account_id"))?,
                eshop_id: number(data.get("eshop_id"), &field("data.eshop_id"))?,
                order_id: number(data.get("order_id"), &field("data.order_id"))?,
            }))
        })
        .collect()
}

/// `POST /events`: every event of the batch, in order.
pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let events = parse_batch(request.body()?)?;
    market.metrics.emit(SitooEventsReceived {
        count: events.len(),
    });
    for event in events {
        match event {
            Event::Order(order) => {
                let Some(sitoo) = &market.sitoo else {
                    // Kept in Sitoo's queue (it retries for a day) while an operator adds them.
                    tracing::error!("an order event for a market without Sitoo API credentials");
                    return Err(retry_later("this market has no Sitoo API credentials yet"));
                };
                export(market, sitoo, &order, request.now).await?;
            }
            Event::Other => market.metrics.emit(SitooEventSkipped::NotAnOrder),
        }
    }
    Ok(json!({}))
}

/// A `503` the batch is retried on.
fn retry_later(why: &str) -> ProxyError {
    ProxyError::new(Reason::UpstreamUnavailable, why.to_owned())
}

/// Whether a Voyado failure is for good (a refusal of this order's data) rather than for now. A
/// refused API key (401, 403) is the operator's to fix, not the order's: the batch waits.
fn refused_for_good(e: &VoyadoError) -> bool {
    e.status()
        .is_some_and(|s| (400..500).contains(&s) && ![401, 403, 408, 429].contains(&s))
}

/// One order event: the order read, and when it is closed its customer resolved and its
/// receipt sent. What became of it is emitted here; an `Err` asks for the batch again.
async fn export(
    market: &Market,
    sitoo: &SitooClient,
    event: &OrderEvent,
    now: jiff::Timestamp,
) -> Result<(), ProxyError> {
    let metrics = &market.metrics;
    let order_id = event.order_id;
    if event.account_id != sitoo.account_id() {
        metrics.emit(SitooEventSkipped::OtherAccount { order_id });
        return Ok(());
    }
    let order = match sitoo.order(event.eshop_id, order_id).await {
        Ok(order) => order,
        Err(SitooError::NotFound) => {
            metrics.emit(SitooEventFailed::NotInSitoo { order_id });
            return Ok(());
        }
        Err(e) => {
            tracing::warn!(order_id, %e, "Sitoo did not give the order; the batch will come again");
            return Err(retry_later("Sitoo is unavailable"));
        }
    };
    match OrderState::of(&order) {
        OrderState::Closed => {}
        OrderState::Unknown => {
            metrics.emit(SitooEventFailed::NoState { order_id });
            return Ok(());
        }
        state => {
            metrics.emit(SitooEventSkipped::NotClosed {
                order_id,
                state: state.name(),
            });
            return Ok(());
        }
    }
    // Checked before anything is written (a contact created for an order that cannot be booked
    // would be half the work).
    let derived = match receipt::derive(
        &order,
        &receipt::Context {
            account_id: sitoo.account_id(),
            order_id,
            timezone: &market.settings.timezone,
            currency: &market.settings.currency,
        },
    ) {
        Ok(derived) => derived,
        Err(e) => {
            metrics.emit(SitooEventFailed::Unbookable { order_id, e: &e });
            return Ok(());
        }
    };
    let extra = |name: &str| receipt::text(&order["additionaldata"][name]);
    let identity = Identity {
        customer_id: extra("crm-customerid"),
        member_number: extra("crm-membernumber"),
        email: receipt::text(&order["email"]),
        mobile: receipt::text(&order["phone"]).or_else(|| receipt::text(&order["mobile"])),
        name_first: receipt::text(&order["namefirst"]),
        name_last: receipt::text(&order["namelast"]),
    };
    let store = extra("store-externalid");
    let resolved = match resolve(market, &identity, store.as_deref(), derived.sells, now).await {
        Ok(resolved) => resolved,
        Err(e) => return failed_or_retry(metrics, e, order_id),
    };
    let Some(customer) = resolved.customer_id else {
        metrics.emit(SitooEventSkipped::NoCustomer { order_id });
        return Ok(());
    };
    let check_numbers = match check_numbers(market, &customer, &derived.bonus_check_ids).await {
        Ok(numbers) => numbers,
        Err(e) => return failed_or_retry(metrics, e, order_id),
    };
    let source = receipt::source(
        &order,
        derived,
        check_numbers,
        &customer,
        resolved.contact_type.as_deref(),
    );
    let receipt = market.plan.receipt(&source, &market.view(now));
    match market
        .voyado
        .send(Endpoint::Receipts, &[], &[], &[], Some(&receipt))
        .await
    {
        Ok(_) => {
            metrics.emit(ReceiptExported {
                order_id,
                customer_id: Guid(&customer),
            });
            Ok(())
        }
        // Voyado documents a duplicate as ignored; a tenant that answers 409 says the same.
        Err(e) if e.status() == Some(409) => {
            metrics.emit(ReceiptDuplicate);
            Ok(())
        }
        Err(e) if refused_for_good(&e) => {
            metrics.emit(SitooEventFailed::ReceiptRefused { order_id, e: &e });
            Ok(())
        }
        Err(e) => {
            tracing::warn!(order_id, %e, "the receipt did not reach Voyado; the batch will come again");
            Err(retry_later("Voyado is unavailable"))
        }
    }
}

/// A failure on the way to the receipt: a refusal that will be the same next time fails this
/// order (logged and counted, the batch goes on — a batch answered 503 blocks every later event);
/// anything else asks for the batch again.
fn failed_or_retry(metrics: &Metrics, e: ProxyError, order_id: u64) -> Result<(), ProxyError> {
    let for_good = match &e {
        ProxyError::Voyado { error, .. } => refused_for_good(error),
        ProxyError::Refused(r) => matches!(
            r.reason,
            Reason::InvalidInput | Reason::CustomerExists | Reason::AmbiguousCustomer
        ),
    };
    if for_good {
        metrics.emit(SitooEventFailed::Refused { order_id, e: &e });
        return Ok(());
    }
    tracing::warn!(order_id, %e, "an order could not be exported now; the batch will come again");
    Err(retry_later("Voyado is unavailable"))
}

/// Voyado's receipts name a used bonus check by its check number; the POS wrote its id.
async fn check_numbers(
    market: &Market,
    customer: &str,
    ids: &[String],
) -> Result<Vec<String>, ProxyError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let (list, _) = market
        .voyado
        .get_pages(
            Read::Fresh,
            Endpoint::BonusChecks,
            &[customer],
            &[],
            market.limits.voyado_list_max_items,
        )
        .await
        .map_err(upstream(market, super::CUSTOMER))?;
    let plan = &market.plan;
    Ok(ids
        .iter()
        .filter_map(|id| {
            let found = plan
                .list_items(&list)
                .iter()
                .find(|c| plan.item_id(c).is_some_and(|i| i.eq_ignore_ascii_case(id)));
            if found.is_none() {
                tracing::warn!(bonus_check_id = %id, "a used bonus check is not the customer's; left off the receipt");
            }
            found.and_then(|c| receipt::text(&c["checkNumber"]))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_batch_is_read_in_order_and_other_events_are_kept_as_such() {
        let order = |id: u64, kind: &str, state: Option<&str>| {
            json!({"event_id": id.to_string(), "event_type": "order", "event_date": 1,
                   "account_id": 1500,
                   "data": {"eshop_id": 1, "order_id": id, "order_event_type": kind,
                            "order_state_changed": state}})
        };
        let batch = json!([
            order(12345, "update", Some("closed")),
            {"event_id": "b", "event_type": "z-report", "event_date": 1, "account_id": 1500,
             "data": {}},
            order(7, "add", None),
            order(8, "update", Some("open")),
            order(9, "add", Some("cancelled")),
            order(10, "email-receipt", Some("closed")),
            {"event_id": "y", "event_type": "order", "data": {"order_id": 1}},
            // Open or cancelled by the event's word: nothing else of it is read.
            {"event_id": "x", "event_type": "order",
             "data": {"order_event_type": "update", "order_state_changed": "cancelled"}},
        ]);
        let read = |order_id| {
            Event::Order(OrderEvent {
                account_id: 1500,
                eshop_id: 1,
                order_id,
            })
        };
        assert_eq!(
            parse_batch(&batch).unwrap(),
            vec![
                read(12345),
                Event::Other,
                read(7),
                Event::Other,
                Event::Other,
                Event::Other,
                Event::Other,
                Event::Other,
            ]
        );
    }

    #[test]
    fn bad_batches_name_the_field() {
        let message = |body: Value| match parse_batch(&body) {
            Err(ProxyError::Refused(r)) => r.message,
            other => panic!("{other:?}"),
        };
        assert_eq!(message(json!({})), "body must be a JSON array of events");
        let eleven: Vec<Value> = (0..11)
            .map(|i| json!({"event_id": i.to_string(), "event_type": "z-report", "data": {}}))
            .collect();
        assert!(message(Value::Array(eleven)).starts_with("body holds 11 events"));
        assert_eq!(
            message(json!([{"event_type": "order", "data": {}}])),
            "[0].event_id must be a string"
        );
        assert_eq!(
            message(
                json!([{"event_id": "x", "event_type": "order", "account_id": 1,
                            "data": {"eshop_id": 1, "order_id": "12", "order_event_type": "add"}}])
            ),
            "[0].data.order_id must be a whole number"
        );
    }

    proptest! {
        #[test]
        fn any_json_is_a_batch_or_a_refusal_naming_a_field(body in crate::ops::tests::json_values()) {
            match parse_batch(&body) {
                Ok(events) => prop_assert!(events.len() <= MAX_BATCH),
                Err(ProxyError::Refused(r)) => {
                    prop_assert_eq!(r.reason, Reason::InvalidInput);
                    prop_assert!(r.message.starts_with("body ") || r.message.starts_with('['), "{}", r.message);
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
