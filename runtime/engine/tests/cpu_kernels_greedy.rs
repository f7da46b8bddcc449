//! Issue 8's correctness check for the CPU kernels on the real SmolLM2-135M-Instruct Q4_1:
//! greedy output for a fixed set of prompts must equal the reference produced without our
//! kernels: candle's stock path with every weight dequantised to f32 and full-precision
//! activations (`DEEPSEEK_CPU_KERNELS=stock CANDLE_DEQUANTIZE_ALL=1`).
//! Why not candle's quantised `QMatMul`: on this x86 CPU it answers differently from that f32
//! reference on 3 of these 4 prompts ("What is the capital of France?" -> "L'Étoile, la
//! Marseillaise, ..."), while our kernels (ggml-exact activation quantisation) match it.
//! Prompts sit away from near-ties: "List three prime numbers." was dropped because after
//! "1. 1\n2. 2\n" the top two logits are so close that any 8-bit activation path (candle's
//! and ours) picks "3" where the f32 reference picks "\n".
//! Regenerate: `DEEPSEEK_CPU_KERNELS=stock CANDLE_DEQUANTIZE_ALL=1
//! DEEPSEEK_WRITE_GREEDY_FIXTURE=1 cargo test -p deepseek-runtime --test cpu_kernels_greedy`.

mod model_support;

use std::path::PathBuf;

use deepseek_engine::loader::{self, ChatMessage, LoadOptions};
use model_support::{greedy, smollm2_path};

const PROMPTS: [&str; 4] = [
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "Name the largest planet in the solar system.",
    "Explain in one sentence what a CPU does.",
];
/// Long enough to cover each answer's first clause; beyond ~15 tokens 8-bit activations (any
/// quantised path, llama.cpp's included) legitimately part from the f32 reference at
/// near-ties (seen here at tokens 17-18 of the planet prompt).
const NEW_TOKENS: usize = 12;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/greedy_smollm2_f32_reference.json")
}

fn greedy_answers() -> Vec<(String, Vec<u32>, String)> {
    let m = loader::load(&LoadOptions {
        model_path: smollm2_path(),
        ..LoadOptions::default()
    })
    .expect("SmolLM2 loads");
    PROMPTS
        .iter()
        .map(|q| {
            let text = m
                .chat_template
                .render(&[ChatMessage::new("user", *q)], true)
                .expect("template renders");
            let prompt = m.tokenizer.encode(&text, true).expect("encodes");
            let ids = greedy(m.model.as_ref(), &prompt, NEW_TOKENS).expect("generates");
            let answer = m.tokenizer.decode(&ids);
            (q.to_string(), ids, answer)
        })
        .collect()
}

#[test]
fn greedy_answers_equal_those_of_the_f32_dequantised_reference() {
    let got = greedy_answers();
    let as_json = |v: &[(String, Vec<u32>, String)]| {
        serde_json::Value::Array(
            v.iter()
                .map(|(q, ids, text)| serde_json::json!({"prompt": q, "ids": ids, "text": text}))
                .collect(),
        )
    };
    if std::env::var("DEEPSEEK_WRITE_GREEDY_FIXTURE").is_ok_and(|v| v == "1") {
        assert_eq!(
            (
                std::env::var("DEEPSEEK_CPU_KERNELS").as_deref(),
                std::env::var("CANDLE_DEQUANTIZE_ALL").as_deref()
            ),
            (Ok("stock"), Ok("1")),
            "the fixture must come from the dequantised stock path"
        );
        let text = serde_json::to_string_pretty(&as_json(&got)).expect("json");
        std::fs::write(fixture_path(), text + "\n").expect("fixture written");
        return;
    }
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_path()).expect("fixture exists"))
            .expect("fixture is json");
    assert_eq!(as_json(&got), want);
}
