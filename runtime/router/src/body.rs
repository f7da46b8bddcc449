//! The response body the router hands to the client: the backend's body frame by frame (no
//! buffering, so SSE tokens leave as they arrive), cut off at the request deadline, and
//! recording the request's outcome (in the revision's stats and the backend's health) exactly
//! once, when the stream ends, fails, or the client goes away. A stream that fails after its
//! 200 (the backend breaks off, or sends an in-band error event) counts as a failure; an SSE
//! client then gets an OpenAI-shaped error event and `[DONE]` rather than a cut connection,
//! and so does one still streaming when the router's drain deadline passes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::admission::RequestPermit;
use super::health::Health;
use super::sse_watch::{error_event, SseWatch};
use super::stats::{ErrorClass, Stats};
use super::table::Table;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The backend that answered, whose health the outcome updates.
pub struct Served {
    pub health: Arc<Health>,
    pub table: Arc<Table>,
    pub revision: usize,
    pub backend: Uri,
}

impl Served {
    pub fn report(&self, failed: bool) {
        if failed {
            let backends = &self.table.config.revisions[self.revision].backends;
            let name = &self.table.config.revisions[self.revision].name;
            self.health.failure(name, backends, &self.backend);
        } else {
            self.health.success(&self.backend);
        }
    }
}

/// What to record when the body finishes.
pub struct Finish {
    pub stats: Arc<Stats>,
    pub revision: Arc<str>,
    pub status: StatusCode,
    pub started: Instant,
    /// `None` once the backend's health has been told already (a 5xx head).
    pub served: Option<Served>,
    /// The request's place among the concurrent ones, given back with the body.
    pub permit: Option<RequestPermit>,
}

impl Finish {
    pub fn record(self, error: Option<ErrorClass>, midstream: bool) {
        self.stats
            .record(&self.revision, self.status, error, self.started.elapsed());
        if midstream {
            self.stats.record_midstream(&self.revision);
        }
        if let Some(served) = &self.served {
            served.report(matches!(
                error,
                Some(ErrorClass::Upstream5xx | ErrorClass::Timeout | ErrorClass::Connect)
            ));
        }
    }
}

type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

pub struct StatsBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    finish: Option<Finish>,
    /// Set for `text/event-stream` answers.
    sse: Option<SseWatch>,
    /// Resolves at the router's drain deadline (SSE only).
    closing: Option<Closing>,
    closing_fired: bool,
    ended: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the request timeout passed while the response was streaming")]
struct StreamTimeout;

impl StatsBody {
    pub fn new(
        inner: Incoming,
        deadline: tokio::time::Instant,
        finish: Finish,
        sse: bool,
        closing: Option<Closing>,
    ) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            finish: Some(finish),
            sse: sse.then(SseWatch::default),
            closing: if sse { closing } else { None },
            closing_fired: false,
            ended: false,
        }
    }

    fn done(&mut self, error: Option<ErrorClass>, midstream: bool) {
        if let Some(f) = self.finish.take() {
            f.record(error, midstream);
        }
    }

    /// How the stream counts when it ends now without a failure of its own.
    fn outcome(&self) -> (Option<ErrorClass>, bool) {
        let status = self.finish.as_ref().map(|f| f.status);
        let started_ok = status.is_some_and(|s| s.is_success());
        if started_ok && self.sse.as_ref().is_some_and(SseWatch::saw_error) {
            return (Some(ErrorClass::Upstream5xx), true);
        }
        (status.and_then(ErrorClass::of_status), false)
    }

    fn at_boundary(&self) -> bool {
        self.sse.as_ref().is_some_and(SseWatch::at_boundary)
    }

    /// Ends the stream with a failure: an SSE client gets an error event and `[DONE]`, any
    /// other client a broken body.
    fn fail(
        &mut self,
        class: ErrorClass,
        code: &str,
        err: BoxError,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let started_ok = self.finish.as_ref().is_some_and(|f| f.status.is_success());
        self.done(Some(class), started_ok);
        self.ended = true;
        if self.sse.is_some() {
            let message = format!("The upstream stream failed: {err}");
            return Poll::Ready(Some(Ok(Frame::data(error_event(
                code,
                &message,
                self.at_boundary(),
            )))));
        }
        Poll::Ready(Some(Err(err)))
    }

    /// At the drain deadline, between events: a clean goodbye instead of a cut.
    fn say_goodbye(&mut self) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (error, midstream) = self.outcome();
        self.done(error, midstream);
        self.ended = true;
        let frame = error_event(
            "router_shutting_down",
            "The router is shutting down; retry the request",
            true,
        );
        Poll::Ready(Some(Ok(Frame::data(frame))))
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
        if this.ended {
            return Poll::Ready(None);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.fail(
                ErrorClass::Timeout,
                "upstream_timeout",
                Box::new(StreamTimeout),
            );
        }
        if let Some(closing) = this.closing.as_mut() {
            if closing.as_mut().poll(cx).is_ready() {
                this.closing = None;
                this.closing_fired = true;
            }
        }
        if this.closing_fired && this.at_boundary() {
            return this.say_goodbye();
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                let (error, midstream) = this.outcome();
                this.done(error, midstream);
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // The backend broke off mid-response: the revision failed this request.
                this.fail(ErrorClass::Upstream5xx, "upstream_error", Box::new(e))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(watch), Some(data)) = (this.sse.as_mut(), frame.data_ref()) {
                    watch.feed(data);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.sse.is_some() {
            // The router may add an event of its own.
            return SizeHint::default();
        }
        self.inner.size_hint()
    }
}

impl Drop for StatsBody {
    /// The stream ended without a final poll (hyper stops at Content-Length) or the client
    /// went away: the request is complete either way.
    fn drop(&mut self) {
        let (error, midstream) = self.outcome();
        self.done(error, midstream);
    }
}
