//! Sitoo's Events SPI: a batch of up to 10 events, in order. A closed order becomes a Voyado
//! receipt: the order is read from Sitoo's REST API, its customer resolved in Voyado (see
//! `resolve.rs`), and the receipt built through the mapping's `[[receipt]]` rules from the order and
//! what is derived here (the arithmetic and look-ups a declarative rule cannot do).
//!
//! Sitoo drops a batch on any answer but `200`, `429`, `503` and `504`, so: `200` when every event
//! is done (a duplicate too: the receipt id comes from the order, and Voyado refuses a second one);
//! `503` when Sitoo or Voyado is temporarily unavailable, so the whole batch comes again (what was
//! done is then a duplicate); `400` only for a batch that can never succeed. An order refused for
//! good (its receipt invalid, the order gone) is logged and counted, and the batch goes on.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::resolve::{Identity, resolve};
use super::{OpRequest, upstream};
use crate::app::Market;
use crate::mapping;
use crate::sitoo::{SitooClient, SitooError};
use crate::spi::{ProxyError, Reason};
use crate::telemetry::EventResult;
use crate::voyado::{Endpoint, Read, VoyadoError};

/// Sitoo sends at most this many events in one request.
const MAX_BATCH: usize = 10;

/// One order event, as much of it as decides what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OrderEvent {
    account_id: u64,
    eshop_id: u64,
    order_id: u64,
    closed: bool,
}

/// An event of the batch: an order event, or one of another type (acknowledged, ignored).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Order(OrderEvent),
    Other,
}

/// Reads the batch: a JSON array of at most 10 event objects, each with `event_id`,
/// `event_type`, `account_id` and `data`; an `order` event's data with `eshop_id` and `order_id`.
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
            let number = |value: Option<&Value>, name: &str| {
                value
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ProxyError::field(name, "must be a whole number"))
            };
            Ok(Event::Order(OrderEvent {
                account_id: number(event.get("account_id"), &field("account_id"))?,
                eshop_id: number(data.get("eshop_id"), &field("data.eshop_id"))?,
                order_id: number(data.get("order_id"), &field("data.order_id"))?,
                closed: data.get("order_state_changed").and_then(Value::as_str) == Some("closed"),
            }))
        })
        .collect()
}

/// `POST /events`: every event of the batch, in order.
pub(super) async fn run(market: &Market, request: &OpRequest) -> Result<Value, ProxyError> {
    let events = parse_batch(request.body()?)?;
    let metrics = &market.metrics;
    metrics.events(EventResult::Received, events.len() as u64);
    for event in events {
        let result = match event {
            Event::Order(order) if order.closed => {
                let Some(sitoo) = &market.sitoo else {
                    // Kept in Sitoo's queue (it retries for a day) while an operator adds them.
                    tracing::error!("a closed order for a market without Sitoo API credentials");
                    return Err(retry_later("this market has no Sitoo API credentials yet"));
                };
                export(market, sitoo, &order).await?
            }
            Event::Order(_) | Event::Other => EventResult::Skipped,
        };
        metrics.events(result, 1);
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

/// One closed order: read, its customer resolved, its receipt sent.
async fn export(
    market: &Market,
    sitoo: &SitooClient,
    event: &OrderEvent,
) -> Result<EventResult, ProxyError> {
    let order_id = event.order_id;
    if event.account_id != sitoo.account_id() {
        tracing::warn!(
            order_id,
            "an order event for another Sitoo account; ignored"
        );
        return Ok(EventResult::Skipped);
    }
    let order = match sitoo.order(event.eshop_id, order_id).await {
        Ok(order) => order,
        Err(SitooError::NotFound) => {
            tracing::error!(
                order_id,
                "the order of an event is not in Sitoo; not exported"
            );
            return Ok(EventResult::Failed);
        }
        Err(e) => {
            tracing::warn!(order_id, %e, "Sitoo did not give the order; the batch will come again");
            return Err(retry_later("Sitoo is unavailable"));
        }
    };
    let facts = OrderFacts::of(&order);
    let resolved = match resolve(market, &facts.identity, facts.store.as_deref()).await {
        Ok(resolved) => resolved,
        Err(e) => return failed_or_retry(e, order_id),
    };
    let Some(customer) = resolved.customer_id else {
        tracing::info!(order_id, "an order with no known customer; not exported");
        return Ok(EventResult::Skipped);
    };
    let receipt = match receipt(market, sitoo, event, &order, &facts, &customer).await {
        Ok(receipt) => receipt,
        Err(e) => return failed_or_retry(e, order_id),
    };
    match market
        .voyado
        .send(Endpoint::Receipts, &[], &[], &[], Some(&receipt))
        .await
    {
        Ok(_) => {
            tracing::info!(order_id, customer_id = %customer, "receipt exported");
            Ok(EventResult::Processed)
        }
        Err(e) if e.status() == Some(409) => Ok(EventResult::Duplicate),
        Err(e) if refused_for_good(&e) => {
            tracing::error!(order_id, %e, "Voyado refused the order's receipt; not exported");
            Ok(EventResult::Failed)
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
fn failed_or_retry(e: ProxyError, order_id: u64) -> Result<EventResult, ProxyError> {
    let for_good = match &e {
        ProxyError::Voyado { error, .. } => refused_for_good(error),
        ProxyError::Refused(r) => matches!(
            r.reason,
            Reason::InvalidInput | Reason::CustomerExists | Reason::AmbiguousCustomer
        ),
    };
    if for_good {
        tracing::error!(order_id, %e, "an order was refused for good; not exported");
        return Ok(EventResult::Failed);
    }
    tracing::warn!(order_id, %e, "an order could not be exported now; the batch will come again");
    Err(retry_later("Voyado is unavailable"))
}

/// What the order says, read once.
struct OrderFacts {
    identity: Identity,
    store: Option<String>,
    refund: bool,
}

impl OrderFacts {
    fn of(order: &Value) -> OrderFacts {
        let extra = |name: &str| text(&order["additionaldata"][name]);
        let credit = order
            .get("creditorderid")
            .is_some_and(|c| !c.is_null() && c != 0 && c != "");
        OrderFacts {
            identity: Identity {
                customer_id: extra("crm-customerid"),
                member_number: extra("crm-membernumber"),
                email: text(&order["email"]),
                mobile: text(&order["phone"]).or_else(|| text(&order["mobile"])),
                name_first: text(&order["namefirst"]),
                name_last: text(&order["namelast"]),
            },
            store: extra("store-externalid"),
            refund: credit || extra("pos-originalsales-orderid").is_some(),
        }
    }
}

/// A non-empty string (Sitoo writes absent values as `""`).
fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A Sitoo money value (a decimal string, or a number) as a positive decimal.
fn money(value: &Value) -> Decimal {
    let parsed: Option<Decimal> = match value {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.to_string().parse().ok(),
        _ => None,
    };
    parsed.unwrap_or_default().abs()
}

/// A decimal as a JSON number (two places; exact for money).
fn number(d: Decimal) -> Value {
    let text = d.round_dp(2).normalize().to_string();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The receipt for `order`: the facts derived here, then the mapping's `[[receipt]]` rules.
async fn receipt(
    market: &Market,
    sitoo: &SitooClient,
    event: &OrderEvent,
    order: &Value,
    facts: &OrderFacts,
    customer: &str,
) -> Result<Value, ProxyError> {
    // The event's order id (validated), never the order's own field: the receipt's id is made
    // of it, and a wrong one would make every later order a "duplicate".
    let order_id = event.order_id;
    let kind = if facts.refund { "RETURN" } else { "PURCHASE" };
    let mut check_ids = Vec::new();
    let mut promotions = Vec::new();
    let items: Vec<Value> = order["orderitems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| {
            let extra = |name: &str| text(&item["additionaldata"][name]);
            check_ids.extend(extra("crm-bonuscheckid"));
            promotions.extend(extra("crm-promotionid"));
            let net = money(&item["moneyitemtotal_net"]);
            let tax = money(&item["moneyitemtotal_vat"]);
            let discount = money(&item["moneydiscount"]);
            let quantity = item["quantity"].as_f64().unwrap_or(1.0);
            let kind = if facts.refund || quantity < 0.0 {
                "RETURN"
            } else {
                kind
            };
            let discounts: Vec<Value> = (!discount.is_zero())
                .then(|| json!({ "value": number(discount) }))
                .into_iter()
                .collect();
            json!({
                "type": kind,
                "sku": text(&item["sku"]).unwrap_or_default(),
                "name": text(&item["productname"]).unwrap_or_default(),
                "quantity": quantity.abs(),
                "gross": number(net + tax),
                "tax": number(tax),
                "tax_percent": item["vatvalue"],
                "discounts": discounts,
            })
        })
        .collect();
    let payments: Vec<Value> = order["payments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = text(&p["name"]).unwrap_or_else(|| "other".into());
            json!({
                "type": name.to_lowercase().replace(' ', ""),
                "value": number(money(&p["moneyamount"])),
                "description": name,
            })
        })
        .collect();
    let check_numbers = check_numbers(market, customer, &check_ids).await?;
    let zone = text(&order["additionaldata"]["pos-timezone"])
        .and_then(|tz| jiff::tz::TimeZone::get(&tz).ok())
        .unwrap_or_else(|| market.settings.timezone.clone());
    let created = order["orderdate"]
        .as_i64()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .unwrap_or_else(jiff::Timestamp::now)
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string();
    let derived = json!({
        "unique_id": format!("sitoo-{}-{order_id}", sitoo.account_id()),
        "number": text(&order["additionaldata"]["pos-receiptid"]).unwrap_or_else(|| order_id.to_string()),
        "created": created,
        "store": facts.store.clone().unwrap_or_else(|| order["eshopid"].to_string()),
        "currency": text(&order["currencycode"]).unwrap_or_else(|| market.settings.currency.clone()),
        "total": number(money(&order["moneytotal_gross_all"])),
        "items": items,
        "payments": payments,
        "bonus_checks": check_numbers,
        "promotions": promotions,
    });
    let mut source = Map::with_capacity(3);
    source.insert(mapping::ORDER.into(), order.clone());
    source.insert(mapping::RECEIPT.into(), derived);
    source.insert(mapping::CONTACT.into(), json!({ "id": customer }));
    Ok(market
        .plan
        .receipt(&Value::Object(source), &market.view(jiff::Timestamp::now())))
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
            found.and_then(|c| text(&c["checkNumber"]))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_batch_is_read_in_order_and_other_events_are_kept_as_such() {
        let batch = json!([
            {"event_id": "a", "event_type": "order", "event_date": 1, "account_id": 1500,
             "data": {"eshop_id": 1, "order_id": 12345, "order_event_type": "update",
                      "order_state_changed": "closed"}},
            {"event_id": "b", "event_type": "z-report", "event_date": 1, "account_id": 1500,
             "data": {}},
            {"event_id": "c", "event_type": "order", "event_date": 1, "account_id": 1500,
             "data": {"eshop_id": 1, "order_id": 7, "order_event_type": "add"}}
        ]);
        assert_eq!(
            parse_batch(&batch).unwrap(),
            vec![
                Event::Order(OrderEvent {
                    account_id: 1500,
                    eshop_id: 1,
                    order_id: 12345,
                    closed: true
                }),
                Event::Other,
                Event::Order(OrderEvent {
                    account_id: 1500,
                    eshop_id: 1,
                    order_id: 7,
                    closed: false
                }),
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
                            "data": {"eshop_id": 1, "order_id": "12"}}])
            ),
            "[0].data.order_id must be a whole number"
        );
    }

    #[test]
    fn money_is_positive_and_exact() {
        assert_eq!(
            number(money(&json!("-160.00")) + money(&json!("-40.00"))),
            json!(200)
        );
        assert_eq!(number(money(&json!("99.99"))), json!(99.99));
        assert_eq!(number(money(&json!("x"))), json!(0));
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
