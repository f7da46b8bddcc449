//! The engine thread's loop: accept submissions, drop sequences whose client is gone, run one
//! scheduled step (one batched forward pass), then sample and emit per sequence.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::Instant;

use tokio::sync::mpsc;

use super::fault::Fault;
use super::health::EngineHealth;
use super::sampling::Sampler;
use super::stop::{StopMatcher, StopOutcome};
use super::{
    Detokenizer, EngineConfig, Event, FinishReason, StreamDecoder, Submission, TokenUsage,
};
use crate::metrics::Metrics;
use crate::model::{CausalLm, KvCache, SeqInput};
use crate::scheduler::{Scheduler, SeqId, StepItem};

struct Sequence {
    /// Prompt followed by every generated token.
    tokens: Vec<u32>,
    prompt_len: usize,
    max_tokens: usize,
    ignore_eos: bool,
    cache: KvCache,
    sampler: Sampler,
    decoder: Box<dyn StreamDecoder>,
    stop: StopMatcher,
    events: mpsc::UnboundedSender<Event>,
    arrived: Instant,
    last_token_at: Option<Instant>,
    /// Has left the queue (counted once, even if preempted later).
    started: bool,
}

impl Sequence {
    fn generated(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }

    fn usage(&self) -> TokenUsage {
        TokenUsage {
            prompt_tokens: self.prompt_len,
            completion_tokens: self.generated(),
        }
    }
}

pub(super) struct Worker {
    model: Box<dyn CausalLm>,
    detokenizer: Arc<dyn Detokenizer>,
    metrics: Arc<Metrics>,
    sched: Scheduler,
    seqs: HashMap<SeqId, Sequence>,
    next_id: SeqId,
    queued: Arc<AtomicUsize>,
    fault: Option<Fault>,
    /// Forward steps run since the warm-up (what fault injection counts).
    steps: u64,
    health: Arc<EngineHealth>,
}

impl Worker {
    pub(super) fn new(
        model: Box<dyn CausalLm>,
        detokenizer: Arc<dyn Detokenizer>,
        metrics: Arc<Metrics>,
        config: EngineConfig,
        queued: Arc<AtomicUsize>,
        health: Arc<EngineHealth>,
    ) -> Self {
        Self {
            model,
            detokenizer,
            metrics,
            sched: Scheduler::new(config.scheduler),
            seqs: HashMap::new(),
            next_id: 0,
            queued,
            fault: config.fault,
            steps: 0,
            health,
        }
    }

    /// The thread's body. A panic anywhere in the loop (the model, a kernel worker re-raised by
    /// the pool, sampling) is caught here: the engine is marked stopped before any client sees
    /// its stream end, then the sequences are dropped, so every in-flight request ends with an
    /// `engine_stopped` error instead of hanging, and liveness fails so the pod restarts. The
    /// engine does not try to go on after a panic: its KV caches may be half-written.
    pub(super) fn run(self, rx: std_mpsc::Receiver<Submission>) {
        let health = self.health.clone();
        let mark = health.clone();
        let outcome = catch_unwind(AssertUnwindSafe(move || {
            let mut worker = self;
            // Declared after `worker`, so dropped before it: "stopped" is visible before the
            // sequences' channels close.
            let _stopped = MarkStopped(mark);
            worker.serve(rx, &health);
        }));
        if let Err(payload) = outcome {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            tracing::error!(panic = %message, "the engine thread panicked; the engine is stopped and liveness fails");
        }
    }

    fn serve(&mut self, rx: std_mpsc::Receiver<Submission>, health: &EngineHealth) {
        health.step_begin();
        let warmed = self.warm_up();
        health.step_end();
        if let Err(e) = warmed {
            tracing::error!(error = %e, "warm-up forward pass failed; the engine stops");
            return;
        }
        health.set_ready();
        tracing::info!("engine ready");
        loop {
            if self.sched.is_idle() {
                match rx.recv() {
                    Ok(sub) => self.accept(sub),
                    Err(_) => return,
                }
            }
            while let Ok(sub) = rx.try_recv() {
                self.accept(sub);
            }
            self.drop_gone();
            health.step_begin();
            self.step();
            health.step_end();
            self.publish_gauges();
        }
    }

    /// One forward pass on a one-token sequence, so the first request does not pay for lazy
    /// initialisation and `/readyz` means the model really runs.
    fn warm_up(&self) -> anyhow::Result<()> {
        let mut cache = self.model.new_cache();
        let token = self.model.info().bos_token_id.unwrap_or(0);
        let tokens = [token];
        self.model.forward(&mut [SeqInput {
            tokens: &tokens,
            cache: &mut cache,
        }])?;
        Ok(())
    }

    fn accept(&mut self, sub: Submission) {
        let id = self.next_id;
        self.next_id += 1;
        let Submission {
            req,
            events,
            arrived,
        } = sub;
        if let Err(e) = self.sched.add(id, req.prompt_tokens.len(), req.max_tokens) {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            self.metrics
                .errors
                .with_label_values(&["kv_capacity"])
                .inc();
            let _ = events.send(Event::Failed(e.to_string()));
            return;
        }
        self.metrics
            .prompt_tokens
            .inc_by(req.prompt_tokens.len() as u64);
        let seq = Sequence {
            prompt_len: req.prompt_tokens.len(),
            tokens: req.prompt_tokens,
            max_tokens: req.max_tokens,
            ignore_eos: req.ignore_eos,
            cache: self.model.new_cache(),
            sampler: Sampler::new(req.sampling),
            decoder: self.detokenizer.stream(),
            stop: StopMatcher::new(req.stop),
            events,
            arrived,
            last_token_at: None,
            started: false,
        };
        self.seqs.insert(id, seq);
    }

    /// Frees the sequences whose receiver was dropped (client disconnected or cancelled).
    fn drop_gone(&mut self) {
        let gone: Vec<SeqId> = self
            .seqs
            .iter()
            .filter(|(_, s)| s.events.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.sched.remove(id);
            if let Some(seq) = self.seqs.remove(&id) {
                if !seq.started {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                }
                self.metrics
                    .requests
                    .with_label_values(&["cancelled"])
                    .inc();
            }
        }
    }

    fn step(&mut self) {
        let step = self.sched.schedule();
        for id in &step.preempted {
            if let Some(seq) = self.seqs.get_mut(id) {
                seq.cache = self.model.new_cache();
            }
        }
        let mut batch: Vec<(StepItem, Sequence)> = Vec::with_capacity(step.items.len());
        for item in step.items {
            if let Some(seq) = self.seqs.remove(&item.id) {
                batch.push((item, seq));
            }
        }
        if batch.is_empty() {
            return;
        }
        // Dropped before `batch` when a panic unwinds through here: the engine reads as stopped
        // before the batch's clients see their streams end.
        let _stopped_first = MarkStoppedIfPanicking(self.health.clone());
        self.steps += 1;
        if let Some(fault) = self.fault {
            // Here the batch's requests are really in flight: a panic drops them mid-step.
            fault.before_step(self.steps);
        }
        self.mark_started(&mut batch);
        let decodes = batch
            .iter()
            .filter(|(i, _)| i.start > 0 && i.len == 1)
            .count();
        if decodes > 0 {
            self.metrics.decode_batch_size.observe(decodes as f64);
        }
        match self.forward(&mut batch) {
            Ok(logits) => {
                for ((item, seq), row) in batch.into_iter().zip(logits) {
                    self.after_forward(item, seq, row);
                }
            }
            Err(e) => self.fail_all(batch, &e),
        }
    }

    fn mark_started(&self, batch: &mut [(StepItem, Sequence)]) {
        for (_, seq) in batch.iter_mut().filter(|(_, s)| !s.started) {
            seq.started = true;
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn forward(&self, batch: &mut [(StepItem, Sequence)]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut inputs: Vec<SeqInput<'_>> = batch
            .iter_mut()
            .map(|(item, seq)| {
                let Sequence { tokens, cache, .. } = seq;
                let tokens: &Vec<u32> = tokens;
                SeqInput {
                    tokens: &tokens[item.start..item.start + item.len],
                    cache,
                }
            })
            .collect();
        let logits = self.model.forward(&mut inputs)?;
        anyhow::ensure!(
            logits.len() == inputs.len(),
            "the model returned {} logit rows for {} sequences",
            logits.len(),
            inputs.len()
        );
        Ok(logits)
    }

    fn fail_all(&mut self, batch: Vec<(StepItem, Sequence)>, err: &anyhow::Error) {
        tracing::error!(error = %err, sequences = batch.len(), "forward pass failed");
        for (item, seq) in batch {
            self.sched.remove(item.id);
            self.metrics.errors.with_label_values(&["engine"]).inc();
            let _ = seq
                .events
                .send(Event::Failed(format!("inference failed: {err}")));
        }
    }

    fn after_forward(&mut self, item: StepItem, mut seq: Sequence, mut logits: Vec<f32>) {
        if self.sched.complete(&item).is_err() {
            return;
        }
        if !item.sample {
            self.seqs.insert(item.id, seq);
            return;
        }
        let token = seq.sampler.sample(&mut logits, &seq.tokens);
        seq.tokens.push(token);
        self.record_token_timing(&mut seq);
        match self.emit(&mut seq, token) {
            Some(reason) => self.finish(item.id, seq, reason),
            None => {
                if self.sched.push_token(item.id).is_ok() {
                    self.seqs.insert(item.id, seq);
                }
            }
        }
    }

    fn record_token_timing(&self, seq: &mut Sequence) {
        let now = Instant::now();
        match seq.last_token_at {
            None => self
                .metrics
                .time_to_first_token
                .observe((now - seq.arrived).as_secs_f64()),
            Some(t) => self
                .metrics
                .inter_token_latency
                .observe((now - t).as_secs_f64()),
        }
        seq.last_token_at = Some(now);
        self.metrics.generation_tokens.inc();
    }

    /// Sends the token's text (minus held-back stop prefixes); returns why the sequence ends.
    fn emit(&self, seq: &mut Sequence, token: u32) -> Option<FinishReason> {
        let info = self.model.info();
        if !seq.ignore_eos && info.eos_token_ids.contains(&token) {
            return Some(flush_tail(seq, FinishReason::Stop));
        }
        if let Some(text) = seq.decoder.push(token) {
            match seq.stop.push(&text) {
                StopOutcome::Emit(t) => send_text(seq, t),
                StopOutcome::Stopped(t) => {
                    send_text(seq, t);
                    return Some(FinishReason::Stop);
                }
            }
        }
        if seq.generated() >= seq.max_tokens || seq.tokens.len() >= info.context_length {
            return Some(flush_tail(seq, FinishReason::Length));
        }
        None
    }

    fn finish(&mut self, id: SeqId, seq: Sequence, reason: FinishReason) {
        self.sched.remove(id);
        self.metrics
            .requests
            .with_label_values(&[reason.as_str()])
            .inc();
        let _ = seq.events.send(Event::Finished {
            reason,
            usage: seq.usage(),
        });
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.running.set(self.sched.running_len() as i64);
        m.waiting.set(self.sched.waiting_len() as i64);
        let used = self.sched.kv_used();
        m.kv_used_tokens.set(used as i64);
        let cap = self.sched.config().kv_capacity_tokens.max(1);
        m.kv_usage.set(used as f64 / cap as f64);
    }
}

/// The end of a sequence: the decoder's held bytes (a trailing partial UTF-8 character) go
/// through the stop matcher like any text, then whatever the matcher held back is sent. A stop
/// string completed by the tail turns the reason into `Stop`.
fn flush_tail(seq: &mut Sequence, reason: FinishReason) -> FinishReason {
    if let Some(tail) = seq.decoder.finish() {
        match seq.stop.push(&tail) {
            StopOutcome::Emit(t) => send_text(seq, t),
            StopOutcome::Stopped(t) => {
                send_text(seq, t);
                return FinishReason::Stop;
            }
        }
    }
    let held = seq.stop.flush();
    send_text(seq, held);
    reason
}

/// Sets the engine's state to stopped when the engine thread leaves its loop, by return or by
/// panic.
struct MarkStopped(Arc<EngineHealth>);

impl Drop for MarkStopped {
    fn drop(&mut self) {
        self.0.set_stopped();
    }
}

/// Marks the engine stopped if dropped during a panic.
struct MarkStoppedIfPanicking(Arc<EngineHealth>);

impl Drop for MarkStoppedIfPanicking {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.set_stopped();
        }
    }
}

fn send_text(seq: &Sequence, text: String) {
    if !text.is_empty() {
        let _ = seq.events.send(Event::Text(text));
    }
}
