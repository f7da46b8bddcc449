//! Next-token sampling for one sequence: penalties, temperature, top-k, top-p, and a
//! per-request RNG. The RNG is seeded from the request alone, so the same request and seed give
//! the same tokens whether the sequence runs alone or in a batch.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use deepseek_protocol::validate::SamplingParams;

pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
    /// How often each token was generated (presence/frequency penalties count only output).
    generated: HashMap<u32, u32>,
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random);
        Self {
            params,
            rng: StdRng::seed_from_u64(seed),
            generated: HashMap::new(),
        }
    }

    /// Picks the next token from `logits` (`[vocab]`, modified in place). `context` is every
    /// token of the sequence so far (prompt + generated), for the repetition penalty.
    pub fn sample(&mut self, logits: &mut [f32], context: &[u32]) -> u32 {
        self.apply_penalties(logits, context);
        // Validation already maps tiny temperatures to 0; this guards other callers (dividing
        // logits by 1e-38 overflows f32).
        let token = if self.params.temperature < 1e-5 {
            argmax(logits)
        } else {
            self.sample_random(logits)
        };
        *self.generated.entry(token).or_insert(0) += 1;
        token
    }

    fn apply_penalties(&self, logits: &mut [f32], context: &[u32]) {
        let p = &self.params;
        if p.repetition_penalty != 1.0 {
            let mut seen = context.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for &t in &seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    // HF semantics: push the logit towards "less likely" whatever its sign.
                    *l = if *l > 0.0 {
                        *l / p.repetition_penalty
                    } else {
                        *l * p.repetition_penalty
                    };
                }
            }
        }
        if p.presence_penalty != 0.0 || p.frequency_penalty != 0.0 {
            for (&t, &count) in &self.generated {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l -= p.presence_penalty + p.frequency_penalty * count as f32;
                }
            }
        }
    }

    fn sample_random(&mut self, logits: &[f32]) -> u32 {
        let t = self.params.temperature;
        // Candidates sorted by logit, ties by token id, so the order never depends on the batch.
        let mut cand: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_finite())
            .map(|(i, &l)| (i as u32, l / t))
            .collect();
        if cand.is_empty() {
            return argmax(logits);
        }
        let by_logit = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let k = self.params.top_k;
        if k > 0 && k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_logit);
            cand.truncate(k);
        }
        // Sorting is only needed for the nucleus; without top_p, token-id order is as stable.
        if self.params.top_p < 1.0 {
            cand.sort_unstable_by(by_logit);
        }
        let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
        let mut probs: Vec<f32> = cand.iter().map(|(_, l)| (l - max).exp()).collect();
        let total: f32 = probs.iter().sum();
        probs.iter_mut().for_each(|p| *p /= total);
        let keep = nucleus_len(&probs, self.params.top_p);
        let mass: f32 = probs[..keep].iter().sum();
        let mut r = self.rng.random::<f32>() * mass;
        for (i, p) in probs[..keep].iter().enumerate() {
            if r < *p {
                return cand[i].0;
            }
            r -= p;
        }
        cand[keep - 1].0
    }
}

/// How many of the sorted probabilities make up the top-p nucleus (at least one).
fn nucleus_len(sorted_probs: &[f32], top_p: f32) -> usize {
    if top_p >= 1.0 {
        return sorted_probs.len();
    }
    let mut acc = 0.0;
    for (i, p) in sorted_probs.iter().enumerate() {
        acc += p;
        if acc >= top_p {
            return i + 1;
        }
    }
    sorted_probs.len()
}

/// Index of the largest logit; the lowest index wins ties.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, l) in logits.iter().enumerate() {
        if *l > logits[best] {
            best = i;
        }
    }
    best as u32
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params(temperature: f32) -> SamplingParams {
        SamplingParams {
            temperature,
            seed: Some(7),
            ..Default::default()
        }
    }

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut s = Sampler::new(params(0.0));
        assert_eq!(s.sample(&mut [0.1, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_tokens() {
        let logits: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.3).collect();
        let run = || {
            let mut s = Sampler::new(params(1.0));
            (0..20)
                .map(|_| s.sample(&mut logits.clone(), &[]))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(
            run().iter().any(|&t| t != run()[0]),
            "temperature 1 should vary"
        );
    }

    #[test]
    fn top_k_one_is_greedy_even_at_high_temperature() {
        let mut s = Sampler::new(SamplingParams {
            top_k: 1,
            ..params(2.0)
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [1.0, 1.5, 1.4], &[]), 1);
        }
    }

    #[test]
    fn a_small_top_p_keeps_only_the_most_likely_token() {
        let mut s = Sampler::new(SamplingParams {
            top_p: 0.1,
            ..params(1.0)
        });
        for _ in 0..20 {
            assert_eq!(s.sample(&mut [0.0, 5.0, 4.0], &[]), 1);
        }
    }

    #[test]
    fn repetition_penalty_steers_away_from_seen_tokens() {
        let mut s = Sampler::new(SamplingParams {
            repetition_penalty: 2.0,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [1.0, 1.8, 1.0], &[1]), 0);
    }

    #[test]
    fn frequency_penalty_grows_with_each_repetition() {
        let mut s = Sampler::new(SamplingParams {
            frequency_penalty: 0.6,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [1.0, 2.0], &[]), 1);
        assert_eq!(s.sample(&mut [1.0, 2.0], &[]), 1, "2.0 - 0.6 still wins");
        assert_eq!(s.sample(&mut [1.0, 2.0], &[]), 0, "2.0 - 1.2 loses");
    }

    #[test]
    fn presence_penalty_applies_once_per_seen_token() {
        let mut s = Sampler::new(SamplingParams {
            presence_penalty: 0.5,
            ..params(0.0)
        });
        assert_eq!(s.sample(&mut [1.0, 1.4], &[]), 1);
        assert_eq!(s.sample(&mut [1.0, 1.4], &[]), 0);
    }
}
