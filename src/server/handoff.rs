//! What one layer hands the next, as types. Routing learns the route, authentication the market,
//! the deadline layer when the answer is due, the body reader the body; each layer takes the
//! value the layer above it made and passes a fuller one on, so a layer cannot be stacked where
//! what it reads is not known yet — a mistake the compiler refuses, not a request answered
//! `internal` at run time.
//!
//! ```text
//! route ── Routed<B> ──▶ (admission) ──▶ auth ── Authenticated<B> ──▶ deadline ── Admitted<B>
//!       ──▶ body ── Admitted<Option<Value>> ──▶ operation
//! ```
//!
//! One thing travels as a request extension, because the layers above routing read it on the way
//! back out: the `Arc<RequestContext>` (`context.rs`) that the request-id layer inserts. The
//! deadline layer takes it out into [`Admitted`], so the operation reads no extension.

use std::sync::Arc;

use http::Request;
use http::request::Parts;
use tokio::time::Instant;

use super::context::RequestContext;
use crate::market::{Market, Served};
use crate::spi::routes::Matched;

/// Routing's hand-off (`route.rs`), read by authentication.
pub struct Routed<B> {
    pub request: Request<B>,
    /// The tenant and market segments of the path, as sent (not yet known to be configured).
    pub tenant: String,
    pub market: String,
    /// The set this request is served with to its end, whatever a reload does meanwhile.
    pub served: Arc<Served>,
    pub route: Matched,
}

/// Authentication's hand-off (`auth.rs`), read by the deadline layer: the caller proved it is
/// this market's.
pub struct Authenticated<B> {
    pub request: Request<B>,
    pub market: Arc<Market>,
    pub route: Matched,
}

/// What an admitted request carries from the deadline layer (`deadline.rs`) inwards. The body
/// reader (`body.rs`) turns `Admitted<B>` (the body as it arrives) into `Admitted<Option<Value>>`
/// (the parsed JSON), which the operation (`operation.rs`) runs.
pub struct Admitted<B> {
    /// Method, URI (the query), headers and extensions.
    pub head: Parts,
    pub body: B,
    pub market: Arc<Market>,
    pub route: Matched,
    /// When the answer is due: the body is read against it, the operation waited on until it.
    pub deadline: Instant,
    /// The request's one reading of the wall clock (taken with its arrival, `context.rs`).
    pub now: jiff::Timestamp,
    /// Its id (and whether the till sent it), `Store-ID`, trace context: what the request-id
    /// layer learned.
    pub context: Arc<RequestContext>,
}

impl<B> Admitted<B> {
    /// The body, taken out to be read.
    pub fn take_body(self) -> (Admitted<()>, B) {
        let Admitted {
            head,
            body,
            market,
            route,
            deadline,
            now,
            context,
        } = self;
        let rest = Admitted {
            head,
            body: (),
            market,
            route,
            deadline,
            now,
            context,
        };
        (rest, body)
    }
}

impl Admitted<()> {
    /// The request with its body in the form the next layer takes.
    pub fn with_body<C>(self, body: C) -> Admitted<C> {
        let Admitted {
            head,
            body: (),
            market,
            route,
            deadline,
            now,
            context,
        } = self;
        Admitted {
            head,
            body,
            market,
            route,
            deadline,
            now,
            context,
        }
    }
}
