//! The innermost service: hands the decoded request to `ops` and writes the `200` answer.
//!
//! The redeem's story crosses rooms: a repeat of a redeem under the till's own `Request-ID` is
//! answered here from `replay.rs` (or, with `[cluster]`, from the slot in Redis,
//! `cluster/redeem.rs`) before anything runs; what the redeem does — checks, the order of writes,
//! compensation — is `ops/redeem.rs`.
//!
//! Write operations run in a task of their own on the app's tracker: the deadline stops the
//! waiting, never the write sequence (create + re-lookup, redeem + compensation), and shutdown
//! waits for the task.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::{self, Either, Ready};
use http::Response;
use http_body_util::Full;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tower::Service;
use tracing::Instrument;

use super::BoxFuture;
use super::handoff::Admitted;
use super::replay::{Decision, Replays};
use crate::cluster::Cluster;
use crate::market::Market;
use crate::ops::{self, Cards, OpRequest};
use crate::spi::error::json_response;
use crate::spi::{Operation, ProxyError};
use crate::telemetry::Metrics;
use crate::voyado;

/// What running an operation holds: the tracker that shutdown waits on for detached write
/// sequences, the write slots that bound them, the redeem replays (shared through the cluster,
/// with `[cluster]`) and the rendered cards. Behind one `Arc`: a request's future takes its own
/// handle on all of it with one count, not a clone of each part.
#[derive(Clone)]
pub struct RunOperation(Arc<Held>);

struct Held {
    writes: TaskTracker,
    write_slots: Arc<Semaphore>,
    replays: Replays,
    cards: Cards,
}

impl RunOperation {
    pub fn new(
        writes: TaskTracker,
        write_slots: Arc<Semaphore>,
        cards: Cards,
        cluster: Option<Cluster>,
        metrics: Arc<Metrics>,
    ) -> RunOperation {
        RunOperation(Arc::new(Held {
            writes,
            write_slots,
            replays: Replays::new(cluster, metrics),
            cards,
        }))
    }
}

impl Service<Admitted<Option<Value>>> for RunOperation {
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    // Not boxed for a warm card: its answer is ready at once.
    type Future = Either<Ready<Answer>, BoxFuture<Answer>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, admitted: Admitted<Option<Value>>) -> Self::Future {
        let Admitted {
            head,
            body,
            market,
            route: matched,
            deadline,
            now,
            context,
        } = admitted;
        let operation = matched.operation;
        // A warm card is answered from memory before anything else of the request is made (its
        // span, its Voyado work, a boxed future, even its query): it logs nothing and calls no
        // one, and its span alone was a tenth of its cost.
        let raw_id = matched.param.as_ref().map(|(_, id)| id.as_str());
        if let Some(card) = ops::warm(operation, &market, &self.0.cards, raw_id) {
            return Either::Left(future::ready(Ok(json_response(card))));
        }
        let query = head
            .uri
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        // A redeem under the client's own Request-ID may be a repeat (contract §6.4).
        let replay_key = match (&matched.param, operation, context.client_sent_id) {
            (Some((_, customer)), Operation::Redeem, true) => Some((
                market.key.clone(),
                customer.clone(),
                context.request_id.clone(),
                body.clone(),
            )),
            _ => None,
        };
        let op_request = OpRequest {
            query,
            body,
            customer_id: matched.param,
            store_id: context.store_id.clone(),
            now,
        };
        let held = self.0.clone();
        Either::Right(Box::pin(async move {
            // The operation may log (and its Voyado calls do at debug): it runs in the request's
            // span, which a request that reaches no operation may never need. A write runs in a
            // task of its own, so it carries the span with it.
            let span = context.span().clone();
            let work = voyado::within_request(
                operation.is_write(),
                context.trace.clone(),
                ops::run(operation, market.clone(), held.cards.clone(), op_request),
            );
            run(held, operation, &market, work, replay_key, deadline)
                .instrument(span)
                .await
        }))
    }
}

/// What an operation answers.
type Answer = Result<Response<Full<Bytes>>, ProxyError>;

/// A redeem's repeat key: the market, the customer, the client's own request id and the body.
type ReplayKey = (Arc<str>, String, String, Option<Value>);

/// Runs the operation's `work`: a read here, a write in a task of its own on a write slot, a
/// redeem repeated under its own id answered from the replays instead.
async fn run(
    held: Arc<Held>,
    operation: Operation,
    market: &Market,
    work: impl Future<Output = Result<Bytes, ProxyError>> + Send + 'static,
    replay_key: Option<ReplayKey>,
    deadline: Instant,
) -> Answer {
    let body = if operation.is_write() {
        let Ok(slot) = held.write_slots.clone().try_acquire_owned() else {
            return Err(ProxyError::overloaded());
        };
        let pending = match replay_key {
            Some((market_key, customer, id, body)) => {
                match held
                    .replays
                    .decide(market_key, &customer, &id, body.as_ref(), deadline)
                    .await?
                {
                    Decision::Replay(answer) => {
                        market.metrics.redeem_replayed();
                        return Ok(json_response(answer));
                    }
                    Decision::Run(pending) => Some(pending),
                }
            }
            None => None,
        };
        // The slot stays held until the write ends, even past this request's deadline.
        held.writes
            .spawn(
                async move {
                    let result = work.await;
                    drop(slot);
                    if let (Some(pending), Ok(answer)) = (pending, &result) {
                        pending.record(answer).await;
                    }
                    result
                }
                .in_current_span(),
            )
            .await
            .unwrap_or_else(|_| Err(ProxyError::internal()))?
    } else {
        work.await?
    };
    Ok(json_response(body))
}
