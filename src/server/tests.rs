//! The layers in-process, through `oneshot`: what a caller sees when something inside fails.

use std::convert::Infallible;

use http::Method;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::config::{Config, MappingSource};

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

/// The body layer alone, with no app: what it holds is the limits. A declared length past the
/// limit is refused before the body is read; a JSON body reaches the inner service parsed.
#[tokio::test]
async fn the_body_layer_alone_reads_within_its_limits() {
    use crate::spi::Operation;
    use crate::spi::routes::Matched;
    let limits = crate::config::Limits {
        body_max_bytes: 16,
        ..crate::config::Limits::default()
    };
    let request = |body: &'static str, declared: usize| {
        let mut request = Request::post("/x")
            .header(http::header::CONTENT_LENGTH, declared)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        request.extensions_mut().insert(Matched {
            operation: Operation::UpdateCustomer,
            template: "/customers/{customer_id}".into(),
            param: None,
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        request
            .extensions_mut()
            .insert(deadline::Deadline(deadline));
        request
    };
    let service = || {
        ServiceBuilder::new()
            .layer(body::BodyLayer::new(limits))
            .service(tower::service_fn(|r: Request<()>| async move {
                let body = r.extensions().get::<body::RequestBody>().cloned();
                let text = body.and_then(|b| b.0).unwrap_or(Value::Null).to_string();
                Ok::<_, ProxyError>(Response::new(Full::new(Bytes::from(text))))
            }))
    };
    let refused = service().oneshot(request("{}", 1_000)).await.unwrap_err();
    assert!(
        matches!(&refused, ProxyError::Refused(r) if r.reason == crate::spi::Reason::BodyTooLarge),
        "{refused:?}"
    );
    let passed = service().oneshot(request(r#"{"a":1}"#, 7)).await.unwrap();
    let bytes = passed.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], br#"{"a":1}"#);
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
        .service(tower::service_fn(|_: Request<()>| async {
            Err::<Response<Full<Bytes>>, _>(ProxyError::internal())
        }))
}
