//! deepseek2 GGUF files against llama.cpp: tiny random-weight models of each variant
//! (tests/fixtures/deepseek2_gguf/, written by scripts/deepseek2-gguf-fixtures.py with llama.cpp's
//! own GGUF writer and quantizer, and llama.cpp's logits for them, computed once by
//! llama-cpp-python: see each fixture's `llama_cpp` field) load through the server's own
//! `loader::load` and must reproduce llama.cpp's logits within a per-format tolerance at prefill
//! and at every decode step, pick llama.cpp's greedy tokens, tokenize as llama.cpp does and
//! render the file's chat template. Metadata semantics and load errors for unsupported
//! variants: model_deepseek2_gguf_metadata.rs.
//!
//! The tolerance is a max absolute logit difference; logits of these models span about ±10.
//! f32 and f16 weights differ from llama.cpp only in summation order (and, for f16, llama.cpp
//! rounding activations to f16 before its dot products); quantized weights also in how the
//! activations are quantized for the integer dot products (Q8_0 for the 32-value formats,
//! Q8_K for the K-quants), which both sides do alike but not always to the same rounding.

mod model_support;

use std::path::{Path, PathBuf};

use deepseek_engine::loader::{self, ChatMessage, LoadError, LoadOptions, LoadedModel};
use deepseek_engine::model::{CausalLm, KvCache, SeqInput};
use model_support::{argmax, assert_batched_equals_single};
use serde::Deserialize;

#[derive(Deserialize)]
struct Run {
    prompt: Vec<u32>,
    decode: Vec<u32>,
    /// Run 0 decodes llama.cpp's own greedy tokens.
    greedy: bool,
    /// Prefill's last-token logits, then one row per decode token (llama.cpp decoding one
    /// token at a time, as the engine does).
    logits: Vec<Vec<f32>>,
    /// The same rows from llama.cpp evaluating prompt and decode tokens as one batch.
    batch_logits: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Tokenized {
    text: String,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Deserialize)]
struct Chat {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    rendered: String,
}

#[derive(Deserialize)]
struct Reference {
    runs: Vec<Run>,
    tokenized: Vec<Tokenized>,
    chat: Chat,
}

fn fixture(stem: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/deepseek2_gguf")
        .join(stem)
}

fn load(path: &Path) -> Result<LoadedModel, LoadError> {
    loader::load(&LoadOptions {
        model_path: path.to_path_buf(),
        ..LoadOptions::default()
    })
}

fn reference(stem: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(&format!("{stem}.json"))).expect("reference json");
    serde_json::from_str(&text).expect("reference parses")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "vocabulary sizes differ");
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn step(model: &dyn CausalLm, cache: &mut KvCache, tokens: &[u32]) -> Vec<f32> {
    let mut out = model
        .forward(&mut [SeqInput { tokens, cache }])
        .expect("forward");
    out.pop().expect("one row")
}

/// How close to llama.cpp a format must come.
struct Tolerance {
    /// Every step of a run until a flip (below).
    tight: f32,
    /// Every step.
    loose: f32,
    /// Runs allowed to leave `tight` (from one step to the run's end, since the cache carries
    /// it): where a value lands within rounding noise of a quantization level (8-bit activation
    /// blocks; f16 activations in llama.cpp's f16 dot products), the two sides can round it to
    /// neighbouring levels and the logits move by up to `loose`. llama.cpp's own one-token and
    /// batched evaluations of the same tokens differ in the same way now and then (by 7e-2 at
    /// one step of a Q6_K variant of the V3-like file, every other step within 1e-6).
    flips: usize,
}

/// Loads `stem`.gguf and checks every run against llama.cpp; returns the largest difference.
/// Each step is compared with llama.cpp decoding one token at a time (as the engine does) and
/// with llama.cpp evaluating the same tokens as one batch: ours must be close to one of them.
fn matches_llama_cpp(stem: &str, tol: Tolerance) -> f32 {
    let loaded = load(&fixture(&format!("{stem}.gguf"))).expect("the file loads");
    let reference = reference(stem);
    let model = loaded.model.as_ref();
    assert_eq!(model.info().architecture, "deepseek2");
    let (mut worst, mut flips) = (0.0f32, Vec::new());
    for (r, run) in reference.runs.iter().enumerate() {
        let mut flipped = false;
        let mut cache = model.new_cache();
        let mut got = step(model, &mut cache, &run.prompt);
        for (i, (one, batch)) in run.logits.iter().zip(&run.batch_logits).enumerate() {
            let what = format!("{stem} run {r} step {i} (0 = prefill)");
            let (d_one, d_batch) = (max_abs_diff(&got, one), max_abs_diff(&got, batch));
            let (d, want) = if d_one <= d_batch {
                (d_one, one)
            } else {
                (d_batch, batch)
            };
            worst = worst.max(d);
            assert!(
                d < tol.loose,
                "{what}: max abs diff {d} (tolerance {})",
                tol.loose
            );
            if d >= tol.tight || flipped {
                if !flipped {
                    flips.push(format!("{what}: {d:e}"));
                    flipped = true;
                }
            } else {
                assert_eq!(argmax(&got), argmax(want), "{what}: argmax differs");
                if run.greedy {
                    if let Some(&next) = run.decode.get(i) {
                        assert_eq!(argmax(&got), next, "{what}: greedy token differs");
                    }
                }
            }
            if let Some(&tok) = run.decode.get(i) {
                got = step(model, &mut cache, &[tok]);
            }
        }
        assert_eq!(cache.len(), run.prompt.len() + run.decode.len());
    }
    assert!(
        flips.len() <= tol.flips,
        "{stem}: {} runs left {} (first steps: {flips:?})",
        flips.len(),
        tol.tight
    );
    eprintln!(
        "{stem}: max abs logit difference from llama.cpp {worst:e}; runs leaving {}: {flips:?}",
        tol.tight
    );
    worst
}

#[test]
fn v2_lite_f32_matches_llama_cpp() {
    let tol = Tolerance {
        tight: 1e-4,
        loose: 1e-4,
        flips: 0,
    };
    matches_llama_cpp("v2lite-f32", tol);
}

#[test]
fn v2_lite_q4_0_matches_llama_cpp() {
    matches_llama_cpp("v2lite-q4_0", QUANTIZED);
}

/// llama.cpp rounds activations to f16 for f16 weights; we multiply them in f32 (the same file
/// written in f32 matches llama.cpp within 8e-6, so the unsplit `attn_kv_b` path is not it).
#[test]
fn v2_with_unsplit_kv_b_and_groups_f16_matches_llama_cpp() {
    let tol = Tolerance {
        tight: 1e-2,
        loose: 5e-2,
        flips: 1,
    };
    matches_llama_cpp("v2-kvb-f16", tol);
}

#[test]
fn v3_q8_0_with_fused_expert_gate_up_matches_llama_cpp() {
    matches_llama_cpp("v3-q8_0", QUANTIZED);
}

#[test]
fn v2_lite_q4_1_matches_llama_cpp() {
    matches_llama_cpp("v2lite-q4_1", QUANTIZED);
}

#[test]
fn v3_q4_k_m_matches_llama_cpp() {
    matches_llama_cpp("v3-q4_k_m", QUANTIZED);
}

/// llama.cpp's fallback for rows that are not whole super-blocks is Q5_1 here, which has no
/// kernel of ours and runs through candle's matmul (Q8_1 activations whose block sums candle
/// rounds twice in f16, llama.cpp once); over the layers that grows to 0.21. The Q5_K tensors
/// are not it: the same file with its Q5_1 tensors re-encoded as Q8_0 matches llama.cpp
/// within 1.2e-6.
#[test]
fn v3_q5_k_m_with_q5_1_fallbacks_is_close_to_llama_cpp() {
    let tol = Tolerance {
        tight: 0.3,
        loose: 0.3,
        flips: 0,
    };
    matches_llama_cpp("v3-q5_k_m", tol);
}

/// Same block formats, same activation quantization as llama.cpp: equal but for summation
/// order, except where an activation lands on a rounding boundary.
const QUANTIZED: Tolerance = Tolerance {
    tight: 1e-4,
    loose: 0.15,
    flips: 1,
};

#[test]
fn tokenizer_and_chat_template_come_from_the_file() {
    for stem in ["v2lite-f32", "v3-q8_0"] {
        let loaded = load(&fixture(&format!("{stem}.gguf"))).expect("loads");
        let reference = reference(stem);
        for case in &reference.tokenized {
            let ids = loaded.tokenizer.encode(&case.text, true).expect("encodes");
            assert_eq!(ids, case.ids, "{stem}: tokens of {:?}", case.text);
            assert_eq!(
                loaded.tokenizer.decode(&ids),
                case.text,
                "{stem}: round trip"
            );
        }
        let messages: Vec<ChatMessage> = reference
            .chat
            .messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), m.content.clone()))
            .collect();
        let rendered = loaded
            .chat_template
            .render(&messages, reference.chat.add_generation_prompt)
            .expect("renders");
        assert_eq!(rendered, reference.chat.rendered, "{stem}: chat template");
        let eos = loaded.tokenizer.eos_token_ids().to_vec();
        assert_eq!(loaded.info.eos_token_ids, eos);
        assert_eq!(
            loaded.tokenizer.token_text(eos[0]),
            Some("<｜end▁of▁sentence｜>")
        );
    }
}

#[test]
fn batched_sequences_equal_each_alone() {
    let loaded = load(&fixture("v3-q8_0.gguf")).expect("loads");
    let prompts = vec![vec![5, 17, 42, 99, 33], vec![7, 250], vec![12, 13, 14]];
    assert_batched_equals_single(loaded.model.as_ref(), &prompts, 3, 1e-4);
}

/// `--quantize q8_0` on an f32 file: every projection becomes Q8_0 (the routers stay f32), so
/// the logits move a little from llama.cpp's f32 ones but keep its choices.
#[test]
fn quantize_at_load_applies_to_deepseek2_files() {
    use deepseek_engine::model::quantize::QuantFormat;

    let path = fixture("v2lite-f32.gguf");
    let q = loader::load(&LoadOptions {
        model_path: path,
        quantize: Some(QuantFormat::Q8_0),
        ..LoadOptions::default()
    })
    .expect("loads quantized");
    let run = &reference("v2lite-f32").runs[0];
    let mut cache = q.model.new_cache();
    let got = step(q.model.as_ref(), &mut cache, &run.prompt);
    let d = max_abs_diff(&got, &run.logits[0]);
    assert!(d > 1e-4, "Q8_0 weights cannot give f32 logits to {d}");
    assert!(d < 0.2, "max abs diff {d} from the f32 logits");
    assert_eq!(argmax(&got), argmax(&run.logits[0]));
}
