//! The request's span and its one log line, plus the request metrics (count by operation and
//! status, latency histogram, in-flight gauge).
//!
//! The span carries the request id, the route template, the operation, a configured tenant and
//! market, and the store and register ids — never the URI, the query or personal data. Inner
//! layers fill the fields they learn (tenant, market, store and register only once the caller
//! has proved its key).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing::field::Empty;

use super::BoxFuture;
use super::context::RequestContext;
use crate::telemetry::Metrics;
use crate::telemetry::events::server::RequestDone;

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
        let span = tracing::info_span!(
            "request",
            request_id = %context.request_id,
            trace_id = context.trace.as_ref().map(|t| t.trace_id()),
            tenant = Empty,
            market = Empty,
            operation = Empty,
            route = Empty,
            store_id = Empty,
            register_id = Empty,
            status = Empty,
            latency_ms = Empty,
        );
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
                let latency_ms = elapsed.as_millis() as u64;
                let span = tracing::Span::current();
                span.record("status", status);
                span.record("latency_ms", latency_ms);
                metrics.emit(RequestDone {
                    operation: context.operation(),
                    status,
                    elapsed,
                });
                result
            }
            .instrument(span),
        )
    }
}
