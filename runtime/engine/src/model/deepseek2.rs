//! The deepseek2 architecture (DeepSeek V2, V2-Lite, V3, R1): multi-head latent attention
//! (`mla.rs`) and, after the first `first_k_dense_replace` layers, a mixture of experts
//! (`moe.rs`). Batched like `decoder.rs`: all new tokens of all sequences go through norms,
//! projections and experts as one `[total_tokens, hidden]` matrix; RoPE uses each token's own
//! position; attention runs per (sequence, head) over the sequence's latent cache.

use std::ops::Range;
use std::sync::Arc;

use anyhow::Context;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::batch::{self, BatchLayout};
use super::linear::Linear;
use super::mla::{MlaConfig, MlaWeights, QueryProj};
use super::moe::{Mlp, Moe};
use super::ops::{self, RopeTable};
use super::{CausalLm, KvCache, ModelInfo, SeqInput};

/// The feed-forward half of a layer.
#[derive(Debug)]
pub enum FeedForward {
    Dense(Mlp),
    Experts(Moe),
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Deepseek2Layer {
    pub attn_norm: Vec<f32>,
    pub attn: MlaWeights,
    pub ffn_norm: Vec<f32>,
    pub ffn: FeedForward,
}

/// All weights of the model.
#[derive(Debug)]
pub struct Deepseek2Weights {
    /// `[vocab, hidden]`.
    pub embed: Arc<QTensor>,
    pub layers: Vec<Deepseek2Layer>,
    pub final_norm: Vec<f32>,
    pub lm_head: Linear,
}

impl Deepseek2Weights {
    /// Replaces every projection (attention, dense MLPs, experts, LM head) by `f` of it, one
    /// at a time; the MoE routers stay as they are (routing is precision-sensitive).
    pub fn map_linears(
        &mut self,
        mut f: impl FnMut(&Linear) -> candle_core::Result<Linear>,
    ) -> candle_core::Result<()> {
        let mut apply = |l: &mut Linear| -> candle_core::Result<()> {
            *l = f(l)?;
            Ok(())
        };
        for layer in &mut self.layers {
            let a = &mut layer.attn;
            match &mut a.q {
                QueryProj::Direct(l) => apply(l)?,
                QueryProj::LowRank { a, b, .. } => {
                    apply(a)?;
                    apply(b)?;
                }
            }
            apply(&mut a.kv_a)?;
            apply(&mut a.o)?;
            for l in a.uk_t.iter_mut().chain(a.uv.iter_mut()) {
                apply(l)?;
            }
            let mlps: Vec<&mut Mlp> = match &mut layer.ffn {
                FeedForward::Dense(m) => vec![m],
                FeedForward::Experts(moe) => {
                    moe.experts.iter_mut().chain(moe.shared.as_mut()).collect()
                }
            };
            for m in mlps {
                apply(&mut m.gate)?;
                apply(&mut m.up)?;
                apply(&mut m.down)?;
            }
        }
        if !Arc::ptr_eq(self.lm_head.weight(), &self.embed) {
            apply(&mut self.lm_head)?;
        }
        Ok(())
    }
}

/// A loaded deepseek2 model.
#[derive(Debug)]
pub struct Deepseek2 {
    cfg: MlaConfig,
    weights: Deepseek2Weights,
    rope: RopeTable,
    info: ModelInfo,
}

impl Deepseek2 {
    /// `rope` covers `qk_rope_head_dim` dimensions, interleaved pairs, up to the context
    /// length; `info.kv_bytes_per_token` is filled here (the latent cache's real size).
    pub fn new(
        cfg: MlaConfig,
        weights: Deepseek2Weights,
        rope: RopeTable,
        mut info: ModelInfo,
    ) -> Self {
        info.kv_bytes_per_token =
            weights.layers.len() * cfg.latent_dim() * std::mem::size_of::<f32>();
        Self {
            cfg,
            weights,
            rope,
            info,
        }
    }

    pub fn config(&self) -> &MlaConfig {
        &self.cfg
    }

    fn layout(&self, batch: &[SeqInput<'_>]) -> anyhow::Result<BatchLayout> {
        let (layers, latent) = (self.weights.layers.len(), self.cfg.latent_dim());
        batch::layout(
            batch,
            |c| c.n_layers() == layers && c.kv_dim() == latent && c.value_dim() == 0,
            self.rope.max_positions(),
            self.info.vocab_size,
        )
    }

    fn embed(&self, batch: &[SeqInput<'_>], n: usize) -> anyhow::Result<Vec<f32>> {
        let ids: Vec<u32> = batch
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let ids = Tensor::from_vec(ids, n, &Device::Cpu)?;
        Ok(self
            .weights
            .embed
            .embedding(&ids)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    }

    fn run_layers(
        &self,
        batch: &mut [SeqInput<'_>],
        ranges: &[Range<usize>],
        positions: &[usize],
    ) -> anyhow::Result<Vec<f32>> {
        let n = positions.len();
        let mut x = self.embed(batch, n)?;
        for seq in batch.iter_mut() {
            seq.cache.reserve(seq.tokens.len());
        }
        for (l, layer) in self.weights.layers.iter().enumerate() {
            let h = ops::rms_norm(&x, &layer.attn_norm, self.cfg.rms_eps);
            let p = layer
                .attn
                .project(&self.cfg, &self.rope, &h, positions)
                .with_context(|| format!("attention projections of layer {l}"))?;
            let width = self.cfg.latent_dim();
            let histories: Vec<&[f32]> = batch
                .iter_mut()
                .zip(ranges)
                .map(|(seq, r)| {
                    let rows = &p.latent[r.start * width..r.end * width];
                    seq.cache.append(l, rows, &[]).keys.as_slice()
                })
                .collect();
            let out = layer
                .attn
                .attend(&self.cfg, &p, &histories, ranges)
                .with_context(|| format!("attention of layer {l}"))?;
            ops::add_in_place(&mut x, &out);

            let h = ops::rms_norm(&x, &layer.ffn_norm, self.cfg.rms_eps);
            let out = match &layer.ffn {
                FeedForward::Dense(mlp) => mlp.forward(&h, n),
                FeedForward::Experts(moe) => moe.forward(&h, n),
            }
            .with_context(|| format!("feed-forward of layer {l}"))?;
            ops::add_in_place(&mut x, &out);
        }
        Ok(x)
    }

    /// Final norm and LM head on each sequence's last row only.
    fn logits(&self, x: &[f32], ranges: &[Range<usize>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let hidden = self.weights.final_norm.len();
        let last: Vec<f32> = ranges
            .iter()
            .flat_map(|r| x[(r.end - 1) * hidden..r.end * hidden].iter().copied())
            .collect();
        let h = ops::rms_norm(&last, &self.weights.final_norm, self.cfg.rms_eps);
        let logits = self.weights.lm_head.forward(&h, ranges.len())?;
        let vocab = self.weights.lm_head.out_dim();
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}

impl CausalLm for Deepseek2 {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_cache(&self) -> KvCache {
        KvCache::latent(self.weights.layers.len(), self.cfg.latent_dim())
    }

    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let BatchLayout { ranges, positions } = self.layout(batch)?;
        let result = self
            .run_layers(batch, &ranges, &positions)
            .and_then(|x| self.logits(&x, &ranges));
        for (seq, r) in batch.iter_mut().zip(&ranges) {
            match result {
                Ok(_) => seq.cache.commit(r.len()),
                Err(_) => seq.cache.rollback(),
            }
        }
        result
    }
}
