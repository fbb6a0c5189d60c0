//! The inbound side: connections and the tower stack one SPI request goes through.
//!
//! The layers, one a file, in the order a request meets them:
//!
//! ```text
//! linger → sensitive headers → request_id → trace → rescue → route
//!        → admission (load shed + concurrency limit) → auth → deadline → body → operation
//! ```
//!
//! `rescue` is the one place errors and panics become answers; everything below it returns
//! typed errors. Routing sits in front of admission so health, readiness and metrics answer even
//! when the proxy is full; the deadline wraps the body so the body is read inside it.
//! Connections are bounded too: past `max_connections` a new one is answered `503` and closed.
//! Shutdown stops accepting, answers what is in flight, then waits for the detached write tasks,
//! all within the grace period.
//!
//! Each layer is a plain `XLayer::new(..)` holding only what it reads, so it can be driven alone
//! with a `service_fn` inside it: `RescueLayer` (the served set's default error table, the
//! metrics), `RouteLayer` (the served set, the draining flag, the metrics), `AuthLayer` (the
//! decoy key), `BodyLayer` (the body size limit), `RunOperation` (the write tracker and slots, the
//! rendered cards, the cluster for redeem slots). Only [`stack`] and the accept loop here take the
//! whole `App`.
//!
//! What a layer learns about the request, who puts it there and who reads it:
//!
//! | what | carried as | made by | read by |
//! |---|---|---|---|
//! | id, client's id?, arrival (`started`, `now`), `Store-ID`, `Register-ID`, trace context | `Arc<RequestContext>` extension, then in `Admitted` | `request_id` | trace, rescue, auth (the span's ids), deadline (takes it into `Admitted`), operation |
//! | operation name, market (for the log line and the error table) | set once in that context | route, auth | trace, rescue |
//! | route, path's tenant and market, served set | [`handoff::Routed`] | route | auth |
//! | market | [`handoff::Authenticated`] | auth | deadline |
//! | deadline, `now`, head, body as sent | [`handoff::Admitted<B>`](handoff::Admitted) | deadline | body |
//! | the parsed body | `Admitted<Option<Value>>` | body | operation |
//!
//! The context is the one extension: the layers above routing read it on the way out (the market
//! is set in it only so the rescue answers with that market's error table). Everything
//! below routing is handed on as a value, so a layer stacked where its input is not known yet does
//! not compile.

mod auth;
mod body;
mod context;
mod deadline;
mod handoff;
mod linger;
mod operation;
mod replay;
mod request_id;
mod rescue;
mod route;
mod trace;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{Service, ServiceBuilder};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

use crate::app::App;
use crate::spi::ProxyError;
use crate::spi::error::envelope;
use crate::telemetry::Shed;
use crate::telemetry::events::server::WriteTasksAbandoned;
use linger::Lingering;

pub use request_id::HEADER as REQUEST_ID_HEADER;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The whole SPI stack. `serve` runs it over hyper's connection bodies; any body type works, so
/// tests can drive it in-process (on paused time) with a body they control.
pub fn stack<B>(
    app: Arc<App>,
) -> impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ 'static
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<tower::BoxError>,
{
    let drain_max = app.limits.body_drain_max_bytes;
    ServiceBuilder::new()
        .map_request(move |r: Request<B>| r.map(|b| Lingering::new(b, drain_max)))
        .layer(SetSensitiveRequestHeadersLayer::new([
            http::header::AUTHORIZATION,
        ]))
        .layer(request_id::RequestIdLayer)
        .layer(trace::TraceLayer::new(app.metrics.clone()))
        .layer(rescue::RescueLayer::new(
            app.served.clone(),
            app.metrics.clone(),
        ))
        .layer(route::RouteLayer::new(
            app.served.clone(),
            app.draining.clone(),
            app.metrics.clone(),
        ))
        .layer(LoadShedLayer::new())
        .layer(ConcurrencyLimitLayer::new(app.limits.max_in_flight))
        .layer(auth::AuthLayer::new(app.decoy_key.clone()))
        .layer(deadline::DeadlineLayer)
        .layer(body::BodyLayer::new(app.limits.body_max_bytes))
        .service(operation::RunOperation::new(
            app.writes.clone(),
            app.write_slots.clone(),
            app.cards.clone(),
            app.cluster.clone(),
            app.metrics.clone(),
        ))
}

/// Serves the SPI on `listener` until `shutdown` resolves, then drains: readiness turns `503`,
/// no new connections, open requests answered, detached writes awaited — all within the grace
/// period. Returns when everything is done or the grace period is over.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    // The workbench's paths, when the admin routes have no listener of their own.
    let spi = crate::workbench::Mount::main(app.clone(), stack::<Incoming>(app.clone()));
    let started_drain = accept_loop(listener, app.clone(), spi, shutdown).await;
    let deadline = started_drain + app.limits.shutdown_grace();
    app.writes.close();
    if tokio::time::timeout_at(deadline, app.writes.wait())
        .await
        .is_err()
    {
        app.metrics.emit(WriteTasksAbandoned {
            count: app.writes.len(),
        });
    }
    Ok(())
}

/// Health, readiness, metrics and the workbench on their own address (config `admin_listen`), so
/// they can be kept off the network the tills use.
pub async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let admin_app = app.clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let plain = |status, text: &'static str| {
            let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
            *r.status_mut() = status;
            r
        };
        let (draining, metrics) = (&admin_app.draining, &admin_app.metrics);
        let path = request.uri().path();
        let answer = match route::admin_answer(draining, metrics, request.method(), path) {
            Some(Ok(answer)) => answer,
            Some(Err(_)) => {
                let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                r.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static(route::ADMIN_METHODS),
                );
                r
            }
            None => plain(StatusCode::NOT_FOUND, "not found\n"),
        };
        async move { Ok::<_, Infallible>(answer) }
    });
    let service = crate::workbench::Mount::admin(app.clone(), service);
    accept_loop(listener, app, service, shutdown).await;
    Ok(())
}

/// Accepts until `shutdown`, bounded by `max_connections`, backing off on accept errors; then
/// lets open connections finish within the grace period. Returns when draining began.
async fn accept_loop<S>(
    listener: TcpListener,
    app: Arc<App>,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Instant
where
    S: Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(app.limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    // Until shutdown: accept. After it: readiness says 503 and accepting goes on for the
    // shutdown delay, so a load balancer has stopped sending by the time the listener closes.
    let mut closing_at: Option<Instant> = None;
    loop {
        let close = async {
            match closing_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => {
                        backoff.reset();
                        stream
                    }
                    Err(e) => {
                        // Out of file descriptors, say: retrying at once would spin.
                        let pause = backoff.next();
                        tracing::warn!(%e, pause_ms = pause.as_millis() as u64, "accept failed; backing off");
                        tokio::time::sleep(pause).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let Ok(permit) = connections.clone().try_acquire_owned() else {
                    app.metrics.shed(Shed::Connections);
                    tokio::spawn(refuse_connection(stream, app.clone()));
                    continue;
                };
                let connection = builder.serve_connection(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service.clone()),
                );
                let watched = graceful.watch(connection);
                tokio::spawn(async move {
                    let _ = watched.await;
                    drop(permit);
                });
            }
            () = &mut shutdown, if closing_at.is_none() => {
                app.start_draining();
                let delay = app.limits.shutdown_delay();
                tracing::info!(delay_ms = delay.as_millis() as u64, "shutting down: readiness now 503");
                closing_at = Some(Instant::now() + delay);
            }
            () = close => break,
        }
    }
    let started = Instant::now();
    tracing::info!("no new connections; answering open requests");
    drop(listener);
    if tokio::time::timeout(app.limits.shutdown_grace(), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open at the end of the grace period; closing");
    }
    started
}

/// A connection over the limit: its request is answered `503 overloaded` (through the one
/// rescue, with a request id and `Retry-After`) and the connection closed. Its body, if any, is
/// drained so the client reads the answer rather than a reset.
async fn refuse_connection(stream: TcpStream, app: Arc<App>) {
    let service = tower::service_fn(move |request: Request<Incoming>| {
        drop(Lingering::new(
            request.into_body(),
            app.limits.body_drain_max_bytes,
        ));
        let id = request_id::fresh();
        let mut answer = envelope(ProxyError::overloaded(), &app.served().errors, &id);
        if let Ok(v) = http::HeaderValue::from_str(&id) {
            answer.headers_mut().insert(request_id::HEADER, v);
        }
        async move { Ok::<_, Infallible>(answer) }
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(false)
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(2));
    let _ = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .await;
}

/// Exponential pause between failed accepts: 5 ms doubling up to 1 s.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff(Duration::from_millis(5))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let now = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
        now
    }

    fn reset(&mut self) {
        *self = Backoff::default();
    }
}

#[cfg(test)]
mod tests;
