//! Shutdown on paused tokio time: the grace period, the shutdown delay and the detached writes,
//! timed to the millisecond without waiting for any of it.
//!
//! Only what needs no socket traffic can run on a paused clock: tokio moves the clock forward
//! whenever the runtime is idle, even while a socket read is pending, so the proxy's timers would
//! fire before answers already on their way. `serve` is driven here on a loopback listener that
//! nobody connects to, with the detached writes standing in as tasks on `App::writes`. The request
//! path (`server::stack`) is driven in-process with a body the test controls, for what needs no
//! Voyado call: a body that never finishes, and the admission gate it keeps busy.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Captured;
use sitoo_voyado_proxy::app::App;
use sitoo_voyado_proxy::config::{Config, MappingSource};
use sitoo_voyado_proxy::server::serve;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// One market whose Voyado is never called (nothing here makes a request).
const MARKET: &str = r#"
[[market]]
tenant = "t"
market = "SE"
crm_api_keys = ["k"]
voyado_url = "http://127.0.0.1:9"
voyado_api_key = "k"
default_country = "SE"
"#;

const GRACE: Duration = Duration::from_millis(5000);

/// An app with this grace period and shutdown delay.
fn app(delay: Duration) -> Arc<App> {
    let text = format!(
        "[limits]\nshutdown_grace_ms = {}\nshutdown_delay_ms = {}\n{MARKET}",
        GRACE.as_millis(),
        delay.as_millis()
    );
    let config = Config::parse(&text, "paused", |_| MappingSource::BuiltIn, |_| None).unwrap();
    App::build(&config).unwrap()
}

/// A detached write that takes `time` (on the paused clock).
fn write_taking(app: &App, time: Duration) {
    app.writes.spawn(tokio::time::sleep(time));
}

/// `serve` on a fresh loopback listener, told to shut down at once; how long it took to return.
async fn serve_and_stop(app: &Arc<App>) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let started = Instant::now();
    // Bounded: a serve that never returns fails here rather than hanging the run.
    tokio::time::timeout(
        Duration::from_secs(24 * 3600),
        serve(listener, app.clone(), async {}),
    )
    .await
    .expect("serve did not return within a day")
    .unwrap();
    started.elapsed()
}

fn abandoned(app: &App) -> Option<f64> {
    app.metrics
        .render()
        .lines()
        .find_map(|l| l.strip_prefix("svp_write_tasks_abandoned_total "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(start_paused = true)]
async fn a_write_still_running_at_the_end_of_the_grace_is_abandoned_and_counted() {
    let logs = Captured::default();
    let _logging = logs.install();
    let app = app(Duration::ZERO);
    assert_eq!(abandoned(&app), Some(0.0));
    // An hour, not forever: a serve that waited for it would return after an hour and fail on
    // the time below instead of hanging.
    write_taking(&app, Duration::from_secs(3600));
    let took = serve_and_stop(&app).await;
    assert_eq!(
        took, GRACE,
        "serve should return exactly at the end of the grace"
    );
    assert!(app.draining.is_on());
    assert_eq!(abandoned(&app), Some(1.0));
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("ERROR") && l.contains("abandoned=1")),
        "no error line naming the abandoned write:\n{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn serve_returns_as_soon_as_the_writes_are_done_within_the_grace() {
    let app = app(Duration::ZERO);
    write_taking(&app, Duration::from_secs(2));
    write_taking(&app, Duration::from_secs(3));
    let took = serve_and_stop(&app).await;
    assert_eq!(
        took,
        Duration::from_secs(3),
        "waits for the last write only"
    );
    assert_eq!(abandoned(&app), Some(0.0));
    assert!(app.writes.is_empty());
}

#[tokio::test(start_paused = true)]
async fn with_no_writes_serve_returns_at_once() {
    let app = app(Duration::ZERO);
    assert_eq!(serve_and_stop(&app).await, Duration::ZERO);
    assert_eq!(abandoned(&app), Some(0.0));
}

/// Readiness turns 503 at the shutdown signal, the listener stays open for the delay, and the
/// grace period for open requests and writes only starts after it.
#[tokio::test(start_paused = true)]
async fn the_grace_starts_after_the_shutdown_delay() {
    const DELAY: Duration = Duration::from_millis(1500);
    let app = app(DELAY);
    write_taking(&app, Duration::from_secs(3600));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let started = Instant::now();
    let serving = tokio::spawn(serve(listener, app.clone(), async {}));
    tokio::time::sleep(DELAY - Duration::from_millis(1)).await;
    assert!(app.draining.is_on(), "readiness not 503 during the delay");
    assert!(!serving.is_finished());
    assert!(
        std::net::TcpListener::bind(address).is_err(),
        "the listener closed before the end of the delay"
    );
    tokio::time::timeout(Duration::from_secs(24 * 3600), serving)
        .await
        .expect("serve did not return within a day")
        .unwrap()
        .unwrap();
    assert_eq!(started.elapsed(), DELAY + GRACE);
    assert_eq!(abandoned(&app), Some(1.0));
}

/// A body that sends one byte and then nothing, ever: a client trickling its body.
fn trickle()
-> impl hyper::body::Body<Data = bytes::Bytes, Error = std::convert::Infallible> + Send + Unpin + 'static
{
    use futures_util::StreamExt;
    type Item = Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>;
    let first = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(
        hyper::body::Frame::data(bytes::Bytes::from_static(b"{")),
    )]);
    http_body_util::StreamBody::new(first.chain(futures_util::stream::pending::<Item>()))
}

fn create_request<B>(body: B) -> http::Request<B> {
    http::Request::post("/t/SE/customers")
        .header("authorization", "Basic cG9zOms=") // pos:k
        .header("content-type", "application/json")
        .header("request-id", "trickle-1")
        .body(body)
        .unwrap()
}

/// The body is read inside the request deadline: a trickled one is `408 body_timeout` at the
/// deadline to the millisecond, with the request id, and the connection is to be closed.
#[tokio::test(start_paused = true)]
async fn a_trickled_body_is_cut_off_at_the_deadline() {
    use tower::ServiceExt;
    let text = format!("{MARKET}request_timeout_ms = 2000\nvoyado_timeout_ms = 1000\n");
    let config = Config::parse(&text, "paused", |_| MappingSource::BuiltIn, |_| None).unwrap();
    let app = App::build(&config).unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        sitoo_voyado_proxy::server::stack(app).oneshot(create_request(trickle())),
    )
    .await
    .expect("no answer within a minute: the body is not read inside the deadline")
    .unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(2000));
    assert_eq!(answer.status(), 408);
    assert_eq!(answer.headers()["connection"], "close");
    let body = http_body_util::BodyExt::collect(answer.into_body())
        .await
        .unwrap()
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error_data"]["reason"], "body_timeout");
    assert_eq!(body["request_id"], "trickle-1");
}

/// A request still reading its body holds its place: past `max_in_flight` the next one is `503`
/// with `Retry-After` at once, not queued.
#[tokio::test(start_paused = true)]
async fn past_max_in_flight_a_request_is_shed_at_once() {
    use tower::ServiceExt;
    let text = format!("[limits]\nmax_in_flight = 1\n{MARKET}");
    let config = Config::parse(&text, "paused", |_| MappingSource::BuiltIn, |_| None).unwrap();
    let app = App::build(&config).unwrap();
    let spi = sitoo_voyado_proxy::server::stack(app);
    let busy = tokio::spawn(spi.clone().oneshot(create_request(trickle())));
    tokio::task::yield_now().await;
    let started = Instant::now();
    // The same kind of body (one service type); it is never read: the gate refuses first.
    let answer = tokio::time::timeout(
        Duration::from_secs(60),
        spi.oneshot(create_request(trickle())),
    )
    .await
    .expect("no answer within a minute: the request was queued, not shed")
    .unwrap();
    assert_eq!(started.elapsed(), Duration::ZERO, "answered at once");
    assert_eq!(answer.status(), 503);
    assert_eq!(answer.headers()["retry-after"], "1");
    busy.abort();
}
