//! The request deadline (the market's `request_timeout_ms`, counted from arrival): reading the
//! body and the operation both happen inside it. Past it the waiting stops with `504`; a write
//! sequence runs in its own task and is never cut (see `operation.rs`).

use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Map;
use http::Response;
use http_body_util::Full;
use tokio::time::Timeout;
use tokio::time::error::Elapsed;
use tower::{Layer, Service};

use super::context::RequestContext;
use super::handoff::{Admitted, Authenticated};
use crate::spi::Operation;
use crate::spi::ProxyError;

/// How long an events batch may take: inside Sitoo's 15 s.
const EVENTS_DEADLINE: Duration = Duration::from_secs(13);

/// Holds nothing: the timeout is the market's, the start the request's own.
#[derive(Clone, Default)]
pub struct DeadlineLayer;

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService { inner }
    }
}

/// The deadline service: the request goes on as [`Admitted`], with its deadline, and the waiting
/// for its answer ends there with `504`.
#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
}

impl<S, B> Service<Authenticated<B>> for DeadlineService<S>
where
    S: Service<Admitted<B>, Response = Response<Full<Bytes>>, Error = ProxyError> + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    // Not boxed: the inner future under tokio's timeout, its `Elapsed` mapped to `504`.
    type Future = Map<Timeout<S::Future>, fn(Waited) -> Result<Response<Full<Bytes>>, ProxyError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, authenticated: Authenticated<B>) -> Self::Future {
        let Authenticated {
            request,
            market,
            route,
        } = authenticated;
        let mut timeout = market.settings.request_timeout;
        // Sitoo waits 15 s for an events answer, and a batch is up to ten orders: the batch gets
        // that time (less a margin for the answer's way back), not a till's.
        if route.operation == Operation::Events {
            timeout = timeout.max(EVENTS_DEADLINE);
        }
        let context = RequestContext::of(&request);
        let deadline = context.started + timeout;
        let (head, body) = request.into_parts();
        let future = self.inner.call(Admitted {
            head,
            body,
            market,
            route,
            deadline,
            now: context.now,
            context,
        });
        // The body layer reads against the same instant and, being polled first, answers for a
        // body still arriving at the deadline (408) before this says 504.
        tokio::time::timeout_at(deadline, future).map(answer_or_timeout)
    }
}

/// What waiting until the deadline gave.
type Waited = Result<Result<Response<Full<Bytes>>, ProxyError>, Elapsed>;

fn answer_or_timeout(waited: Waited) -> Result<Response<Full<Bytes>>, ProxyError> {
    waited.unwrap_or_else(|_| Err(ProxyError::timeout()))
}
