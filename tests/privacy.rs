//! Privacy and isolation: one tenant's key never reads another tenant's customer, and at
//! `RUST_LOG=debug` no email, phone, personal id, name or key reaches the logs — on success
//! paths, on Voyado errors and on timeouts alike.

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::json;
use sitoo_voyado_proxy::sim::{Fault, FaultAction};

/// Awaits one call to the proxy and asserts, before its answer is looked at, which Voyado key
/// every request it caused carried: all `voyado_key` (at least one request), or none at all.
///
/// The requests a call causes are the simulator's log entries added while it ran: the proxy
/// awaits every Voyado call of an operation before answering, and this test injects no delays,
/// so nothing lands in the log after the answer.
async fn served_with(
    h: &Harness,
    voyado_key: Option<&str>,
    call: impl Future<Output = Answer>,
) -> Answer {
    let before = h.sim.requests().len();
    let answer = call.await;
    let seen: Vec<(String, String)> = h.sim.requests()[before..]
        .iter()
        .map(|r| {
            let key = r
                .headers
                .get("apikey")
                .map_or("<none>", |v| v.to_str().unwrap());
            (key.to_owned(), r.path.clone())
        })
        .collect();
    match voyado_key {
        Some(key) => {
            assert!(!seen.is_empty(), "Voyado was never called: {}", answer.body);
            for (used, path) in &seen {
                assert_eq!(used, key, "{path} carried the wrong tenant's Voyado key");
            }
        }
        None => assert!(seen.is_empty(), "Voyado was called: {seen:?}"),
    }
    answer
}

#[tokio::test]
async fn one_tenants_key_cannot_read_another_tenants_customer() {
    let h = Harness::start().await;
    let demo = Some(DEMO_KEY);
    let other = Some(OTHER_KEY);
    let as_other = |path: String| {
        let h = &h;
        async move { h.get_as(&format!("/other/SE{path}"), "other-key").await }
    };
    // demo reads Anna first, so anything remembered from it would be there to leak.
    let a = served_with(&h, demo, h.get(&format!("/customers/{ANNA}"))).await;
    assert_eq!(a.status, 200);
    served_with(&h, other, as_other(format!("/customers/{ANNA}")))
        .await
        .assert_error(404, "not_found");
    served_with(
        &h,
        other,
        as_other(format!("/customers/{ANNA}/transactions")),
    )
    .await
    .assert_error(404, "not_found");
    // The same email exists in both tenants: each key finds its own contact.
    let a = served_with(
        &h,
        other,
        as_other("/customers?key_type=email&key=anna.andersson%40example.com".into()),
    )
    .await;
    assert_eq!(a.body[0]["customer_id"], OLLE, "{}", a.body);
    let a = served_with(
        &h,
        demo,
        h.get("/customers?key_type=email&key=anna.andersson%40example.com"),
    )
    .await;
    assert_eq!(a.body[0]["customer_id"], ANNA);
    // A valid key of one tenant is no key at all for the other's path.
    let a = served_with(
        &h,
        None,
        h.get_as(&format!("/demo/SE/customers/{ANNA}"), "other-key"),
    )
    .await;
    a.assert_error(401, "unauthorized");
    // Writes cannot cross either.
    let body = json!({"bonus_checks": [CHECK_100]});
    let a = served_with(
        &h,
        other,
        h.call(
            Method::POST,
            &format!("/other/SE/customers/{ANNA}/redeem"),
            Some("other-key"),
            Some(&body.to_string()),
            &[],
        ),
    )
    .await;
    a.assert_error(404, "not_found");
    assert_eq!(h.check_redeemed(ANNA, CHECK_100), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_carry_no_personal_data_or_keys() {
    let captured = Captured::default();
    captured.install_globally();

    let h = Harness::start().await;
    // Success paths.
    h.get("/customers?key_type=email&key=anna.andersson%40example.com")
        .await;
    h.get("/customers?key_type=mobile&key=0701112233").await;
    h.get("/customers?key_type=personal_id&key=811218-9876")
        .await;
    h.get("/customers?key_type=mobile&key=0703334455").await; // ambiguous
    h.get("/lookup?key_type=personal_id&key=700101-1233").await;
    h.get(&format!("/customers/{ANNA}/transactions")).await;
    let new = json!({"email": "jane.roe@example.com", "name_first": "Jane", "name_last": "Roe",
                     "mobile": "0709998877", "personal_id": "19850505-5551"});
    assert_eq!(h.send(Method::POST, "/customers", &new).await.status, 200);
    let edit = json!({"name_last": "Andersdotter", "mobile": "0701112244"});
    assert_eq!(
        h.send(Method::PUT, &format!("/customers/{ANNA}"), &edit)
            .await
            .status,
        200
    );
    // Bad input.
    h.get("/customers?key_type=mobile&key=070-12").await;
    h.send(
        Method::POST,
        "/customers",
        &json!({"email": "broken@@example.com", "name_first": "Bo"}),
    )
    .await;
    h.get_as("/demo/SE/consents", "se-key-wrong").await;
    // Someone puts personal data where the tenant and market go.
    h.get_as("/anna.andersson%40example.com/SE/consents", "se-key")
        .await;
    h.get_as("/0701112233/x/y", "se-key").await;
    // Voyado errors, refused and unclear writes, timeouts.
    h.sim.inject(Fault {
        method: Method::GET,
        path_contains: "/contacts/id",
        action: FaultAction::Status(500, Some("InvalidSystemConfiguration")),
        times: 1,
    });
    h.get("/customers?key_type=email&key=anna.andersson%40example.com")
        .await;
    h.sim.inject(Fault {
        method: Method::GET,
        path_contains: "/contacts/id",
        action: FaultAction::Delay(Duration::from_millis(600)),
        times: 1,
    });
    h.get("/customers?key_type=mobile&key=%2B46701112233").await;
    h.sim.inject(Fault {
        method: Method::POST,
        path_contains: "/api/v2/contacts",
        action: FaultAction::ApplyThenHang(Duration::from_millis(700)),
        times: 1,
    });
    let slow =
        json!({"email": "sara.slow@example.com", "name_first": "Sara", "mobile": "0705550000"});
    h.send(Method::POST, "/customers", &slow).await;
    h.sim.inject(Fault {
        method: Method::POST,
        path_contains: "/contacts/",
        action: FaultAction::Status(400, Some("InvalidEmailAddress")),
        times: 1,
    });
    h.send(
        Method::PUT,
        &format!("/customers/{ANNA}"),
        &json!({"email": "anna.new@example.com"}),
    )
    .await;
    // The request's own line names its id, so a till's report can be found in the logs.
    h.call(
        Method::GET,
        "/demo/SE/consents",
        Some("se-key"),
        None,
        &[("Request-ID", "test-id-42")],
    )
    .await;

    let logs = captured.text();
    assert!(logs.contains("request done"), "the capture works");
    assert!(
        logs.contains("route=\"/customers/{customer_id}\""),
        "route templates are logged"
    );
    assert!(logs.contains("voyado call"), "debug events are captured");
    assert!(
        logs.lines()
            .any(|l| l.contains("request done") && l.contains("test-id-42")),
        "no `request done` line with the request id:\n{logs}"
    );
    let secrets = [
        // emails
        "anna.andersson",
        "jane.roe",
        "broken@@",
        "sara.slow",
        "anna.new",
        "example.com",
        // phones, in every shape they were sent
        "46701112233",
        "0701112233",
        "070-12",
        "709998877",
        "0701112244",
        "0705550000",
        "0703334455",
        // personal ids
        "198112189876",
        "811218-9876",
        "197001011233",
        "700101-1233",
        "198505055551",
        "19850505-5551",
        // names
        "Anna",
        "Andersson",
        "Andersdotter",
        "Jane",
        "Roe\"",
        "Sven",
        "Svensson",
        "Sara",
        // keys and credentials
        "se-key",
        "sim-demo-key",
        "sim-other-key",
        "cG9z",
        "apikey: ",
    ];
    for secret in secrets {
        assert!(
            !logs.contains(secret),
            "the logs contain {secret:?}:\n{logs}"
        );
    }
}
