//! The engine: one OS thread that owns the model and runs continuous batching. Each step asks
//! the scheduler for a `Step`, feeds every scheduled sequence to one `CausalLm::forward`, samples
//! per sequence, detokenizes incrementally, applies stop strings / EOS / max_tokens, and sends
//! `Event`s on each request's own channel. A request whose receiver is dropped (client gone,
//! cancelled) is freed at the next step.

pub mod fault;
pub mod health;
pub mod sampling;
pub mod stop;
pub mod testing;
mod worker;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use thiserror::Error;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::model::CausalLm;
use crate::scheduler::SchedulerConfig;
use deepseek_protocol::validate::SamplingParams;

/// Turns token ids back into text, one token at a time (implemented over the model's tokenizer).
pub trait Detokenizer: Send + Sync {
    fn stream(&self) -> Box<dyn StreamDecoder>;
}

/// Incremental decoder of one sequence: returns text once it forms complete characters.
pub trait StreamDecoder: Send {
    fn push(&mut self, token: u32) -> Option<String>;

    /// Bytes still held at the end of the sequence (a trailing partial UTF-8 character becomes
    /// U+FFFD rather than vanishing).
    fn finish(&mut self) -> Option<String> {
        None
    }
}

/// The loader's tokenizer decoder is the one `serve` streams with. The impl sits here (not in
/// the server, where it was written first) because both the trait and the type live in this
/// crate.
impl StreamDecoder for crate::loader::IncrementalDecoder {
    fn push(&mut self, token: u32) -> Option<String> {
        crate::loader::IncrementalDecoder::push(self, token)
    }

    fn finish(&mut self) -> Option<String> {
        crate::loader::IncrementalDecoder::finish(self)
    }
}

/// A validated generation job.
pub struct GenerationRequest {
    pub prompt_tokens: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
    /// EOS tokens are generated like any other token instead of ending the sequence.
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS or a stop string.
    Stop,
    /// max_tokens or the context window.
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
}

/// What a request's channel receives: text pieces, then exactly one `Finished` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Text(String),
    Finished {
        reason: FinishReason,
        usage: TokenUsage,
    },
    Failed(String),
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the request queue is full ({0} requests waiting)")]
    QueueFull(usize),
    #[error("the engine has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub scheduler: SchedulerConfig,
    /// Requests accepted but not yet running before `submit` answers `QueueFull`.
    pub max_queue: usize,
    /// Watchdog: a step running longer than this makes the engine read as stuck.
    pub step_timeout: Duration,
    /// Test-only fault injection (`--fault-injection`); `None` in production.
    pub fault: Option<fault::Fault>,
}

struct Submission {
    req: GenerationRequest,
    events: mpsc::UnboundedSender<Event>,
    arrived: Instant,
}

/// Cheap to clone; the engine thread stops when the last handle is dropped.
#[derive(Clone)]
pub struct EngineHandle {
    tx: std_mpsc::Sender<Submission>,
    /// Submitted but not yet scheduled for the first time.
    queued: Arc<AtomicUsize>,
    max_queue: usize,
    health: Arc<health::EngineHealth>,
}

impl EngineHandle {
    /// Queues a request; its events arrive on the returned receiver. Dropping the receiver
    /// cancels the request.
    pub fn submit(
        &self,
        req: GenerationRequest,
    ) -> Result<mpsc::UnboundedReceiver<Event>, SubmitError> {
        // The thread may still be unwinding (its channel not yet closed): refuse already.
        if self.health.state() == health::EngineState::Stopped {
            return Err(SubmitError::Stopped);
        }
        let before = self.queued.fetch_add(1, Ordering::SeqCst);
        if before >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::QueueFull(before));
        }
        let (events, rx) = mpsc::unbounded_channel();
        let sub = Submission {
            req,
            events,
            arrived: Instant::now(),
        };
        if self.tx.send(sub).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(SubmitError::Stopped);
        }
        Ok(rx)
    }

    /// The queue is at its limit: `submit` would answer `QueueFull` (checked before a request
    /// costs any CPU).
    pub fn queue_is_full(&self) -> bool {
        self.queued() >= self.max_queue
    }

    /// Requests submitted and not yet scheduled: the queue the overload policy looks at.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// True once the model has run its warm-up forward pass, while the engine thread runs and
    /// no step is stuck past the watchdog deadline.
    pub fn is_ready(&self) -> bool {
        self.state() == health::EngineState::Ready
    }

    /// What the engine can do right now (readiness and liveness read it).
    pub fn state(&self) -> health::EngineState {
        self.health.state()
    }
}

/// Starts the engine thread. It runs a warm-up forward pass first and only then reports ready;
/// a panic on it (or in a kernel it calls) stops it, and its state says so.
pub fn spawn(
    model: Box<dyn CausalLm>,
    detokenizer: Arc<dyn Detokenizer>,
    metrics: Arc<Metrics>,
    config: EngineConfig,
) -> std::io::Result<EngineHandle> {
    let (tx, rx) = std_mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let health = Arc::new(health::EngineHealth::new(config.step_timeout));
    let worker = worker::Worker::new(
        model,
        detokenizer,
        metrics,
        config,
        queued.clone(),
        health.clone(),
    );
    std::thread::Builder::new()
        .name("engine".into())
        .spawn(move || worker.run(rx))?;
    Ok(EngineHandle {
        tx,
        queued,
        max_queue: config.max_queue,
        health,
    })
}

#[cfg(test)]
mod tests;
