//! The drain on shutdown, shared by the serve loop and whatever outlives a request (upgraded
//! WebSocket connections, the router's tunnels): two signals, `stopping` (the shutdown signal
//! arrived: finish what you are doing, start nothing long) and `closing` (the drain deadline
//! passed: say goodbye now, the process exits in a moment), and a count of guards the serve
//! loop waits on before it returns.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{watch, Notify};

/// Cheap to clone; every clone sees the same signals and counts into the same total.
#[derive(Clone)]
pub struct Drain {
    inner: Arc<Inner>,
}

struct Inner {
    stopping: watch::Sender<bool>,
    closing: watch::Sender<bool>,
    active: AtomicUsize,
    idle: Notify,
}

/// Keeps the drain waiting while it lives (an open connection, a tunnel).
pub struct DrainGuard {
    inner: Arc<Inner>,
}

impl Default for Drain {
    fn default() -> Self {
        Self::new()
    }
}

impl Drain {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                stopping: watch::channel(false).0,
                closing: watch::channel(false).0,
                active: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Counts one more thing the drain waits for, until the guard drops.
    pub fn guard(&self) -> DrainGuard {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        DrainGuard {
            inner: self.inner.clone(),
        }
    }

    /// Guards alive now.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    pub fn is_stopping(&self) -> bool {
        *self.inner.stopping.borrow()
    }

    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// Resolves once the shutdown signal has arrived (at once if it already has).
    pub async fn stopping(&self) {
        let mut rx = self.inner.stopping.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Resolves once the drain deadline has passed (at once if it already has).
    pub async fn closing(&self) {
        let mut rx = self.inner.closing.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    pub fn begin_stopping(&self) {
        self.inner.stopping.send_replace(true);
    }

    pub fn begin_closing(&self) {
        self.inner.stopping.send_replace(true);
        self.inner.closing.send_replace(true);
    }

    /// Resolves when no guard is alive.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.active() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for DrainGuard {
    fn drop(&mut self) {
        if self.inner.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.inner.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn idle_waits_for_every_guard_and_signals_reach_every_clone() {
        let drain = Drain::new();
        let (a, b) = (drain.guard(), drain.guard());
        let waiter = tokio::spawn({
            let d = drain.clone();
            async move { d.idle().await }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "one guard is still alive");
        drop(b);
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("idle once the last guard dropped")
            .expect("no panic");

        let clone = drain.clone();
        assert!(!clone.is_stopping());
        drain.begin_closing();
        tokio::time::timeout(Duration::from_secs(1), clone.stopping())
            .await
            .expect("closing implies stopping");
        assert!(clone.is_closing());
    }
}
