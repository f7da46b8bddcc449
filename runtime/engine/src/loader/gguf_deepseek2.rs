//! deepseek2 GGUF files (DeepSeek V2, V2-Lite, V2.5, V3, R1 and their quantizations): the
//! `deepseek2.*` hyper-parameters, read with the defaults and meanings llama.cpp gives them
//! (src/models/deepseek2.cpp, llama-model.cpp, llama-context.cpp), since llama.cpp's converter
//! writes these files and llama.cpp is what they are made to run on. The tensors are read in
//! `gguf_deepseek2_weights.rs`.
//!
//! Differences from the safetensors config that matter: MoE routing follows llama.cpp's
//! `build_moe_ffn` (`TopkMethod::LlamaCpp`); `expert_weights_scale` 0 means no scaling;
//! `rope.scaling.yarn_log_multiplier` is `0.1 * mscale_all_dim` and llama.cpp takes `mscale`
//! equal to it. Anything llama.cpp would compute differently from what is built here (another
//! gating function, attention temperature scaling, unusual YaRN factors) is a load error that
//! names the key.

use super::gguf::GgufFile;
use super::LoadError;
use crate::model::mla::MlaConfig;
use crate::model::moe::{Gating, RouterConfig, TopkMethod};
use crate::model::rope_scaling::RopeScaling;

/// Everything the metadata says about a deepseek2 model.
#[derive(Debug, Clone)]
pub struct Deepseek2Hparams {
    /// Transformer blocks run per token (multi-token-prediction blocks excluded).
    pub n_layers: usize,
    pub mla: MlaConfig,
    /// 0: one `attn_q` projection (V2-Lite); otherwise `attn_q_a` -> norm -> `attn_q_b`.
    pub q_lora_rank: usize,
    /// `attn_k_b` + `attn_v_b` (files with `key_length_mla`) instead of one `attn_kv_b`.
    pub split_kv_b: bool,
    /// The first `leading_dense` blocks have a dense FFN, the rest a mixture of experts.
    pub leading_dense: usize,
    /// `None` when every block is dense.
    pub router: Option<RouterConfig>,
    pub n_experts: usize,
    pub n_shared_experts: usize,
    pub rope: RopeScaling,
    pub rope_theta: f64,
    pub context_length: usize,
}

fn bad(key: String, reason: impl Into<String>) -> LoadError {
    LoadError::BadMetadata {
        key,
        reason: reason.into(),
    }
}

/// `deepseek2.<key>`.
fn k(key: &str) -> String {
    format!("deepseek2.{key}")
}

/// llama.cpp's `llama_expert_gating_func_type`.
fn gating(f: &GgufFile, n_layers: usize) -> Result<Gating, LoadError> {
    let key = k("expert_gating_func");
    match f.uint(&key)? {
        // Older V2/V2.5 files have no key; llama.cpp then uses softmax, except for GLM 4.7
        // Lite, which reuses this architecture with sigmoid routing.
        None | Some(0) => {
            let glm_lite = matches!(n_layers, 47 | 48) && f.token_count() == 154_880;
            Ok(if glm_lite {
                Gating::Sigmoid
            } else {
                Gating::Softmax
            })
        }
        Some(1) => Ok(Gating::Softmax),
        Some(2) => Ok(Gating::Sigmoid),
        Some(3) => Err(bad(
            key,
            "3 (softmax over the chosen weights) is not supported",
        )),
        Some(4) => Err(bad(key, "4 (sqrt-softplus) is not supported")),
        Some(other) => Err(bad(key, format!("{other} is not a known gating function"))),
    }
}

/// Router settings of the MoE blocks, or `None` when the model has no experts.
fn router(
    f: &GgufFile,
    n_layers: usize,
    leading_dense: usize,
) -> Result<Option<(RouterConfig, usize)>, LoadError> {
    if leading_dense >= n_layers {
        return Ok(None);
    }
    let positive = |key: String| -> Result<usize, LoadError> {
        match f.required_uint(&key)? {
            0 => Err(bad(key, "must be > 0 in a model with MoE blocks")),
            n => Ok(n),
        }
    };
    let n_experts = positive(k("expert_count"))?;
    let top_k = positive(k("expert_used_count"))?;
    if top_k > n_experts {
        return Err(bad(
            k("expert_used_count"),
            format!("{top_k} of {n_experts} experts"),
        ));
    }
    let n_group = f.uint(&k("expert_group_count"))?.unwrap_or(1).max(1);
    let topk_group = f.uint(&k("expert_group_used_count"))?.unwrap_or(n_group);
    if n_group > 1 && (n_experts % n_group != 0 || topk_group == 0 || topk_group > n_group) {
        return Err(bad(
            k("expert_group_used_count"),
            format!("{topk_group} of {n_group} groups of {n_experts} experts"),
        ));
    }
    let scale = f.float(&k("expert_weights_scale"))?.unwrap_or(0.0);
    let cfg = RouterConfig {
        method: TopkMethod::LlamaCpp(gating(f, n_layers)?),
        top_k,
        n_group,
        topk_group,
        norm_topk_prob: f.bool(&k("expert_weights_norm")).unwrap_or(false),
        // llama.cpp skips the scaling for 0 (key absent) as for 1.
        routed_scaling_factor: if scale == 0.0 { 1.0 } else { scale },
    };
    Ok(Some((cfg, n_experts)))
}

/// The RoPE schedule: none, or YaRN as llama.cpp applies it to deepseek2.
fn rope_scaling(f: &GgufFile, context_length: usize) -> Result<RopeScaling, LoadError> {
    let type_key = k("rope.scaling.type");
    let factor = match f.float(&k("rope.scaling.factor"))? {
        Some(x) => Some(x),
        None => f.float(&k("rope.scale_linear"))?,
    };
    let stretched = factor.is_some_and(|x| x != 0.0 && x != 1.0);
    // Keys that would change llama.cpp's result but that no DeepSeek file sets: the attention
    // factor scales every rotation, the extrapolation mix only a stretched one.
    for (key, matters) in [
        (k("rope.scaling.attn_factor"), true),
        (k("rope.scaling.yarn_ext_factor"), stretched),
    ] {
        if let Some(v) = f.float(&key)? {
            if v != 1.0 && matters {
                return Err(bad(key, format!("{v} is not supported (only 1)")));
            }
        }
    }
    match f.string(&type_key).unwrap_or("linear") {
        "none" => Ok(RopeScaling::None),
        "linear" if !stretched => Ok(RopeScaling::None),
        "yarn" if !stretched => Ok(RopeScaling::None),
        "yarn" => {
            let float = |key: &str, default: f32| -> Result<f64, LoadError> {
                Ok(f.float(&k(key))?.unwrap_or(default) as f64)
            };
            let original = f
                .uint(&k("rope.scaling.original_context_length"))?
                .unwrap_or(context_length);
            // The converter writes 0.1 * mscale_all_dim; llama.cpp divides the 0.1 out again
            // and uses the same value for mscale (DeepSeek's configs have them equal).
            let mscale_all_dim = float("rope.scaling.yarn_log_multiplier", 0.0)? / 0.1;
            let mscale = if mscale_all_dim == 0.0 {
                1.0
            } else {
                mscale_all_dim
            };
            Ok(RopeScaling::Yarn {
                factor: factor.unwrap_or(1.0) as f64,
                original_max_position_embeddings: original as f64,
                beta_fast: float("rope.scaling.yarn_beta_fast", 32.0)?,
                beta_slow: float("rope.scaling.yarn_beta_slow", 1.0)?,
                mscale,
                mscale_all_dim,
            })
        }
        other => Err(bad(
            type_key,
            format!("{other:?} RoPE scaling is not supported for deepseek2 (none or yarn)"),
        )),
    }
}

/// Head sizes: `(qk_head_dim, v_head_dim, split_kv_b)`. Files written since llama.cpp absorbs
/// `kv_b` (MLA) give the real sizes in `key_length_mla` / `value_length_mla` (their
/// `key_length` is the latent width); older ones give them in `key_length` / `value_length`.
fn head_dims(
    f: &GgufFile,
    hidden: usize,
    n_heads: usize,
) -> Result<(usize, usize, bool), LoadError> {
    let mla_k = f.uint(&k("attention.key_length_mla"))?.filter(|&x| x > 0);
    let mla_v = f.uint(&k("attention.value_length_mla"))?.filter(|&x| x > 0);
    match (mla_k, mla_v) {
        (Some(qk), Some(v)) => Ok((qk, v, true)),
        (None, None) => {
            let qk = f
                .uint(&k("attention.key_length"))?
                .unwrap_or(hidden / n_heads);
            let v = f.uint(&k("attention.value_length"))?.unwrap_or(qk);
            Ok((qk, v, false))
        }
        (Some(_), None) => Err(LoadError::MissingMetadata(k("attention.value_length_mla"))),
        (None, Some(_)) => Err(LoadError::MissingMetadata(k("attention.key_length_mla"))),
    }
}

/// Reads and checks every hyper-parameter of a deepseek2 file.
pub fn deepseek2_hparams(f: &GgufFile) -> Result<Deepseek2Hparams, LoadError> {
    let block_count = f.required_uint(&k("block_count"))?;
    let nextn = f.uint(&k("nextn_predict_layers"))?.unwrap_or(0);
    let n_layers = block_count.checked_sub(nextn).ok_or_else(|| {
        bad(
            k("nextn_predict_layers"),
            format!("{nextn} of {block_count} blocks"),
        )
    })?;
    let hidden = f.required_uint(&k("embedding_length"))?;
    let n_heads = f.required_uint(&k("attention.head_count"))?;
    if n_heads == 0 {
        return Err(bad(k("attention.head_count"), "must be > 0"));
    }
    if let Some(t) = f.float(&k("attention.temperature_scale"))? {
        if t != 0.0 {
            return Err(bad(
                k("attention.temperature_scale"),
                "attention temperature scaling is not supported",
            ));
        }
    }
    let kv_lora_rank = f.required_uint(&k("attention.kv_lora_rank"))?;
    let q_lora_rank = f.uint(&k("attention.q_lora_rank"))?.unwrap_or(0);
    let rope_dim = f.required_uint(&k("rope.dimension_count"))?;
    let (qk_head_dim, v_head_dim, split_kv_b) = head_dims(f, hidden, n_heads)?;
    if rope_dim % 2 != 0 || qk_head_dim <= rope_dim {
        let key = if split_kv_b {
            "attention.key_length_mla"
        } else {
            "attention.key_length"
        };
        return Err(bad(
            k(key),
            format!(
                "a head of {qk_head_dim} cannot hold {rope_dim} (even) rotary dimensions and more"
            ),
        ));
    }
    let context_length = f.required_uint(&k("context_length"))?;
    let rope = rope_scaling(f, context_length)?;
    let leading_dense = f.uint(&k("leading_dense_block_count"))?.unwrap_or(0);
    let (router, n_experts) = match router(f, n_layers, leading_dense)? {
        Some((r, n)) => (Some(r), n),
        None => (None, 0),
    };
    let softmax_scale = (qk_head_dim as f32).powf(-0.5) * rope.softmax_scale_factor();
    Ok(Deepseek2Hparams {
        n_layers,
        mla: MlaConfig {
            n_heads,
            kv_lora_rank,
            qk_nope_head_dim: qk_head_dim - rope_dim,
            qk_rope_head_dim: rope_dim,
            v_head_dim,
            rms_eps: f
                .float(&k("attention.layer_norm_rms_epsilon"))?
                .ok_or_else(|| LoadError::MissingMetadata(k("attention.layer_norm_rms_epsilon")))?,
            softmax_scale,
        },
        q_lora_rank,
        split_kv_b,
        leading_dense,
        router,
        n_experts,
        n_shared_experts: f.uint(&k("expert_shared_count"))?.unwrap_or(0),
        rope,
        rope_theta: f.float(&k("rope.freq_base"))?.unwrap_or(10_000.0) as f64,
        context_length,
    })
}
