//! The innermost service: hands the decoded request to `ops` and writes the `200` answer.
//!
//! Write operations run in a task of their own on the app's tracker: the deadline stops the
//! waiting, never the write sequence (create + re-lookup, redeem + compensation), and shutdown
//! waits for the task.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use tower::Service;
use tracing::Instrument;

use super::BoxFuture;
use super::body::RequestBody;
use super::context::RequestContext;
use crate::app::{App, Market};
use crate::ops::{self, OpRequest};
use crate::spi::ProxyError;
use crate::spi::error::json_response;
use crate::spi::routes::Matched;

#[derive(Clone)]
pub struct RunOperation {
    app: Arc<App>,
}

impl RunOperation {
    pub fn new(app: Arc<App>) -> RunOperation {
        RunOperation { app }
    }
}

impl Service<Request<()>> for RunOperation {
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    type Future = BoxFuture<Result<Response<Full<Bytes>>, ProxyError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let context = RequestContext::of(&request);
        let extensions = request.extensions_mut();
        let matched = extensions.remove::<Matched>();
        let market = extensions.remove::<Arc<Market>>();
        let body = extensions.remove::<RequestBody>().unwrap_or_default();
        let (Some(matched), Some(market)) = (matched, market) else {
            return Box::pin(async { Err(ProxyError::internal()) });
        };
        let query = request
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let op_request = OpRequest {
            query,
            body: body.0,
            customer_id: matched.param,
            store_id: context.store_id.clone(),
        };
        let operation = matched.operation;
        let work = ops::run(operation, market, op_request).in_current_span();
        let writes = self.app.writes.clone();
        Box::pin(async move {
            let value = if operation.is_write() {
                writes
                    .spawn(work)
                    .await
                    .unwrap_or_else(|_| Err(ProxyError::internal()))?
            } else {
                work.await?
            };
            Ok(json_response(
                serde_json::to_vec(&value).unwrap_or_default(),
            ))
        })
    }
}
