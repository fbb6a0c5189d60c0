//! The request's span and its one log line, plus the request metrics (count by operation and
//! status, latency histogram, in-flight gauge).
//!
//! The span carries the request id, the route template, the operation, a configured tenant and
//! market, and the store and register ids — never the URI, the query or personal data. Inner
//! layers fill the fields they learn (tenant, market, store and register only once the caller
//! has proved its key) into the request's context.
//!
//! Where the proxy's own subscriber writes the access line by hand (`logging::access_log`), the
//! span is made only when something inside the request needs it (`context.rs`) and the line is
//! written from the context; otherwise the span is made here, at arrival, and the line is an
//! event inside it.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use super::BoxFuture;
use super::context::RequestContext;
use crate::telemetry::events::server::{RequestDone, RequestFields};
use crate::telemetry::{Metrics, logging};

/// The request's span with every field in `fields`; what is not known yet is recorded later.
/// Fields are declared in the order the layers learn them, so a span made late prints them in
/// the order one made at arrival does.
pub fn request_span(fields: &RequestFields<'_>) -> Span {
    tracing::info_span!(
        "request",
        request_id = %fields.request_id,
        trace_id = fields.trace_id,
        operation = fields.route.map(|(operation, _)| operation),
        route = fields.route.map(|(_, route)| route),
        tenant = fields.market.map(|(tenant, _)| tenant),
        market = fields.market.map(|(_, market)| market),
        store_id = fields.store_id,
        register_id = fields.register_id,
        status = Empty,
        latency_ms = Empty,
    )
}

#[derive(Clone)]
pub struct TraceLayer {
    metrics: Arc<Metrics>,
}

impl TraceLayer {
    pub fn new(metrics: Arc<Metrics>) -> TraceLayer {
        TraceLayer { metrics }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> Service<Request<B>> for Trace<S>
where
    S: Service<Request<B>, Response = Response<R>> + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<R>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let context = RequestContext::of(&request);
        // Made now when the line goes through `tracing` (it needs the span at the end, and an
        // exported span should cover the whole request); else made by whoever needs it first.
        let span = match logging::access_log() {
            Some(_) => Span::none(),
            None => context.span().clone(),
        };
        let eager = !span.is_none();
        let in_flight = self.metrics.in_flight();
        let metrics = self.metrics.clone();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = future.await;
                drop(in_flight);
                let elapsed = context.started.elapsed();
                // Below the rescue layer nothing is an error any more; an `Err` here would be a
                // stack built without it.
                let status = result.as_ref().map_or(500, |r| r.status().as_u16());
                if eager {
                    let span = context.span();
                    span.record("status", status);
                    span.record("latency_ms", elapsed.as_millis() as u64);
                }
                metrics.emit(RequestDone {
                    operation: context.operation(),
                    status,
                    elapsed,
                    request: context.fields(),
                });
                result
            }
            .instrument(span),
        )
    }
}
