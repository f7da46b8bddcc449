//! The whole model computes the same logits, bit for bit, on every kernel path this CPU has
//! (issue 18 item 0). The kernel tests check each matmul; this checks everything the path
//! touches together (activation quantisation, grouped q/k/v and gate/up jobs, the 4-row
//! kernels of prefill, attention) on the real SmolLM2-135M-Instruct Q4_1, for prompts whose
//! answers sit near ties: before the kernels were made exact, the SIMD paths answered
//! "What is the capital of France?" with "The capital of France is Paris." and the portable
//! path with "L'Étoile, la Marseillaise, ...", from last-bit differences amplified by 8-bit
//! activations over 30 layers.
//!
//! `KernelPath::detect()` is process-wide (read once from `DEEPSEEK_CPU_PATH`), so the parent
//! test runs this binary once per path with only the child test selected; each child writes
//! the logits (as f32 bits) of the prefill and of every greedy step, and the parent compares.

mod model_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use deepseek_engine::loader::{self, ChatMessage, LoadOptions};
use deepseek_engine::model::SeqInput;
use deepseek_kernels::KernelPath;
use model_support::{argmax, smollm2_path};

const PROMPTS: [&str; 12] = [
    "What is the capital of France?",
    "Name the capital of France.",
    "Write a haiku about autumn.",
    "Name the largest planet in the solar system.",
    "Explain in one sentence what a CPU does.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "What is 12 times 7?",
    "Give me a synonym for happy.",
    "Who wrote Romeo and Juliet?",
    "Describe the color of the sky on a clear day.",
    "Hi",
];
/// Greedy steps after the prefill (each step's full logits are compared).
const STEPS: usize = 8;
const OUT_VAR: &str = "DEEPSEEK_PATH_LOGITS_OUT";
const CHILD: &str = "child_writes_the_logits_of_its_kernel_path";

/// Per prompt: the greedy ids, the logits (bits) of the prefill and each step, and the text.
type Run = BTreeMap<String, (Vec<u32>, Vec<Vec<u32>>, String)>;

fn run_prompts() -> Run {
    let m = loader::load(&LoadOptions {
        model_path: smollm2_path(),
        ..LoadOptions::default()
    })
    .expect("SmolLM2 loads");
    let eos = &m.model.info().eos_token_ids;
    PROMPTS
        .iter()
        .map(|q| {
            let text = m
                .chat_template
                .render(&[ChatMessage::new("user", *q)], true)
                .expect("template renders");
            let mut next = m.tokenizer.encode(&text, true).expect("encodes");
            let mut cache = m.model.new_cache();
            let (mut ids, mut logits) = (Vec::new(), Vec::new());
            for _ in 0..=STEPS {
                let row = m
                    .model
                    .forward(&mut [SeqInput {
                        tokens: &next,
                        cache: &mut cache,
                    }])
                    .expect("forward")
                    .remove(0);
                let tok = argmax(&row);
                logits.push(row.into_iter().map(f32::to_bits).collect());
                if eos.contains(&tok) {
                    break;
                }
                ids.push(tok);
                next = vec![tok];
            }
            let text = m.tokenizer.decode(&ids);
            (q.to_string(), (ids, logits, text))
        })
        .collect()
}

/// Only does something when the parent set `DEEPSEEK_PATH_LOGITS_OUT`.
#[test]
fn child_writes_the_logits_of_its_kernel_path() {
    let Ok(out) = std::env::var(OUT_VAR) else {
        return;
    };
    let run = run_prompts();
    let path = format!("{:?}", KernelPath::detect());
    let json = serde_json::json!({"path": path, "run": run});
    std::fs::write(out, serde_json::to_vec(&json).expect("json")).expect("written");
}

fn run_on(path: &str, dir: &Path) -> Run {
    let out = dir.join(format!("{path}.json"));
    let status = Command::new(std::env::current_exe().expect("test binary"))
        .args([CHILD, "--exact", "--test-threads=1"])
        .env(OUT_VAR, &out)
        .env("DEEPSEEK_CPU_PATH", path)
        .status()
        .expect("child runs");
    assert!(status.success(), "child on {path} failed");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).expect("child wrote")).expect("json");
    let want = match path {
        "scalar" => KernelPath::Scalar,
        "avx2" => KernelPath::Avx2,
        _ => KernelPath::Avx512Vnni,
    };
    assert_eq!(
        v["path"],
        format!("{want:?}"),
        "child ran on the path asked for"
    );
    serde_json::from_value(v["run"].clone()).expect("run")
}

#[test]
fn logits_are_bit_identical_on_every_kernel_path() {
    let dir = std::env::temp_dir().join(format!("kernel-paths-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let paths = [
        ("scalar", KernelPath::Scalar),
        ("avx2", KernelPath::Avx2),
        ("avx512vnni", KernelPath::Avx512Vnni),
    ];
    let runs: Vec<(&str, Run)> = paths
        .iter()
        .filter(|(_, p)| p.is_supported())
        .map(|(name, _)| (*name, run_on(name, &dir)))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    for (name, run) in &runs {
        for (q, (_, _, text)) in run {
            eprintln!("{name:>10} {q:?} -> {text:?}");
        }
    }
    let (_, portable) = &runs[0];
    for (name, run) in &runs[1..] {
        for q in PROMPTS {
            let ((ids_a, la, _), (ids_b, lb, _)) = (&portable[q], &run[q]);
            for (step, (a, b)) in la.iter().zip(lb).enumerate() {
                let worst = a
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (f32::from_bits(*x) - f32::from_bits(*y)).abs())
                    .fold(0.0f32, f32::max);
                assert!(
                    a == b,
                    "{name} vs scalar, {q:?} step {step}: logits differ by up to {worst}"
                );
            }
            assert_eq!(ids_a, ids_b, "{name} vs scalar greedy ids for {q:?}");
        }
    }
}
