//! deepseek2 checkpoints (DeepseekV2ForCausalLM / DeepseekV3ForCausalLM) from safetensors:
//! config.json's MLA and MoE hyper-parameters, and the published tensor names
//! (`self_attn.{q_proj | q_a_proj, q_a_layernorm, q_b_proj}`, `kv_a_proj_with_mqa`,
//! `kv_a_layernorm`, `kv_b_proj`, `o_proj`; `mlp.{gate_proj, up_proj, down_proj}` for dense
//! layers; `mlp.gate.weight`, `mlp.gate.e_score_correction_bias`, `mlp.experts.E.*`,
//! `mlp.shared_experts.*` for MoE layers). `kv_b_proj` is split per head for absorption.

use candle_core::{DType, Tensor};

use super::hf_config::HfConfig;
use super::safetensors::SafetensorsDir;
use super::LoadError;
use crate::model::deepseek2::{Deepseek2, Deepseek2Layer, Deepseek2Weights, FeedForward};
use crate::model::mla::{MlaConfig, MlaWeights, QueryProj};
use crate::model::moe::{Mlp, Moe, RouterConfig, TopkMethod};
use crate::model::{Linear, ModelInfo, RopeStyle};

fn tensor_err(name: &str) -> impl FnOnce(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Tensor {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

fn bad(key: &str, reason: String) -> LoadError {
    LoadError::BadMetadata {
        key: format!("config.json {key}"),
        reason,
    }
}

/// Attention shapes from config.json.
pub fn mla_config(c: &HfConfig) -> Result<MlaConfig, LoadError> {
    let nope = c.required("qk_nope_head_dim", c.qk_nope_head_dim)?;
    let rope = c.required("qk_rope_head_dim", c.qk_rope_head_dim)?;
    let scale = ((nope + rope) as f32).powf(-0.5) * c.rope_scaling()?.softmax_scale_factor();
    Ok(MlaConfig {
        n_heads: c.num_attention_heads,
        kv_lora_rank: c.required("kv_lora_rank", c.kv_lora_rank)?,
        qk_nope_head_dim: nope,
        qk_rope_head_dim: rope,
        v_head_dim: c.required("v_head_dim", c.v_head_dim)?,
        rms_eps: c.rms_norm_eps as f32,
        softmax_scale: scale,
    })
}

/// Router settings; V3 (`noaux_tc` or sigmoid scoring) vs V2 (softmax).
pub fn router_config(c: &HfConfig) -> Result<RouterConfig, LoadError> {
    let v3 = c.model_type == "deepseek_v3";
    let method = match c.topk_method.as_deref() {
        Some("greedy") => TopkMethod::Greedy,
        Some("group_limited_greedy") => TopkMethod::GroupLimitedGreedy,
        Some("noaux_tc") => TopkMethod::NoAuxTc,
        None if v3 => TopkMethod::NoAuxTc,
        None => TopkMethod::Greedy,
        Some(other) => return Err(bad("topk_method", format!("{other:?} is not supported"))),
    };
    let scoring = c
        .scoring_func
        .as_deref()
        .unwrap_or(if method == TopkMethod::NoAuxTc {
            "sigmoid"
        } else {
            "softmax"
        });
    if (scoring == "sigmoid") != (method == TopkMethod::NoAuxTc) {
        return Err(bad(
            "scoring_func",
            format!("{scoring:?} with topk_method {method:?} is not supported"),
        ));
    }
    let experts = c.required("n_routed_experts", c.n_routed_experts)?;
    let n_group = c.n_group.unwrap_or(1).max(1);
    if experts % n_group != 0 {
        return Err(bad(
            "n_group",
            format!("{experts} experts in {n_group} groups"),
        ));
    }
    Ok(RouterConfig {
        method,
        top_k: c.required("num_experts_per_tok", c.num_experts_per_tok)?,
        n_group,
        topk_group: c.topk_group.unwrap_or(n_group),
        norm_topk_prob: c.norm_topk_prob,
        routed_scaling_factor: c.routed_scaling_factor as f32,
    })
}

impl SafetensorsDir {
    fn mlp(&self, prefix: &str) -> Result<Mlp, LoadError> {
        Ok(Mlp {
            gate: self.linear(&format!("{prefix}.gate_proj.weight"), None)?,
            up: self.linear(&format!("{prefix}.up_proj.weight"), None)?,
            down: self.linear(&format!("{prefix}.down_proj.weight"), None)?,
        })
    }

    fn moe(&self, prefix: &str, router: &RouterConfig) -> Result<Moe, LoadError> {
        let c = &self.config;
        let n = c.required("n_routed_experts", c.n_routed_experts)?;
        let experts = (0..n)
            .map(|e| self.mlp(&format!("{prefix}.experts.{e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let shared = match c.n_shared_experts {
            Some(k) if k > 0 => Some(self.mlp(&format!("{prefix}.shared_experts"))?),
            _ => None,
        };
        let gate_name = format!("{prefix}.gate.weight");
        let gate = self.tensor(&gate_name)?.to_dtype(DType::F32);
        let gate = gate
            .and_then(|g| Linear::from_dense(&g, None))
            .map_err(tensor_err(&gate_name))?;
        let bias_name = format!("{prefix}.gate.e_score_correction_bias");
        let score_bias = self
            .has(&bias_name)
            .then(|| self.vector(&bias_name))
            .transpose()?;
        Ok(Moe {
            cfg: router.clone(),
            gate,
            score_bias,
            experts,
            shared,
        })
    }

    /// `kv_b_proj` `[heads * (nope + v), lora]` as per-head `W_uk^T` and `W_uv` linears.
    fn absorbed(
        &self,
        name: &str,
        cfg: &MlaConfig,
    ) -> Result<(Vec<Linear>, Vec<Linear>), LoadError> {
        let w = self.tensor(name)?;
        let per = cfg.qk_nope_head_dim + cfg.v_head_dim;
        let split = |h: usize| -> candle_core::Result<(Tensor, Tensor)> {
            let head = w.narrow(0, h * per, per)?;
            // Own buffers (not views into `w`): quantizers read storage from offset 0.
            let uk_t = head
                .narrow(0, 0, cfg.qk_nope_head_dim)?
                .t()?
                .force_contiguous()?;
            let uv = head
                .narrow(0, cfg.qk_nope_head_dim, cfg.v_head_dim)?
                .force_contiguous()?;
            Ok((uk_t, uv))
        };
        let (mut uk, mut uv) = (Vec::new(), Vec::new());
        for h in 0..cfg.n_heads {
            let (a, b) = split(h).map_err(tensor_err(name))?;
            uk.push(self.dense_linear(name, &a, None, self.quantize)?);
            uv.push(self.dense_linear(name, &b, None, self.quantize)?);
        }
        Ok((uk, uv))
    }

    fn mla(&self, p: &str, cfg: &MlaConfig) -> Result<MlaWeights, LoadError> {
        let q = if self.config.q_lora_rank.is_some() {
            QueryProj::LowRank {
                a: self.linear(&format!("{p}.q_a_proj.weight"), None)?,
                norm: self.vector(&format!("{p}.q_a_layernorm.weight"))?,
                b: self.linear(&format!("{p}.q_b_proj.weight"), None)?,
            }
        } else {
            QueryProj::Direct(self.linear(&format!("{p}.q_proj.weight"), None)?)
        };
        let (uk_t, uv) = self.absorbed(&format!("{p}.kv_b_proj.weight"), cfg)?;
        Ok(MlaWeights {
            q,
            kv_a: self.linear(&format!("{p}.kv_a_proj_with_mqa.weight"), None)?,
            kv_a_norm: self.vector(&format!("{p}.kv_a_layernorm.weight"))?,
            uk_t,
            uv,
            o: self.linear(&format!("{p}.o_proj.weight"), None)?,
        })
    }

    /// The whole deepseek2 model for `info` (its context length sizes the RoPE table);
    /// `prepare` transforms the weights before the model is built (`--quantize`, `--device`).
    pub fn deepseek2(
        &self,
        info: ModelInfo,
        prepare: impl FnOnce(&mut Deepseek2Weights) -> Result<(), LoadError>,
    ) -> Result<Deepseek2, LoadError> {
        let c = &self.config;
        c.check_activation()?;
        if c.attention_bias {
            return Err(bad("attention_bias", "true is not supported".into()));
        }
        let cfg = mla_config(c)?;
        let router = c.n_routed_experts.map(|_| router_config(c)).transpose()?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let is_moe = i >= c.first_k_dense_replace && i % c.moe_layer_freq.max(1) == 0;
            let ffn = match (&router, is_moe) {
                (Some(r), true) => FeedForward::Experts(self.moe(&format!("{p}.mlp"), r)?),
                _ => FeedForward::Dense(self.mlp(&format!("{p}.mlp"))?),
            };
            layers.push(Deepseek2Layer {
                attn_norm: self.vector(&format!("{p}.input_layernorm.weight"))?,
                attn: self.mla(&format!("{p}.self_attn"), &cfg)?,
                ffn_norm: self.vector(&format!("{p}.post_attention_layernorm.weight"))?,
                ffn,
            });
        }
        let embed = self.embedding("model.embed_tokens.weight")?;
        let lm_head = self.lm_head(&embed)?;
        let mut weights = Deepseek2Weights {
            embed,
            layers,
            final_norm: self.vector("model.norm.weight")?,
            lm_head,
        };
        prepare(&mut weights)?;
        // Published DeepSeek weights rotate interleaved pairs (transformers' `rope_interleave`).
        let style = match c.rope_interleave {
            Some(false) => RopeStyle::Neox,
            _ => RopeStyle::Interleaved,
        };
        let rope =
            c.rope_scaling()?
                .table(cfg.qk_rope_head_dim, c.theta(), info.context_length, style);
        Ok(Deepseek2::new(cfg, weights, rope, info))
    }
}
