//! Voyado misbehaving: every row of the Voyado→SPI error table, retries, deadlines, and writes
//! whose result is unclear — settled by reading Voyado's state, never duplicated.
//!
//! These tests run in real time, not paused tokio time: the proxy, the simulator and the client
//! talk over real loopback sockets, and with the clock paused the runtime auto-advances to the
//! next timer whenever every task waits — including while a socket read is about to complete — so
//! the proxy's 400 ms Voyado timeout or the request deadline could fire before an answer that is
//! already on its way, and the timings these tests rely on would not hold. The delays are kept
//! short instead, and nothing waits a fixed time for something that can be polled.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;
use sitoo_voyado_proxy::sim::{FIXTURE, Fault, FaultAction, Simulator};

fn fault(method: Method, path: &'static str, action: FaultAction) -> Fault {
    Fault {
        method,
        path_contains: path,
        action,
        times: 1,
    }
}

/// A Voyado fault; the SPI status, reason and Retry-After; and the Voyado code the answer carries
/// in `error_data.upstream_code` (`None`: no such key).
type StatusCase = (
    FaultAction,
    u16,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

#[tokio::test]
async fn voyado_statuses_map_through_the_error_table() {
    let card = format!("/customers/{ANNA}");
    let cases: [StatusCase; 7] = [
        (
            FaultAction::Status(429, None),
            429,
            "too_many_requests",
            Some("2"),
            None,
        ),
        (
            FaultAction::Status(503, None),
            503,
            "upstream_unavailable",
            Some("2"),
            None,
        ),
        (
            FaultAction::Status(500, None),
            502,
            "bad_gateway",
            None,
            None,
        ),
        (
            FaultAction::Status(500, Some("InvalidSystemConfiguration")),
            502,
            "bad_gateway",
            None,
            Some("InvalidSystemConfiguration"),
        ),
        (FaultAction::Garbage, 502, "bad_gateway", None, None),
        // Voyado's own 500 body, which must not travel on.
        (
            FaultAction::Answer(500, r#"{"message":"An error has occurred."}"#),
            502,
            "bad_gateway",
            None,
            None,
        ),
        (
            FaultAction::Delay(Duration::from_millis(900)),
            504,
            "upstream_timeout",
            None,
            None,
        ),
    ];
    for (action, status, reason, retry_after, upstream) in cases {
        // A fresh proxy each: a 429 pauses the key and failures count towards the breaker.
        let h = Harness::start().await;
        // GETs are retried once on 502/503: fail both attempts.
        let times = if status == 503 { 2 } else { 1 };
        h.sim.inject(Fault {
            times,
            ..fault(Method::GET, "/promotions", action)
        });
        let a = h.get(&card).await;
        a.assert_error(status, reason);
        assert_eq!(
            a.headers.get("retry-after").map(|v| v.to_str().unwrap()),
            retry_after,
            "{reason}"
        );
        assert_eq!(
            a.body["error_data"].get("upstream_code"),
            upstream.map(|code| json!(code)).as_ref(),
            "{}",
            a.body
        );
        assert!(
            !a.body.to_string().contains("error has occurred"),
            "never Voyado's raw body"
        );
    }
}

#[tokio::test]
async fn a_get_is_retried_once_after_a_503() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::GET,
        "/promotions",
        FaultAction::Status(503, None),
    ));
    let a = h.get(&format!("/customers/{ANNA}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(h.seen("GET", "/promotions").len(), 2);
}

#[tokio::test]
async fn a_post_is_never_retried_blindly() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/contacts/8f0c1d2e-0000-4000-8000-000000000001",
        FaultAction::Status(503, None),
    ));
    let a = h
        .send(
            Method::PUT,
            &format!("/customers/{ANNA}"),
            &json!({"name_first": "Annie"}),
        )
        .await;
    a.assert_error(503, "upstream_unavailable");
    assert_eq!(h.seen("POST", "/contacts/").len(), 1);
}

#[tokio::test]
async fn voyado_refusing_a_field_names_it() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/contacts/",
        FaultAction::Status(400, Some("InvalidPhoneNumber")),
    ));
    let a = h
        .send(
            Method::PUT,
            &format!("/customers/{ANNA}"),
            &json!({"mobile": "0709998877"}),
        )
        .await;
    a.assert_field("mobile");
    assert_eq!(a.body["error_data"]["upstream_code"], "InvalidPhoneNumber");
}

#[tokio::test]
async fn voyado_not_found_is_404_and_an_unreachable_voyado_502() {
    let h = Harness::start().await;
    h.get(&format!("/customers/{UNKNOWN_ID}"))
        .await
        .assert_error(404, "not_found");
    h.get(&format!("/customers/{UNKNOWN_ID}/transactions"))
        .await
        .assert_error(404, "not_found");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
        .await
        .unwrap();
    let text = format!(
        "[[market]]\ntenant = \"demo\"\nmarket = \"SE\"\ncrm_api_keys = [\"se-key\"]\n\
         voyado_url = \"{dead}\"\nvoyado_api_key = \"k\"\ndefault_country = \"SE\"\n"
    );
    let down = Harness::serve(sim, &text).await;
    down.get("/consents").await.assert_error(502, "bad_gateway");
}

#[tokio::test]
async fn a_key_being_created_elsewhere_is_customer_exists() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/contacts",
        FaultAction::Status(409, Some("ContactWithKeyIsBeingCreated")),
    ));
    let a = h
        .send(
            Method::POST,
            "/customers",
            &json!({"email": "race@example.com", "name_first": "R"}),
        )
        .await;
    a.assert_error(400, "customer_exists");
    // One re-lookup after the refusal.
    assert_eq!(
        h.seen("GET", "/contacts/id").len(),
        3,
        "own type, promotable type, re-lookup"
    );
}

#[tokio::test]
async fn an_unclear_create_is_settled_by_lookup_not_by_a_second_create() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/contacts",
        FaultAction::ApplyThenHang(Duration::from_millis(900)),
    ));
    let a = h
        .send(
            Method::POST,
            "/customers",
            &json!({"email": "slow@example.com", "name_first": "S"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["email"], "slow@example.com");
    assert_eq!(
        h.seen("POST", "/api/v2/contacts").len(),
        1,
        "never a second create"
    );
    assert_eq!(h.sim.writes(), 1);
}

/// Short redeem timings for demo/SE, so an unclear redeem settles in well under a second.
const QUICK_REDEEM: &str = "redeem_timeout_ms = 400\nredeem_window_ms = 700";

#[tokio::test]
async fn an_unclear_redeem_is_read_back_only_after_voyados_window() {
    let h = Harness::with(QUICK_REDEEM).await;
    h.sim.inject(fault(
        Method::POST,
        "/bonuschecks/",
        FaultAction::ApplyThenHang(Duration::from_millis(900)),
    ));
    let body = json!({"bonus_checks": [CHECK_100]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let redeem = &h.seen("POST", "/bonuschecks/")[0];
    let read_back = h.seen("GET", "/bonuschecks/redeemed");
    assert_eq!(read_back.len(), 1);
    let waited = read_back[0].at - redeem.at;
    assert!(
        waited >= Duration::from_millis(700),
        "read back {waited:?} after the redeem, inside Voyado's window"
    );
    assert_eq!(
        metric(&h, "svp_redeem_unclear_total", &[("outcome", "landed")]).await,
        Some(1.0)
    );
}

/// Voyado's documented numbers: it works on a redeem for up to 4.5 s. One answered after 4 s is
/// a redeem, not a failure, and nothing is reactivated.
#[tokio::test]
async fn a_redeem_answered_after_four_seconds_is_redeemed() {
    let h = Harness::with_deadline(8000).await;
    h.sim.inject(fault(
        Method::POST,
        "/bonuschecks/",
        FaultAction::Delay(Duration::from_millis(4100)),
    ));
    let body = json!({"bonus_checks": [CHECK_100]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["bonus_checks"], json!([CHECK_100]));
    assert!(
        h.seen("GET", "/bonuschecks/redeemed").is_empty(),
        "answered by Voyado, not given up on and read back"
    );
    assert!(h.seen("POST", "/reactivate").is_empty());
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), true);
}

/// Voyado gives up waiting (504 `GatewayTimeout`) and the redeem lands 4 s after it was sent: the
/// read-back waits out the 4.5 s window, sees it, and the till is told it is redeemed.
#[tokio::test]
async fn a_redeem_landing_after_voyado_gave_up_is_redeemed() {
    let h = Harness::with_deadline(8000).await;
    h.sim.inject(fault(
        Method::POST,
        "/bonuschecks/",
        FaultAction::GiveUpThenLand(Duration::from_millis(4000)),
    ));
    let body = json!({"bonus_checks": [CHECK_100]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(h.seen("POST", "/reactivate").is_empty());
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), true);
}

/// The first check's redeem was unclear and read back as redeemed (by this till or another: no
/// telling); the second fails. The first is left as it is — logged and counted — never
/// reactivated: a voucher another till used must not become spendable again.
#[tokio::test]
async fn a_failing_second_item_never_reactivates_an_unclear_redeem() {
    let h = Harness::with(QUICK_REDEEM).await;
    let logs = Captured::default();
    let _logging = logs.install();
    h.sim.inject(fault(
        Method::POST,
        CHECK_100,
        FaultAction::GiveUpThenLand(Duration::from_millis(200)),
    ));
    h.sim.inject(fault(
        Method::POST,
        CHECK_SECOND,
        FaultAction::Status(409, Some("BonusCheckExpired")),
    ));
    let body = json!({"bonus_checks": [CHECK_100, CHECK_SECOND]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    a.assert_error(400, "expired");
    assert!(
        h.seen("POST", "/reactivate").is_empty(),
        "nothing reactivated"
    );
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), true);
    assert_eq!(
        metric(
            &h,
            "svp_redeem_unclear_total",
            &[("outcome", "left_redeemed")]
        )
        .await,
        Some(1.0)
    );
    assert!(
        logs.text().contains(CHECK_100),
        "the log names the check for staff"
    );
}

/// The answer never came and reading the state back fails too: the check is left as it is (it
/// may be redeemed), counted as unknown, and the till is told it failed.
#[tokio::test]
async fn a_redeem_that_stays_unclear_is_left_as_it_is_and_counted() {
    let h = Harness::with(QUICK_REDEEM).await;
    h.sim.inject(fault(
        Method::POST,
        "/bonuschecks/",
        FaultAction::ApplyThenHang(Duration::from_millis(900)),
    ));
    h.sim.inject(fault(
        Method::GET,
        "/bonuschecks/redeemed",
        FaultAction::Status(500, None),
    ));
    let body = json!({"bonus_checks": [CHECK_100]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    a.assert_error(504, "upstream_timeout");
    assert!(h.seen("POST", "/reactivate").is_empty());
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), true);
    assert_eq!(
        metric(&h, "svp_redeem_unclear_total", &[("outcome", "unknown")]).await,
        Some(1.0)
    );
}

#[tokio::test]
async fn a_failed_promotion_gives_back_the_bonus_checks_of_the_same_redeem() {
    let h = Harness::with(QUICK_REDEEM).await;
    h.sim.inject(fault(
        Method::POST,
        "/promotions/",
        FaultAction::Status(500, None),
    ));
    let body = json!({"bonus_checks": [CHECK_100, CHECK_SECOND], "promotions": [PROMO_10]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    a.assert_error(502, "bad_gateway");
    for check in [CHECK_100, CHECK_SECOND] {
        assert_eq!(h.check_redeemed(ANNA, check), false, "{check}");
    }
    assert_eq!(h.seen("POST", "/reactivate").len(), 2);
    assert_eq!(
        h.sim.promotion(DEMO_KEY, ANNA, PROMO_10).unwrap()["redeemed"],
        false
    );
}

#[tokio::test]
async fn the_deadline_stops_the_waiting_but_never_a_write_half_way() {
    let h = Harness::with_deadline(600).await;
    // Two lookups of 250 ms, then a create that is still in flight when the deadline passes.
    h.sim.inject(Fault {
        times: 2,
        ..fault(
            Method::GET,
            "/contacts/id",
            FaultAction::Delay(Duration::from_millis(250)),
        )
    });
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/contacts",
        FaultAction::Delay(Duration::from_millis(350)),
    ));
    let body = json!({"email": "late@example.com", "name_first": "L"});
    let a = h.send(Method::POST, "/customers", &body).await;
    a.assert_error(504, "upstream_timeout");
    assert_eq!(h.sim.writes(), 0, "answered before the create landed");
    // The create finishes on its own (its delay runs out about 250 ms after the deadline): wait
    // for it with a bounded poll (at most 5 s) rather than a fixed sleep. Real time, because the
    // simulator's delay and the sockets are real; see the note at the top of the file.
    let mut polls = 0;
    while h.sim.writes() == 0 && polls < 250 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        polls += 1;
    }
    assert_eq!(
        h.sim.writes(),
        1,
        "the create landed (waited {polls} x 20 ms)"
    );
    // Once: the proxy sent one create and never a second after the deadline.
    let creates = h.seen("POST", "/api/v2/contacts");
    assert_eq!(
        creates
            .iter()
            .filter(|r| r.path == "/api/v2/contacts")
            .count(),
        1
    );
    let found = h
        .get("/customers?key_type=email&key=late%40example.com")
        .await;
    assert_eq!(found.body[0]["email"], "late@example.com", "{}", found.body);
}

/// The fault's path part and action; the SPI call (method, path, body); the SPI status and reason;
/// and `error_data.upstream_code`: the Voyado code whenever Voyado sent one, absent when Voyado
/// answered a bare status (the contract: the code travels there, never Voyado's body).
type CodeCase = (
    &'static str,
    FaultAction,
    Method,
    String,
    serde_json::Value,
    u16,
    &'static str,
    Option<&'static str>,
);

/// Each Voyado code of the contract's second error table, met where Voyado would answer it
/// (after the proxy's own checks passed: a race with another till, say).
#[tokio::test]
async fn every_voyado_code_maps_to_its_spi_answer() {
    let redeem_check = json!({"bonus_checks": [CHECK_100]});
    let redeem_promo = json!({"promotions": [PROMO_10]});
    let create = json!({"email": "new@example.com", "name_first": "N"});
    let edit = json!({"email": "anna.b@example.com"});
    let cases: Vec<CodeCase> = vec![
        (
            "/bonuschecks/",
            FaultAction::Status(409, Some("BonusCheckAlreadyRedeemed")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_check.clone(),
            400,
            "already_redeemed",
            Some("BonusCheckAlreadyRedeemed"),
        ),
        (
            "/bonuschecks/",
            FaultAction::Status(409, Some("BonusCheckExpired")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_check.clone(),
            400,
            "expired",
            Some("BonusCheckExpired"),
        ),
        (
            "/bonuschecks/",
            FaultAction::Status(404, Some("BonusCheckNotFound")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_check.clone(),
            404,
            "not_found",
            Some("BonusCheckNotFound"),
        ),
        (
            "/promotions/",
            FaultAction::Status(409, Some("PromotionAlreadyRedeemed")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_promo.clone(),
            400,
            "already_redeemed",
            Some("PromotionAlreadyRedeemed"),
        ),
        (
            "/promotions/",
            FaultAction::Status(409, Some("PromotionExpired")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_promo.clone(),
            400,
            "expired",
            Some("PromotionExpired"),
        ),
        (
            "/promotions/",
            FaultAction::Status(409, Some("PromotionNotValidForRedemptionChannel")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_promo.clone(),
            400,
            "not_pos_channel",
            Some("PromotionNotValidForRedemptionChannel"),
        ),
        (
            "/promotions/",
            FaultAction::Status(404, Some("PromotionNotAssociatedWithContact")),
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            redeem_promo.clone(),
            404,
            "not_found",
            Some("PromotionNotAssociatedWithContact"),
        ),
        (
            "/api/v2/contacts",
            FaultAction::Status(409, Some("ApprovedContactWithKeyExists")),
            Method::POST,
            "/customers".into(),
            create.clone(),
            400,
            "customer_exists",
            Some("ApprovedContactWithKeyExists"),
        ),
        (
            "/api/v2/contacts",
            FaultAction::Status(400, Some("InvalidEmailAddress")),
            Method::POST,
            "/customers".into(),
            create.clone(),
            400,
            "invalid_input",
            Some("InvalidEmailAddress"),
        ),
        (
            "/api/v2/contacts",
            FaultAction::Status(400, Some("InvalidSocialSecurityNumber")),
            Method::POST,
            "/customers".into(),
            create.clone(),
            400,
            "invalid_input",
            Some("InvalidSocialSecurityNumber"),
        ),
        (
            "/api/v2/contacts",
            // Voyado's documented 422: a sentence per error, no field member.
            FaultAction::Answer(
                422,
                r#"{"errorCode":"ValidationError","validationErrors":[{"errorDescription":"'firstName' must not be empty."}]}"#,
            ),
            Method::POST,
            "/customers".into(),
            create.clone(),
            400,
            "invalid_input",
            Some("ValidationError"),
        ),
        (
            "/contacts/8f0c",
            FaultAction::Status(404, Some("ContactNotFound")),
            Method::PUT,
            format!("/customers/{ANNA}"),
            edit.clone(),
            404,
            "not_found",
            Some("ContactNotFound"),
        ),
        (
            "/contacts/8f0c",
            FaultAction::Status(429, None),
            Method::PUT,
            format!("/customers/{ANNA}"),
            edit.clone(),
            429,
            "too_many_requests",
            None,
        ),
        (
            "/contacts/8f0c",
            FaultAction::Status(503, None),
            Method::PUT,
            format!("/customers/{ANNA}"),
            edit.clone(),
            503,
            "upstream_unavailable",
            None,
        ),
        (
            "/contacts/8f0c",
            FaultAction::Status(500, Some("InvalidSystemConfiguration")),
            Method::PUT,
            format!("/customers/{ANNA}"),
            edit.clone(),
            502,
            "bad_gateway",
            Some("InvalidSystemConfiguration"),
        ),
    ];
    for (part, action, method, path, body, status, reason, upstream) in cases {
        let h = Harness::start().await;
        h.sim.inject(fault(Method::POST, part, action));
        let a = h.send(method, &path, &body).await;
        a.assert_error(status, reason);
        assert_eq!(
            a.body["error_data"].get("upstream_code"),
            upstream.map(|code| json!(code)).as_ref(),
            "{}",
            a.body
        );
        if reason == "invalid_input" {
            // The field the Voyado code (or its validation error) is about.
            let expected = match upstream {
                Some("InvalidEmailAddress") => "email",
                Some("InvalidSocialSecurityNumber") => "personal_id",
                Some("ValidationError") => "name_first",
                other => panic!("no field for {other:?}"),
            };
            let field = a.message().split(' ').next().unwrap();
            assert_eq!(field, expected, "names the field: {}", a.message());
        }
    }
}

#[tokio::test]
async fn voyado_saying_already_active_on_undo_is_success() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/reactivate",
        FaultAction::Status(406, Some("RewardVoucherAlreadyActivated")),
    ));
    let body = json!({"bonus_checks": [CHECK_REDEEMED]});
    let a = h
        .send(Method::DELETE, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["bonus_checks"], json!([CHECK_REDEEMED]));
}

#[tokio::test]
async fn contact_not_found_on_search_and_person_lookup_is_an_empty_list() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::GET,
        "/personlookup",
        FaultAction::Status(404, None),
    ));
    assert_eq!(
        h.get("/lookup?key_type=personal_id&key=700101-1233")
            .await
            .body,
        json!([])
    );
    h.sim.inject(fault(
        Method::GET,
        "/personlookup",
        FaultAction::Answer(200, "{}"),
    ));
    assert_eq!(
        h.get("/lookup?key_type=personal_id&key=700101-1233")
            .await
            .body,
        json!([])
    );
    assert_eq!(
        h.get("/customers?key_type=member_number&key=99999")
            .await
            .body,
        json!([])
    );
}

/// Voyado's 422 sentence that names no field the mapping knows, and quotes what was sent: the
/// answer names no field and carries none of Voyado's text.
#[tokio::test]
async fn a_422_naming_no_known_field_passes_no_voyado_text_on() {
    let h = Harness::start().await;
    h.sim.inject(fault(
        Method::POST,
        "/api/v2/contacts",
        FaultAction::Answer(
            422,
            r#"{"errorCode":"ValidationError","validationErrors":[{"errorDescription":"Value 'Zlatan Svensson' is reserved."}]}"#,
        ),
    ));
    let body = json!({"email": "new.person@example.com", "name_first": "Zlatan"});
    let a = h.send(Method::POST, "/customers", &body).await;
    a.assert_error(400, "invalid_input");
    assert_eq!(a.message(), "Voyado rejected the request", "{}", a.body);
    assert!(!a.body.to_string().contains("Svensson"), "{}", a.body);
    assert!(!a.body.to_string().contains("reserved"), "{}", a.body);
}

/// A long-time member's 150 bonus checks: Voyado pages at 100, so the 150th is on the second
/// page of every list the proxy reads — the card's available checks and redeem's full list.
#[tokio::test]
async fn a_member_with_150_bonus_checks_can_redeem_the_150th() {
    let h = Harness::start().await;
    let older: Vec<serde_json::Value> = (1..=150u128)
        .map(|n| {
            json!({
                "id": uuid::Uuid::from_u128(0x8f0c1d2e_4000_4000_8000_000000000000 + n).to_string(),
                "checkNumber": format!("OLD{n:04}"), "name": "50 kr",
                "expiresOn": "2099-12-31T22:59:59Z", "redeemed": false, "redeemedOn": null,
                "value": {"amount": 50, "currency": "SEK"}, "localValues": [], "bonusPoints": 0
            })
        })
        .collect();
    let last = older.last().unwrap()["id"].as_str().unwrap().to_owned();
    h.sim.add_bonus_checks(DEMO_KEY, ANNA, older);

    let card = h.get(&format!("/customers/{ANNA}")).await;
    let shown: Vec<&str> = card.body["bonus_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["bonus_check_id"].as_str())
        .collect();
    assert!(shown.len() > 150, "every page of the available checks");
    assert!(shown.contains(&last.as_str()));
    let a = h
        .send(
            Method::POST,
            &format!("/customers/{ANNA}/redeem"),
            &json!({"bonus_checks": [last]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(h.check_redeemed(ANNA, &last), true);
    let full_list = h.seen("GET", "/bonuschecks");
    assert!(
        full_list
            .iter()
            .any(|r| r.path.ends_with("/bonuschecks") && r.query.contains("offset=100")),
        "redeem read the second page: {:?}",
        full_list.iter().map(|r| &r.query).collect::<Vec<_>>()
    );
}

/// The list is cut at `limits.voyado_list_max_items`, so a runaway list cannot fill memory.
#[tokio::test]
async fn a_list_is_read_up_to_its_cap() {
    let h = Harness::with_top("[limits]\nvoyado_list_max_items = 120", "").await;
    let checks: Vec<serde_json::Value> = (1..=300u128)
        .map(|n| {
            json!({
                "id": uuid::Uuid::from_u128(0x8f0c1d2e_4000_4000_8000_000000000000 + n).to_string(),
                "name": "50 kr", "expiresOn": "2099-12-31T22:59:59Z", "redeemed": false,
                "value": {"amount": 50, "currency": "SEK"}, "localValues": []
            })
        })
        .collect();
    h.sim.add_bonus_checks(DEMO_KEY, NORA, checks);
    let card = h.get(&format!("/customers/{NORA}")).await;
    assert_eq!(card.status, 200, "{}", card.body);
    // Nora's own check, in another currency, is among the 120 read and left out of the card.
    let shown = card.body["bonus_checks"].as_array().map_or(0, Vec::len);
    assert!((119..=120).contains(&shown), "{shown}");
    assert_eq!(
        h.seen("GET", "/bonuschecks/available").len(),
        2,
        "pages past the cap are not asked for"
    );
}

/// Voyado lists the available promotions; one redeemed at another till is not there. The proxy
/// does not answer "not found" on that: it asks Voyado by redeeming it, and Voyado's
/// `PromotionAlreadyRedeemed` decides — before any bonus check of the same request is touched.
#[tokio::test]
async fn a_promotion_redeemed_elsewhere_is_already_redeemed() {
    let h = Harness::start().await;
    let listed = h.get(&format!("/customers/{ANNA}")).await.body["promotions"].to_string();
    assert!(!listed.contains(PROMO_REDEEMED), "not listed: {listed}");
    let body = json!({"bonus_checks": [CHECK_100], "promotions": [PROMO_REDEEMED]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &body)
        .await;
    a.assert_error(400, "already_redeemed");
    let asked = h.seen("POST", "/promotions/");
    assert_eq!(asked.len(), 1, "Voyado was asked");
    assert!(asked[0].path.contains(PROMO_REDEEMED));
    assert!(h.seen("POST", "/bonuschecks/").is_empty(), "asked first");
    assert_eq!(h.sim.writes(), 0);

    let unknown = json!({"promotions": [UNKNOWN_ID]});
    let a = h
        .send(Method::POST, &format!("/customers/{ANNA}/redeem"), &unknown)
        .await;
    a.assert_error(404, "not_found");
}

/// The simulator holds Voyado to its documents, so the proxy's calls cannot pass on an assumption:
/// v2 `updateContactType` to `Member` does not work, v3 does, and neither approves anyone.
#[tokio::test]
async fn the_simulator_refuses_the_undocumented_promote_and_approve() {
    let sim = Simulator::start(SocketAddr::from(([127, 0, 0, 1], 0)), FIXTURE)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let post = |path: String| {
        client
            .post(format!("{}{path}", sim.url()))
            .header("apikey", DEMO_KEY)
            .header("User-Agent", "test/1")
            .header("Content-Type", "application/json")
            .send()
    };
    let v2 = post(format!(
        "/api/v2/contacts/{ERIK}/updateContactType?contactTypeId=Member"
    ))
    .await
    .unwrap();
    assert_eq!(v2.status(), 400);
    let v3 = post(format!(
        "/api/v3/contacts/{ULLA}/updateContactType?contactTypeId=Member"
    ))
    .await
    .unwrap();
    assert_eq!(v3.status(), 200);
    assert_eq!(
        sim.contact(DEMO_KEY, ULLA).unwrap()["meta"]["approved"],
        false
    );
}
