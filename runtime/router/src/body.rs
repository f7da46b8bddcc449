//! The response body the router hands to the client: the backend's body frame by frame (no
//! buffering, so SSE tokens leave as they arrive), cut off at the request deadline, and
//! recording the request's outcome in the stats exactly once, when the stream ends, fails, or
//! the client goes away.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::stats::{ErrorClass, Stats};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What to record when the body finishes.
pub struct Finish {
    pub stats: Arc<Stats>,
    pub revision: Arc<str>,
    pub status: StatusCode,
    pub started: Instant,
}

impl Finish {
    fn record(self, error: Option<ErrorClass>) {
        self.stats
            .record(&self.revision, self.status, error, self.started.elapsed());
    }
}

pub struct StatsBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    finish: Option<Finish>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request timeout passed while the response was streaming")]
struct StreamTimeout;

impl StatsBody {
    pub fn new(inner: Incoming, deadline: tokio::time::Instant, finish: Finish) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            finish: Some(finish),
        }
    }

    fn done(&mut self, error: Option<ErrorClass>) {
        if let Some(f) = self.finish.take() {
            f.record(error);
        }
    }

    fn status_class(&self) -> Option<ErrorClass> {
        self.finish
            .as_ref()
            .and_then(|f| ErrorClass::of_status(f.status))
    }
}

impl Body for StatsBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.finish.is_some() && this.deadline.as_mut().poll(cx).is_ready() {
            this.done(Some(ErrorClass::Timeout));
            return Poll::Ready(Some(Err(Box::new(StreamTimeout))));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                let class = this.status_class();
                this.done(class);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // The backend broke off mid-response: the revision failed this request.
                this.done(Some(ErrorClass::Upstream5xx));
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for StatsBody {
    /// The stream ended without a final poll (hyper stops at Content-Length) or the client
    /// went away: the request is complete either way.
    fn drop(&mut self) {
        let class = self.status_class();
        self.done(class);
    }
}
