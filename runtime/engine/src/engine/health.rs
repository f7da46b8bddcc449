//! What the engine thread tells `/readyz` and `/healthz`: warming up, ready, stopped (its thread
//! ended: a panic, a failed warm-up, or every handle dropped), or stuck (one forward pass has run
//! longer than the watchdog's deadline). The engine thread stamps the start and end of every
//! step; the state is computed when asked, so no watchdog thread is needed and a stuck thread
//! cannot hide it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The watchdog's default: a forward pass (a 512-token prefill chunk on a slow CPU included)
/// that runs this long is taken for hung.
pub const DEFAULT_STEP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineState {
    /// Loading finished; the warm-up forward pass has not completed yet.
    WarmingUp,
    Ready,
    /// The engine thread has ended; no request can be served again (liveness fails).
    Stopped,
    /// The current step has run past the watchdog deadline (liveness fails).
    Stuck {
        step_secs: u64,
    },
}

impl EngineState {
    /// Short label for health bodies and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineState::WarmingUp => "warming_up",
            EngineState::Ready => "ready",
            EngineState::Stopped => "stopped",
            EngineState::Stuck { .. } => "stuck",
        }
    }

    /// The process should be restarted: the engine will never serve again by itself.
    pub fn is_dead(self) -> bool {
        matches!(self, EngineState::Stopped | EngineState::Stuck { .. })
    }
}

pub struct EngineHealth {
    epoch: Instant,
    ready: AtomicBool,
    stopped: AtomicBool,
    /// Milliseconds since `epoch` (plus one, so 0 means "no step running") when the running
    /// step began.
    step_started: AtomicU64,
    step_timeout: Duration,
}

impl EngineHealth {
    pub fn new(step_timeout: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            ready: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            step_started: AtomicU64::new(0),
            step_timeout,
        }
    }

    pub fn state(&self) -> EngineState {
        if self.stopped.load(Ordering::SeqCst) {
            return EngineState::Stopped;
        }
        let started = self.step_started.load(Ordering::SeqCst);
        if started != 0 {
            let now = self.epoch.elapsed().as_millis() as u64 + 1;
            let running = Duration::from_millis(now.saturating_sub(started));
            if running > self.step_timeout {
                return EngineState::Stuck {
                    step_secs: running.as_secs(),
                };
            }
        }
        if self.ready.load(Ordering::SeqCst) {
            EngineState::Ready
        } else {
            EngineState::WarmingUp
        }
    }

    pub(super) fn step_begin(&self) {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        self.step_started.store(now, Ordering::SeqCst);
    }

    pub(super) fn step_end(&self) {
        self.step_started.store(0, Ordering::SeqCst);
    }

    pub(super) fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    pub(super) fn set_stopped(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_running_past_the_deadline_reads_as_stuck_and_recovers_when_it_ends() {
        let h = EngineHealth::new(Duration::from_millis(20));
        h.set_ready();
        h.step_begin();
        assert_eq!(h.state(), EngineState::Ready);
        std::thread::sleep(Duration::from_millis(40));
        assert!(matches!(h.state(), EngineState::Stuck { .. }));
        h.step_end();
        assert_eq!(h.state(), EngineState::Ready);
        h.set_stopped();
        assert!(h.state().is_dead());
    }
}
