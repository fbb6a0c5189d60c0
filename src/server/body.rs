//! The request body, read inside the deadline and never past the limit.
//!
//! A body still arriving at the deadline is `408 body_timeout` and the connection is closed:
//! a client that trickles its body holds nothing and reaches no Voyado call. A declared
//! `Content-Length` over the limit is answered at once (what the client still sends is drained by
//! `linger.rs`, so it sees the `400 body_too_large`, not a broken pipe). The operation gets the
//! parsed JSON in place of the body: `Admitted<B>` in, `Admitted<Option<Value>>` out.

use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{Response, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use serde_json::Value;
use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

use super::BoxFuture;
use super::handoff::Admitted;
use crate::spi::{ProxyError, Reason};

/// What the body reader holds: the largest body it reads, in bytes (what a refusal leaves unread
/// is drained by `linger.rs`, with its own limit).
#[derive(Clone)]
pub struct BodyLayer {
    max_bytes: usize,
}

impl BodyLayer {
    pub fn new(max_bytes: usize) -> BodyLayer {
        BodyLayer { max_bytes }
    }
}

impl<S> Layer<S> for BodyLayer {
    type Service = ReadBody<S>;

    fn layer(&self, inner: S) -> ReadBody<S> {
        ReadBody {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

/// The body-reading service: the inner service gets the parsed JSON as the body, `None` when the
/// operation takes none or an optional one was empty.
#[derive(Clone)]
pub struct ReadBody<S> {
    inner: S,
    max_bytes: usize,
}

impl<S, B> Service<Admitted<B>> for ReadBody<S>
where
    S: Service<Admitted<Option<Value>>, Response = Response<Full<Bytes>>, Error = ProxyError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Full<Bytes>>;
    type Error = ProxyError;
    // A request without a body goes straight on (not boxed again); one with a body waits for it.
    type Future = Either<S::Future, BoxFuture<Result<Response<Full<Bytes>>, ProxyError>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, admitted: Admitted<B>) -> Self::Future {
        let operation = admitted.route.operation;
        if !operation.takes_body() {
            // Dropped unread, the body drains itself (see `linger.rs`).
            let (admitted, _) = admitted.take_body();
            return Either::Left(self.inner.call(admitted.with_body(None)));
        }
        let limit = self.max_bytes;
        // The inner service is stateless: a clone serves this request once the body is in.
        let mut inner = self.inner.clone();
        Either::Right(Box::pin(async move {
            let declared = admitted
                .head
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            // Dropped unread, the body drains itself (see `linger.rs`).
            if declared.is_some_and(|n| n > limit as u64) {
                return Err(too_large(limit));
            }
            let deadline = admitted.deadline;
            let (admitted, body) = admitted.take_body();
            let bytes = read(body, limit, deadline).await?;
            let value = parse(&bytes, operation.body_optional())?;
            inner.call(admitted.with_body(value)).await
        }))
    }
}

fn too_large(limit: usize) -> ProxyError {
    ProxyError::new(
        Reason::BodyTooLarge,
        format!("body is larger than {} KiB", limit / 1024),
    )
}

/// Reads the whole body under the limit and the deadline.
async fn read<B>(body: B, limit: usize, deadline: Instant) -> Result<Bytes, ProxyError>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let collected = Limited::new(body, limit).collect();
    match tokio::time::timeout_at(deadline, collected).await {
        Err(_) => Err(ProxyError::new(
            Reason::BodyTimeout,
            "body did not arrive within the request deadline",
        )),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large(limit)),
        Ok(Err(_)) => Err(ProxyError::field("body", "could not be read")),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

fn parse(bytes: &[u8], optional: bool) -> Result<Option<Value>, ProxyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return if optional {
            Ok(None)
        } else {
            Err(ProxyError::field("body", "is required"))
        };
    }
    // serde_json's message gives line and column only, never the input.
    serde_json::from_slice(bytes)
        .map(Some)
        .map_err(|e| ProxyError::field("body", &format!("is not valid JSON ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn whitespace_is_no_body() {
        assert_eq!(parse(b"  \n", true).unwrap(), None);
        assert!(matches!(
            parse(b" ", false),
            Err(ProxyError::Refused(r)) if r.message == "body is required"
        ));
        assert!(matches!(
            parse(b"{\"a\":", false),
            Err(ProxyError::Refused(r)) if r.message.starts_with("body is not valid JSON")
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_to_a_value_or_a_body_error(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            match parse(&bytes, false) {
                Ok(value) => prop_assert!(value.is_some()),
                Err(ProxyError::Refused(r)) => {
                    prop_assert_eq!(r.reason, Reason::InvalidInput);
                    prop_assert!(r.message.starts_with("body "));
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
