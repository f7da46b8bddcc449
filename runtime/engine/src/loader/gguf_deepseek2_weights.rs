//! The tensors of a deepseek2 GGUF file, in every layout llama.cpp's converter has written,
//! into the same `Deepseek2` model the safetensors loader builds:
//!
//! - attention: `attn_q` or `attn_q_a` + `attn_q_a_norm` + `attn_q_b`; `attn_kv_a_mqa`,
//!   `attn_kv_a_norm`; `attn_k_b` `[heads][kv_lora][nope]` (already `W_uk^T` per head: the
//!   converter transposes it) + `attn_v_b` `[heads][v][kv_lora]`, or in older files one
//!   `attn_kv_b` `[heads * (nope + v)][kv_lora]` as the checkpoint has it; `attn_output`;
//! - dense blocks: `ffn_{gate,up,down}`; MoE blocks: `ffn_gate_inp`, optional
//!   `exp_probs_b.bias` (V3), `ffn_{gate,up}_exps` or fused `ffn_gate_up_exps` (gate rows
//!   first), `ffn_down_exps`, and `ffn_{gate,up,down}_shexp` when there are shared experts;
//! - `token_embd`, `output_norm`, `output` (absent: tied to `token_embd`).
//!
//! Quantized tensors keep their block format (3-D tensors are cut into per-expert and per-head
//! matrices as bytes, see `qtensor_slice`). The one exception is `W_uk^T` of an `attn_kv_b`
//! file, which needs a transpose and so becomes a dense f32 matrix.

use std::sync::Arc;

use candle_core::quantized::QTensor;
use candle_core::Device;

use super::gguf::GgufFile;
use super::gguf_deepseek2::Deepseek2Hparams;
use super::qtensor_slice::{matrices, rows};
use super::LoadError;
use crate::model::deepseek2::{Deepseek2Layer, Deepseek2Weights, FeedForward};
use crate::model::mla::{MlaWeights, QueryProj};
use crate::model::moe::{Mlp, Moe};
use crate::model::Linear;

fn tensor_err(name: &str) -> impl Fn(candle_core::Error) -> LoadError + '_ {
    move |e| LoadError::Tensor {
        name: name.to_string(),
        reason: e.to_string(),
    }
}

fn linear(name: &str, w: QTensor) -> Result<Linear, LoadError> {
    Linear::new(w, None).map_err(tensor_err(name))
}

/// Checks a tensor's shape (outermost first, as candle reports it).
fn expect_dims(name: &str, t: &QTensor, want: &[usize]) -> Result<(), LoadError> {
    if t.shape().dims() != want {
        return Err(LoadError::Tensor {
            name: name.to_string(),
            reason: format!("shape {:?}, expected {want:?}", t.shape().dims()),
        });
    }
    Ok(())
}

/// One linear layer per matrix of a 3-D tensor `[n, rows, cols]`.
fn linears_3d(f: &mut GgufFile, name: &str, n: usize) -> Result<Vec<Linear>, LoadError> {
    let t = f.tensor(name)?;
    let dims = t.shape().dims().to_vec();
    if dims.len() != 3 || dims[0] != n {
        return Err(LoadError::Tensor {
            name: name.to_string(),
            reason: format!("shape {dims:?}, expected {n} matrices"),
        });
    }
    matrices(&t)
        .map_err(tensor_err(name))?
        .into_iter()
        .map(|m| linear(name, m))
        .collect()
}

struct Layer<'a> {
    f: &'a mut GgufFile,
    hp: &'a Deepseek2Hparams,
    i: usize,
}

impl Layer<'_> {
    fn name(&self, s: &str) -> String {
        format!("blk.{}.{s}", self.i)
    }

    fn linear(&mut self, s: &str) -> Result<Linear, LoadError> {
        let name = self.name(s);
        self.f.linear(&name, None)
    }

    fn vector(&mut self, s: &str) -> Result<Vec<f32>, LoadError> {
        let name = self.name(s);
        self.f.vector(&name)
    }

    fn query(&mut self) -> Result<QueryProj, LoadError> {
        if self.hp.q_lora_rank == 0 {
            return Ok(QueryProj::Direct(self.linear("attn_q.weight")?));
        }
        Ok(QueryProj::LowRank {
            a: self.linear("attn_q_a.weight")?,
            norm: self.vector("attn_q_a_norm.weight")?,
            b: self.linear("attn_q_b.weight")?,
        })
    }

    /// Per head `(W_uk^T, W_uv)`.
    fn absorbed(&mut self) -> Result<(Vec<Linear>, Vec<Linear>), LoadError> {
        let c = &self.hp.mla;
        if self.hp.split_kv_b {
            let (kb, vb) = (self.name("attn_k_b.weight"), self.name("attn_v_b.weight"));
            let k = self.f.tensor(&kb)?;
            expect_dims(&kb, &k, &[c.n_heads, c.kv_lora_rank, c.qk_nope_head_dim])?;
            let v = self.f.tensor(&vb)?;
            expect_dims(&vb, &v, &[c.n_heads, c.v_head_dim, c.kv_lora_rank])?;
            let split = |name: &str, t: &QTensor| -> Result<Vec<Linear>, LoadError> {
                let parts = matrices(t).map_err(tensor_err(name))?;
                parts.into_iter().map(|m| linear(name, m)).collect()
            };
            return Ok((split(&kb, &k)?, split(&vb, &v)?));
        }
        let name = self.name("attn_kv_b.weight");
        let w = self.f.tensor(&name)?;
        let per = c.qk_nope_head_dim + c.v_head_dim;
        expect_dims(&name, &w, &[c.n_heads * per, c.kv_lora_rank])?;
        let (mut uk_t, mut uv) = (Vec::new(), Vec::new());
        for h in 0..c.n_heads {
            let at = h * per;
            let uk = rows(&w, at..at + c.qk_nope_head_dim)
                .and_then(|t| t.dequantize(&Device::Cpu))
                .and_then(|t| t.t()?.force_contiguous())
                .and_then(|t| Linear::from_dense(&t, None))
                .map_err(tensor_err(&name))?;
            uk_t.push(uk);
            let v = rows(&w, at + c.qk_nope_head_dim..at + per).map_err(tensor_err(&name))?;
            uv.push(linear(&name, v)?);
        }
        Ok((uk_t, uv))
    }

    fn attention(&mut self) -> Result<MlaWeights, LoadError> {
        let q = self.query()?;
        let kv_a = self.linear("attn_kv_a_mqa.weight")?;
        let want = self.hp.mla.latent_dim();
        if kv_a.out_dim() != want {
            return Err(LoadError::Tensor {
                name: self.name("attn_kv_a_mqa.weight"),
                reason: format!(
                    "{} outputs, expected kv_lora_rank + rope = {want}",
                    kv_a.out_dim()
                ),
            });
        }
        let kv_a_norm = self.vector("attn_kv_a_norm.weight")?;
        let (uk_t, uv) = self.absorbed()?;
        Ok(MlaWeights {
            q,
            kv_a,
            kv_a_norm,
            uk_t,
            uv,
            o: self.linear("attn_output.weight")?,
        })
    }

    fn mlp(&mut self, suffix: &str) -> Result<Mlp, LoadError> {
        Ok(Mlp {
            gate: self.linear(&format!("ffn_gate{suffix}.weight"))?,
            up: self.linear(&format!("ffn_up{suffix}.weight"))?,
            down: self.linear(&format!("ffn_down{suffix}.weight"))?,
        })
    }

    /// Per expert `(gate, up)`, from separate tensors or a fused `ffn_gate_up_exps`.
    fn gates_ups(&mut self, n: usize) -> Result<Vec<(Linear, Linear)>, LoadError> {
        let fused = self.name("ffn_gate_up_exps.weight");
        if !self.f.has_tensor(&fused) {
            let gates = linears_3d(self.f, &self.name("ffn_gate_exps.weight"), n)?;
            let ups = linears_3d(self.f, &self.name("ffn_up_exps.weight"), n)?;
            return Ok(gates.into_iter().zip(ups).collect());
        }
        let t = self.f.tensor(&fused)?;
        let dims = t.shape().dims().to_vec();
        if dims.len() != 3 || dims[0] != n || dims[1] % 2 != 0 {
            return Err(LoadError::Tensor {
                name: fused,
                reason: format!("shape {dims:?}, expected {n} matrices of gate and up rows"),
            });
        }
        let ff = dims[1] / 2;
        let mut out = Vec::with_capacity(n);
        for m in matrices(&t).map_err(tensor_err(&fused))? {
            let gate = rows(&m, 0..ff).map_err(tensor_err(&fused))?;
            let up = rows(&m, ff..2 * ff).map_err(tensor_err(&fused))?;
            out.push((linear(&fused, gate)?, linear(&fused, up)?));
        }
        Ok(out)
    }

    fn moe(&mut self) -> Result<Moe, LoadError> {
        let n = self.hp.n_experts;
        let router = self
            .hp
            .router
            .clone()
            .ok_or_else(|| LoadError::MissingMetadata("deepseek2.expert_count".into()))?;
        let gate = self.linear("ffn_gate_inp.weight")?;
        if gate.out_dim() != n {
            return Err(LoadError::Tensor {
                name: self.name("ffn_gate_inp.weight"),
                reason: format!("{} rows for {n} experts", gate.out_dim()),
            });
        }
        let bias_name = self.name("exp_probs_b.bias");
        let score_bias = if self.f.has_tensor(&bias_name) {
            Some(self.f.vector(&bias_name)?)
        } else {
            None
        };
        let downs = linears_3d(self.f, &self.name("ffn_down_exps.weight"), n)?;
        let experts = self
            .gates_ups(n)?
            .into_iter()
            .zip(downs)
            .map(|((gate, up), down)| Mlp { gate, up, down })
            .collect();
        let shared = if self.hp.n_shared_experts > 0 {
            Some(self.mlp("_shexp")?)
        } else {
            None
        };
        Ok(Moe {
            cfg: router,
            gate,
            score_bias,
            experts,
            shared,
        })
    }

    fn load(mut self) -> Result<Deepseek2Layer, LoadError> {
        let attn_norm = self.vector("attn_norm.weight")?;
        let attn = self.attention()?;
        let ffn_norm = self.vector("ffn_norm.weight")?;
        let ffn = if self.i < self.hp.leading_dense {
            FeedForward::Dense(self.mlp("")?)
        } else {
            FeedForward::Experts(self.moe()?)
        };
        Ok(Deepseek2Layer {
            attn_norm,
            attn,
            ffn_norm,
            ffn,
        })
    }
}

/// Every weight of a deepseek2 file.
pub fn deepseek2_weights(
    f: &mut GgufFile,
    hp: &Deepseek2Hparams,
) -> Result<Deepseek2Weights, LoadError> {
    let layers = (0..hp.n_layers)
        .map(|i| Layer { f: &mut *f, hp, i }.load())
        .collect::<Result<Vec<_>, _>>()?;
    let embed = Arc::new(f.tensor("token_embd.weight")?);
    let lm_head = if f.has_tensor("output.weight") {
        f.linear("output.weight", None)?
    } else {
        Linear::from_arc(embed.clone(), None).map_err(tensor_err("token_embd.weight"))?
    };
    Ok(Deepseek2Weights {
        embed,
        layers,
        final_norm: f.vector("output_norm.weight")?,
        lm_head,
    })
}
