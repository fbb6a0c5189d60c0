//! Routing: health, readiness and metrics are answered here, unauthenticated and in front of the
//! admission gate (a full proxy still answers its probes); every other path is
//! `/{tenant}/{market}/...`, matched against the route table (data). The match is handed on as a
//! [`Routed`] (`handoff.rs`); an unknown path is `404`, a known one with another method `405` with
//! `Allow` (the health routes take `GET` and `HEAD`: a load balancer's `HEAD` probe is a `GET`
//! without the body).
//!
//! A live reload (`reload.rs` watches, `App::reload` compiles, `market.rs` swaps the set) never
//! changes a request's set midway: routing takes the set once and hands it on.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::TryFutureExt;
use futures_util::future::{self, Either, MapErr, Ready};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower::{BoxError, Layer, Service};

use super::context::RequestContext;
use super::handoff::Routed;
use crate::market::{Draining, ServedSet};
use crate::spi::routes::RouteError;
use crate::spi::{ProxyError, Reason, Refusal};
use crate::telemetry::Metrics;

/// What routing reads: the served set (its route table), and for the health routes whether the
/// proxy is draining and the metrics.
#[derive(Clone)]
pub struct RouteLayer {
    served: Arc<ServedSet>,
    draining: Arc<Draining>,
    metrics: Arc<Metrics>,
}

impl RouteLayer {
    pub fn new(served: Arc<ServedSet>, draining: Arc<Draining>, metrics: Arc<Metrics>) -> Self {
        RouteLayer {
            served,
            draining,
            metrics,
        }
    }
}

impl<S> Layer<S> for RouteLayer {
    type Service = Router<S>;

    fn layer(&self, inner: S) -> Router<S> {
        Router {
            inner,
            layer: self.clone(),
        }
    }
}

/// The routing service: health routes answered here, every other request matched and passed on
/// as a [`Routed`].
#[derive(Clone)]
pub struct Router<S> {
    inner: S,
    layer: RouteLayer,
}

impl<S, B> Service<Request<B>> for Router<S>
where
    S: Service<Routed<B>, Response = Response<Full<Bytes>>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    // Above the admission gate, whose shedding is a boxed error: the rescue sorts both.
    type Error = BoxError;
    // Not boxed: an answer or refusal ready at once, or the inner future with its error boxed.
    type Future = Either<
        Ready<Result<Response<Full<Bytes>>, BoxError>>,
        MapErr<S::Future, fn(S::Error) -> BoxError>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (draining, metrics) = (&self.layer.draining, &self.layer.metrics);
        match admin_answer(draining, metrics, request.method(), request.uri().path()) {
            Some(Ok(answer)) => {
                RequestContext::of(&request).set_operation("admin");
                return Either::Left(future::ready(Ok(answer)));
            }
            Some(Err(e)) => {
                RequestContext::of(&request).set_operation("admin");
                return Either::Left(future::ready(Err(refuse(e).into())));
            }
            None => {}
        }
        let path = request.uri().path();
        let mut segments = path.trim_start_matches('/').split('/');
        let tenant = segments.next().unwrap_or("").to_owned();
        let market = segments.next().unwrap_or("").to_owned();
        let rest: Vec<&str> = segments.collect();
        // The set this request is served with, to its end, whatever a reload does meanwhile.
        let served = self.layer.served.current();
        let found = if rest.is_empty() {
            Err(RouteError::NotFound)
        } else {
            served.routes.find(request.method(), &rest)
        };
        let route = match found {
            Ok(m) => m,
            Err(e) => return Either::Left(future::ready(Err(refuse(e).into()))),
        };
        RequestContext::of(&request).set_route(route.operation.name(), &route.template);
        let into: fn(S::Error) -> BoxError = Into::into;
        Either::Right(
            self.inner
                .call(Routed {
                    request,
                    tenant,
                    market,
                    served,
                    route,
                })
                .map_err(into),
        )
    }
}

fn refuse(error: RouteError) -> ProxyError {
    match error {
        RouteError::NotFound => ProxyError::new(Reason::NotFound, "no such path"),
        RouteError::MethodNotAllowed(allow) => ProxyError::Refused(Refusal {
            allow: Some(allow.clone()),
            ..Refusal::new(
                Reason::MethodNotAllowed,
                format!("method not allowed; use {allow}"),
            )
        }),
    }
}

/// The methods the health routes take.
pub const ADMIN_METHODS: &str = "GET, HEAD";

/// `/healthz` (the process is up), `/readyz` (loaded and not draining) and `/metrics`: no auth,
/// no tenant data; `HEAD` as `GET` without the body, another method `405`. `None` for every
/// other path.
pub fn admin_answer(
    draining: &Draining,
    metrics: &Metrics,
    method: &Method,
    path: &str,
) -> Option<Result<Response<Full<Bytes>>, RouteError>> {
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return None;
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(Err(RouteError::MethodNotAllowed(ADMIN_METHODS.to_owned())));
    }
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_owned()),
        "/readyz" if draining.is_on() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".to_owned(),
        ),
        "/readyz" => (StatusCode::OK, "text/plain", "ready\n".to_owned()),
        _ => (StatusCode::OK, Metrics::CONTENT_TYPE, metrics.render()),
    };
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Some(Ok(response))
}
