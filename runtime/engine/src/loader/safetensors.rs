//! Hugging Face checkpoint directories: config.json plus `model.safetensors`, or shards listed
//! by `model.safetensors.index.json`, memory-mapped. Tensors keep their dtype (bf16, f16, f32)
//! and become the same `Linear` the GGUF path uses, through `Linear::from_dense`. This module
//! also maps the llama/qwen2 tensor names onto the batched `Decoder`; deepseek2's names live in
//! `safetensors_deepseek2.rs`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use super::hf_config::HfConfig;
use super::LoadError;
use crate::model::quantize::{is_dense, QuantFormat, QuantStats};
use crate::model::rope_scaling::RopeScaling;
use crate::model::{DecoderConfig, DecoderWeights, LayerWeights, Linear, RopeStyle};

/// An opened checkpoint directory.
pub struct SafetensorsDir {
    pub dir: PathBuf,
    pub config: HfConfig,
    /// `--quantize`: each dense projection is quantized as it is read, so the dense copy of
    /// only one tensor exists beside the quantized model at any moment.
    pub quantize: Option<QuantFormat>,
    /// Memory before and after that quantization, for the load log.
    pub stats: RefCell<QuantStats>,
    files: MmapedSafetensors,
    names: HashSet<String>,
}

/// Whether `path` looks like a checkpoint directory (it holds a config.json).
pub fn is_checkpoint_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> LoadError + '_ {
    move |source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tensor_err(name: &str) -> impl FnOnce(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Tensor {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

/// The weight files of `dir`: the shards the index names (each once, in order), else
/// `model.safetensors`, else every `*.safetensors` file sorted by name.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| LoadError::BadMetadata {
                key: "model.safetensors.index.json".into(),
                reason: e.to_string(),
            })?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LoadError::MissingMetadata("weight_map in the index".into()))?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(LoadError::MissingTensor(format!(
            "any *.safetensors file in {}",
            dir.display()
        )));
    }
    Ok(files)
}

impl SafetensorsDir {
    pub fn open(dir: &Path) -> Result<Self, LoadError> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(io(&config_path))?;
        let config = HfConfig::parse(&text)?;
        let paths = weight_files(dir)?;
        for p in &paths {
            if !p.is_file() {
                return Err(LoadError::Io {
                    path: p.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
        }
        // SAFETY: the files are mapped read-only; like every mmap-based loader we rely on
        // nobody truncating them while the model is served (serve verifies them first).
        let files = unsafe { MmapedSafetensors::multi(&paths) }.map_err(|e| LoadError::Tensor {
            name: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let names = files.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            quantize: None,
            stats: RefCell::default(),
            files,
            names,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// A tensor in its stored dtype (bf16, f16, f32); other dtypes (FP8, ints) are refused.
    pub fn tensor(&self, name: &str) -> Result<Tensor, LoadError> {
        if !self.has(name) {
            return Err(LoadError::MissingTensor(name.to_string()));
        }
        let t = self
            .files
            .load(name, &Device::Cpu)
            .map_err(tensor_err(name))?;
        match t.dtype() {
            DType::BF16 | DType::F16 | DType::F32 => Ok(t),
            other => Err(LoadError::Tensor {
                name: name.to_string(),
                reason: format!("dtype {other:?} is not supported (expected bf16, f16 or f32)"),
            }),
        }
    }

    /// A 1-D tensor (norm weight, bias) as f32.
    pub fn vector(&self, name: &str) -> Result<Vec<f32>, LoadError> {
        self.tensor(name)?
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(tensor_err(name))
    }

    /// `name` is `[out, in]`; `bias` (when given) is loaded as f32.
    pub fn linear(&self, name: &str, bias: Option<&str>) -> Result<Linear, LoadError> {
        let w = self.tensor(name)?;
        let b = bias.map(|b| self.vector(b)).transpose()?;
        self.dense_linear(name, &w, b, self.quantize)
    }

    /// A dense `[out, in]` weight as a `Linear`, quantized to `format` when given (rows that
    /// fit no block format stay dense); counted in `stats`.
    pub fn dense_linear(
        &self,
        name: &str,
        w: &Tensor,
        bias: Option<Vec<f32>>,
        format: Option<QuantFormat>,
    ) -> Result<Linear, LoadError> {
        let lin = match format {
            Some(f) => Linear::from_dense_quantized(w, bias, f),
            None => Linear::from_dense(w, bias),
        }
        .map_err(tensor_err(name))?;
        if format.is_some() {
            let mut s = self.stats.borrow_mut();
            if is_dense(lin.dtype()) {
                s.kept += 1;
            } else {
                s.quantized += 1;
            }
            s.bytes_before += w.elem_count() * w.dtype().size_in_bytes();
            s.bytes_after += lin.weight_bytes();
        }
        Ok(lin)
    }

    /// A `[rows, cols]` matrix for embedding lookups, in its stored precision.
    pub fn embedding(&self, name: &str) -> Result<Arc<QTensor>, LoadError> {
        let t = self.tensor(name)?;
        let format = match t.dtype() {
            DType::F16 => GgmlDType::F16,
            DType::BF16 => GgmlDType::BF16,
            _ => GgmlDType::F32,
        };
        QTensor::quantize(&t, format)
            .map(Arc::new)
            .map_err(tensor_err(name))
    }

    /// The LM head: `lm_head.weight`, or the embedding matrix when the model ties them.
    pub fn lm_head(&self, embed: &Arc<QTensor>) -> Result<Linear, LoadError> {
        if self.has("lm_head.weight") && !self.config.tie_word_embeddings {
            // Like the GGUF path's `--quantize`: an untied output layer becomes Q8_0.
            let w = self.tensor("lm_head.weight")?;
            let format = self.quantize.map(|_| QuantFormat::Q8_0);
            self.dense_linear("lm_head.weight", &w, None, format)
        } else {
            Linear::from_arc(embed.clone(), None).map_err(tensor_err("model.embed_tokens.weight"))
        }
    }

    /// Hyper-parameters of a llama or qwen2 checkpoint (HF layout: NeoX RoPE pairing).
    pub fn decoder_config(&self) -> Result<DecoderConfig, LoadError> {
        let c = &self.config;
        c.check_activation()?;
        let (n_heads, n_kv_heads) = (c.num_attention_heads, c.kv_heads());
        if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(LoadError::BadMetadata {
                key: "config.json num_key_value_heads".into(),
                reason: format!("{n_heads} heads cannot share {n_kv_heads} KV heads"),
            });
        }
        let head_dim = c.head_dim.unwrap_or(c.hidden_size / n_heads);
        let theta = c.theta();
        let scaling = c.rope_scaling()?;
        if matches!(scaling, RopeScaling::Yarn { .. }) {
            return Err(LoadError::BadMetadata {
                key: "config.json rope_scaling".into(),
                reason: "YaRN is supported for deepseek2 only".into(),
            });
        }
        // The decoder's table divides the plain frequencies by per-pair factors (llama 3.1's
        // `rope_freqs`), which expresses linear and llama3 scaling exactly.
        let (scaled, _) = scaling.inv_freq(head_dim, theta);
        let (plain, _) = RopeScaling::None.inv_freq(head_dim, theta);
        let factors: Vec<f32> = plain
            .iter()
            .zip(&scaled)
            .map(|(p, s)| (p / s) as f32)
            .collect();
        Ok(DecoderConfig {
            hidden: c.hidden_size,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim: head_dim,
            rope_theta: theta as f32,
            rope_style: RopeStyle::Neox,
            rope_freq_factors: factors.iter().any(|&f| f != 1.0).then_some(factors),
            rms_eps: c.rms_norm_eps as f32,
        })
    }

    /// Every weight of a llama or qwen2 checkpoint; q/k/v biases load when present (qwen2).
    pub fn decoder_weights(&self) -> Result<DecoderWeights, LoadError> {
        let n_layers = self.config.num_hidden_layers;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = |s: &str| format!("model.layers.{i}.{s}");
            let bias = |s: &str| Some(p(s)).filter(|b| self.has(b));
            let attn = |s: &str| {
                let w = p(&format!("self_attn.{s}_proj.weight"));
                self.linear(&w, bias(&format!("self_attn.{s}_proj.bias")).as_deref())
            };
            layers.push(LayerWeights {
                attn_norm: self.vector(&p("input_layernorm.weight"))?,
                q: attn("q")?,
                k: attn("k")?,
                v: attn("v")?,
                o: attn("o")?,
                ffn_norm: self.vector(&p("post_attention_layernorm.weight"))?,
                gate: self.linear(&p("mlp.gate_proj.weight"), None)?,
                up: self.linear(&p("mlp.up_proj.weight"), None)?,
                down: self.linear(&p("mlp.down_proj.weight"), None)?,
            });
        }
        let embed = self.embedding("model.embed_tokens.weight")?;
        let lm_head = self.lm_head(&embed)?;
        Ok(DecoderWeights {
            embed,
            layers,
            final_norm: self.vector("model.norm.weight")?,
            lm_head,
        })
    }
}
