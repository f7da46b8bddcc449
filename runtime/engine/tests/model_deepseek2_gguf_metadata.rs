//! deepseek2 GGUF metadata read as llama.cpp reads it, and load errors for what it cannot run:
//! the fixtures of model_deepseek2_gguf.rs (tests/fixtures/deepseek2_gguf/, written by
//! scripts/deepseek2-gguf-fixtures.py), read directly or rewritten with one key or tensor
//! changed; every unsupported variant must fail to load with an error naming the key or tensor.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use deepseek_engine::loader::{self, LoadError, LoadOptions, LoadedModel};

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

/// `stem`.gguf rewritten with `edit` applied to its metadata and tensors.
fn rewritten(
    stem: &str,
    edit: impl FnOnce(&mut HashMap<String, Value>, &mut Vec<(String, QTensor)>),
) -> tempfile::NamedTempFile {
    let mut reader = std::fs::File::open(fixture(&format!("{stem}.gguf"))).expect("opens");
    let content = gguf_file::Content::read(&mut reader).expect("parses");
    let mut names: Vec<String> = content.tensor_infos.keys().cloned().collect();
    names.sort();
    let mut tensors: Vec<(String, QTensor)> = names
        .into_iter()
        .map(|n| {
            let t = content
                .tensor(&mut reader, &n, &Device::Cpu)
                .expect("tensor");
            (n, t)
        })
        .collect();
    let mut metadata = content.metadata;
    edit(&mut metadata, &mut tensors);
    let out = tempfile::Builder::new()
        .suffix(".gguf")
        .tempfile()
        .expect("temp file");
    let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut w = std::io::BufWriter::new(out.reopen().expect("reopen"));
    gguf_file::write(&mut w, &md, &ts).expect("writes");
    drop(w);
    out
}

fn load_error(file: &tempfile::NamedTempFile) -> String {
    load(file.path()).expect_err("must not load").to_string()
}

#[test]
fn a_rewritten_file_still_loads_so_the_error_cases_below_are_real() {
    let same = rewritten("v3-q8_0", |_, _| {});
    let loaded = load(same.path()).expect("an unedited copy loads");
    assert_eq!(loaded.info.architecture, "deepseek2");
}

#[test]
fn unsupported_gating_function_names_the_key() {
    let f = rewritten("v3-q8_0", |md, _| {
        md.insert("deepseek2.expert_gating_func".into(), Value::U32(4));
    });
    let err = load_error(&f);
    assert!(err.contains("deepseek2.expert_gating_func"), "{err}");
    assert!(err.contains("sqrt-softplus"), "{err}");
}

#[test]
fn attention_temperature_scaling_names_the_key() {
    let f = rewritten("v2lite-f32", |md, _| {
        md.insert(
            "deepseek2.attention.temperature_scale".into(),
            Value::F32(0.1),
        );
    });
    let err = load_error(&f);
    assert!(
        err.contains("deepseek2.attention.temperature_scale"),
        "{err}"
    );
}

#[test]
fn other_rope_scaling_names_the_key() {
    let f = rewritten("v2lite-f32", |md, _| {
        md.insert(
            "deepseek2.rope.scaling.type".into(),
            Value::String("longrope".into()),
        );
    });
    let err = load_error(&f);
    assert!(err.contains("deepseek2.rope.scaling.type"), "{err}");
}

#[test]
fn a_missing_tensor_is_named() {
    let f = rewritten("v3-q8_0", |_, tensors| {
        tensors.retain(|(n, _)| n != "blk.1.attn_q_a.weight");
    });
    let err = load_error(&f);
    assert!(err.contains("blk.1.attn_q_a.weight"), "{err}");
}

#[test]
fn exp_probs_b_is_optional_as_in_v2_files() {
    let f = rewritten("v3-q8_0", |_, tensors| {
        tensors.retain(|(n, _)| !n.ends_with("exp_probs_b.bias"));
    });
    load(f.path()).expect("loads without the selection bias");
}

#[test]
fn a_half_split_kv_b_header_names_the_missing_key() {
    let f = rewritten("v2lite-f32", |md, _| {
        md.remove("deepseek2.attention.value_length_mla");
    });
    let err = load_error(&f);
    assert!(
        err.contains("deepseek2.attention.value_length_mla"),
        "{err}"
    );
}

#[test]
fn a_wrongly_shaped_tensor_is_named_with_its_shape() {
    let f = rewritten("v2lite-f32", |_, tensors| {
        let at = tensors
            .iter()
            .position(|(n, _)| n == "blk.0.attn_k_b.weight")
            .expect("k_b present");
        let (_, t) = &tensors[at];
        let dims = t.shape().dims().to_vec();
        let flat = t
            .dequantize(&Device::Cpu)
            .and_then(|d| d.reshape((dims[0] * dims[1], dims[2])))
            .and_then(|d| QTensor::quantize(&d, t.dtype()))
            .expect("reshaped");
        tensors[at].1 = flat;
    });
    let err = load_error(&f);
    assert!(err.contains("blk.0.attn_k_b.weight"), "{err}");
}

#[test]
fn hyper_parameters_read_as_llama_cpp_reads_them() {
    use deepseek_engine::loader::gguf_deepseek2::deepseek2_hparams;
    use deepseek_engine::loader::GgufFile;
    use deepseek_engine::model::moe::{Gating, TopkMethod};
    use deepseek_engine::model::rope_scaling::RopeScaling;

    let open = |stem: &str| GgufFile::open(&fixture(&format!("{stem}.gguf"))).expect("opens");
    let v3 = deepseek2_hparams(&open("v3-q8_0")).expect("v3");
    let r = v3.router.as_ref().expect("MoE");
    assert_eq!(r.method, TopkMethod::LlamaCpp(Gating::Sigmoid));
    assert!(r.norm_topk_prob);
    assert_eq!((r.top_k, r.n_group, r.topk_group), (2, 4, 2));
    assert!((r.routed_scaling_factor - 2.5).abs() < 1e-6);
    assert!(v3.split_kv_b && v3.q_lora_rank == 32 && v3.leading_dense == 1);
    assert_eq!((v3.mla.qk_nope_head_dim, v3.mla.v_head_dim), (32, 32));
    // yarn_log_multiplier 0.1 * mscale_all_dim: mscale_all_dim 1, and mscale taken equal.
    let RopeScaling::Yarn {
        factor,
        mscale,
        mscale_all_dim,
        original_max_position_embeddings,
        ..
    } = v3.rope
    else {
        panic!("YaRN expected, got {:?}", v3.rope);
    };
    assert_eq!((factor, original_max_position_embeddings), (4.0, 16.0));
    assert!((mscale - 1.0).abs() < 1e-6 && (mscale_all_dim - 1.0).abs() < 1e-6);
    let m = 0.1 * 4f32.ln() + 1.0;
    assert!((v3.mla.softmax_scale - m * m / 48f32.sqrt()).abs() < 1e-6);

    // An older file: no expert_gating_func (softmax), head sizes in key_length/value_length.
    let v2 = deepseek2_hparams(&open("v2-kvb-f16")).expect("v2");
    let r = v2.router.as_ref().expect("MoE");
    assert_eq!(r.method, TopkMethod::LlamaCpp(Gating::Softmax));
    assert!(!r.norm_topk_prob && (r.routed_scaling_factor - 4.0).abs() < 1e-6);
    assert!(!v2.split_kv_b);
    assert_eq!((v2.mla.qk_nope_head_dim, v2.mla.qk_rope_head_dim), (32, 16));

    let lite = deepseek2_hparams(&open("v2lite-f32")).expect("lite");
    assert_eq!(lite.q_lora_rank, 0);
    assert_eq!(lite.n_shared_experts, 2);
}
