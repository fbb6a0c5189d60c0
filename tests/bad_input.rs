//! Bad input on every endpoint: the SPI envelope with the right status, a message naming the
//! field, and nothing written to Voyado.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

struct Op {
    name: &'static str,
    method: Method,
    /// `{id}` stands for the customer id.
    path: &'static str,
    body: Option<Value>,
}

fn operations() -> Vec<Op> {
    let op = |name, method, path, body| Op {
        name,
        method,
        path,
        body,
    };
    vec![
        op(
            "search",
            Method::GET,
            "/customers?key_type=email&key=anna.andersson%40example.com",
            None,
        ),
        op(
            "add",
            Method::POST,
            "/customers",
            Some(json!({"email": "new@example.com", "name_first": "N"})),
        ),
        op("get", Method::GET, "/customers/{id}", None),
        op(
            "update",
            Method::PUT,
            "/customers/{id}",
            Some(json!({"name_first": "X"})),
        ),
        op(
            "transactions",
            Method::GET,
            "/customers/{id}/transactions",
            None,
        ),
        op(
            "redeem",
            Method::POST,
            "/customers/{id}/redeem",
            Some(json!({"bonus_checks": [CHECK_100]})),
        ),
        op(
            "undo",
            Method::DELETE,
            "/customers/{id}/redeem",
            Some(json!({"bonus_checks": [CHECK_REDEEMED]})),
        ),
        op("consents", Method::GET, "/consents", None),
        op(
            "lookup",
            Method::GET,
            "/lookup?key_type=personal_id&key=700101-1233",
            None,
        ),
    ]
}

impl Op {
    fn path(&self, id: &str) -> String {
        self.path.replace("{id}", id)
    }

    async fn call(
        &self,
        h: &Harness,
        prefix: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Answer {
        let path = format!("{prefix}{}", self.path(ANNA));
        let default = self.body.as_ref().map(Value::to_string);
        h.call(
            self.method.clone(),
            &path,
            key,
            body.or(default.as_deref()),
            &[],
        )
        .await
    }
}

/// The envelope without the per-request id, to compare refusals.
fn without_id(a: &Answer) -> Value {
    let mut body = a.body.clone();
    body["request_id"] = Value::Null;
    body
}

#[tokio::test]
async fn every_endpoint_refuses_missing_wrong_and_foreign_credentials_alike() {
    let h = Harness::start().await;
    for op in operations() {
        let cases = [
            ("/demo/SE", None),
            ("/demo/SE", Some("wrong-key")),
            ("/demo/SE", Some("other-key")),
            ("/demo/SE", Some("no-key")),
            ("/nope/SE", Some("se-key")),
            ("/demo/DK", Some("se-key")),
        ];
        let mut first: Option<Value> = None;
        for (prefix, key) in cases {
            let a = op.call(&h, prefix, key, None).await;
            a.assert_error(401, "unauthorized");
            assert_eq!(
                a.headers["www-authenticate"],
                "Basic realm=\"sitoo-voyado-proxy\""
            );
            let body = without_id(&a);
            // An unknown tenant or market answers exactly like a wrong key.
            assert_eq!(
                first.get_or_insert(body.clone()),
                &body,
                "{}: {prefix} {key:?}",
                op.name
            );
        }
    }
    assert!(h.sim.requests().is_empty(), "Voyado was never called");
}

#[tokio::test]
async fn malformed_json_is_refused_on_every_body_endpoint() {
    let h = Harness::start().await;
    for op in operations().into_iter().filter(|o| o.body.is_some()) {
        for bad in [r#"{"email": "#, "not json", r#"{"a":1}}"#] {
            let a = op.call(&h, "/demo/SE", Some("se-key"), Some(bad)).await;
            a.assert_field("body");
            assert!(a.message().contains("JSON"), "{}: {}", op.name, a.message());
        }
    }
    assert_eq!(h.sim.writes(), 0);
}

#[tokio::test]
async fn wrong_json_types_name_the_field() {
    let h = Harness::start().await;
    let cases = [
        (Method::POST, "/customers".to_owned(), json!([1, 2]), "body"),
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": 5, "name_first": "A"}),
            "email",
        ),
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": "n@example.com", "name_first": ["A"]}),
            "name_first",
        ),
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": "n@example.com", "name_first": "A", "consents": "all"}),
            "consents",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"invoice_address": "Street 1"}),
            "invoice_address",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"accepts_communication": [true]}),
            "accepts_communication",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"gender": "robot"}),
            "gender",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"birth_date": "31/02/1990"}),
            "birth_date",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"personal_id": "811218-9877"}),
            "personal_id",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"invoice_address": {"country_id": "Sverige"}}),
            "invoice_address.country_id",
        ),
        (
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            json!({"bonus_checks": CHECK_100}),
            "bonus_checks",
        ),
        (
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            json!({"promotions": [7]}),
            "promotions[0]",
        ),
        (
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            json!({"items": [{"type": "coupon", "id": CHECK_100}]}),
            "items[0].type",
        ),
        (
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            json!({}),
            "body",
        ),
        (
            Method::POST,
            format!("/customers/{ANNA}/redeem"),
            json!({"bonus_checks": []}),
            "body",
        ),
        (
            Method::DELETE,
            format!("/customers/{ANNA}/redeem"),
            json!({"promotions": [[]]}),
            "promotions[0]",
        ),
    ];
    for (method, path, body, field) in cases {
        let a = h.send(method, &path, &body).await;
        a.assert_field(field);
    }
    assert_eq!(h.sim.writes(), 0);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_or_without_a_length() {
    let h = Harness::start().await;
    let big = format!(r#"{{"name_first": "{}"}}"#, "x".repeat(70 * 1024));
    for op in operations().into_iter().filter(|o| o.body.is_some()) {
        let a = op.call(&h, "/demo/SE", Some("se-key"), Some(&big)).await;
        a.assert_error(400, "body_too_large");
        // Chunked, so the limit trips while reading rather than on Content-Length.
        let answer = chunked(
            &h,
            &op.method,
            &format!("/demo/SE{}", op.path(ANNA)),
            big.as_bytes(),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{}: {answer}", op.name);
        assert!(answer.contains("body_too_large"), "{}: {answer}", op.name);
    }
    assert_eq!(h.sim.writes(), 0);
}

/// Sends `body` with `Transfer-Encoding: chunked` over a raw socket; returns the raw answer.
async fn chunked(h: &Harness, method: &Method, path: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = h.proxy.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // "pos:se-key"
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic cG9zOnNlLWtleQ==\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(8192) {
        let frame = format!("{:x}\r\n", chunk.len());
        // The proxy may answer and close before the whole body is sent.
        if stream.write_all(frame.as_bytes()).await.is_err()
            || stream.write_all(chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn ids_that_are_not_guids_never_reach_voyado() {
    // A path id that is no GUID is "no such customer" (404); an id in a body is invalid input.
    let h = Harness::start().await;
    let customer_ops: Vec<Op> = operations()
        .into_iter()
        .filter(|o| o.path.contains("{id}"))
        .collect();
    for op in &customer_ops {
        for bad in [
            "not-a-guid",
            "..%2F..%2Fconsents",
            "..%2F",
            "a26d8975-3b86-43c0-9b12-a86401074770%3Fx",
            "x%23y",
        ] {
            let default = op.body.as_ref().map(Value::to_string);
            let a = h
                .call(
                    op.method.clone(),
                    &format!("/demo/SE{}", op.path(bad)),
                    Some("se-key"),
                    default.as_deref(),
                    &[],
                )
                .await;
            a.assert_error(404, "not_found");
            assert_eq!(a.message(), "customer not found");
        }
    }
    for (method, bad) in [
        (Method::POST, json!({"bonus_checks": ["..%2F"]})),
        (Method::POST, json!({"promotions": ["../../x"]})),
        (Method::DELETE, json!({"bonus_checks": ["1"]})),
    ] {
        let a = h
            .send(method, &format!("/customers/{ANNA}/redeem"), &bad)
            .await;
        assert_eq!(a.status, 400, "{}", a.body);
    }
    let a = h
        .call(
            Method::DELETE,
            &format!("/demo/SE/customers/{ANNA}/redeem?bonus_checks=..%2F"),
            Some("se-key"),
            None,
            &[],
        )
        .await;
    a.assert_field("bonus_checks");
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
}

#[tokio::test]
async fn bad_phones_and_emails_name_the_field_before_any_voyado_call() {
    let h = Harness::start().await;
    for path in [
        "/customers?key_type=mobile&key=12",
        "/customers?key_type=mobile&key=not-a-phone",
        "/customers?key_type=email&key=nope",
        "/customers?key_type=personal_id&key=811218-9877",
        "/customers?key_type=email",
        "/customers?key=x",
        "/lookup?key_type=mobile&key=12",
        "/lookup?key_type=personal_id&key=123",
    ] {
        let a = h.get(path).await;
        assert_eq!(a.status, 400, "{path}: {}", a.body);
        assert!(a.message().starts_with("key"), "{path}: {}", a.message());
    }
    let cases = [
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": "n@example.com", "name_first": "N", "mobile": "abc"}),
            "mobile",
        ),
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": "nope", "name_first": "N"}),
            "email",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"mobile": "12"}),
            "mobile",
        ),
        (
            Method::PUT,
            format!("/customers/{ANNA}"),
            json!({"email": "a@b"}),
            "email",
        ),
    ];
    for (method, path, body, field) in cases {
        h.send(method, &path, &body).await.assert_field(field);
    }
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());
}

#[tokio::test]
async fn unknown_key_types_are_refused() {
    let h = Harness::start().await;
    let a = h.get("/customers?key_type=shoe_size&key=42").await;
    a.assert_field("key_type");
    assert!(
        a.message().contains("email"),
        "lists the known types: {}",
        a.message()
    );
    h.get("/lookup?key_type=email&key=a@b.se")
        .await
        .assert_field("key_type");
    let no = h
        .get_as(
            "/demo/NO/customers?key_type=personal_id&key=811218-9876",
            "no-key",
        )
        .await;
    no.assert_field("key");
    assert!(no.message().contains("not supported"), "{}", no.message());
    assert!(h.sim.requests().is_empty());
}

#[tokio::test]
async fn add_checks_the_key_and_required_fields_first() {
    let h = Harness::start().await;
    h.send(Method::POST, "/customers", &json!({"name_first": "N"}))
        .await
        .assert_field("email");
    h.send(
        Method::POST,
        "/customers",
        &json!({"email": "", "name_first": "N"}),
    )
    .await
    .assert_field("email");
    h.send(
        Method::POST,
        "/customers",
        &json!({"email": "n@example.com"}),
    )
    .await
    .assert_field("name_first");
    h.send(
        Method::POST,
        "/customers",
        &json!({"email": "n@example.com", "name_first": " "}),
    )
    .await
    .assert_field("name_first");
    let empty = h
        .call(
            Method::POST,
            "/demo/SE/customers",
            Some("se-key"),
            Some(""),
            &[],
        )
        .await;
    empty.assert_field("body");
    assert!(h.sim.requests().is_empty());
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let h = Harness::start().await;
    let a = h.get_as("/demo/SE/nothing", "se-key").await;
    a.assert_error(404, "not_found");
    let a = h.call(Method::GET, "/", None, None, &[]).await;
    a.assert_error(404, "not_found");
    let a = h
        .call(
            Method::DELETE,
            "/demo/SE/consents",
            Some("se-key"),
            None,
            &[],
        )
        .await;
    a.assert_error(405, "method_not_allowed");
    assert_eq!(a.body["error_code"], "bad-request");
    assert_eq!(a.headers["allow"], "GET");
    let a = h
        .call(
            Method::POST,
            &format!("/demo/SE/customers/{ANNA}"),
            Some("se-key"),
            None,
            &[],
        )
        .await;
    a.assert_error(405, "method_not_allowed");
    assert_eq!(a.headers["allow"], "GET, PUT, PATCH");
}

#[tokio::test]
async fn a_bad_limit_names_the_field() {
    let h = Harness::start().await;
    for limit in ["0", "101", "-1", "ten"] {
        h.get(&format!("/customers/{ANNA}/transactions?limit={limit}"))
            .await
            .assert_field("limit");
    }
    assert!(h.sim.requests().is_empty());
}

/// `[limits] redeem_max_items` is the cap a redeem or an undo is held to, not the default of 20:
/// one item over it is refused before any Voyado call, and exactly the cap goes through.
#[tokio::test]
async fn a_redeem_over_the_configured_item_cap_is_refused_before_voyado() {
    let h = Harness::with_top("[limits]\nredeem_max_items = 2\n", "").await;
    let redeem = format!("/customers/{ANNA}/redeem");
    let three = json!({"bonus_checks": [CHECK_100, CHECK_SECOND], "promotions": [PROMO_10]});
    let a = h.send(Method::POST, &redeem, &three).await;
    a.assert_field("body");
    assert!(a.message().contains('3'), "{}", a.body);
    let a = h.send(Method::DELETE, &redeem, &three).await;
    a.assert_field("body");
    let a = h
        .call(
            Method::DELETE,
            &format!(
                "/demo/SE{redeem}?bonus_checks={CHECK_100},{CHECK_SECOND}&promotions={PROMO_10}"
            ),
            Some("se-key"),
            None,
            &[],
        )
        .await;
    a.assert_field("body");
    assert!(h.sim.requests().is_empty(), "{:?}", h.sim.requests());

    let two = json!({"bonus_checks": [CHECK_100, CHECK_SECOND]});
    let a = h.send(Method::POST, &redeem, &two).await;
    assert_eq!(a.status, 200, "{}", a.body);
    for check in [CHECK_100, CHECK_SECOND] {
        assert_eq!(h.check_redeemed(ANNA, check), true, "{check}");
    }
}
