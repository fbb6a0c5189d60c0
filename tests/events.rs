//! Purchases reach Voyado: Sitoo's order events over a socket, the order read from the Sitoo REST
//! simulator, the customer resolved and the receipt imported into the Voyado simulator.

mod common;

use std::net::SocketAddr;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use sitoo_voyado_proxy::sim::{FaultAction, SITOO_FIXTURE, SitooSimulator};

const ACCOUNT: u64 = 1500;

/// The proxy with demo/SE taking events from a Sitoo simulator (kept alive beside it).
async fn start(extra: &str) -> (Harness, SitooSimulator) {
    let sitoo = SitooSimulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), SITOO_FIXTURE)
        .await
        .unwrap();
    let keys = format!(
        "sitoo_api_url = \"{}\"\nsitoo_account_id = {ACCOUNT}\nsitoo_api_user = \"sitoo-api\"\n\
         sitoo_api_password = \"sitoo-secret\"\n{extra}",
        sitoo.url()
    );
    (Harness::with(&keys).await, sitoo)
}

/// One `update` order event per order id, as Sitoo sends them when the state changed.
fn batch(orders: &[u64], state: &str) -> Value {
    events(orders, "update", Some(state))
}

/// One order event per order id, with its `order_event_type` and `order_state_changed` (none:
/// absent, as on a till sale Sitoo creates closed).
fn events(orders: &[u64], kind: &str, state: Option<&str>) -> Value {
    Value::Array(
        orders
            .iter()
            .map(|id| {
                let mut data = json!({"eshop_id": 1, "order_id": id, "order_event_type": kind});
                if let Some(state) = state {
                    data["order_state_changed"] = json!(state);
                }
                json!({"event_id": format!("ev-{id}-{kind}"), "event_type": "order",
                       "event_date": 1_795_000_000, "account_id": ACCOUNT, "data": data})
            })
            .collect(),
    )
}

/// Sends a batch, which must be answered `200`.
async fn accepted(h: &Harness, batch: &Value) {
    let a = h.send(Method::POST, "/events", batch).await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// The receipts Voyado booked, once its import has run over what it accepted.
fn receipts(h: &Harness) -> Vec<Value> {
    h.sim.import_receipts();
    h.sim.receipts(DEMO_KEY)
}

/// The receipt bodies that reached Voyado, as sent.
fn sent(h: &Harness) -> Vec<Value> {
    h.seen("POST", "/api/v2/receipts")
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn a_closed_order_becomes_exactly_one_receipt() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1001], "closed")).await;
    // Accepted, not yet booked: Voyado imports receipts in batches.
    let before = h.get(&format!("/customers/{ANNA}/transactions")).await;
    assert!(
        !before.body.to_string().contains("sitoo-1500-1001"),
        "{}",
        before.body
    );
    let all = receipts(&h);
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!(
        r["contact"],
        json!({"matchKey": ANNA, "matchKeyType": "contactId"})
    );
    assert_eq!(r["uniqueReceiptId"], "sitoo-1500-1001");
    assert_eq!(r["receiptNumber"], "200-1001");
    assert_eq!(r["storeExternalId"], "200");
    assert_eq!(r["currency"], "SEK");
    assert_eq!(r["totalGrossPrice"], json!(700));
    // 1 795 001 001 s is 2026-11-18 11:23:21 UTC; in November Stockholm is at +01:00.
    assert_eq!(r["createdDate"], "2026-11-18T12:23:21+01:00");
    let items = r["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[0],
        json!({"type": "PURCHASE", "sku": "TSHIRT-M", "articleNumber": "TSHIRT-M",
               "articleName": "T-shirt", "quantity": 2, "grossPaidPrice": 400, "taxAmount": 80,
               "taxPercent": 25, "discounts": [{"value": -40, "type": "DISCOUNT"}]})
    );
    assert_eq!(r["usedBonusChecks"], json!([{"checkNumber": "BC000001"}]));
    assert_eq!(r["usedPromotions"], json!([{"promotionId": PROMO_10}]));
    assert_eq!(
        r["paymentMethods"],
        json!([{"type": "card", "value": 600, "description": "Card"},
               {"type": "bonuscheck", "value": 100, "description": "Bonus check"}])
    );
    // Once imported, the customer's history shows it.
    let history = h.get(&format!("/customers/{ANNA}/transactions")).await;
    assert!(
        history.body.to_string().contains("sitoo-1500-1001"),
        "{}",
        history.body
    );
    assert_eq!(
        metric(&h, "svp_receipts_exported_total", &[]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_refund_is_booked_as_a_return_with_negative_quantity_total_and_payment() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1002], "closed")).await;
    let r = &receipts(&h)[0];
    assert_eq!(r["items"][0]["type"], "RETURN");
    assert_eq!(r["items"][0]["quantity"], json!(-1));
    assert_eq!(r["items"][0]["grossPaidPrice"], json!(200));
    assert_eq!(r["items"][0]["taxAmount"], json!(40));
    assert_eq!(r["totalGrossPrice"], json!(-200));
    assert_eq!(r["paymentMethods"][0]["value"], json!(-200));
}

#[tokio::test]
async fn an_exchange_has_a_purchase_row_a_return_row_and_the_net_total() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1007], "closed")).await;
    let r = &receipts(&h)[0];
    let rows: Vec<(Value, Value, Value)> = r["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["type"].clone(),
                i["quantity"].clone(),
                i["grossPaidPrice"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("PURCHASE"), json!(1), json!(200)),
            (json!("RETURN"), json!(-1), json!(100))
        ]
    );
    assert_eq!(r["totalGrossPrice"], json!(100));
    assert_eq!(r["paymentMethods"][0]["value"], json!(100));
}

#[tokio::test]
async fn quantities_reach_voyado_as_integers() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1001, 1002], "closed")).await;
    let bodies = sent(&h);
    assert_eq!(bodies.len(), 2);
    for body in &bodies {
        for item in body["items"].as_array().unwrap() {
            assert!(item["quantity"].is_i64(), "{item}");
        }
    }
    assert_eq!(receipts(&h).len(), 2, "Voyado's schema accepts both");
}

#[tokio::test]
async fn a_row_sold_by_weight_refuses_its_order_and_the_batch_goes_on() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1010, 1003], "closed")).await;
    let ids: Vec<Value> = sent(&h)
        .iter()
        .map(|r| r["uniqueReceiptId"].clone())
        .collect();
    assert_eq!(
        ids,
        [json!("sitoo-1500-1003")],
        "the weighed order is not sent"
    );
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "failed")]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn an_e_commerce_contact_is_booked_as_itself_and_none_is_created() {
    let (h, _sitoo) = start("order_customer_create = true").await;
    accepted(&h, &batch(&[1006], "closed")).await;
    assert_eq!(h.sim.contacts_created(DEMO_KEY), 0);
    let all = receipts(&h);
    assert_eq!(
        all.len(),
        1,
        "booked: {:?}",
        h.sim.unmatched_receipts(DEMO_KEY)
    );
    assert_eq!(
        all[0]["contact"],
        json!({"matchKey": ERIK, "matchKeyType": "contactId", "contactType": "Contact"})
    );
    let resolved = h
        .send(
            Method::POST,
            "/orders/customer",
            &json!({"email": "erik.ecom@example.com"}),
        )
        .await;
    assert_eq!(
        resolved.body,
        json!({"customer_id": ERIK, "contact_type": "Contact", "created": false,
               "matched_by": "email", "ambiguous": false})
    );
    assert_eq!(h.sim.contacts_created(DEMO_KEY), 0);
}

#[tokio::test]
async fn a_till_sale_created_closed_is_booked_once() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &events(&[1003], "add", None)).await;
    // Sitoo may also send an update for it; the receipt id makes it one receipt.
    accepted(&h, &events(&[1003], "update", None)).await;
    let all = receipts(&h);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["uniqueReceiptId"], "sitoo-1500-1003");
}

#[tokio::test]
async fn cancelled_and_open_orders_are_never_booked_whatever_the_event_says() {
    let (h, sitoo) = start("").await;
    // 1008 is open and 1009 cancelled in Sitoo, though the events say "closed".
    accepted(&h, &batch(&[1008, 1009], "closed")).await;
    accepted(&h, &events(&[1008, 1009], "add", None)).await;
    assert_eq!(sitoo.calls(), 4, "each order read, its state decides");
    assert!(sent(&h).is_empty());
    assert!(receipts(&h).is_empty());
    // An event that says cancelled spares the read.
    accepted(&h, &batch(&[1001], "cancelled")).await;
    assert_eq!(sitoo.calls(), 4);
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "skipped")]).await,
        Some(5.0)
    );
}

#[tokio::test]
async fn a_repeated_batch_is_200_and_still_one_receipt() {
    let (h, _sitoo) = start("").await;
    for _ in 0..2 {
        accepted(&h, &batch(&[1001], "closed")).await;
        h.sim.import_receipts();
    }
    assert_eq!(sent(&h).len(), 2, "Voyado ignores the second by its id");
    assert_eq!(receipts(&h).len(), 1);
}

/// A tenant that answers a duplicate with 409 (Voyado documents none) is a duplicate, not a
/// failure.
#[tokio::test]
async fn a_409_for_a_receipt_counts_as_a_duplicate() {
    let (h, _sitoo) = start("").await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/receipts",
        FaultAction::Answer(409, r#"{"errorCode":"ReceiptAlreadyExists"}"#),
        1,
    ));
    accepted(&h, &batch(&[1001], "closed")).await;
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "duplicate")]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn voyado_down_is_503_and_the_retried_batch_loses_nothing() {
    let (h, _sitoo) = start("").await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/receipts",
        FaultAction::Status(503, None),
        1,
    ));
    let a = h
        .send(Method::POST, "/events", &batch(&[1003, 1001], "closed"))
        .await;
    a.assert_error(503, "upstream_unavailable");
    assert!(a.headers.contains_key("retry-after"));
    assert!(receipts(&h).is_empty());
    accepted(&h, &batch(&[1003, 1001], "closed")).await;
    let ids: Vec<Value> = receipts(&h)
        .iter()
        .map(|r| r["uniqueReceiptId"].clone())
        .collect();
    assert_eq!(ids, [json!("sitoo-1500-1003"), json!("sitoo-1500-1001")]);
}

#[tokio::test]
async fn sitoo_down_is_503() {
    let (h, sitoo) = start("").await;
    sitoo.fail_next(503, 1);
    let a = h
        .send(Method::POST, "/events", &batch(&[1001], "closed"))
        .await;
    a.assert_error(503, "upstream_unavailable");
    assert!(receipts(&h).is_empty());
}

#[tokio::test]
async fn an_order_known_only_by_email_resolves_to_its_contact() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1003], "closed")).await;
    assert_eq!(receipts(&h)[0]["contact"]["matchKey"], BO);
}

#[tokio::test]
async fn an_unknown_customer_is_created_once_under_concurrency() {
    let (h, _sitoo) = start("order_customer_create = true").await;
    // Slow look-ups, so the six batches are all between look-up and create at once.
    h.sim
        .set_latency("/contacts/id", std::time::Duration::from_millis(100));
    let body = batch(&[1004], "closed");
    let answers =
        futures_util::future::join_all((0..6).map(|_| h.send(Method::POST, "/events", &body)))
            .await;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.body);
    }
    assert_eq!(h.sim.contacts_created(DEMO_KEY), 1, "one contact");
    let creates = h
        .seen("POST", "/api/v2/contacts")
        .into_iter()
        .filter(|r| r.path == "/api/v2/contacts")
        .count();
    assert_eq!(
        creates, 1,
        "one create asked: the others waited and found it"
    );
    let all = receipts(&h);
    assert_eq!(all.len(), 1, "one receipt");
    let created = h
        .get("/customers?key_type=email&key=new.shopper@example.com")
        .await;
    assert_eq!(
        created.body[0]["customer_id"],
        all[0]["contact"]["matchKey"]
    );
    assert_eq!(created.body[0]["mobile"], "+46709998877");
    let stored = h
        .sim
        .contact(DEMO_KEY, all[0]["contact"]["matchKey"].as_str().unwrap())
        .unwrap();
    assert_eq!(stored["meta"]["source"], "order-import");
}

#[tokio::test]
async fn an_unknown_customer_is_not_created_unless_the_market_allows_it() {
    let (h, _sitoo) = start("").await;
    accepted(&h, &batch(&[1004, 1005], "closed")).await;
    assert_eq!(h.sim.contacts_created(DEMO_KEY), 0);
    assert!(receipts(&h).is_empty());
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "skipped")]).await,
        Some(2.0)
    );
}

#[tokio::test]
async fn a_malformed_batch_is_400_and_bad_auth_401() {
    let (h, sitoo) = start("").await;
    let a = h
        .send(
            Method::POST,
            "/events",
            &json!([{"event_type": "order", "data": {}}]),
        )
        .await;
    a.assert_error(400, "invalid_input");
    assert_eq!(a.message(), "[0].event_id must be a string");
    let b = h
        .call(
            Method::POST,
            "/demo/SE/events",
            Some("wrong-key"),
            Some(&batch(&[1001], "closed").to_string()),
            &[],
        )
        .await;
    assert_eq!(b.status, 401);
    assert_eq!(sitoo.calls(), 0);
    assert!(receipts(&h).is_empty());
}

#[tokio::test]
async fn an_order_event_that_is_not_closed_is_acknowledged_and_ignored() {
    let (h, sitoo) = start("").await;
    let mut body = batch(&[1001], "open");
    body.as_array_mut()
        .unwrap()
        .push(json!({"event_id": "z", "event_type": "z-report",
        "event_date": 1, "account_id": ACCOUNT, "data": {}}));
    let a = h.send(Method::POST, "/events", &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(sitoo.calls(), 0, "the order is not even read");
    assert!(receipts(&h).is_empty());
}

#[tokio::test]
async fn orders_customer_resolves_by_id_member_number_email_and_mobile() {
    let (h, _sitoo) = start("").await;
    let resolve = async |body: Value| h.send(Method::POST, "/orders/customer", &body).await;
    let by_id = resolve(json!({"customer_id": ANNA, "email": "bo.berg@example.com"})).await;
    assert_eq!(
        by_id.body,
        json!({"customer_id": ANNA, "contact_type": "Member", "created": false,
               "matched_by": "customer_id", "ambiguous": false})
    );
    let by_number = resolve(json!({"customer_id": "legacy-77", "member_number": "10013"})).await;
    assert_eq!(by_number.body["customer_id"], BO);
    assert_eq!(by_number.body["matched_by"], "member_number");
    let by_mobile = resolve(json!({"mobile": "070-222 33 44"})).await;
    assert_eq!(by_mobile.body["customer_id"], BO);
    assert_eq!(by_mobile.body["matched_by"], "mobile");
    // Anna's email and Bo's mobile: the contact key (email) decides, and the answer says so.
    let both =
        resolve(json!({"email": "anna.andersson@example.com", "mobile": "0702223344"})).await;
    assert_eq!(
        both.body,
        json!({"customer_id": ANNA, "contact_type": "Member", "created": false,
               "matched_by": "email", "ambiguous": true})
    );
    let none = resolve(json!({"email": "nobody@example.com"})).await;
    assert_eq!(
        none.body,
        json!({"customer_id": null, "contact_type": null, "created": false, "matched_by": null,
               "ambiguous": false})
    );
    let bad = resolve(json!({"name_first": "X"})).await;
    bad.assert_error(400, "invalid_input");
    assert_eq!(h.sim.writes(), 0);
}

/// An order Voyado refuses for good (its new contact is invalid) fails alone: the batch answers
/// 200 and the next order is exported — a 503 would block every later event for a day.
#[tokio::test]
async fn an_order_refused_for_good_fails_alone_and_the_batch_goes_on() {
    let (h, _sitoo) = start("order_customer_create = true").await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/contacts",
        FaultAction::Answer(422, r#"{"errorCode":"ValidationError"}"#),
        1,
    ));
    accepted(&h, &batch(&[1004, 1001], "closed")).await;
    let all = receipts(&h);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0]["uniqueReceiptId"], "sitoo-1500-1001");
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "failed")]).await,
        Some(1.0)
    );
}

/// A refused API key is the operator's to fix, not the order's: the batch waits (503) rather
/// than dropping receipts.
#[tokio::test]
async fn a_refused_voyado_key_keeps_the_batch_queued() {
    let (h, _sitoo) = start("").await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/receipts",
        FaultAction::Status(401, None),
        1,
    ));
    let a = h
        .send(Method::POST, "/events", &batch(&[1001], "closed"))
        .await;
    a.assert_error(503, "upstream_unavailable");
    assert!(receipts(&h).is_empty());
}

/// A refund names a customer Voyado does not have: no member is made of a return alone.
#[tokio::test]
async fn a_refund_by_an_unknown_customer_creates_no_contact() {
    let (h, sitoo) = start("order_customer_create = true").await;
    sitoo.add_order(json!({
        "orderid": 1020, "eshopid": 1, "orderdate": 1_795_001_020, "orderstateid": 10,
        "currencycode": "SEK", "moneytotal_gross_all": "-120.00",
        "email": "stranger@example.com", "phone": "0709990011",
        "additionaldata": {"store-externalid": "200", "pos-receiptid": "200-1020"},
        "orderitems": [{"sku": "MUG", "productname": "Mug", "quantity": "-1.000",
                        "moneyitemtotal_net": "-96.00", "moneyitemtotal_vat": "-24.00",
                        "vatvalue": 25, "moneydiscount": "0.00"}],
        "payments": [{"name": "Card", "moneyamount": "-120.00"}]
    }));
    accepted(&h, &batch(&[1020], "closed")).await;
    assert_eq!(h.sim.contacts_created(DEMO_KEY), 0);
    assert!(sent(&h).is_empty());
    assert_eq!(
        metric(&h, "svp_events_total", &[("result", "skipped")]).await,
        Some(1.0)
    );
}
