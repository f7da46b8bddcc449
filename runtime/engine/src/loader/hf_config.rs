//! config.json of a Hugging Face checkpoint: the fields the llama, qwen2 and deepseek2
//! architectures read, with upstream defaults, and the RoPE schedule in either spelling
//! (`rope_theta` + `rope_scaling` as published checkpoints write it, or transformers 5's
//! `rope_parameters`).

use serde::Deserialize;
use serde_json::Value;

use super::LoadError;
use crate::model::rope_scaling::RopeScaling;

/// `model_type` values this runtime serves, by the name `ModelInfo.architecture` reports.
pub fn architecture_of(model_type: &str) -> Option<&'static str> {
    match model_type {
        "llama" | "mistral" => Some("llama"),
        "qwen2" => Some("qwen2"),
        "deepseek_v2" | "deepseek_v3" => Some("deepseek2"),
        _ => None,
    }
}

/// The parsed config.json; absent optional fields take the upstream default.
#[derive(Debug, Clone, Deserialize)]
pub struct HfConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: Option<usize>,
    pub head_dim: Option<usize>,
    #[serde(default = "default_context")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<Value>,
    pub rope_parameters: Option<Value>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub attention_bias: bool,
    pub hidden_act: Option<String>,
    pub bos_token_id: Option<Value>,
    pub eos_token_id: Option<Value>,
    // deepseek2 (MLA + MoE)
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: Option<usize>,
    pub qk_nope_head_dim: Option<usize>,
    pub qk_rope_head_dim: Option<usize>,
    pub v_head_dim: Option<usize>,
    pub n_routed_experts: Option<usize>,
    pub num_experts_per_tok: Option<usize>,
    #[serde(default)]
    pub n_shared_experts: Option<usize>,
    pub moe_intermediate_size: Option<usize>,
    #[serde(default)]
    pub first_k_dense_replace: usize,
    #[serde(default = "one")]
    pub moe_layer_freq: usize,
    #[serde(default)]
    pub norm_topk_prob: bool,
    #[serde(default = "one_f")]
    pub routed_scaling_factor: f64,
    pub scoring_func: Option<String>,
    pub topk_method: Option<String>,
    pub n_group: Option<usize>,
    pub topk_group: Option<usize>,
    /// V3 in transformers may lay rotary dims out de-interleaved; published weights interleave.
    pub rope_interleave: Option<bool>,
}

fn default_context() -> usize {
    4096
}
fn default_eps() -> f64 {
    1e-6
}
fn one() -> usize {
    1
}
fn one_f() -> f64 {
    1.0
}

fn bad(key: &str, reason: impl Into<String>) -> LoadError {
    LoadError::BadMetadata {
        key: format!("config.json {key}"),
        reason: reason.into(),
    }
}

impl HfConfig {
    pub fn parse(text: &str) -> Result<Self, LoadError> {
        serde_json::from_str(text).map_err(|e| bad("", e.to_string()))
    }

    /// `llama`, `qwen2` or `deepseek2`.
    pub fn architecture(&self) -> Result<&'static str, LoadError> {
        architecture_of(&self.model_type)
            .ok_or_else(|| LoadError::UnsupportedArchitecture(self.model_type.clone()))
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// `rope_theta`, from either spelling; 10000 when absent.
    pub fn theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10_000.0)
    }

    /// The RoPE schedule; a type this runtime does not implement is an error, never ignored.
    pub fn rope_scaling(&self) -> Result<RopeScaling, LoadError> {
        let Some(p) = self
            .rope_scaling
            .as_ref()
            .or(self.rope_parameters.as_ref())
            .filter(|v| v.is_object())
        else {
            return Ok(RopeScaling::None);
        };
        let kind = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let num = |k: &str| p.get(k).and_then(Value::as_f64);
        let need = |k: &str| num(k).ok_or_else(|| bad(&format!("rope_scaling.{k}"), "missing"));
        Ok(match kind {
            "default" => RopeScaling::None,
            "linear" => RopeScaling::Linear {
                factor: need("factor")?,
            },
            "llama3" => RopeScaling::Llama3 {
                factor: need("factor")?,
                low_freq_factor: need("low_freq_factor")?,
                high_freq_factor: need("high_freq_factor")?,
                original_max_position_embeddings: need("original_max_position_embeddings")?,
            },
            "yarn" => RopeScaling::Yarn {
                factor: need("factor")?,
                original_max_position_embeddings: need("original_max_position_embeddings")?,
                beta_fast: num("beta_fast").unwrap_or(32.0),
                beta_slow: num("beta_slow").unwrap_or(1.0),
                mscale: num("mscale").unwrap_or(1.0),
                mscale_all_dim: num("mscale_all_dim").unwrap_or(0.0),
            },
            other => {
                return Err(bad(
                    "rope_scaling.type",
                    format!("{other:?} is not supported"),
                ))
            }
        })
    }

    /// Token ids from a number or a list of numbers.
    pub fn ids(v: Option<&Value>) -> Vec<u32> {
        match v {
            Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_u64)
                .map(|x| x as u32)
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn eos_ids(&self) -> Vec<u32> {
        Self::ids(self.eos_token_id.as_ref())
    }

    pub fn bos_id(&self) -> Option<u32> {
        Self::ids(self.bos_token_id.as_ref()).first().copied()
    }

    /// A deepseek2-only field that must be present.
    pub fn required(&self, key: &str, v: Option<usize>) -> Result<usize, LoadError> {
        v.ok_or_else(|| LoadError::MissingMetadata(format!("config.json {key}")))
    }

    /// Rejects activations other than SiLU (the only one the decoders implement).
    pub fn check_activation(&self) -> Result<(), LoadError> {
        match self.hidden_act.as_deref() {
            None | Some("silu") | Some("swish") => Ok(()),
            Some(other) => Err(bad("hidden_act", format!("{other:?} is not supported"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = r#"{"model_type":"deepseek_v3","vocab_size":129280,"hidden_size":7168,
      "intermediate_size":18432,"num_hidden_layers":61,"num_attention_heads":128,
      "rope_theta":10000,"rope_scaling":{"beta_fast":32,"beta_slow":1,"factor":40,"mscale":1.0,
      "mscale_all_dim":1.0,"original_max_position_embeddings":4096,"type":"yarn"},
      "eos_token_id":1,"bos_token_id":0,"kv_lora_rank":512,"q_lora_rank":1536}"#;

    #[test]
    fn reads_a_deepseek_v3_config_with_yarn_scaling() -> Result<(), LoadError> {
        let c = HfConfig::parse(V3)?;
        assert_eq!(c.architecture()?, "deepseek2");
        assert_eq!(c.eos_ids(), vec![1]);
        assert_eq!(c.moe_layer_freq, 1);
        assert!(matches!(c.rope_scaling()?, RopeScaling::Yarn { factor, .. } if factor == 40.0));
        Ok(())
    }

    #[test]
    fn rejects_an_unknown_rope_scaling_type() -> Result<(), LoadError> {
        let c = HfConfig::parse(&V3.replace("\"yarn\"", "\"longrope\""))?;
        assert!(matches!(
            c.rope_scaling(),
            Err(LoadError::BadMetadata { .. })
        ));
        Ok(())
    }

    #[test]
    fn rejects_an_unknown_model_type() -> Result<(), LoadError> {
        let c = HfConfig::parse(&V3.replace("deepseek_v3", "gpt_neox"))?;
        assert!(matches!(
            c.architecture(),
            Err(LoadError::UnsupportedArchitecture(t)) if t == "gpt_neox"
        ));
        Ok(())
    }
}
