//! RoPE frequency schedules of Hugging Face checkpoints (`rope_scaling` / `rope_parameters` in
//! config.json): plain, linear, llama3 and YaRN. Each turns into the inverse frequencies (radians
//! per position, one per rotated pair) and the cos/sin magnitude factor `RopeTable` consumes.

use super::ops::{RopeStyle, RopeTable};

/// How a checkpoint stretches its RoPE frequencies beyond the trained context.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RopeScaling {
    #[default]
    None,
    /// Every frequency divided by `factor`.
    Linear { factor: f64 },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// YaRN as DeepSeek V2/V3 use it (`type: "yarn"`).
    Yarn {
        factor: f64,
        original_max_position_embeddings: f64,
        beta_fast: f64,
        beta_slow: f64,
        mscale: f64,
        mscale_all_dim: f64,
    },
}

/// YaRN's magnitude correction `0.1 * mscale * ln(scale) + 1` (1 when not stretched).
pub fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

impl RopeScaling {
    /// Inverse frequencies for `dim` rotated dimensions and the cos/sin factor.
    pub fn inv_freq(&self, dim: usize, theta: f64) -> (Vec<f64>, f32) {
        let base: Vec<f64> = (0..dim / 2)
            .map(|i| 1.0 / theta.powf(2.0 * i as f64 / dim as f64))
            .collect();
        match *self {
            Self::None => (base, 1.0),
            Self::Linear { factor } => (base.iter().map(|f| f / factor).collect(), 1.0),
            Self::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                let scaled = base.iter().map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor)
                            / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                });
                (scaled.collect(), 1.0)
            }
            Self::Yarn { .. } => self.yarn(dim, theta, &base),
        }
    }

    fn yarn(&self, dim: usize, theta: f64, base: &[f64]) -> (Vec<f64>, f32) {
        let Self::Yarn {
            factor,
            original_max_position_embeddings: orig,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
        } = *self
        else {
            return (base.to_vec(), 1.0);
        };
        let correction_dim = |rotations: f64| {
            dim as f64 * (orig / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
        };
        let low = correction_dim(beta_fast).floor().max(0.0);
        let high = correction_dim(beta_slow).ceil().min(dim as f64 - 1.0);
        let high = if low == high { high + 0.001 } else { high };
        let inv: Vec<f64> = base
            .iter()
            .enumerate()
            .map(|(i, &extrapolated)| {
                let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                let keep = 1.0 - ramp;
                extrapolated / factor * (1.0 - keep) + extrapolated * keep
            })
            .collect();
        let attention_factor = if mscale != 0.0 && mscale_all_dim != 0.0 {
            yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)
        } else {
            yarn_get_mscale(factor, 1.0)
        };
        (inv, attention_factor as f32)
    }

    /// The extra factor on the attention softmax scale (`mscale_all_dim` of YaRN), squared in.
    pub fn softmax_scale_factor(&self) -> f32 {
        match *self {
            Self::Yarn {
                factor,
                mscale_all_dim,
                ..
            } if mscale_all_dim != 0.0 => {
                let m = yarn_get_mscale(factor, mscale_all_dim);
                (m * m) as f32
            }
            _ => 1.0,
        }
    }

    /// The cos/sin table for `dim` rotated dimensions up to `max_positions`.
    pub fn table(
        &self,
        dim: usize,
        theta: f64,
        max_positions: usize,
        style: RopeStyle,
    ) -> RopeTable {
        let (inv, factor) = self.inv_freq(dim, theta);
        RopeTable::from_inv_freq(&inv, max_positions, style, factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_scaling_gives_the_classic_geometric_frequencies() {
        let (inv, factor) = RopeScaling::None.inv_freq(8, 10_000.0);
        assert_eq!(factor, 1.0);
        assert_eq!(inv.len(), 4);
        assert!((inv[0] - 1.0).abs() < 1e-12);
        assert!((inv[1] - 0.1).abs() < 1e-12);
    }

    #[test]
    fn llama3_keeps_high_frequencies_and_divides_low_ones_by_the_factor() {
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let (base, _) = RopeScaling::None.inv_freq(128, 500_000.0);
        let (inv, _) = s.inv_freq(128, 500_000.0);
        assert_eq!(inv[0], base[0]);
        assert!((inv[63] - base[63] / 8.0).abs() < 1e-15);
    }

    #[test]
    fn yarn_with_equal_mscales_keeps_the_magnitude_and_squares_the_softmax_factor() {
        let s = RopeScaling::Yarn {
            factor: 40.0,
            original_max_position_embeddings: 4096.0,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: 1.0,
            mscale_all_dim: 1.0,
        };
        let (inv, factor) = s.inv_freq(64, 10_000.0);
        let (base, _) = RopeScaling::None.inv_freq(64, 10_000.0);
        assert_eq!(factor, 1.0);
        assert_eq!(inv[0], base[0]);
        assert!((inv[31] - base[31] / 40.0).abs() < 1e-15);
        let m = 0.1 * 40f64.ln() + 1.0;
        assert!((s.softmax_scale_factor() - (m * m) as f32).abs() < 1e-6);
    }
}
