//! Shared helpers for the model integration tests: the real SmolLM2 file, a greedy decoding
//! loop, and the "batched forward equals each sequence alone" check.
#![allow(dead_code)]

use std::path::PathBuf;

use deepseek_engine::model::{CausalLm, KvCache, SeqInput};

/// The real model `make model` fetches; tests fail with a clear hint when it is absent.
pub fn smollm2_path() -> PathBuf {
    deepseek_test_support::model_path()
}

pub fn argmax(xs: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy decoding of `prompt` for up to `max_new` tokens, stopping at an EOS id.
pub fn greedy(model: &dyn CausalLm, prompt: &[u32], max_new: usize) -> anyhow::Result<Vec<u32>> {
    let mut cache = model.new_cache();
    let mut out = Vec::new();
    let mut next = prompt.to_vec();
    for _ in 0..max_new {
        let logits = model.forward(&mut [SeqInput {
            tokens: &next,
            cache: &mut cache,
        }])?;
        let tok = argmax(&logits[0]);
        if model.info().eos_token_ids.contains(&tok) {
            break;
        }
        out.push(tok);
        next = vec![tok];
    }
    Ok(out)
}

/// Largest |a - b| over two logit vectors, relative to the largest |a| (the logit scale).
pub fn relative_max_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Runs the prompts as one batched prefill followed by `steps` batched decode steps (feeding
/// each sequence its own greedy token), and the same sequences one at a time; asserts the
/// logits agree within `tol` (relative) and the argmax is equal at every step.
#[allow(clippy::needless_range_loop)] // `step` indexes the per-sequence histories
pub fn assert_batched_equals_single(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    steps: usize,
    tol: f32,
) {
    let run_alone = |prompt: &[u32]| -> Vec<Vec<f32>> {
        let mut cache = model.new_cache();
        let mut all = Vec::new();
        let mut next = prompt.to_vec();
        for _ in 0..=steps {
            let logits = model
                .forward(&mut [SeqInput {
                    tokens: &next,
                    cache: &mut cache,
                }])
                .expect("single forward");
            next = vec![argmax(&logits[0])];
            all.push(logits.into_iter().next().expect("one row"));
        }
        all
    };
    let alone: Vec<Vec<Vec<f32>>> = prompts.iter().map(|p| run_alone(p)).collect();

    let mut caches: Vec<KvCache> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut next: Vec<Vec<u32>> = prompts.to_vec();
    for step in 0..=steps {
        let mut batch: Vec<SeqInput<'_>> = next
            .iter()
            .zip(caches.iter_mut())
            .map(|(t, c)| SeqInput {
                tokens: t,
                cache: c,
            })
            .collect();
        let logits = model.forward(&mut batch).expect("batched forward");
        assert_eq!(logits.len(), prompts.len());
        for (s, row) in logits.iter().enumerate() {
            let want = &alone[s][step];
            let diff = relative_max_diff(want, row);
            assert!(diff < tol, "sequence {s} step {step}: relative diff {diff}");
            assert_eq!(
                argmax(want),
                argmax(row),
                "sequence {s} step {step}: argmax differs"
            );
        }
        next = logits.iter().map(|l| vec![argmax(l)]).collect();
    }
    for (cache, p) in caches.iter().zip(prompts) {
        assert_eq!(cache.len(), p.len() + steps);
    }
}
