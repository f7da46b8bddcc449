//! The llama-family decoder (GGUF `llama` and `qwen2`; they differ only in q/k/v biases and the
//! RoPE pairing), with a batched forward over sequences of different lengths:
//! every new token of every sequence goes through embeddings, norms, linear layers and the MLP
//! as one `[total_tokens, hidden]` matrix (prefill is matrix-matrix work); RoPE uses each token's
//! own position; attention runs per (sequence, head) over the sequence's own KV cache.

use std::ops::Range;
use std::sync::Arc;

use anyhow::Context;
use candle_core::quantized::QTensor;
use candle_core::{Device, Tensor};

use super::batch::{self, BatchLayout};
use super::linear::Linear;
use super::ops::{self, HeadLayout, RopeStyle, RopeTable};
use super::{CausalLm, KvCache, ModelInfo, SeqInput};
use deepseek_kernels::pool;

/// Hyper-parameters read from the model metadata.
#[derive(Debug, Clone)]
pub struct DecoderConfig {
    pub hidden: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Leading dimensions of each head that RoPE rotates (usually `head_dim`).
    pub rope_dim: usize,
    pub rope_theta: f32,
    pub rope_style: RopeStyle,
    /// llama 3.1 per-frequency divisors (`rope_freqs.weight`), if the model has them.
    pub rope_freq_factors: Option<Vec<f32>>,
    pub rms_eps: f32,
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct LayerWeights {
    pub attn_norm: Vec<f32>,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Vec<f32>,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

/// All weights of the decoder.
#[derive(Debug)]
pub struct DecoderWeights {
    /// `[vocab, hidden]`, any GGML format; rows are dequantized on lookup.
    pub embed: Arc<QTensor>,
    pub layers: Vec<LayerWeights>,
    pub final_norm: Vec<f32>,
    /// `[vocab, hidden]`; the embedding matrix itself when the model ties them.
    pub lm_head: Linear,
}

/// A loaded llama-family model.
#[derive(Debug)]
pub struct Decoder {
    cfg: DecoderConfig,
    weights: DecoderWeights,
    rope: RopeTable,
    info: ModelInfo,
}

impl Decoder {
    /// `info.kv_bytes_per_token` is filled here from the configuration.
    pub fn new(cfg: DecoderConfig, weights: DecoderWeights, mut info: ModelInfo) -> Self {
        let rope = RopeTable::new(
            cfg.rope_dim,
            cfg.rope_theta,
            info.context_length,
            cfg.rope_style,
            cfg.rope_freq_factors.as_deref(),
        );
        info.kv_bytes_per_token =
            weights.layers.len() * 2 * cfg.n_kv_heads * cfg.head_dim * std::mem::size_of::<f32>();
        Self {
            cfg,
            weights,
            rope,
            info,
        }
    }

    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    fn kv_dim(&self) -> usize {
        self.cfg.n_kv_heads * self.cfg.head_dim
    }

    fn layout(&self, batch: &[SeqInput<'_>]) -> anyhow::Result<BatchLayout> {
        let (layers, kv_dim) = (self.weights.layers.len(), self.kv_dim());
        batch::layout(
            batch,
            |c| c.n_layers() == layers && c.kv_dim() == kv_dim,
            self.rope.max_positions(),
            self.info.vocab_size,
        )
    }

    fn embed(&self, batch: &[SeqInput<'_>]) -> anyhow::Result<Vec<f32>> {
        let ids: Vec<u32> = batch
            .iter()
            .flat_map(|s| s.tokens.iter().copied())
            .collect();
        let ids = Tensor::from_vec(
            ids,
            batch.iter().map(|s| s.tokens.len()).sum::<usize>(),
            &Device::Cpu,
        )?;
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
        lay: &BatchLayout,
    ) -> anyhow::Result<Vec<f32>> {
        let mut x = self.embed(batch)?;
        for seq in batch.iter_mut() {
            seq.cache.reserve(seq.tokens.len());
        }
        for (l, layer) in self.weights.layers.iter().enumerate() {
            self.attention_block(l, layer, &mut x, batch, lay)
                .with_context(|| format!("attention of layer {l}"))?;
            self.mlp_block(layer, &mut x, lay.positions.len())
                .with_context(|| format!("mlp of layer {l}"))?;
        }
        Ok(x)
    }

    /// `x += W_o · attention(rope(W_q h), rope(W_k h), W_v h)` with `h = norm(x)`.
    fn attention_block(
        &self,
        l: usize,
        layer: &LayerWeights,
        x: &mut [f32],
        batch: &mut [SeqInput<'_>],
        lay: &BatchLayout,
    ) -> anyhow::Result<()> {
        let n = lay.positions.len();
        let h = ops::rms_norm(x, &layer.attn_norm, self.cfg.rms_eps);
        let [mut q, mut k, v] = Linear::forward_group([&layer.q, &layer.k, &layer.v], &h, n)?;
        self.rope.apply(&mut q, self.cfg.head_dim, &lay.positions);
        self.rope.apply(&mut k, self.cfg.head_dim, &lay.positions);

        let kv_dim = self.kv_dim();
        let q_dim = self.cfg.n_heads * self.cfg.head_dim;
        let histories: Vec<&super::kv_cache::LayerKv> = batch
            .iter_mut()
            .zip(&lay.ranges)
            .map(|(seq, r)| {
                let kr = r.start * kv_dim..r.end * kv_dim;
                seq.cache.append(l, &k[kr.clone()], &v[kr])
            })
            .collect();
        let attn = self.attend(&q, q_dim, &histories, &lay.ranges);
        let out = layer.o.forward(&attn, n)?;
        ops::add_in_place(x, &out);
        Ok(())
    }

    /// Runs every (sequence, head) pair in parallel; returns `[n_tokens][n_heads * head_dim]`.
    fn attend(
        &self,
        q: &[f32],
        q_dim: usize,
        histories: &[&super::kv_cache::LayerKv],
        ranges: &[Range<usize>],
    ) -> Vec<f32> {
        let hd = self.cfg.head_dim;
        let group = self.cfg.n_heads / self.cfg.n_kv_heads;
        let layout = HeadLayout {
            head_dim: hd,
            q_stride: q_dim,
            kv_stride: self.kv_dim(),
        };
        let tasks: Vec<(usize, usize)> = (0..ranges.len())
            .flat_map(|s| (0..self.cfg.n_heads).map(move |h| (s, h)))
            .collect();
        // On the kernel pool, whose threads are already running (a second pool would compete
        // with them for the same cores).
        let results = pool::map_tasks(pool::global(), tasks.len(), |i| {
            let (s, h) = tasks[i];
            let r = &ranges[s];
            let qs = &q[r.start * q_dim..r.end * q_dim];
            let kv = histories[s];
            ops::attend_head(qs, &kv.keys, &kv.values, layout, h, h / group)
        });
        let mut out = vec![0.0; q.len()];
        for (&(s, h), res) in tasks.iter().zip(&results) {
            for (i, row) in res.chunks_exact(hd).enumerate() {
                let t = ranges[s].start + i;
                out[t * q_dim + h * hd..][..hd].copy_from_slice(row);
            }
        }
        out
    }

    /// `x += W_down · (silu(W_gate h) * W_up h)` with `h = norm(x)`.
    fn mlp_block(&self, layer: &LayerWeights, x: &mut [f32], n: usize) -> anyhow::Result<()> {
        let h = ops::rms_norm(x, &layer.ffn_norm, self.cfg.rms_eps);
        let [mut gate, up] = Linear::forward_group([&layer.gate, &layer.up], &h, n)?;
        ops::silu_mul(&mut gate, &up);
        let down = layer.down.forward(&gate, n)?;
        ops::add_in_place(x, &down);
        Ok(())
    }

    /// Final norm and LM head on each sequence's last row only.
    fn logits(&self, x: &[f32], lay: &BatchLayout) -> anyhow::Result<Vec<Vec<f32>>> {
        let hidden = self.cfg.hidden;
        let last: Vec<f32> = lay
            .ranges
            .iter()
            .flat_map(|r| x[(r.end - 1) * hidden..r.end * hidden].iter().copied())
            .collect();
        let h = ops::rms_norm(&last, &self.weights.final_norm, self.cfg.rms_eps);
        let logits = self.weights.lm_head.forward(&h, lay.ranges.len())?;
        let vocab = self.weights.lm_head.out_dim();
        Ok(logits.chunks_exact(vocab).map(<[f32]>::to_vec).collect())
    }
}

impl CausalLm for Decoder {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.weights.layers.len(), self.kv_dim())
    }

    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let lay = self.layout(batch)?;
        let result = self
            .run_layers(batch, &lay)
            .and_then(|x| self.logits(&x, &lay));
        for (seq, r) in batch.iter_mut().zip(&lay.ranges) {
            match result {
                Ok(_) => seq.cache.commit(r.len()),
                Err(_) => seq.cache.rollback(),
            }
        }
        result
    }
}
