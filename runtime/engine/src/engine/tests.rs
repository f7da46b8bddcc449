//! Engine tests against the deterministic fake model: generation, stop, EOS, determinism,
//! batching, cancellation and the queue limit.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use super::testing::{next_token, FakeModel, FakeTokenizer};
use super::*;
use crate::scheduler::SchedulerConfig;

fn config(max_batch_size: usize, max_queue: usize) -> EngineConfig {
    EngineConfig {
        scheduler: SchedulerConfig {
            max_batch_size,
            max_step_tokens: 256,
            kv_capacity_tokens: 4096,
        },
        max_queue,
        step_timeout: super::health::DEFAULT_STEP_TIMEOUT,
        fault: None,
    }
}

fn start(model: FakeModel, cfg: EngineConfig) -> (EngineHandle, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new("fake", "test").unwrap());
    let handle = spawn(
        Box::new(model),
        Arc::new(FakeTokenizer),
        metrics.clone(),
        cfg,
    )
    .unwrap();
    (handle, metrics)
}

fn request(prompt: &str, max_tokens: usize, sampling: SamplingParams) -> GenerationRequest {
    GenerationRequest {
        prompt_tokens: FakeTokenizer::encode(prompt),
        max_tokens,
        sampling,
        stop: Vec::new(),
        ignore_eos: false,
    }
}

fn greedy() -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        ..Default::default()
    }
}

fn collect(mut rx: mpsc::UnboundedReceiver<Event>) -> (String, FinishReason, TokenUsage) {
    let mut text = String::new();
    while let Some(ev) = rx.blocking_recv() {
        match ev {
            Event::Text(t) => text.push_str(&t),
            Event::Finished { reason, usage } => return (text, reason, usage),
            Event::Failed(e) => panic!("failed: {e}"),
        }
    }
    panic!("channel closed without a final event")
}

fn greedy_chain(prompt: &str, n: usize) -> String {
    let mut last = *FakeTokenizer::encode(prompt).last().unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        last = next_token(last);
        out.push(last);
    }
    FakeTokenizer::decode(&out)
}

#[test]
fn generates_greedily_until_max_tokens_and_reports_length() {
    let (engine, _) = start(FakeModel::new(512), config(4, 16));
    let (text, reason, usage) = collect(engine.submit(request("hello", 6, greedy())).unwrap());
    assert_eq!(text, greedy_chain("hello", 6));
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(
        usage,
        TokenUsage {
            prompt_tokens: 5,
            completion_tokens: 6
        }
    );
}

#[test]
fn stops_before_a_stop_string_and_reports_stop() {
    let (engine, _) = start(FakeModel::new(512), config(4, 16));
    let full = greedy_chain("hi", 12);
    let stop = full[5..7].to_string();
    let mut req = request("hi", 12, greedy());
    req.stop = vec![stop.clone()];
    let (text, reason, _) = collect(engine.submit(req).unwrap());
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(text, full[..full.find(&stop).unwrap()]);
}

#[test]
fn ends_at_the_models_eos_token() {
    let mut model = FakeModel::new(512);
    let prompt_last = *FakeTokenizer::encode("a").last().unwrap();
    model.eos_after = Some(next_token(next_token(prompt_last)));
    let (engine, _) = start(model, config(4, 16));
    let (text, reason, usage) = collect(engine.submit(request("a", 10, greedy())).unwrap());
    assert_eq!(reason, FinishReason::Stop);
    assert_eq!(text, greedy_chain("a", 2));
    assert_eq!(
        usage.completion_tokens, 3,
        "the EOS token counts as generated"
    );
}

#[test]
fn ignore_eos_generates_through_the_eos_token_until_max_tokens() {
    let mut model = FakeModel::new(512);
    let prompt_last = *FakeTokenizer::encode("a").last().unwrap();
    model.eos_after = Some(next_token(next_token(prompt_last)));
    let (engine, _) = start(model, config(4, 16));
    let mut req = request("a", 10, greedy());
    req.ignore_eos = true;
    let (_, reason, usage) = collect(engine.submit(req).unwrap());
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(usage.completion_tokens, 10);
}

#[test]
fn the_same_seed_gives_the_same_text_alone_and_in_a_batch() {
    let (engine, _) = start(FakeModel::new(512), config(8, 64));
    let seeded = SamplingParams {
        temperature: 1.0,
        seed: Some(42),
        ..Default::default()
    };
    let alone = collect(engine.submit(request("seed", 20, seeded.clone())).unwrap()).0;
    let rxs: Vec<_> = (0..8)
        .map(|i| {
            let (prompt, params) = if i == 3 {
                ("seed".to_string(), seeded.clone())
            } else {
                (
                    format!("other {i}"),
                    SamplingParams {
                        seed: Some(i),
                        ..seeded.clone()
                    },
                )
            };
            engine.submit(request(&prompt, 20, params)).unwrap()
        })
        .collect();
    let texts: Vec<String> = rxs.into_iter().map(|rx| collect(rx).0).collect();
    assert_eq!(texts[3], alone);
    assert_ne!(
        alone,
        greedy_chain("seed", 20),
        "sampling should differ from greedy"
    );
}

#[test]
fn concurrent_requests_share_forward_passes() {
    let mut model = FakeModel::new(512);
    model.step_delay = Duration::from_millis(5);
    let batches = model.batches.clone();
    let (engine, metrics) = start(model, config(8, 64));
    let rxs: Vec<_> = (0..8)
        .map(|i| {
            engine
                .submit(request(&format!("p{i}"), 10, greedy()))
                .unwrap()
        })
        .collect();
    for rx in rxs {
        collect(rx);
    }
    let max = batches.lock().unwrap().iter().copied().max().unwrap();
    assert_eq!(max, 8);
    let h = &metrics.decode_batch_size;
    assert!(h.get_sample_sum() / h.get_sample_count() as f64 > 4.0);
}

#[test]
fn a_dropped_receiver_frees_its_sequence_for_the_next_requests() {
    let mut model = FakeModel::new(4096);
    model.step_delay = Duration::from_millis(2);
    let (engine, metrics) = start(model, config(1, 16));
    let rx = engine.submit(request("long", 3000, greedy())).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(rx);
    let (_, reason, _) = collect(engine.submit(request("next", 3, greedy())).unwrap());
    assert_eq!(reason, FinishReason::Length);
    assert_eq!(metrics.requests.with_label_values(&["cancelled"]).get(), 1);
}

#[test]
fn a_full_queue_refuses_new_requests() {
    let mut model = FakeModel::new(4096);
    model.step_delay = Duration::from_millis(5);
    let (engine, _) = start(model, config(1, 2));
    let _a = engine.submit(request("a", 1000, greedy())).unwrap();
    std::thread::sleep(Duration::from_millis(30)); // a is running, no longer queued
    let _b = engine.submit(request("b", 10, greedy())).unwrap();
    let _c = engine.submit(request("c", 10, greedy())).unwrap();
    assert_eq!(
        engine.submit(request("d", 10, greedy())).unwrap_err(),
        SubmitError::QueueFull(2)
    );
}

#[test]
fn reports_ready_after_the_warm_up_pass() {
    let model = FakeModel::new(64);
    let batches = model.batches.clone();
    let (engine, _) = start(model, config(1, 1));
    for _ in 0..100 {
        if engine.is_ready() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(engine.is_ready());
    assert_eq!(batches.lock().unwrap().as_slice(), &[1]);
}

#[test]
fn a_request_larger_than_the_kv_budget_fails_without_stopping_the_engine() {
    let mut cfg = config(2, 4);
    cfg.scheduler.kv_capacity_tokens = 16;
    let (engine, _) = start(FakeModel::new(512), cfg);
    let mut rx = engine.submit(request("hello", 100, greedy())).unwrap();
    assert!(matches!(rx.blocking_recv(), Some(Event::Failed(_))));
    assert_eq!(
        collect(engine.submit(request("hi", 3, greedy())).unwrap()).1,
        FinishReason::Length
    );
}

fn wait_for_state(engine: &EngineHandle, want: fn(super::health::EngineState) -> bool) {
    for _ in 0..400 {
        if want(engine.state()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("engine state stayed {:?}", engine.state());
}

#[test]
fn an_engine_panic_ends_in_flight_requests_and_reads_as_stopped() {
    let mut cfg = config(2, 4);
    cfg.fault = Some("engine-panic-after:3".parse().unwrap());
    let (engine, _) = start(FakeModel::new(512), cfg);
    wait_for_state(&engine, |s| s == super::health::EngineState::Ready);
    let mut rx = engine.submit(request("hello", 50, greedy())).unwrap();
    // Before the fix nothing marked the engine as stopped: it stayed "ready".
    let mut texts = 0;
    loop {
        match rx.blocking_recv() {
            Some(Event::Text(_)) => texts += 1,
            Some(other) => panic!("unexpected {other:?}"),
            None => break,
        }
    }
    assert_eq!(texts, 2, "one token per step before the panic at step 3");
    assert_eq!(engine.state(), super::health::EngineState::Stopped);
    assert!(!engine.is_ready());
    assert_eq!(
        engine.submit(request("again", 3, greedy())).unwrap_err(),
        SubmitError::Stopped
    );
}

#[test]
fn a_kernel_worker_panic_stops_the_engine_instead_of_hanging_it() {
    let mut cfg = config(2, 4);
    cfg.fault = Some("worker-panic-after:1".parse().unwrap());
    let (engine, _) = start(FakeModel::new(512), cfg);
    wait_for_state(&engine, |s| s == super::health::EngineState::Ready);
    let mut rx = engine.submit(request("hello", 50, greedy())).unwrap();
    assert_eq!(rx.blocking_recv(), None);
    wait_for_state(&engine, |s| s == super::health::EngineState::Stopped);
}

#[test]
fn a_stuck_step_reads_as_stuck_once_past_the_watchdog_deadline() {
    let mut cfg = config(2, 4);
    cfg.step_timeout = Duration::from_millis(100);
    cfg.fault = Some("stuck-step-after:1".parse().unwrap());
    let (engine, _) = start(FakeModel::new(512), cfg);
    wait_for_state(&engine, |s| s == super::health::EngineState::Ready);
    let _rx = engine.submit(request("hello", 50, greedy())).unwrap();
    wait_for_state(&engine, |s| s.is_dead());
    assert!(matches!(
        engine.state(),
        super::health::EngineState::Stuck { .. }
    ));
}

/// A decoder that holds every byte back until the end, like a trailing partial UTF-8 character.
struct HoldingDecoder(String);

impl StreamDecoder for HoldingDecoder {
    fn push(&mut self, token: u32) -> Option<String> {
        self.0.push_str(&FakeTokenizer::decode(&[token]));
        None
    }
    fn finish(&mut self) -> Option<String> {
        Some(std::mem::take(&mut self.0))
    }
}

struct HoldingDetok;

impl Detokenizer for HoldingDetok {
    fn stream(&self) -> Box<dyn StreamDecoder> {
        Box::new(HoldingDecoder(String::new()))
    }
}

#[test]
fn the_decoders_final_flush_reaches_the_client() {
    let metrics = Arc::new(Metrics::new("fake", "test").unwrap());
    let engine = spawn(
        Box::new(FakeModel::new(512)),
        Arc::new(HoldingDetok),
        metrics,
        config(1, 4),
    )
    .unwrap();
    // Before the fix the held bytes were dropped: the reply was empty.
    let (text, reason, _) = collect(engine.submit(request("hello", 4, greedy())).unwrap());
    assert_eq!(text, greedy_chain("hello", 4));
    assert_eq!(reason, FinishReason::Length);
}

/// A model whose every forward pass fails, so its warm-up does.
struct WarmUpFails(FakeModel);

impl crate::model::CausalLm for WarmUpFails {
    fn info(&self) -> &crate::model::ModelInfo {
        self.0.info()
    }

    fn new_cache(&self) -> crate::model::KvCache {
        self.0.new_cache()
    }

    fn forward(&self, _batch: &mut [crate::model::SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        anyhow::bail!("injected warm-up failure")
    }
}

#[test]
fn a_failed_warm_up_reads_as_stopped_not_warming_up_forever() {
    // Before the health states, a failed warm-up left readiness 503 and liveness 200 forever:
    // the pod was never restarted. Now the engine reads as stopped, which fails liveness.
    let metrics = Arc::new(Metrics::new("fake", "test").unwrap());
    let engine = spawn(
        Box::new(WarmUpFails(FakeModel::new(64))),
        Arc::new(FakeTokenizer),
        metrics,
        config(1, 1),
    )
    .unwrap();
    wait_for_state(&engine, |s| s == super::health::EngineState::Stopped);
    assert!(engine.state().is_dead());
    assert!(!engine.is_ready());
    assert_eq!(
        engine.submit(request("hello", 3, greedy())).unwrap_err(),
        SubmitError::Stopped
    );
}
