//! The request deadline (the market's `request_timeout_ms`, counted from arrival): reading the
//! body and the operation both happen inside it. Past it the waiting stops with `504`; a write
//! sequence runs in its own task and is never cut (see `operation.rs`).

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service};

use super::BoxFuture;
use super::context::RequestContext;
use crate::market::Market;
use crate::spi::Operation;
use crate::spi::ProxyError;
use crate::spi::routes::Matched;

/// How long an events batch may take: inside Sitoo's 15 s.
const EVENTS_DEADLINE: std::time::Duration = std::time::Duration::from_secs(13);

/// When this request must be answered; the body layer reads against it.
#[derive(Debug, Clone, Copy)]
pub struct Deadline(pub Instant);

#[derive(Clone, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService { inner }
    }
}

#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for DeadlineService<S>
where
    S: Service<Request<B>, Response = Response<Full<Bytes>>, Error = ProxyError> + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Full<Bytes>>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let Some(mut timeout) = request
            .extensions()
            .get::<Arc<Market>>()
            .map(|m| m.settings.request_timeout)
        else {
            return Box::pin(async { Err(ProxyError::internal()) });
        };
        // Sitoo waits 15 s for an events answer, and a batch is up to ten orders: the batch gets
        // that time (less a margin for the answer's way back), not a till's.
        if request
            .extensions()
            .get::<Matched>()
            .is_some_and(|m| m.operation == Operation::Events)
        {
            timeout = timeout.max(EVENTS_DEADLINE);
        }
        let deadline = RequestContext::of(&request).started + timeout;
        request.extensions_mut().insert(Deadline(deadline));
        let future = self.inner.call(request);
        Box::pin(async move {
            // The body layer reads against the same instant and, being polled first, answers
            // for a body still arriving at the deadline (408) before this says 504.
            tokio::time::timeout_at(deadline, future)
                .await
                .unwrap_or_else(|_| Err(ProxyError::timeout()))
        })
    }
}
