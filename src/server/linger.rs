//! Lingering close: whatever refuses a request before reading its body — a wrong key, an unknown
//! path, a body over the limit, a full proxy — drops the body, and this makes the drop read and
//! discard what the client is still sending (up to a bound, in the background). Closing a socket
//! with unread data resets it, and a client still writing would see a broken pipe instead of the
//! answer (contract §6.6).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Buf;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

/// How long a dropped body is still read at the most.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// A request body that drains itself when dropped unfinished.
pub struct Lingering<B>
where
    B: Body + Send + Unpin + 'static,
{
    inner: Option<B>,
    drain_max_bytes: usize,
}

impl<B> Lingering<B>
where
    B: Body + Send + Unpin + 'static,
{
    pub fn new(inner: B, drain_max_bytes: usize) -> Lingering<B> {
        Lingering {
            inner: Some(inner),
            drain_max_bytes,
        }
    }
}

impl<B> Body for Lingering<B>
where
    B: Body + Send + Unpin + 'static,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.inner.as_mut() {
            Some(inner) => Pin::new(inner).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl<B> Drop for Lingering<B>
where
    B: Body + Send + Unpin + 'static,
{
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(drain(body, self.drain_max_bytes));
        }
    }
}

/// Reads and discards up to `max` bytes or [`DRAIN_TIME`], then drops the body (and with it, once
/// answered, a connection that cannot be reused).
async fn drain<B>(mut body: B, max: usize)
where
    B: Body + Unpin,
{
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        while seen < max {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.remaining()),
                _ => break,
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::StreamBody;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A body of `chunks` frames of 1 KiB that counts how many were read.
    fn counted(chunks: usize, read: Arc<AtomicUsize>) -> impl Body<Data = Bytes> + Send + Unpin {
        let frames = (0..chunks).map(move |_| {
            read.fetch_add(1, Ordering::SeqCst);
            Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0u8; 1024])))
        });
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn an_unread_body_is_drained_up_to_the_bound_when_dropped() {
        let read = Arc::new(AtomicUsize::new(0));
        drop(Lingering::new(counted(100, read.clone()), 10 * 1024));
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(read.load(Ordering::SeqCst), 10, "stops at the bound");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_read_to_its_end_is_not_drained_again() {
        let read = Arc::new(AtomicUsize::new(0));
        let mut body = Lingering::new(counted(3, read.clone()), 1 << 20);
        while body.frame().await.is_some() {}
        drop(body);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(read.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn draining_a_stalled_body_gives_up_after_the_drain_time() {
        let stalled = StreamBody::new(futures_util::stream::pending::<
            Result<Frame<Bytes>, std::convert::Infallible>,
        >());
        let started = tokio::time::Instant::now();
        let task = tokio::spawn(drain(stalled, 1 << 20));
        task.await.unwrap();
        assert_eq!(started.elapsed(), DRAIN_TIME);
    }
}
