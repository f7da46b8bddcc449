//! Feed-forward blocks of deepseek2: the dense SiLU-gated MLP and the mixture of experts
//! (router + routed experts + always-on shared experts). Batched: the router scores every token
//! of the batch at once, then each expert runs once on the rows routed to it
//! (`[rows_for_expert, hidden]`), and its weighted output is added back to those rows.
//!
//! Routing follows the published models: V2 scores with a softmax and picks the top-k, either
//! over all experts (`greedy`) or within the `topk_group` groups with the best single expert
//! (`group_limited_greedy`); V3 scores with a sigmoid, chooses by score plus
//! `e_score_correction_bias` within the groups with the best two-expert sums (`noaux_tc`),
//! and weights by the unbiased score. GGUF files follow llama.cpp's `build_moe_ffn` instead
//! (`TopkMethod::LlamaCpp`): the scoring function is named by the file, any selection bias is
//! added whatever the scoring, groups are always ranked by their two best, and the weights are
//! normalised exactly when asked and then always scaled.

use super::linear::Linear;
use super::ops;

/// `down(silu(gate x) * up x)`.
#[derive(Debug)]
pub struct Mlp {
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

impl Mlp {
    /// `x: [n][hidden]` -> `[n][hidden]`.
    pub fn forward(&self, x: &[f32], n: usize) -> candle_core::Result<Vec<f32>> {
        let mut g = self.gate.forward(x, n)?;
        let u = self.up.forward(x, n)?;
        ops::silu_mul(&mut g, &u);
        self.down.forward(&g, n)
    }
}

/// How the router turns logits into scores and picks experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopkMethod {
    /// V2-Lite: softmax, top-k over all experts.
    Greedy,
    /// V2: softmax, top-k among the `topk_group` groups whose best expert scores highest.
    GroupLimitedGreedy,
    /// V3: sigmoid + correction bias for the choice, groups ranked by their two best.
    NoAuxTc,
    /// llama.cpp's routing, which GGUF files are made for: scores by `Gating`; the choice on
    /// score + `exp_probs_b` (when present) within the `topk_group` groups whose two best
    /// choices sum highest; weights normalised iff `norm_topk_prob`, then always multiplied by
    /// `routed_scaling_factor`.
    LlamaCpp(Gating),
}

/// How router logits become expert scores (GGUF `expert_gating_func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gating {
    Softmax,
    Sigmoid,
}

/// Router hyper-parameters.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub method: TopkMethod,
    pub top_k: usize,
    pub n_group: usize,
    pub topk_group: usize,
    pub norm_topk_prob: bool,
    pub routed_scaling_factor: f32,
}

/// The mixture-of-experts block.
#[derive(Debug)]
pub struct Moe {
    pub cfg: RouterConfig,
    /// `[n_experts, hidden]`, kept in f32 as upstream does.
    pub gate: Linear,
    /// V3's `e_score_correction_bias`, one per expert.
    pub score_bias: Option<Vec<f32>>,
    pub experts: Vec<Mlp>,
    pub shared: Option<Mlp>,
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
fn top_k(xs: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[b].total_cmp(&xs[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

impl Moe {
    /// The experts and weights one token is routed to, from its router logits.
    pub fn route(&self, logits: &[f32]) -> Vec<(usize, f32)> {
        use TopkMethod::{Greedy, LlamaCpp, NoAuxTc};
        let c = &self.cfg;
        let n = logits.len();
        let sigmoid = matches!(c.method, NoAuxTc | LlamaCpp(Gating::Sigmoid));
        // V3 and llama.cpp: selection bias, groups ranked by their two best, others masked out.
        let v3_style = matches!(c.method, NoAuxTc | LlamaCpp(_));
        let scores: Vec<f32> = if sigmoid {
            logits.iter().map(|x| 1.0 / (1.0 + (-x).exp())).collect()
        } else {
            let mut s = logits.to_vec();
            ops::softmax_in_place(&mut s);
            s
        };
        let mut choice: Vec<f32> = match (&self.score_bias, v3_style) {
            (Some(b), true) => scores.iter().zip(b).map(|(s, b)| s + b).collect(),
            _ => scores.clone(),
        };
        if c.method != Greedy && c.n_group > 1 {
            let per = n / c.n_group;
            let group_score: Vec<f32> = choice
                .chunks(per)
                .map(|g| {
                    if v3_style {
                        top_k(g, 2).iter().map(|&i| g[i]).sum()
                    } else {
                        g.iter().copied().fold(f32::NEG_INFINITY, f32::max)
                    }
                })
                .collect();
            let keep = top_k(&group_score, c.topk_group);
            let masked = if v3_style { f32::NEG_INFINITY } else { 0.0 };
            for (e, v) in choice.iter_mut().enumerate() {
                if !keep.contains(&(e / per)) {
                    *v = masked;
                }
            }
        }
        let chosen = top_k(&choice, c.top_k);
        let mut weights: Vec<f32> = chosen.iter().map(|&e| scores[e]).collect();
        let normalise = match c.method {
            LlamaCpp(_) => c.norm_topk_prob,
            // V2's remote code normalises only for top_k > 1; V3 whenever asked.
            _ => c.norm_topk_prob && (c.top_k > 1 || c.method == NoAuxTc),
        };
        if normalise {
            let sum: f32 = weights.iter().sum();
            // llama.cpp clamps the sum to the smallest normal f16; the remote code adds 1e-20.
            let sum = match c.method {
                LlamaCpp(_) => sum.max(6.103_515_6e-5),
                _ => sum + 1e-20,
            };
            weights.iter_mut().for_each(|w| *w /= sum);
        }
        // V2 (remote code) scales only when it does not normalise; V3 and llama.cpp always.
        if !normalise || v3_style {
            weights
                .iter_mut()
                .for_each(|w| *w *= c.routed_scaling_factor);
        }
        chosen.into_iter().zip(weights).collect()
    }

    /// `x: [n][hidden]` -> `[n][hidden]`: routed experts' weighted sum plus the shared experts.
    pub fn forward(&self, x: &[f32], n: usize) -> candle_core::Result<Vec<f32>> {
        let hidden = x.len() / n.max(1);
        let logits = self.gate.forward(x, n)?;
        let n_experts = self.experts.len();
        // rows[e] = (token, weight) pairs routed to expert e.
        let mut rows: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n_experts];
        for (t, l) in logits.chunks_exact(n_experts).enumerate() {
            for (e, w) in self.route(l) {
                rows[e].push((t, w));
            }
        }
        let mut out = match &self.shared {
            Some(s) => s.forward(x, n)?,
            None => vec![0.0; x.len()],
        };
        for (expert, routed) in self.experts.iter().zip(&rows) {
            if routed.is_empty() {
                continue;
            }
            let gathered: Vec<f32> = routed
                .iter()
                .flat_map(|&(t, _)| x[t * hidden..(t + 1) * hidden].iter().copied())
                .collect();
            let y = expert.forward(&gathered, routed.len())?;
            for (&(t, w), row) in routed.iter().zip(y.chunks_exact(hidden)) {
                let dst = &mut out[t * hidden..(t + 1) * hidden];
                dst.iter_mut().zip(row).for_each(|(d, v)| *d += w * v);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn moe(method: TopkMethod, norm: bool, bias: Option<Vec<f32>>) -> Moe {
        let gate = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu)
            .and_then(|w| Linear::from_dense(&w, None));
        Moe {
            cfg: RouterConfig {
                method,
                top_k: 2,
                n_group: 2,
                topk_group: 1,
                norm_topk_prob: norm,
                routed_scaling_factor: 2.0,
            },
            gate: gate.expect("gate"),
            score_bias: bias,
            experts: Vec::new(),
            shared: None,
        }
    }

    #[test]
    fn greedy_routing_picks_the_two_best_softmax_scores_scaled() {
        let r = moe(TopkMethod::Greedy, false, None).route(&[0.0, 3.0, 1.0, 2.0]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 3]);
        let mut s = vec![0.0, 3.0, 1.0, 2.0];
        ops::softmax_in_place(&mut s);
        assert!((r[0].1 - 2.0 * s[1]).abs() < 1e-6);
    }

    #[test]
    fn group_limited_routing_stays_inside_the_best_group() {
        // Groups {0,1} (best single 3.0) and {2,3} (best 2.5): only group 0 may be used.
        let r = moe(TopkMethod::GroupLimitedGreedy, false, None).route(&[3.0, -5.0, 2.5, 2.4]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![0, 1]);
    }

    #[test]
    fn v3_routing_chooses_with_the_bias_but_weights_without_it() {
        let bias = vec![0.0, 0.0, 10.0, 10.0];
        let r = moe(TopkMethod::NoAuxTc, true, Some(bias)).route(&[5.0, 4.0, 0.0, 0.0]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3]);
        // Equal unbiased scores (sigmoid 0 = 0.5), normalised to 0.5 each, then scaled by 2.
        assert!((r[0].1 - 1.0).abs() < 1e-6 && (r[1].1 - 1.0).abs() < 1e-6);
    }

    #[test]
    fn llama_cpp_softmax_routing_adds_the_bias_ranks_groups_by_two_best_and_scales_after_norm() {
        // Groups {0,1} and {2,3}: by best single expert group 0 wins (3.0), by the sum of the
        // two best group 1 does (2.5 + 2.4 > 3.0 - 5.0), which is what llama.cpp ranks by.
        let m = moe(TopkMethod::LlamaCpp(Gating::Softmax), true, None);
        let r = m.route(&[3.0, -5.0, 2.5, 2.4]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![2, 3]);
        // Normalised (sum 1), then scaled by 2 all the same.
        assert!((r[0].1 + r[1].1 - 2.0).abs() < 1e-6, "{r:?}");
        let biased = moe(
            TopkMethod::LlamaCpp(Gating::Softmax),
            false,
            Some(vec![0.0, 10.0, 0.0, 0.0]),
        );
        let r = biased.route(&[3.0, -5.0, 2.5, 2.4]);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 0]);
    }
}
