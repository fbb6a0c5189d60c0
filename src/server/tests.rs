//! The layers in-process, through `oneshot`: what a caller sees when something inside fails.

use std::convert::Infallible;

use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::BoxError;
use tower::ServiceExt;

use super::*;
use crate::config::{Config, MappingSource};
use crate::market::Market;
use crate::spi::routes::Matched;
use crate::spi::{Operation, Reason};

fn app() -> Arc<App> {
    let config = Config::parse(
        "[[market]]\ntenant = \"t\"\nmarket = \"m\"\ncrm_api_keys = [\"k\"]\n\
         voyado_url = \"http://127.0.0.1:9\"\nvoyado_api_key = \"k\"\ndefault_country = \"SE\"\n",
        "test",
        |_| MappingSource::BuiltIn,
        |_| None,
    )
    .unwrap();
    App::build(&config).unwrap()
}

async fn json(response: Response<Full<Bytes>>) -> Value {
    let body = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn a_panic_is_an_internal_envelope_with_the_request_id() {
    let service = ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(rescue_layer(&app()))
        .service_fn(|_: Request<()>| async {
            panic!("secret panic text");
            #[allow(unreachable_code)]
            Ok::<_, ProxyError>(Response::new(Full::new(Bytes::new())))
        });
    let request = Request::builder()
        .header(request_id::HEADER, "till-7.42")
        .body(())
        .unwrap();
    let response = service.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers()[request_id::HEADER], "till-7.42");
    let body = json(response).await;
    assert_eq!(body["error_data"]["reason"], "internal");
    assert_eq!(body["error_code"], "other");
    assert_eq!(body["request_id"], "till-7.42");
    assert!(!body.to_string().contains("secret panic text"));
}

#[tokio::test]
async fn a_shed_request_is_a_503_with_retry_after() {
    // A service that is never ready stands for a full concurrency limit.
    let service = ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(rescue_layer(&app()))
        .layer(LoadShedLayer::new())
        .layer(ConcurrencyLimitLayer::new(1))
        .service(tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response<Full<Bytes>>, ProxyError>>()
        }));
    let mut first = service.clone();
    let busy = first.ready().await.unwrap().call(Request::new(()));
    let response = service.oneshot(Request::new(())).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()[http::header::RETRY_AFTER], "1");
    let body = json(response).await;
    assert_eq!(body["error_data"]["reason"], "overloaded");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()));
    drop(busy);
}

#[test]
fn accept_backoff_doubles_up_to_a_second_and_resets() {
    let mut b = Backoff::default();
    let pauses: Vec<u128> = (0..10).map(|_| b.next().as_millis()).collect();
    assert_eq!(pauses, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
    b.reset();
    assert_eq!(b.next().as_millis(), 5);
}

#[tokio::test]
async fn health_and_readiness_answer_without_auth_and_readiness_follows_draining() {
    let app = app();
    let ask = |path: &'static str| {
        let app = app.clone();
        async move {
            stack_for_test(app)
                .oneshot(Request::get(path).body(()).unwrap())
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(ask("/healthz").await, 200);
    assert_eq!(ask("/readyz").await, 200);
    app.start_draining();
    assert_eq!(ask("/readyz").await, 503);
    assert_eq!(ask("/healthz").await, 200);
}

#[tokio::test]
async fn health_routes_answer_head_like_get_and_other_methods_405_with_allow() {
    let app = app();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let ask = |method: Method| {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .unwrap();
            stack_for_test(app.clone()).oneshot(request)
        };
        let head = ask(Method::HEAD).await.unwrap();
        assert_eq!(head.status(), 200, "{path}");
        assert!(head.headers().contains_key(http::header::CONTENT_TYPE));
        assert!(
            head.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .is_empty(),
            "{path}"
        );
        for method in [Method::POST, Method::DELETE, Method::TRACE] {
            let refused = ask(method).await.unwrap();
            assert_eq!(refused.status(), 405, "{path}");
            assert_eq!(refused.headers()[http::header::ALLOW], "GET, HEAD");
            assert_eq!(
                json(refused).await["error_data"]["reason"],
                "method_not_allowed"
            );
        }
    }
}

fn rescue_layer(app: &Arc<App>) -> rescue::RescueLayer {
    rescue::RescueLayer::new(app.served.clone(), app.metrics.clone())
}

/// The one market of [`app`], as routing and authentication would hand it on.
fn market(app: &Arc<App>) -> Arc<Market> {
    app.served().market("t", "m").cloned().unwrap()
}

fn route(operation: Operation, template: &str) -> Matched {
    Matched {
        operation,
        template: template.into(),
        param: None,
    }
}

fn ok(text: String) -> Result<Response<Full<Bytes>>, ProxyError> {
    Ok(Response::new(Full::new(Bytes::from(text))))
}

fn reason(result: Result<Response<Full<Bytes>>, ProxyError>) -> Reason {
    match result {
        Err(ProxyError::Refused(r)) => r.reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The route layer alone: a path under a tenant and market reaches the inner service as a
/// `Routed`, with the segments as sent, the served set and the matched operation; an unknown path
/// and a wrong method never reach it.
#[tokio::test]
async fn the_route_layer_alone_hands_on_what_it_matched() {
    let app = app();
    let service = || {
        ServiceBuilder::new()
            .layer(route::RouteLayer::new(
                app.served.clone(),
                app.draining.clone(),
                app.metrics.clone(),
            ))
            .service(tower::service_fn(|r: handoff::Routed<()>| async move {
                let (id, market) = (&r.route.param.as_ref().unwrap().1, &r.market);
                let markets = r.served.markets.len();
                let what = format!(
                    "{}/{market} {:?} {id} {markets}",
                    r.tenant, r.route.operation
                );
                ok(what)
            }))
    };
    let answer = service()
        .oneshot(Request::get("/t/else/customers/abc").body(()).unwrap())
        .await
        .unwrap();
    let text = answer.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"t/else GetCustomer abc 1");
    let status = |result: Result<Response<Full<Bytes>>, BoxError>| match result {
        Err(e) => match e.downcast::<ProxyError>().map(|e| *e) {
            Ok(ProxyError::Refused(r)) => r.reason,
            other => panic!("{other:?}"),
        },
        Ok(r) => panic!("answered {}", r.status()),
    };
    let unknown = service().oneshot(Request::get("/t/m/nowhere").body(()).unwrap());
    assert_eq!(status(unknown.await), Reason::NotFound);
    let wrong = service().oneshot(Request::delete("/t/m/customers").body(()).unwrap());
    assert_eq!(status(wrong.await), Reason::MethodNotAllowed);
}

/// The auth layer alone, holding the decoy key only: the market comes from the set routing
/// took. The right key hands on that market; a wrong key and an unknown market are one `401`.
#[tokio::test]
async fn the_auth_layer_alone_admits_the_markets_key_only() {
    let app = app();
    let routed = |market: &str, password: &str| {
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("pos:{password}"));
        handoff::Routed {
            request: Request::get("/")
                .header(http::header::AUTHORIZATION, format!("Basic {basic}"))
                .body(())
                .unwrap(),
            tenant: "t".into(),
            market: market.into(),
            served: app.served(),
            route: route(Operation::Consents, "/consents"),
        }
    };
    let service = || {
        ServiceBuilder::new()
            .layer(auth::AuthLayer::new(app.decoy_key.clone()))
            .service(tower::service_fn(
                |a: handoff::Authenticated<()>| async move {
                    ok(format!("{} {:?}", a.market.key, a.route.operation))
                },
            ))
    };
    let admitted = service().oneshot(routed("m", "k")).await.unwrap();
    let text = admitted.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&text[..], b"t/m Consents");
    let wrong_key = service().oneshot(routed("m", "not-k")).await;
    assert_eq!(reason(wrong_key), Reason::Unauthorized);
    let unknown = service().oneshot(routed("other", "k")).await;
    assert_eq!(reason(unknown), Reason::Unauthorized);
}

/// A request's context as the request-id layer makes it on arrival.
fn arrival() -> Arc<context::RequestContext> {
    Arc::new(context::RequestContext::new(
        "till-1".into(),
        &http::HeaderMap::new(),
    ))
}

/// The deadline layer alone, on paused time: the deadline is the market's request timeout from
/// the request's arrival (an events batch gets 13 s), not from when the layer runs; the clock
/// reading taken on arrival is handed on, not read again; and the waiting ends at the deadline
/// with `504`-class `upstream_timeout`.
#[tokio::test(start_paused = true)]
async fn the_deadline_layer_alone_hands_on_the_deadline_and_keeps_it() {
    let app = app();
    let market = market(&app);
    let timeout = market.settings.request_timeout;
    let arrived = arrival();
    let authenticated = |operation| {
        let mut request = Request::new(());
        request.extensions_mut().insert(arrived.clone());
        handoff::Authenticated {
            request,
            market: market.clone(),
            route: route(operation, "/x"),
        }
    };
    // Routing, admission and authentication took a while.
    tokio::time::advance(Duration::from_millis(300)).await;
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let service = {
        let seen = seen.clone();
        ServiceBuilder::new()
            .layer(deadline::DeadlineLayer)
            .service(tower::service_fn(move |a: handoff::Admitted<()>| {
                assert_eq!(a.now, a.context.now, "the clock was read again");
                assert_eq!(a.context.request_id, "till-1");
                seen.lock().push(a.deadline - a.context.started);
                std::future::pending::<Result<Response<Full<Bytes>>, ProxyError>>()
            }))
    };
    let waited = service
        .clone()
        .oneshot(authenticated(Operation::Search))
        .await;
    assert_eq!(reason(waited), Reason::UpstreamTimeout);
    assert_eq!(
        arrived.started.elapsed(),
        timeout,
        "the waiting ends at the deadline"
    );
    let _ = service.oneshot(authenticated(Operation::Events)).await;
    assert_eq!(*seen.lock(), [timeout, Duration::from_secs(13)]);
}

/// The body layer alone, holding its size limit only. A declared length past the limit is refused
/// before the body is read; a JSON body reaches the inner service parsed; an operation that takes
/// no body gets none.
#[tokio::test]
async fn the_body_layer_alone_reads_within_its_limits() {
    let app = app();
    let market = market(&app);
    let admitted = |operation, body: &'static str, declared: usize| {
        let (head, body) = Request::post("/x")
            .header(http::header::CONTENT_LENGTH, declared)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
            .into_parts();
        handoff::Admitted {
            head,
            body,
            market: market.clone(),
            route: route(operation, "/customers/{customer_id}"),
            deadline: tokio::time::Instant::now() + Duration::from_secs(5),
            now: jiff::Timestamp::now(),
            context: arrival(),
        }
    };
    let service = || {
        ServiceBuilder::new()
            .layer(body::BodyLayer::new(16))
            .service(tower::service_fn(
                |a: handoff::Admitted<Option<Value>>| async move {
                    ok(a.body.unwrap_or(Value::Null).to_string())
                },
            ))
    };
    let text = |answer: Response<Full<Bytes>>| async move {
        answer.into_body().collect().await.unwrap().to_bytes()
    };
    let refused = service()
        .oneshot(admitted(Operation::UpdateCustomer, "{}", 1_000))
        .await;
    assert_eq!(reason(refused), Reason::BodyTooLarge);
    let update = admitted(Operation::UpdateCustomer, r#"{"a":1}"#, 7);
    let passed = service().oneshot(update).await.unwrap();
    assert_eq!(&text(passed).await[..], br#"{"a":1}"#);
    let card = admitted(Operation::GetCustomer, r#"{"a":1}"#, 7);
    let unread = service().oneshot(card).await.unwrap();
    assert_eq!(&text(unread).await[..], b"null");
}

/// The operation alone, holding its write tracker, slots and the cards: with no write slot free
/// a write is `overloaded` before anything runs (the market's Voyado is a closed port).
#[tokio::test]
async fn the_operation_alone_refuses_a_write_with_no_slot_free() {
    let app = app();
    let (head, ()) = Request::new(()).into_parts();
    let admitted = handoff::Admitted {
        head,
        body: Some(serde_json::json!({"name": {"first": "A"}})),
        market: market(&app),
        route: route(Operation::AddCustomer, "/customers"),
        deadline: tokio::time::Instant::now() + Duration::from_secs(5),
        now: jiff::Timestamp::now(),
        context: arrival(),
    };
    let full = Arc::new(Semaphore::new(0));
    let service = operation::RunOperation::new(
        tokio_util::task::TaskTracker::new(),
        full,
        app.cards.clone(),
        None,
        app.metrics.clone(),
    );
    assert_eq!(reason(service.oneshot(admitted).await), Reason::Overloaded);
}

/// A warm card is answered before the request's span is made (it logs nothing, and the span was
/// a tenth of what it cost); a card that must be rendered runs in the span.
#[tokio::test]
async fn the_operation_answers_a_warm_card_before_making_the_span() {
    let app = app();
    let market = market(&app);
    let id = "8f0c1d2e-0000-4000-8000-000000000001";
    let admitted = |context| {
        let (head, ()) = Request::new(()).into_parts();
        handoff::Admitted {
            head,
            body: None,
            market: market.clone(),
            route: Matched {
                operation: Operation::GetCustomer,
                template: "/customers/{customer_id}".into(),
                param: Some(("customer_id".into(), id.to_owned())),
            },
            deadline: tokio::time::Instant::now() + Duration::from_secs(5),
            now: jiff::Timestamp::now(),
            context,
        }
    };
    let service = operation::RunOperation::new(
        tokio_util::task::TaskTracker::new(),
        Arc::new(Semaphore::new(1)),
        app.cards.clone(),
        None,
        app.metrics.clone(),
    );
    // The market's Voyado is a closed port: the card cannot be rendered.
    let cold = arrival();
    assert!(
        service
            .clone()
            .oneshot(admitted(cold.clone()))
            .await
            .is_err()
    );
    assert!(cold.has_span(), "a cold card runs in the request's span");

    let card = Bytes::from_static(br#"{"customer_id":"8f0c1d2e-0000-4000-8000-000000000001"}"#);
    let now = tokio::time::Instant::now();
    let key = crate::ops::CardKey::new(&market.voyado, market.key.clone(), id, market.generation);
    app.cards
        .keep(key, card.clone(), now + Duration::from_secs(10), now);
    let warm = arrival();
    let answer = service.oneshot(admitted(warm.clone())).await.unwrap();
    assert_eq!(answer.into_body().collect().await.unwrap().to_bytes(), card);
    assert!(!warm.has_span(), "a span made for a warm card");
}

/// The route layer and everything outside it, over a unit body.
fn stack_for_test(
    app: Arc<App>,
) -> impl Service<Request<()>, Response = Response<Full<Bytes>>, Error = Infallible> {
    ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(rescue_layer(&app))
        .layer(route::RouteLayer::new(
            app.served.clone(),
            app.draining.clone(),
            app.metrics.clone(),
        ))
        .service(tower::service_fn(|_: handoff::Routed<()>| async {
            Err::<Response<Full<Bytes>>, _>(ProxyError::internal())
        }))
}
