//! The non-matmul arithmetic of a decoder layer on plain f32 rows: RMSNorm, rotary position
//! embedding (precomputed tables), SiLU gating; the dot product, softmax and causal attention
//! of one head over its KV cache live with the SIMD kernels
//! (`deepseek_kernels::{vector, attention}`) and are re-exported here.
//! All buffers are row-major; shapes are given per function.

pub use deepseek_kernels::attention::{attend_head, HeadLayout};
pub use deepseek_kernels::vector::{dot, softmax_in_place};

/// `out[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight`, for each row `t` of `x: [n][dim]`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32) -> Vec<f32> {
    let dim = weight.len();
    let mut out = vec![0.0; x.len()];
    for (row, dst) in x.chunks_exact(dim).zip(out.chunks_exact_mut(dim)) {
        let mean_sq = dot(row, row) / dim as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for ((d, v), w) in dst.iter_mut().zip(row).zip(weight) {
            *d = v * scale * w;
        }
    }
    out
}

/// `gate[i] = silu(gate[i]) * up[i]` in place; both `[n][ffn_dim]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// `acc += other`, element-wise (residual connections).
pub fn add_in_place(acc: &mut [f32], other: &[f32]) {
    acc.iter_mut().zip(other).for_each(|(a, b)| *a += b);
}

/// How rotary dimensions are paired: GGUF llama weights rotate adjacent pairs `(2i, 2i+1)`;
/// qwen2 (GPT-NeoX style) rotates `(i, i + rope_dim/2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    Interleaved,
    Neox,
}

/// cos/sin tables `[max_positions][rope_dim/2]`, computed once at load.
#[derive(Debug, Clone)]
pub struct RopeTable {
    cos: Vec<f32>,
    sin: Vec<f32>,
    half: usize,
    style: RopeStyle,
    max_positions: usize,
}

impl RopeTable {
    /// `freq_factors` (llama 3.1 `rope_freqs.weight`) divide each frequency when present.
    pub fn new(
        rope_dim: usize,
        theta: f32,
        max_positions: usize,
        style: RopeStyle,
        freq_factors: Option<&[f32]>,
    ) -> Self {
        let half = rope_dim / 2;
        let inv_freq: Vec<f64> = (0..half)
            .map(|i| {
                let f = 1.0 / (theta as f64).powf(2.0 * i as f64 / rope_dim as f64);
                f / freq_factors
                    .and_then(|ff| ff.get(i))
                    .copied()
                    .unwrap_or(1.0) as f64
            })
            .collect();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for f in &inv_freq {
                let angle = pos as f64 * f;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        Self {
            cos,
            sin,
            half,
            style,
            max_positions,
        }
    }

    /// A table from explicit inverse frequencies (`rope_dim/2` of them, radians per position),
    /// as scaled RoPE variants (llama3, YaRN) compute them; `attention_factor` multiplies every
    /// cos and sin (YaRN's magnitude correction, 1.0 otherwise).
    pub fn from_inv_freq(
        inv_freq: &[f64],
        max_positions: usize,
        style: RopeStyle,
        attention_factor: f32,
    ) -> Self {
        let half = inv_freq.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for pos in 0..max_positions {
            for f in inv_freq {
                let angle = pos as f64 * f;
                cos.push(angle.cos() as f32 * attention_factor);
                sin.push(angle.sin() as f32 * attention_factor);
            }
        }
        Self {
            cos,
            sin,
            half,
            style,
            max_positions,
        }
    }

    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// Rotates every head of every row in place. `x: [n][n_heads * head_dim]`,
    /// `positions[t]` is row `t`'s absolute position (each token its own).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, positions: &[usize]) {
        let row_len = x.len() / positions.len().max(1);
        for (row, &pos) in x.chunks_exact_mut(row_len).zip(positions) {
            let cos = &self.cos[pos * self.half..(pos + 1) * self.half];
            let sin = &self.sin[pos * self.half..(pos + 1) * self.half];
            for head in row.chunks_exact_mut(head_dim) {
                self.rotate(head, cos, sin);
            }
        }
    }

    fn rotate(&self, head: &mut [f32], cos: &[f32], sin: &[f32]) {
        for i in 0..self.half {
            let (a, b) = match self.style {
                RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                RopeStyle::Neox => (i, i + self.half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos[i] - x1 * sin[i];
            head[b] = x0 * sin[i] + x1 * cos[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_gives_unit_root_mean_square_before_the_weight() {
        let out = rms_norm(&[3.0, 4.0, 0.0, 0.0], &[1.0, 1.0], 1e-6);
        let rms = ((out[0] * out[0] + out[1] * out[1]) / 2.0).sqrt();
        assert!((rms - 1.0).abs() < 1e-5);
        assert!((out[0] / out[1] - 0.75).abs() < 1e-6);
        assert_eq!(&out[2..], &[0.0, 0.0]);
    }

    #[test]
    fn rope_at_position_zero_is_the_identity_and_preserves_norms_elsewhere() {
        for style in [RopeStyle::Interleaved, RopeStyle::Neox] {
            let table = RopeTable::new(8, 10000.0, 16, style, None);
            let orig: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
            let mut x = orig.clone();
            table.apply(&mut x, 8, &[0, 9]);
            assert_eq!(&x[..8], &orig[..8]);
            let norm = |v: &[f32]| dot(v, v);
            assert!((norm(&x[8..]) - norm(&orig[8..])).abs() < 1e-3);
            assert_ne!(&x[8..], &orig[8..]);
        }
    }
}
