//! Download and copy progress: bytes, rate and ETA on one redrawn line when stderr is a
//! terminal; structured `tracing` lines (every few seconds) otherwise, for pod logs.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a terminal line is redrawn and how often a log line is written.
const TTY_EVERY: Duration = Duration::from_millis(200);
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    path: String,
    total: Option<u64>,
    done: u64,
    /// Bytes already present when this run started (a resumed download): not part of the rate.
    resumed: u64,
    started: Instant,
    last: Instant,
    tty: bool,
}

impl Progress {
    pub fn new(path: &str, total: Option<u64>) -> Self {
        let now = Instant::now();
        Self {
            path: path.to_string(),
            total,
            done: 0,
            resumed: 0,
            started: now,
            last: now,
            tty: std::io::stderr().is_terminal(),
        }
    }

    /// Restarts the count at `offset` (a resumed or restarted attempt).
    pub fn restart_at(&mut self, offset: u64) {
        self.done = offset;
        self.resumed = offset;
        self.started = Instant::now();
    }

    pub fn set_total(&mut self, total: Option<u64>) {
        if total.is_some() {
            self.total = total;
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        let every = if self.tty { TTY_EVERY } else { LOG_EVERY };
        if self.last.elapsed() >= every {
            self.last = Instant::now();
            self.report();
        }
    }

    /// Bytes per second over this attempt.
    fn rate(&self) -> f64 {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        (self.done - self.resumed) as f64 / secs
    }

    fn eta_secs(&self) -> Option<u64> {
        let total = self.total?;
        let rate = self.rate();
        (rate > 0.0).then(|| (total.saturating_sub(self.done) as f64 / rate) as u64)
    }

    fn report(&self) {
        let rate = self.rate();
        if self.tty {
            let total = self.total.map(mib).unwrap_or_else(|| "?".into());
            let eta = self
                .eta_secs()
                .map(|s| format!("{s}s"))
                .unwrap_or("?".into());
            let line = format!(
                "\r{}: {} / {} MiB  {} MiB/s  ETA {}   ",
                self.path,
                mib(self.done),
                total,
                mib(rate as u64),
                eta
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            tracing::info!(
                file = %self.path,
                bytes = self.done,
                total = self.total,
                rate_bytes_per_sec = rate as u64,
                eta_secs = self.eta_secs(),
                "progress"
            );
        }
    }

    /// Ends the line (terminal) and logs the outcome.
    pub fn finish(&self) {
        if self.tty {
            self.report();
            let _ = std::io::stderr().write_all(b"\n");
        }
        tracing::info!(
            file = %self.path,
            bytes = self.done,
            secs = self.started.elapsed().as_secs_f64(),
            "transferred"
        );
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}
