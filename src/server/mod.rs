//! The inbound side: connections and the tower stack one SPI request goes through.
//!
//! The layers, one a file, in the order a request meets them:
//!
//! ```text
//! request_id → trace → rescue → admission (load shed + concurrency limit)
//!            → route → auth → deadline → body → operation
//! ```
//!
//! `rescue` is the one place errors and panics become answers; everything below it returns
//! typed errors. Connections are bounded too: past `max_connections` a new one is answered `503`
//! and closed at once. Shutdown stops accepting, answers what is in flight, then waits for the
//! detached write tasks, all within the grace period.

mod auth;
mod body;
mod context;
mod deadline;
mod operation;
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::limit::ConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower::{Service, ServiceBuilder};

use crate::app::App;
use crate::spi::ProxyError;
use crate::spi::error::ErrorTable;
use crate::telemetry::{Event, Shed};

pub use request_id::HEADER as REQUEST_ID_HEADER;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The whole SPI stack for one connection's requests.
pub fn stack(
    app: Arc<App>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(request_id::RequestIdLayer)
        .layer(trace::TraceLayer::new(app.metrics.clone()))
        .layer(rescue::RescueLayer::new(app.clone()))
        .layer(LoadShedLayer::new())
        .layer(ConcurrencyLimitLayer::new(app.limits.max_in_flight))
        .layer(route::RouteLayer::new(app.clone()))
        .layer(auth::AuthLayer::new(app.clone()))
        .layer(deadline::DeadlineLayer)
        .layer(body::BodyLayer::new(app.clone()))
        .service(operation::RunOperation::new(app))
}

/// Serves the SPI on `listener` until `shutdown` resolves, then drains: readiness turns `503`,
/// no new connections, open requests answered, detached writes awaited — all within the grace
/// period. Returns when everything is done or the grace period is over.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let started_drain = accept_loop(listener, app.clone(), stack(app.clone()), shutdown).await;
    let deadline = started_drain + app.limits.shutdown_grace();
    app.writes.close();
    if tokio::time::timeout_at(deadline, app.writes.wait())
        .await
        .is_err()
    {
        let abandoned = app.writes.len();
        for _ in 0..abandoned {
            app.metrics.count(Event::WriteTaskAbandoned);
        }
        tracing::error!(
            abandoned,
            "write tasks still running at the end of the grace period; staff should check them"
        );
    }
    Ok(())
}

/// Health, readiness and metrics on their own address (config `admin_listen`), so they can be
/// kept off the network the tills use.
pub async fn serve_admin(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let admin_app = app.clone();
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let answer = route::admin_answer(&admin_app, request.method(), request.uri().path())
            .unwrap_or_else(|| {
                let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
                *r.status_mut() = StatusCode::NOT_FOUND;
                r
            });
        async move { Ok::<_, Infallible>(answer) }
    });
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
                    tokio::spawn(refuse_connection(stream, app.errors.clone()));
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

/// A connection over the limit: one `503 overloaded` envelope, written at once, then closed.
/// What the client sent meanwhile is read and dropped for a moment first: closing a socket with
/// unread data resets it, and the client would lose the answer.
async fn refuse_connection(mut stream: TcpStream, table: ErrorTable) {
    let request_id = request_id::fresh();
    let refusal = table.refusal(ProxyError::overloaded());
    let (status, body) = table.envelope(&refusal, &request_id);
    let head = format!(
        "HTTP/1.1 {status} Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\n{}: {request_id}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        request_id::HEADER,
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<_, std::io::Error>(())
    })
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
