//! Multi-head latent attention (DeepSeek V2/V3), batched over sequences, with the KV cache
//! holding only what the architecture intends: per position, the normalised latent `c_kv`
//! (`kv_lora_rank` floats) followed by the shared, already rotated RoPE key
//! (`qk_rope_head_dim` floats).
//!
//! The per-head key/value up-projections (`kv_b_proj`) are absorbed into the query and the
//! output, so attention runs in latent space and the cache is never expanded:
//! `score_j = (W_uk_h^T q_nope_h) . c_j + q_pe_h . k_pe_j`, `out_h = W_uv_h (sum_j p_j c_j)`.
//! This is algebraically the reference computation; only the summation order differs.

use std::ops::Range;

use super::linear::Linear;
use super::ops::{self, RopeTable};
use deepseek_kernels as kernels;

/// Attention shapes.
#[derive(Debug, Clone)]
pub struct MlaConfig {
    pub n_heads: usize,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    pub rms_eps: f32,
    /// Softmax scale: `qk_head_dim^-1/2`, times YaRN's `mscale^2` when scaled.
    pub softmax_scale: f32,
}

impl MlaConfig {
    /// Floats one position costs in one layer's cache.
    pub fn latent_dim(&self) -> usize {
        self.kv_lora_rank + self.qk_rope_head_dim
    }

    fn qk_head_dim(&self) -> usize {
        self.qk_nope_head_dim + self.qk_rope_head_dim
    }
}

/// The query projection: direct (V2-Lite) or through a normalised low-rank bottleneck.
#[derive(Debug)]
pub enum QueryProj {
    Direct(Linear),
    LowRank {
        a: Linear,
        norm: Vec<f32>,
        b: Linear,
    },
}

/// One layer's attention weights, with `kv_b_proj` split per head for absorption.
#[derive(Debug)]
pub struct MlaWeights {
    pub q: QueryProj,
    /// `[kv_lora_rank + qk_rope_head_dim, hidden]`.
    pub kv_a: Linear,
    pub kv_a_norm: Vec<f32>,
    /// Per head, `W_uk_h^T`: `[kv_lora_rank, qk_nope_head_dim]` (maps `q_nope` to latent space).
    pub uk_t: Vec<Linear>,
    /// Per head, `W_uv_h`: `[v_head_dim, kv_lora_rank]`.
    pub uv: Vec<Linear>,
    /// `[hidden, n_heads * v_head_dim]`.
    pub o: Linear,
}

/// One layer's projections of the batch's new tokens, before attention.
pub struct Projected {
    /// New cache rows `[n][latent_dim]`: normalised `c_kv`, then the rotated shared key.
    pub latent: Vec<f32>,
    /// Rotated query rope parts `[n][n_heads * qk_rope_head_dim]`.
    q_pe: Vec<f32>,
    /// Absorbed queries, per head `[n][kv_lora_rank]`.
    q_lat: Vec<Vec<f32>>,
}

impl MlaWeights {
    /// `h: [n][hidden]` (normed), `positions[t]`: row `t`'s absolute position.
    pub fn project(
        &self,
        cfg: &MlaConfig,
        rope: &RopeTable,
        h: &[f32],
        positions: &[usize],
    ) -> candle_core::Result<Projected> {
        let n = positions.len();
        let (nope, rd, lora) = (cfg.qk_nope_head_dim, cfg.qk_rope_head_dim, cfg.kv_lora_rank);
        let q = match &self.q {
            QueryProj::Direct(l) => l.forward(h, n)?,
            QueryProj::LowRank { a, norm, b } => {
                let qa = ops::rms_norm(&a.forward(h, n)?, norm, cfg.rms_eps);
                b.forward(&qa, n)?
            }
        };
        let kv = self.kv_a.forward(h, n)?;
        let mut k_pe: Vec<f32> = kv
            .chunks_exact(lora + rd)
            .flat_map(|row| row[lora..].iter().copied())
            .collect();
        rope.apply(&mut k_pe, rd, positions);
        let mut latent = Vec::with_capacity(n * cfg.latent_dim());
        for (row, k) in kv.chunks_exact(lora + rd).zip(k_pe.chunks_exact(rd)) {
            latent.extend(ops::rms_norm(&row[..lora], &self.kv_a_norm, cfg.rms_eps));
            latent.extend_from_slice(k);
        }
        let qk = cfg.qk_head_dim();
        let mut q_pe: Vec<f32> = q
            .chunks_exact(qk)
            .flat_map(|head| head[nope..].iter().copied())
            .collect();
        rope.apply(&mut q_pe, rd, positions);
        let q_lat = (0..cfg.n_heads)
            .map(|hd| {
                let q_nope: Vec<f32> = q
                    .chunks_exact(qk * cfg.n_heads)
                    .flat_map(|row| row[hd * qk..hd * qk + nope].iter().copied())
                    .collect();
                self.uk_t[hd].forward(&q_nope, n)
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(Projected {
            latent,
            q_pe,
            q_lat,
        })
    }

    /// Attention over each sequence's history (`histories[s]: [len][latent_dim]`, including
    /// the new rows, which lie at `ranges[s]` of the batch) and the output projection:
    /// `[n][hidden]`.
    pub fn attend(
        &self,
        cfg: &MlaConfig,
        p: &Projected,
        histories: &[&[f32]],
        ranges: &[Range<usize>],
    ) -> candle_core::Result<Vec<f32>> {
        let n = ranges.last().map_or(0, |r| r.end);
        let ctx = attend_all(cfg, &p.q_lat, &p.q_pe, histories, ranges);
        // Per head: `W_uv_h` on its latent context, then the output projection on all heads.
        let mut heads_out = vec![0.0; n * cfg.n_heads * cfg.v_head_dim];
        for (hd, c) in ctx.iter().enumerate() {
            let v = self.uv[hd].forward(c, n)?;
            for (t, row) in v.chunks_exact(cfg.v_head_dim).enumerate() {
                let at = (t * cfg.n_heads + hd) * cfg.v_head_dim;
                heads_out[at..at + cfg.v_head_dim].copy_from_slice(row);
            }
        }
        self.o.forward(&heads_out, n)
    }
}

/// Latent attention for every (sequence, head) in parallel; returns per head `[n][lora]`.
fn attend_all(
    cfg: &MlaConfig,
    q_lat: &[Vec<f32>],
    q_pe: &[f32],
    histories: &[&[f32]],
    ranges: &[Range<usize>],
) -> Vec<Vec<f32>> {
    let (lora, rd, heads) = (cfg.kv_lora_rank, cfg.qk_rope_head_dim, cfg.n_heads);
    let tasks: Vec<(usize, usize)> = (0..ranges.len())
        .flat_map(|s| (0..heads).map(move |h| (s, h)))
        .collect();
    // On the kernel pool, whose threads are already running (a second pool would compete
    // with them for the same cores).
    let results: Vec<Vec<f32>> =
        kernels::pool::map_tasks(kernels::pool::global(), tasks.len(), |i| {
            let (s, h) = tasks[i];
            let r = &ranges[s];
            let ql = &q_lat[h][r.start * lora..r.end * lora];
            let qp: Vec<f32> = (r.start..r.end)
                .flat_map(|t| q_pe[(t * heads + h) * rd..][..rd].iter().copied())
                .collect();
            attend_latent(ql, &qp, histories[s], lora, rd, cfg.softmax_scale)
        });
    let n = ranges.last().map_or(0, |r| r.end);
    let mut out = vec![vec![0.0; n * lora]; heads];
    for (&(s, h), res) in tasks.iter().zip(&results) {
        let r = &ranges[s];
        out[h][r.start * lora..r.end * lora].copy_from_slice(res);
    }
    out
}

/// Causal attention of one head of one sequence in latent space. `q_lat: [t][lora]`,
/// `q_pe: [t][rd]`; `cache: [base + t][lora + rd]` including the new rows, so new row `i` sees
/// positions `0..=base + i`. Returns `[t][lora]`: the probability-weighted latent rows.
pub fn attend_latent(
    q_lat: &[f32],
    q_pe: &[f32],
    cache: &[f32],
    lora: usize,
    rd: usize,
    scale: f32,
) -> Vec<f32> {
    let width = lora + rd;
    let t = q_lat.len() / lora;
    let base = cache.len() / width - t;
    let mut out = vec![0.0; t * lora];
    let mut scores = Vec::with_capacity(base + t);
    for i in 0..t {
        let (ql, qp) = (
            &q_lat[i * lora..(i + 1) * lora],
            &q_pe[i * rd..(i + 1) * rd],
        );
        scores.clear();
        for row in cache.chunks_exact(width).take(base + i + 1) {
            scores.push((ops::dot(ql, &row[..lora]) + ops::dot(qp, &row[lora..])) * scale);
        }
        ops::softmax_in_place(&mut scores);
        let oi = &mut out[i * lora..(i + 1) * lora];
        for (row, &p) in cache.chunks_exact(width).zip(&scores) {
            oi.iter_mut()
                .zip(&row[..lora])
                .for_each(|(o, c)| *o += p * c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cached_position_returns_its_latent_row() {
        let out = attend_latent(&[1.0, 0.0], &[0.5], &[2.0, -1.0, 0.3], 2, 1, 1.0);
        assert_eq!(out, vec![2.0, -1.0]);
    }

    #[test]
    fn the_rope_key_shifts_attention_towards_the_matching_position() {
        // Two positions with different latents; only their rope keys differ in the score.
        let cache = [1.0, 0.0, 5.0, 0.0, 1.0, -5.0];
        let out = attend_latent(&[0.0, 0.0], &[1.0], &cache, 2, 1, 1.0);
        assert!(out[0] > 0.99 && out[1] < 0.01, "{out:?}");
    }
}
