//! The correctness half of `gpu-check`: the device must agree with the CPU (greedy tokens on the
//! real SmolLM2), with itself across batch sizes, and with Hugging Face's reference logits on
//! the tiny qwen2 and deepseek2 checkpoints.

use std::path::Path;

use deepseek_engine::loader::{self, LoadOptions};
use deepseek_engine::model::device::DeviceSpec;
use deepseek_engine::model::{CausalLm, KvCache, SeqInput};

use super::report::Check;

/// Fixed prompts as token ids (a vocabulary's low ids are ordinary tokens in every model here).
pub fn prompts(vocab: usize) -> Vec<Vec<u32>> {
    let v = vocab.max(2) as u32;
    [(12, 1u32), (40, 2), (7, 3), (90, 4)]
        .iter()
        .map(|&(len, salt)| {
            (0..len)
                .map(|i| 1 + (i * 37 + salt * 101) % (v - 1))
                .collect()
        })
        .collect()
}

fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in logits.iter().enumerate() {
        if x > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy continuations of each prompt, all sequences in one batch per step (`together`) or
/// one sequence at a time.
pub fn greedy(
    model: &dyn CausalLm,
    prompts: &[Vec<u32>],
    tokens: usize,
    together: bool,
) -> anyhow::Result<Vec<Vec<u32>>> {
    if !together {
        let mut out = Vec::new();
        for p in prompts {
            out.extend(greedy(model, std::slice::from_ref(p), tokens, true)?);
        }
        return Ok(out);
    }
    let mut caches: Vec<KvCache> = prompts.iter().map(|_| model.new_cache()).collect();
    let mut feed: Vec<Vec<u32>> = prompts.to_vec();
    let mut out = vec![Vec::new(); prompts.len()];
    for _ in 0..tokens {
        let mut batch: Vec<SeqInput<'_>> = feed
            .iter()
            .zip(caches.iter_mut())
            .map(|(t, cache)| SeqInput { tokens: t, cache })
            .collect();
        let logits = model.forward(&mut batch)?;
        for (i, row) in logits.iter().enumerate() {
            let next = argmax(row);
            out[i].push(next);
            feed[i] = vec![next];
        }
    }
    Ok(out)
}

fn first_difference(a: &[Vec<u32>], b: &[Vec<u32>]) -> Option<String> {
    for (s, (x, y)) in a.iter().zip(b).enumerate() {
        if let Some(i) = x.iter().zip(y).position(|(p, q)| p != q) {
            return Some(format!("prompt {s} differs at token {i}: {x:?} vs {y:?}"));
        }
    }
    None
}

fn load_gguf(path: &Path, device: DeviceSpec) -> anyhow::Result<Box<dyn CausalLm>> {
    let opts = LoadOptions {
        model_path: path.to_path_buf(),
        device,
        ..LoadOptions::default()
    };
    Ok(loader::load(&opts)?.model)
}

/// Greedy tokens on `device` equal to the CPU's, and batch invariance on `device`.
pub fn smollm2(path: &Path, device: DeviceSpec, tokens: usize) -> anyhow::Result<Vec<Check>> {
    let cpu = load_gguf(path, DeviceSpec::Cpu)?;
    let prompts = prompts(cpu.info().vocab_size);
    let want = greedy(cpu.as_ref(), &prompts, tokens, false)?;
    drop(cpu);
    let dev = load_gguf(path, device)?;
    let alone = greedy(dev.as_ref(), &prompts, tokens, false)?;
    let batched = greedy(dev.as_ref(), &prompts, tokens, true)?;
    let what = format!("{} prompts x {tokens} greedy tokens", prompts.len());
    Ok(vec![
        Check {
            name: format!("SmolLM2 greedy on {device} equals the CPU"),
            passed: first_difference(&want, &alone).is_none(),
            detail: first_difference(&want, &alone).unwrap_or(what.clone()),
        },
        Check {
            name: format!(
                "SmolLM2 batch invariance on {device} (alone vs {} together)",
                prompts.len()
            ),
            passed: first_difference(&alone, &batched).is_none(),
            detail: first_difference(&alone, &batched).unwrap_or(what),
        },
    ])
}

#[derive(serde::Deserialize)]
struct Run {
    prompt: Vec<u32>,
    decode: Vec<u32>,
    logits: Vec<Vec<f32>>,
}

#[derive(serde::Deserialize)]
struct Reference {
    runs: Vec<Run>,
}

/// A tiny checkpoint's logits on `device` against transformers' reference (prefill and each
/// decode step) within `tolerance`.
pub fn parity(dir: &Path, device: DeviceSpec, tolerance: f32) -> anyhow::Result<Check> {
    let name = dir
        .file_name()
        .map_or("?".into(), |n| n.to_string_lossy().into_owned());
    let opts = LoadOptions {
        model_path: dir.to_path_buf(),
        device,
        ..LoadOptions::default()
    };
    let model = loader::load_checkpoint_model(dir, &opts)?;
    let reference: Reference =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json"))?)?;
    let mut worst = 0.0f32;
    for run in &reference.runs {
        let mut cache = model.new_cache();
        let steps = std::iter::once(run.prompt.as_slice()).chain(run.decode.chunks(1));
        for (tokens, want) in steps.zip(&run.logits) {
            let got = model.forward(&mut [SeqInput {
                tokens,
                cache: &mut cache,
            }])?;
            let got = got.last().map(Vec::as_slice).unwrap_or_default();
            let diff = got
                .iter()
                .zip(want)
                .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
            worst = worst.max(if got.len() == want.len() {
                diff
            } else {
                f32::INFINITY
            });
        }
    }
    Ok(Check {
        name: format!("{name} logits on {device} match transformers"),
        passed: worst < tolerance,
        detail: format!("max abs diff {worst:.2e} (tolerance {tolerance:.0e})"),
    })
}
