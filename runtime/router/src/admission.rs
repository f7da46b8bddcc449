//! What the router lets in: at most `--max-concurrent-requests` proxied requests at once, and
//! request bodies (buffered whole so a failed connect can be retried) within one byte budget
//! across all requests. Both refuse at once, in OpenAI's error shape, rather than queue: a
//! router that waits for memory it does not have only moves the overload into itself.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use prometheus::IntGauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::RouterError;
use super::metrics::RouterMetrics;

pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;
pub const DEFAULT_BODY_BUFFER_BUDGET_BYTES: usize = 256 * 1024 * 1024;

pub struct Admission {
    requests: Arc<Semaphore>,
    body_bytes: Arc<Semaphore>,
    budget: usize,
    metrics: RouterMetrics,
}

/// A gauge raised by `n` while this lives.
struct GaugeHold {
    gauge: IntGauge,
    n: i64,
}

impl Drop for GaugeHold {
    fn drop(&mut self) {
        self.gauge.sub(self.n);
    }
}

fn hold(gauge: &IntGauge, n: i64) -> GaugeHold {
    gauge.add(n);
    GaugeHold {
        gauge: gauge.clone(),
        n,
    }
}

/// A request's place among the concurrent ones.
pub struct RequestPermit {
    _permit: OwnedSemaphorePermit,
    _gauge: GaugeHold,
}

/// Bytes of the body budget a buffered body holds.
pub struct BodyPermit {
    _permits: Vec<(OwnedSemaphorePermit, GaugeHold)>,
}

impl Admission {
    pub fn new(max_requests: usize, body_budget: usize, metrics: RouterMetrics) -> Self {
        let budget = body_budget.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            requests: Arc::new(Semaphore::new(
                max_requests.clamp(1, Semaphore::MAX_PERMITS),
            )),
            body_bytes: Arc::new(Semaphore::new(budget)),
            budget,
            metrics,
        }
    }

    pub fn admit(&self) -> Result<RequestPermit, RouterError> {
        match self.requests.clone().try_acquire_owned() {
            Ok(permit) => Ok(RequestPermit {
                _permit: permit,
                _gauge: hold(&self.metrics.in_flight, 1),
            }),
            Err(_) => {
                self.metrics
                    .refused
                    .with_label_values(&["concurrency"])
                    .inc();
                Err(RouterError::TooManyRequests)
            }
        }
    }

    fn reserve(&self, bytes: usize) -> Result<(OwnedSemaphorePermit, GaugeHold), RouterError> {
        let n = u32::try_from(bytes).map_err(|_| RouterError::BodyBudget {
            budget: self.budget,
        })?;
        match self.body_bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => Ok((p, hold(&self.metrics.body_buffer, i64::from(n)))),
            Err(_) => {
                self.metrics
                    .refused
                    .with_label_values(&["body_budget"])
                    .inc();
                Err(RouterError::BodyBudget {
                    budget: self.budget,
                })
            }
        }
    }

    /// Reads the whole body within `limit` bytes, holding budget for every byte: all of a
    /// declared `Content-Length` up front (a body that cannot fit is refused before it is
    /// read), frame by frame otherwise.
    pub async fn buffer(
        &self,
        body: Body,
        content_length: Option<u64>,
        limit: usize,
    ) -> Result<(Bytes, BodyPermit), RouterError> {
        let mut permits = Vec::new();
        let mut reserved = 0usize;
        if let Some(len) = content_length {
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            if len > limit {
                return Err(RouterError::BodyTooLarge { limit });
            }
            if len > 0 {
                match self.reserve(len) {
                    Ok(p) => permits.push(p),
                    Err(e) => {
                        discard(body, limit).await;
                        return Err(e);
                    }
                }
                reserved = len;
            }
        }
        let mut buf = BytesMut::with_capacity(reserved);
        let mut body = body;
        let refuse = |body: Body, e: RouterError| async move {
            discard(body, limit).await;
            Err(e)
        };
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| RouterError::BadBody(e.to_string()))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers: not forwarded
            };
            if buf.len() + data.len() > limit {
                return Err(RouterError::BodyTooLarge { limit });
            }
            if buf.len() + data.len() > reserved {
                let more = buf.len() + data.len() - reserved;
                match self.reserve(more) {
                    Ok(p) => permits.push(p),
                    Err(e) => return refuse(body, e).await,
                }
                reserved += more;
            }
            buf.extend_from_slice(&data);
        }
        Ok((buf.freeze(), BodyPermit { _permits: permits }))
    }
}

/// How long a refused request's client gets to finish sending its body.
const DISCARD_TIME: Duration = Duration::from_secs(2);

/// Reads and drops what the client still sends (at most `limit` bytes, for at most
/// [`DISCARD_TIME`]), so that a refusal reaches a client still writing its body instead of a
/// reset connection; nothing is kept, so it costs no memory.
pub async fn discard(body: Body, limit: usize) {
    let mut body = body;
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DISCARD_TIME, async {
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                return;
            }
        }
    })
    .await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn admission(requests: usize, budget: usize) -> Admission {
        Admission::new(requests, budget, RouterMetrics::new().unwrap())
    }

    #[test]
    fn requests_beyond_the_cap_are_refused_until_one_finishes() {
        let a = admission(2, 10);
        let (p1, _p2) = (a.admit().unwrap(), a.admit().unwrap());
        assert_eq!(a.admit().err(), Some(RouterError::TooManyRequests));
        drop(p1);
        assert!(a.admit().is_ok());
    }

    #[tokio::test]
    async fn bodies_share_one_budget_and_give_it_back_when_dropped() {
        let a = admission(10, 100);
        let (b1, p1) = a
            .buffer(Body::from(vec![1u8; 60]), Some(60), 1000)
            .await
            .unwrap();
        assert_eq!(b1.len(), 60);
        let refused = a.buffer(Body::from(vec![1u8; 60]), Some(60), 1000).await;
        assert_eq!(refused.err(), Some(RouterError::BodyBudget { budget: 100 }));
        let unknown_length = a.buffer(Body::from(vec![1u8; 60]), None, 1000).await;
        assert_eq!(
            unknown_length.err(),
            Some(RouterError::BodyBudget { budget: 100 })
        );
        drop(p1);
        assert!(a
            .buffer(Body::from(vec![1u8; 60]), None, 1000)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let a = admission(10, 100);
        let r = a.buffer(Body::empty(), Some(5000), 1000).await;
        assert_eq!(r.err(), Some(RouterError::BodyTooLarge { limit: 1000 }));
    }
}
