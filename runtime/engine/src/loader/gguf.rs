//! GGUF files: typed metadata access and the llama-family weight layout (`llama`, `qwen2`;
//! deepseek2's is in `gguf_deepseek2*.rs`):
//! `token_embd`, `blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,
//! ffn_down}`, `output_norm`, `output` (absent when tied to `token_embd`), q/k/v biases for
//! qwen2, and llama 3.1's `rope_freqs`.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;

use super::tokenizer::GgufVocab;
use super::LoadError;
use crate::model::{DecoderConfig, DecoderWeights, LayerWeights, Linear, RopeStyle};

/// An opened GGUF file: its parsed header and a reader for tensor data.
pub struct GgufFile {
    content: Content,
    reader: BufReader<File>,
}

impl GgufFile {
    pub fn open(path: &Path) -> Result<Self, LoadError> {
        let file = File::open(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| LoadError::Gguf(e.to_string()))?;
        Ok(Self { content, reader })
    }

    pub fn metadata(&self) -> &HashMap<String, Value> {
        &self.content.metadata
    }

    pub fn has_tensor(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    pub fn tensor(&mut self, name: &str) -> Result<QTensor, LoadError> {
        if !self.has_tensor(name) {
            return Err(LoadError::MissingTensor(name.to_string()));
        }
        self.content
            .tensor(&mut self.reader, name, &Device::Cpu)
            .map_err(|e| LoadError::Tensor {
                name: name.to_string(),
                reason: e.to_string(),
            })
    }

    /// A 1-D tensor (norm weight, bias) as f32.
    pub fn vector(&mut self, name: &str) -> Result<Vec<f32>, LoadError> {
        let t = self.tensor(name)?;
        t.dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| LoadError::Tensor {
                name: name.to_string(),
                reason: e.to_string(),
            })
    }

    pub fn linear(&mut self, name: &str, bias: Option<&str>) -> Result<Linear, LoadError> {
        let w = self.tensor(name)?;
        let b = bias.map(|b| self.vector(b)).transpose()?;
        Linear::new(w, b).map_err(|e| LoadError::Tensor {
            name: name.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        match self.metadata().get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Any integer-typed value as usize (GGUF writers differ in the width they use).
    pub fn uint(&self, key: &str) -> Result<Option<usize>, LoadError> {
        let bad = |v: &Value| LoadError::BadMetadata {
            key: key.to_string(),
            reason: format!(
                "expected a non-negative integer, found {:?}",
                v.value_type()
            ),
        };
        let Some(v) = self.metadata().get(key) else {
            return Ok(None);
        };
        let n: i128 = match v {
            Value::U8(x) => (*x).into(),
            Value::I8(x) => (*x).into(),
            Value::U16(x) => (*x).into(),
            Value::I16(x) => (*x).into(),
            Value::U32(x) => (*x).into(),
            Value::I32(x) => (*x).into(),
            Value::U64(x) => (*x).into(),
            Value::I64(x) => (*x).into(),
            other => return Err(bad(other)),
        };
        usize::try_from(n).map(Some).map_err(|_| bad(v))
    }

    pub fn required_uint(&self, key: &str) -> Result<usize, LoadError> {
        self.uint(key)?
            .ok_or_else(|| LoadError::MissingMetadata(key.to_string()))
    }

    pub fn float(&self, key: &str) -> Result<Option<f32>, LoadError> {
        match self.metadata().get(key) {
            None => Ok(None),
            Some(Value::F32(x)) => Ok(Some(*x)),
            Some(Value::F64(x)) => Ok(Some(*x as f32)),
            Some(other) => Err(LoadError::BadMetadata {
                key: key.to_string(),
                reason: format!("expected a float, found {:?}", other.value_type()),
            }),
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.metadata().get(key) {
            Some(Value::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// Entries of `tokenizer.ggml.tokens` (0 when absent).
    pub fn token_count(&self) -> usize {
        self.array("tokenizer.ggml.tokens").map_or(0, Vec::len)
    }

    fn array(&self, key: &str) -> Option<&Vec<Value>> {
        match self.metadata().get(key) {
            Some(Value::Array(items)) => Some(items),
            _ => None,
        }
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.array(key)
            .map(|items| {
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => s.clone(),
                        _ => String::new(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The `tokenizer.ggml.*` metadata.
    pub fn vocab(&self) -> Result<GgufVocab, LoadError> {
        let key = "tokenizer.ggml.model";
        let model = self
            .string(key)
            .ok_or_else(|| LoadError::MissingMetadata(key.into()))?;
        let numbers = |key: &str| -> Vec<f64> {
            self.array(key)
                .map(|items| {
                    items
                        .iter()
                        .map(|v| match v {
                            Value::I32(x) => *x as f64,
                            Value::U32(x) => *x as f64,
                            Value::F32(x) => *x as f64,
                            Value::I8(x) => *x as f64,
                            Value::U8(x) => *x as f64,
                            _ => 1.0,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let id =
            |key: &str| -> Result<Option<u32>, LoadError> { Ok(self.uint(key)?.map(|v| v as u32)) };
        Ok(GgufVocab {
            model: model.to_string(),
            pre: self.string("tokenizer.ggml.pre").map(str::to_string),
            tokens: self.strings("tokenizer.ggml.tokens"),
            token_types: numbers("tokenizer.ggml.token_type")
                .into_iter()
                .map(|x| x as i32)
                .collect(),
            scores: numbers("tokenizer.ggml.scores")
                .into_iter()
                .map(|x| x as f32)
                .collect(),
            merges: self.strings("tokenizer.ggml.merges"),
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            eot: id("tokenizer.ggml.eot_token_id")?,
            eom: id("tokenizer.ggml.eom_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            add_bos: self
                .bool("tokenizer.ggml.add_bos_token")
                .unwrap_or(model == "llama"),
            add_space_prefix: self
                .bool("tokenizer.ggml.add_space_prefix")
                .unwrap_or(model == "llama"),
        })
    }

    /// Hyper-parameters of a llama-family model whose keys start with `arch.`.
    pub fn decoder_config(&mut self, arch: &str) -> Result<(DecoderConfig, usize), LoadError> {
        let k = |s: &str| format!("{arch}.{s}");
        let hidden = self.required_uint(&k("embedding_length"))?;
        let n_heads = self.required_uint(&k("attention.head_count"))?;
        let n_kv_heads = self.uint(&k("attention.head_count_kv"))?.unwrap_or(n_heads);
        if n_heads == 0 || n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
            return Err(LoadError::BadMetadata {
                key: k("attention.head_count_kv"),
                reason: format!("{n_heads} heads cannot share {n_kv_heads} KV heads"),
            });
        }
        let head_dim = self
            .uint(&k("attention.key_length"))?
            .unwrap_or(hidden / n_heads);
        let rope_dim = self.uint(&k("rope.dimension_count"))?.unwrap_or(head_dim);
        let context_length = self.required_uint(&k("context_length"))?;
        let rope_freq_factors = if self.has_tensor("rope_freqs.weight") {
            Some(self.vector("rope_freqs.weight")?)
        } else {
            None
        };
        let cfg = DecoderConfig {
            hidden,
            n_heads,
            n_kv_heads,
            head_dim,
            rope_dim: rope_dim.min(head_dim),
            rope_theta: self.float(&k("rope.freq_base"))?.unwrap_or(10_000.0),
            rope_style: if arch == "qwen2" {
                RopeStyle::Neox
            } else {
                RopeStyle::Interleaved
            },
            rope_freq_factors,
            rms_eps: self
                .float(&k("attention.layer_norm_rms_epsilon"))?
                .unwrap_or(1e-6),
        };
        Ok((cfg, context_length))
    }

    /// Every weight of a llama-family model; `biases` loads qwen2's q/k/v biases.
    pub fn decoder_weights(
        &mut self,
        arch: &str,
        biases: bool,
    ) -> Result<DecoderWeights, LoadError> {
        let n_layers = self.required_uint(&format!("{arch}.block_count"))?;
        let mut layers = Vec::with_capacity(n_layers);
        for i in 0..n_layers {
            let p = |s: &str| format!("blk.{i}.{s}");
            let bias = |s: &str| biases.then(|| p(s));
            layers.push(LayerWeights {
                attn_norm: self.vector(&p("attn_norm.weight"))?,
                q: self.linear(&p("attn_q.weight"), bias("attn_q.bias").as_deref())?,
                k: self.linear(&p("attn_k.weight"), bias("attn_k.bias").as_deref())?,
                v: self.linear(&p("attn_v.weight"), bias("attn_v.bias").as_deref())?,
                o: self.linear(&p("attn_output.weight"), None)?,
                ffn_norm: self.vector(&p("ffn_norm.weight"))?,
                gate: self.linear(&p("ffn_gate.weight"), None)?,
                up: self.linear(&p("ffn_up.weight"), None)?,
                down: self.linear(&p("ffn_down.weight"), None)?,
            });
        }
        let embed = Arc::new(self.tensor("token_embd.weight")?);
        let lm_head = if self.has_tensor("output.weight") {
            self.linear("output.weight", None)?
        } else {
            Linear::from_arc(embed.clone(), None).map_err(|e| LoadError::Tensor {
                name: "token_embd.weight".into(),
                reason: e.to_string(),
            })?
        };
        Ok(DecoderWeights {
            embed,
            layers,
            final_norm: self.vector("output_norm.weight")?,
            lm_head,
        })
    }
}
