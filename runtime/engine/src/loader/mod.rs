//! Turns files on disk into a ready model: GGUF weights, the tokenizer and the chat template.
//! `load` is the one entry point the server uses; architecture dispatch happens here by GGUF
//! `general.architecture`, or in `checkpoint.rs` by config.json's `model_type` for a
//! Hugging Face checkpoint directory.

pub mod chat_template;
pub mod checkpoint;
pub mod gguf;
pub mod gguf_deepseek2;
pub mod gguf_deepseek2_weights;
pub mod hf_config;
pub mod hf_tokenizer;
pub mod pretokenize;
pub mod prompt;
pub mod qtensor_slice;
pub mod safetensors;
pub mod safetensors_deepseek2;
pub mod tokenizer;
pub mod vocab;

use std::path::PathBuf;

pub use chat_template::{ChatMessage, ChatTemplate, ChatTemplateError};
pub use checkpoint::{load_checkpoint, load_checkpoint_model};
pub use gguf::GgufFile;
pub use hf_config::HfConfig;
pub use hf_tokenizer::{load_hf_text, tokenizer_from_json, HfText, TokenizerConfig};
pub use prompt::{encode_chat, PromptError};
pub use safetensors::{is_checkpoint_dir, SafetensorsDir};
pub use tokenizer::{GgufVocab, IncrementalDecoder, TextTokenizer, TokenizerError};

use crate::model::deepseek2::{Deepseek2, Deepseek2Weights};
use crate::model::device::{place_decoder, DeviceSpec};
use crate::model::quantize::{quantize_decoder, quantize_linear, QuantFormat, QuantStats};
use crate::model::{CausalLm, Decoder, DecoderWeights, ModelInfo, RopeStyle};

/// Architectures `load` accepts.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "qwen2", "deepseek2"];

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: only GGUF model files are supported so far")]
    UnsupportedFileFormat(PathBuf),
    #[error("not a valid GGUF file: {0}")]
    Gguf(String),
    #[error("architecture {0:?} is not supported (supported: llama, qwen2, deepseek2)")]
    UnsupportedArchitecture(String),
    #[error("model metadata lacks {0}")]
    MissingMetadata(String),
    #[error("model metadata {key} is invalid: {reason}")]
    BadMetadata { key: String, reason: String },
    #[error("model file lacks tensor {0}")]
    MissingTensor(String),
    #[error("tensor {name} cannot be loaded: {reason}")]
    Tensor { name: String, reason: String },
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    ChatTemplate(#[from] ChatTemplateError),
}

impl LoadError {
    /// A stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::UnsupportedFileFormat(_) => "unsupported_file_format",
            Self::Gguf(_) => "gguf",
            Self::UnsupportedArchitecture(_) => "unsupported_architecture",
            Self::MissingMetadata(_) => "missing_metadata",
            Self::BadMetadata { .. } => "bad_metadata",
            Self::MissingTensor(_) => "missing_tensor",
            Self::Tensor { .. } => "tensor",
            Self::Tokenizer(_) => "tokenizer",
            Self::ChatTemplate(_) => "chat_template",
        }
    }
}

/// What to load and how.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A `.gguf` file, or a checkpoint directory (config.json, safetensors, tokenizer.json).
    pub model_path: PathBuf,
    /// A Jinja file that replaces (or supplies) the model's chat template.
    pub chat_template_path: Option<PathBuf>,
    /// Caps the model's context length (positions per sequence); `None` keeps the model's.
    pub context_length: Option<usize>,
    /// Quantizes dense weights at load (`--quantize`).
    pub quantize: Option<QuantFormat>,
    /// Where the linear layers live (`--device`).
    pub device: DeviceSpec,
}

/// A model ready to serve.
pub struct LoadedModel {
    pub model: Box<dyn CausalLm>,
    pub tokenizer: TextTokenizer,
    pub chat_template: ChatTemplate,
    pub info: ModelInfo,
}

impl std::fmt::Debug for LoadedModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModel")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// Loads weights, tokenizer and chat template. Runs on the caller's thread; the linear layers
/// later use rayon's global pool, which the server sizes.
pub fn load(opts: &LoadOptions) -> Result<LoadedModel, LoadError> {
    let path = &opts.model_path;
    if is_checkpoint_dir(path) {
        return load_checkpoint(opts);
    }
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if !is_gguf {
        return Err(LoadError::UnsupportedFileFormat(path.clone()));
    }
    let mut file = GgufFile::open(path)?;
    let arch = file
        .string("general.architecture")
        .ok_or_else(|| LoadError::MissingMetadata("general.architecture".into()))?
        .to_string();
    if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
        return Err(LoadError::UnsupportedArchitecture(arch));
    }
    let vocab = file.vocab()?;
    let tokenizer = TextTokenizer::from_gguf_vocab(&vocab)?;
    let token = |id: Option<u32>| {
        id.and_then(|i| tokenizer.token_text(i))
            .unwrap_or_default()
            .to_string()
    };
    let chat_template = ChatTemplate::resolve(
        file.string("tokenizer.chat_template").map(str::to_string),
        opts.chat_template_path.as_deref(),
        token(vocab.bos),
        token(vocab.eos),
    )?;

    let model = match arch.as_str() {
        "deepseek2" => load_deepseek2(&mut file, &tokenizer, opts)?,
        _ => load_decoder(&mut file, &arch, &tokenizer, opts)?,
    };
    if tokenizer.vocab_size() > model.info().vocab_size {
        return Err(LoadError::BadMetadata {
            key: "tokenizer.ggml.tokens".into(),
            reason: format!(
                "{} tokens but the output layer has {} rows",
                tokenizer.vocab_size(),
                model.info().vocab_size
            ),
        });
    }
    let info = model.info().clone();
    tracing::info!(
        architecture = %info.architecture,
        vocab = info.vocab_size,
        context = info.context_length,
        kv_bytes_per_token = info.kv_bytes_per_token,
        "model loaded"
    );
    Ok(LoadedModel {
        model,
        tokenizer,
        chat_template,
        info,
    })
}

/// What the engine needs to know of a GGUF model, before its constructor fills in the KV size.
fn gguf_info(
    arch: &str,
    vocab_size: usize,
    model_context: usize,
    tokenizer: &TextTokenizer,
    opts: &LoadOptions,
) -> ModelInfo {
    ModelInfo {
        architecture: arch.to_string(),
        vocab_size,
        context_length: opts
            .context_length
            .map_or(model_context, |c| c.min(model_context)),
        eos_token_ids: tokenizer.eos_token_ids().to_vec(),
        bos_token_id: tokenizer.bos_token_id(),
        kv_bytes_per_token: 0, // filled by the model's constructor
    }
}

/// A llama-family GGUF model (`llama`, `qwen2`).
fn load_decoder(
    file: &mut GgufFile,
    arch: &str,
    tokenizer: &TextTokenizer,
    opts: &LoadOptions,
) -> Result<Box<dyn CausalLm>, LoadError> {
    let (cfg, model_context) = file.decoder_config(arch)?;
    let weights = file.decoder_weights(arch, arch == "qwen2")?;
    let weights = prepare_weights(weights, opts)?;
    let vocab_size = weights.lm_head.out_dim();
    let info = gguf_info(arch, vocab_size, model_context, tokenizer, opts);
    Ok(Box::new(Decoder::new(cfg, weights, info)))
}

/// A deepseek2 GGUF model (MLA + MoE), with `--quantize` and `--device` applied.
fn load_deepseek2(
    file: &mut GgufFile,
    tokenizer: &TextTokenizer,
    opts: &LoadOptions,
) -> Result<Box<dyn CausalLm>, LoadError> {
    let hp = gguf_deepseek2::deepseek2_hparams(file)?;
    let mut weights = gguf_deepseek2_weights::deepseek2_weights(file, &hp)?;
    prepare_deepseek2(&mut weights, opts)?;
    let vocab_size = weights.lm_head.out_dim();
    let info = gguf_info("deepseek2", vocab_size, hp.context_length, tokenizer, opts);
    // llama.cpp rotates deepseek2's adjacent pairs (its NORM rope), as the published weights do.
    let rope = hp.rope.table(
        hp.mla.qk_rope_head_dim,
        hp.rope_theta,
        info.context_length,
        RopeStyle::Interleaved,
    );
    Ok(Box::new(Deepseek2::new(hp.mla, weights, rope, info)))
}

/// `--quantize` (dense projections; routers stay as they are) and `--device` for deepseek2.
fn prepare_deepseek2(w: &mut Deepseek2Weights, opts: &LoadOptions) -> Result<(), LoadError> {
    let err = |e: candle_core::Error| LoadError::Tensor {
        name: "linear layers".into(),
        reason: e.to_string(),
    };
    if let Some(format) = opts.quantize {
        let mut stats = QuantStats::default();
        w.map_linears(|l| {
            let q = quantize_linear(l, format)?;
            stats.add(l, &q);
            Ok(q)
        })
        .map_err(err)?;
        stats.log(format);
    }
    let device = opts.device.open().map_err(err)?;
    if !device.is_cpu() {
        w.map_linears(|l| l.to_device(&device)).map_err(err)?;
    }
    Ok(())
}

/// `--quantize` and `--device` applied to loaded decoder weights: dense layers quantized (the
/// memory saving logged), then every linear layer moved to the device.
pub fn prepare_weights(
    weights: DecoderWeights,
    opts: &LoadOptions,
) -> Result<DecoderWeights, LoadError> {
    let err = |e: candle_core::Error| LoadError::Tensor {
        name: "linear layers".into(),
        reason: e.to_string(),
    };
    let weights = match opts.quantize {
        Some(format) => {
            let (w, stats) = quantize_decoder(weights, format).map_err(err)?;
            stats.log(format);
            w
        }
        None => weights,
    };
    let device = opts.device.open().map_err(err)?;
    place_decoder(weights, &device).map_err(err)
}
