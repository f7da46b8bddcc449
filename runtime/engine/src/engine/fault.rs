//! Test-only fault injection (`serve --fault-injection`, env `DSR_FAULT_INJECTION`): makes the
//! engine fail the ways production can, so the chaos tests can check that health and in-flight
//! requests tell the truth. Never set it in production. Forms (N counts forward steps after the
//! warm-up, from 1; `:N` defaults to 1):
//! - `engine-panic-after:N`: the engine thread panics before step N;
//! - `worker-panic-after:N`: a kernel pool worker panics inside a job before step N;
//! - `stuck-step-after:N`: step N never ends (the thread sleeps forever).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    EnginePanic,
    WorkerPanic,
    StuckStep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// The step (1-based, warm-up excluded) before which the fault strikes.
    pub at_step: u64,
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, n) = match s.split_once(':') {
            Some((name, n)) => {
                let n: u64 = n
                    .parse()
                    .map_err(|_| format!("bad step count in fault '{s}'"))?;
                (name, n.max(1))
            }
            None => (s, 1),
        };
        let kind = match name.trim_end_matches("-after") {
            "engine-panic" => FaultKind::EnginePanic,
            "worker-panic" => FaultKind::WorkerPanic,
            "stuck-step" => FaultKind::StuckStep,
            _ => {
                return Err(format!(
                "unknown fault '{s}': engine-panic-after:N, worker-panic-after:N or stuck-step-after:N"
            ))
            }
        };
        Ok(Fault { kind, at_step: n })
    }
}

impl Fault {
    /// Called by the engine thread before each step.
    pub(super) fn before_step(&self, step: u64) {
        if step != self.at_step {
            return;
        }
        tracing::warn!(fault = ?self.kind, step, "injecting a fault (test only)");
        match self.kind {
            FaultKind::EnginePanic => panic!("injected engine panic (fault injection)"),
            FaultKind::WorkerPanic => panic_a_kernel_worker(),
            FaultKind::StuckStep => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
    }
}

/// Runs a kernel pool job in which a worker thread (not the caller) panics, as a kernel bug
/// would. The pool re-raises it here, on the engine thread.
fn panic_a_kernel_worker() {
    let joined = AtomicBool::new(false);
    deepseek_kernels::pool::global().run(&|| {
        let on_worker = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("kernel-"));
        if on_worker {
            joined.store(true, Ordering::SeqCst);
            panic!("injected kernel worker panic (fault injection)");
        }
        // The caller holds the job open until a worker has joined it (a pool of one thread
        // has none: then the caller panics itself after the wait).
        let start = Instant::now();
        while !joined.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
        if !joined.load(Ordering::SeqCst) {
            panic!("injected kernel panic (fault injection; the pool has no worker)");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_with_and_without_a_step() {
        assert_eq!(
            "engine-panic-after:3".parse::<Fault>(),
            Ok(Fault {
                kind: FaultKind::EnginePanic,
                at_step: 3
            })
        );
        assert_eq!(
            "stuck-step".parse::<Fault>().map(|f| (f.kind, f.at_step)),
            Ok((FaultKind::StuckStep, 1))
        );
        assert!("worker-panic-after:x".parse::<Fault>().is_err());
        assert!("meteor".parse::<Fault>().is_err());
    }
}
