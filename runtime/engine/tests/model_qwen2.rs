//! The qwen2 path end to end: the test writes a tiny random-weight qwen2 GGUF (q/k/v biases,
//! NeoX RoPE, untied output, weights in Q4_0/Q4_1/Q4_K/Q5_K/Q6_K/Q8_0/F16/F32, a small byte-level
//! BPE vocabulary with merges and ChatML special tokens), loads it through `loader::load`, and
//! checks prefill + decode and batched == single. Also the loader's typed errors.

mod model_support;

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use deepseek_engine::loader::{self, ChatTemplateError, LoadError, LoadOptions};
use model_support::{assert_batched_equals_single, greedy};

const HIDDEN: usize = 256;
const FFN: usize = 512;
const HEADS: u32 = 4;
const KV_HEADS: u32 = 2;
const LAYERS: usize = 2;
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Deterministic pseudo-random numbers in [-scale, scale] (xorshift), no extra crates needed.
struct Rng(u64);

impl Rng {
    fn tensor(&mut self, rows: usize, cols: usize, scale: f32) -> Tensor {
        let data: Vec<f32> = (0..rows * cols)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                ((self.0 >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::from_vec(data, (rows, cols), &Device::Cpu).expect("tensor")
    }
}

fn quantized(t: &Tensor, dtype: GgmlDType) -> QTensor {
    QTensor::quantize(t, dtype).expect("quantize")
}

/// GPT-2 byte-level alphabet, then a few merges, then ChatML control tokens.
fn vocabulary() -> (Vec<String>, Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = (0u32..256)
        .map(|b| {
            let printable =
                (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
            let code = if printable {
                b
            } else {
                256 + (0..b)
                    .filter(|c| {
                        !((33..=126).contains(c)
                            || (161..=172).contains(c)
                            || (174..=255).contains(c))
                    })
                    .count() as u32
            };
            char::from_u32(code).expect("char").to_string()
        })
        .collect();
    let merges: Vec<String> = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in &merges {
        tokens.push(m.replace(' ', ""));
    }
    let mut types = vec![1; tokens.len()];
    for special in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] {
        tokens.push(special.to_string());
        types.push(3);
    }
    (tokens, merges, types)
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|s| Value::String(s.clone())).collect())
}

/// Per layer, the formats of q, k, v, o, gate, up, down; and the output layer's format.
type Formats = ([[GgmlDType; 7]; LAYERS], GgmlDType);

/// Every format the loader supports, spread over the layers.
const ALL_FORMATS: Formats = (
    [
        [
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::F16,
        ],
        [
            GgmlDType::F32,
            GgmlDType::Q8_0,
            GgmlDType::F16,
            GgmlDType::Q4_1,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
            GgmlDType::Q5K,
        ],
    ],
    GgmlDType::Q6K,
);

/// Formats whose candle matmul computes each row exactly the same whatever the batch size
/// (candle's F32/F16 gemm and Q6_K paths differ in the last bits between batch sizes, which a
/// random-weight model amplifies; see `model::linear` batch-invariance test).
const BATCH_EXACT_FORMATS: Formats = (
    [
        [
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q4_0,
            GgmlDType::Q8_0,
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
        ],
        [
            GgmlDType::Q8_0,
            GgmlDType::Q4_1,
            GgmlDType::Q5K,
            GgmlDType::Q4_1,
            GgmlDType::Q4K,
            GgmlDType::Q4_0,
            GgmlDType::Q5K,
        ],
    ],
    GgmlDType::Q8_0,
);

/// Writes the tiny model; `arch`, `template` and `formats` let the tests vary them.
fn write_tiny_qwen2(path: &Path, arch: &str, template: Option<&str>, formats: &Formats) {
    let (tokens, merges, types) = vocabulary();
    let vocab = tokens.len();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let mut add = |name: String, t: QTensor| tensors.push((name, t));
    add(
        "token_embd.weight".into(),
        quantized(&rng.tensor(vocab, HIDDEN, 1.0), GgmlDType::Q8_0),
    );
    add(
        "output.weight".into(),
        quantized(&rng.tensor(vocab, HIDDEN, 0.1), formats.1),
    );
    add(
        "output_norm.weight".into(),
        quantized(
            &(rng.tensor(1, HIDDEN, 0.1) + 1.0)
                .expect("add")
                .flatten_all()
                .expect("flat"),
            GgmlDType::F32,
        ),
    );
    let kv = HIDDEN / HEADS as usize * KV_HEADS as usize;
    for (l, f) in formats.0.iter().enumerate() {
        let p = |s: &str| format!("blk.{l}.{s}");
        let shapes = [
            ("attn_q", HIDDEN, HIDDEN),
            ("attn_k", kv, HIDDEN),
            ("attn_v", kv, HIDDEN),
            ("attn_output", HIDDEN, HIDDEN),
            ("ffn_gate", FFN, HIDDEN),
            ("ffn_up", FFN, HIDDEN),
            ("ffn_down", HIDDEN, FFN),
        ];
        for ((name, rows, cols), dtype) in shapes.iter().zip(f) {
            let scale = 1.0 / (*cols as f32).sqrt() * 1.7;
            add(
                p(&format!("{name}.weight")),
                quantized(&rng.tensor(*rows, *cols, scale), *dtype),
            );
        }
        for (name, rows) in [("attn_q", HIDDEN), ("attn_k", kv), ("attn_v", kv)] {
            add(
                p(&format!("{name}.bias")),
                quantized(
                    &rng.tensor(1, rows, 0.2).flatten_all().expect("flat"),
                    GgmlDType::F32,
                ),
            );
        }
        for name in ["attn_norm", "ffn_norm"] {
            let w = (rng.tensor(1, HIDDEN, 0.1) + 1.0)
                .expect("add")
                .flatten_all()
                .expect("flat");
            add(p(&format!("{name}.weight")), quantized(&w, GgmlDType::F32));
        }
    }
    let k = |s: &str| format!("{arch}.{s}");
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (k("block_count"), Value::U32(LAYERS as u32)),
        (k("context_length"), Value::U32(128)),
        (k("embedding_length"), Value::U32(HIDDEN as u32)),
        (k("feed_forward_length"), Value::U32(FFN as u32)),
        (k("attention.head_count"), Value::U32(HEADS)),
        (k("attention.head_count_kv"), Value::U32(KV_HEADS)),
        (k("rope.freq_base"), Value::F32(1_000_000.0)),
        (k("attention.layer_norm_rms_epsilon"), Value::F32(1e-6)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String("qwen2".into())),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.merges".into(), strings(&merges)),
        (
            "tokenizer.ggml.eos_token_id".into(),
            Value::U32(vocab as u32 - 1),
        ),
        (
            "tokenizer.ggml.bos_token_id".into(),
            Value::U32(vocab as u32 - 3),
        ),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
    ];
    if let Some(t) = template {
        meta.push(("tokenizer.chat_template".into(), Value::String(t.into())));
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).expect("create gguf");
    gguf_file::write(&mut file, &meta_refs, &tensor_refs).expect("write gguf");
}

fn tiny_model(dir: &tempfile::TempDir, arch: &str, template: Option<&str>) -> PathBuf {
    let path = dir.path().join(format!("tiny-{arch}.gguf"));
    write_tiny_qwen2(&path, arch, template, &ALL_FORMATS);
    path
}

fn options(path: PathBuf) -> LoadOptions {
    LoadOptions {
        model_path: path,
        ..LoadOptions::default()
    }
}

#[test]
fn tiny_qwen2_loads_and_reports_its_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = loader::load(&options(tiny_model(&dir, "qwen2", Some(CHATML)))).expect("loads");
    assert_eq!(m.info.architecture, "qwen2");
    assert_eq!(m.info.vocab_size, 256 + 7 + 3);
    assert_eq!(m.info.context_length, 128);
    assert_eq!(m.info.eos_token_ids, vec![265]);
    assert_eq!(m.info.kv_bytes_per_token, LAYERS * 2 * 128 * 4);
    let ids = m.tokenizer.encode("hello world", true).expect("encodes");
    // "hello" and " wor" are merged tokens; "l" and "d" stay single bytes.
    assert_eq!(ids, vec![259, 262, 108, 100]);
    assert_eq!(m.tokenizer.decode(&ids), "hello world");
    let prompt = m
        .chat_template
        .render(&[loader::ChatMessage::new("user", "hello")], true)
        .expect("renders");
    let ids = m.tokenizer.encode(&prompt, true).expect("encodes");
    assert_eq!(ids[0], 264, "<|im_start|> is one special token");
}

#[test]
fn tiny_qwen2_in_every_weight_format_generates_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = loader::load(&options(tiny_model(&dir, "qwen2", Some(CHATML)))).expect("loads");
    let out = greedy(m.model.as_ref(), &[1, 2, 3, 4, 5], 8).expect("generates");
    assert!(!out.is_empty());
    assert!(out.iter().all(|&t| (t as usize) < m.info.vocab_size));
}

#[test]
fn tiny_qwen2_batched_forward_equals_each_sequence_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny-exact.gguf");
    write_tiny_qwen2(&path, "qwen2", Some(CHATML), &BATCH_EXACT_FORMATS);
    let m = loader::load(&options(path)).expect("loads");
    let prompts: Vec<Vec<u32>> = vec![
        vec![10],
        (0..17).map(|i| i * 7 % 260).collect(),
        (0..40).map(|i| i * 3 % 250).collect(),
        vec![259, 262, 108],
    ];
    assert_batched_equals_single(m.model.as_ref(), &prompts, 5, 1e-3);
}

#[test]
fn an_unsupported_architecture_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = loader::load(&options(tiny_model(&dir, "mamba", Some(CHATML)))).expect_err("refused");
    assert!(
        matches!(&err, LoadError::UnsupportedArchitecture(a) if a == "mamba"),
        "{err:?}"
    );
}

#[test]
fn a_gguf_without_chat_template_needs_an_override() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = tiny_model(&dir, "qwen2", None);
    let err = loader::load(&options(path.clone())).expect_err("refused");
    assert!(
        matches!(err, LoadError::ChatTemplate(ChatTemplateError::Missing)),
        "{err:?}"
    );

    let template = dir.path().join("chatml.jinja");
    std::fs::write(&template, CHATML).expect("write template");
    let m = loader::load(&LoadOptions {
        model_path: path,
        chat_template_path: Some(template),
        ..LoadOptions::default()
    })
    .expect("loads with the override");
    let text = m
        .chat_template
        .render(&[loader::ChatMessage::new("user", "x")], true)
        .expect("renders");
    assert_eq!(
        text,
        "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn a_file_that_is_not_gguf_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, b"{}").expect("write");
    let err = loader::load(&options(path)).expect_err("refused");
    assert!(
        matches!(err, LoadError::UnsupportedFileFormat(_)),
        "{err:?}"
    );
    let bad = dir.path().join("broken.gguf");
    std::fs::write(&bad, b"not a gguf file at all").expect("write");
    let err = loader::load(&options(bad)).expect_err("refused");
    assert!(matches!(err, LoadError::Gguf(_)), "{err:?}");
}

/// Every projection and the output layer dense (f32, f16), so `--quantize` has work to do.
const DENSE_FORMATS: Formats = ([[GgmlDType::F32; 7], [GgmlDType::F16; 7]], GgmlDType::F32);

fn prefill_logits(model: &dyn deepseek_engine::model::CausalLm, prompt: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache();
    let mut batch = [deepseek_engine::model::SeqInput {
        tokens: prompt,
        cache: &mut cache,
    }];
    model.forward(&mut batch).expect("forward").remove(0)
}

#[test]
fn a_dense_model_quantized_at_load_gives_close_logits() {
    use deepseek_engine::model::quantize::QuantFormat;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tiny-dense.gguf");
    write_tiny_qwen2(&path, "qwen2", Some(CHATML), &DENSE_FORMATS);
    let prompt: Vec<u32> = (0..12).map(|i| i * 11 % 250).collect();
    let dense = loader::load(&options(path.clone())).expect("loads");
    let want = prefill_logits(dense.model.as_ref(), &prompt);
    for (format, tolerance) in [(QuantFormat::Q8_0, 0.05), (QuantFormat::Q4K, 0.25)] {
        let quantized = loader::load(&LoadOptions {
            model_path: path.clone(),
            quantize: Some(format),
            ..LoadOptions::default()
        })
        .expect("loads quantized");
        let got = prefill_logits(quantized.model.as_ref(), &prompt);
        let diff = model_support::relative_max_diff(&got, &want);
        eprintln!("{format:?}: relative max logit difference {diff}");
        assert!(diff > 0.0, "{format:?}: the weights were not quantized");
        assert!(diff < tolerance, "{format:?}: {diff}");
    }
}
