//! The rescue: every error and every panic below this layer becomes the SPI envelope, through
//! `spi::error::envelope` — the one function that reads the error table — and always with the
//! request id. Requests the admission gate sheds arrive here as `503 overloaded`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::FutureExt;
use http::{Request, Response};
use http_body_util::Full;
use tower::{BoxError, Layer, Service};

use super::BoxFuture;
use super::context::RequestContext;
use crate::market::ServedSet;
use crate::spi::ProxyError;
use crate::spi::error::envelope;
use crate::telemetry::{Metrics, Shed};

/// What the rescue reads: the served set (the error table before a market is known) and the
/// metrics (a shed request is counted).
#[derive(Clone)]
pub struct RescueLayer {
    served: Arc<ServedSet>,
    metrics: Arc<Metrics>,
}

impl RescueLayer {
    pub fn new(served: Arc<ServedSet>, metrics: Arc<Metrics>) -> RescueLayer {
        RescueLayer { served, metrics }
    }
}

impl<S> Layer<S> for RescueLayer {
    type Service = Rescuer<S>;

    fn layer(&self, inner: S) -> Rescuer<S> {
        Rescuer {
            inner,
            layer: self.clone(),
        }
    }
}

/// The rescuing service: never fails; every error and panic below is an SPI answer.
#[derive(Clone)]
pub struct Rescuer<S> {
    inner: S,
    layer: RescueLayer,
}

impl<S, B> Service<Request<B>> for Rescuer<S>
where
    S: Service<Request<B>, Response = Response<Full<Bytes>>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
    B: Send + 'static,
{
    type Response = Response<Full<Bytes>>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Response<Full<Bytes>>, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The admission gate below never fails readiness (it sheds in `call` instead); an error
        // here can only come from a stack built without it, and is answered per request.
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let context = RequestContext::of(&request);
        let layer = self.layer.clone();
        // A panic while building the future is caught like one while running it.
        let future = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request)));
        Box::pin(async move {
            let outcome = match future {
                Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
                Err(panic) => Err(panic),
            };
            if let Ok(Ok(response)) = outcome {
                return Ok(response);
            }
            // What is logged from here on (an error with no answer, an internal error) is the
            // request's.
            let _entered = context.span().enter();
            let error = match outcome {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(error)) => to_proxy_error(error.into(), &layer.metrics),
                // The panic hook has logged where it happened.
                Err(_) => ProxyError::internal(),
            };
            let served;
            let table = match context.market() {
                Some(market) => &market.errors,
                None => {
                    served = layer.served.current();
                    &served.errors
                }
            };
            Ok(envelope(error, table, &context.request_id))
        })
    }
}

fn to_proxy_error(error: BoxError, metrics: &Metrics) -> ProxyError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        metrics.shed(Shed::Requests);
        return ProxyError::overloaded();
    }
    match error.downcast::<ProxyError>() {
        Ok(error) => *error,
        Err(other) => {
            tracing::error!(error = %other, "an error with no SPI answer");
            ProxyError::internal()
        }
    }
}
