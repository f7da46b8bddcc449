//! The `gpu-check` report: what was checked, decode speed per batch size as a fraction of the
//! card's memory-bandwidth limit, and TTFT; written as one JSON file and one text table. Pure
//! functions, tested without a GPU.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// Peak memory bandwidth (GB/s, 1e9 bytes) of cards by the name `nvidia-smi` prints, from
/// NVIDIA's data sheets. `None` for a card not listed: pass `--card-bandwidth-gbs`.
pub fn card_bandwidth_gbs(name: &str) -> Option<f64> {
    let n = name.to_ascii_uppercase();
    let table: [(&str, f64); 8] = [
        ("H200", 4800.0),
        ("H100 NVL", 3900.0),
        ("H100 PCIE", 2000.0),
        ("H100", 3350.0), // SXM5 80GB (HBM3)
        ("A100-SXM4-80GB", 2039.0),
        ("A100 80GB PCIE", 1935.0),
        ("L40S", 864.0),
        ("L4", 300.0),
    ];
    table
        .iter()
        .find(|(key, _)| n.contains(key))
        .map(|&(_, gbs)| gbs)
}

/// One decode measurement: `batch` sequences each at `context` positions, one token each per
/// step, `step_secs` the median step time.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeRow {
    pub model: String,
    pub batch: usize,
    pub context: usize,
    pub step_secs: f64,
    /// Bytes of weights one step reads (every linear layer and the LM head; the embedding
    /// table only by the rows it gathers, counted as zero).
    pub weight_bytes: u64,
    /// KV cache bytes one token of one sequence holds (the model's own figure).
    pub kv_bytes_per_token: u64,
}

impl DecodeRow {
    /// Bytes one step must read at least: the weights once, plus every sequence's KV cache.
    pub fn bytes_per_step(&self) -> u64 {
        let kv = self.kv_bytes_per_token as u128 * self.context as u128 * self.batch as u128;
        (self.weight_bytes as u128 + kv).min(u64::MAX as u128) as u64
    }

    pub fn tokens_per_sec(&self) -> f64 {
        self.batch as f64 / self.step_secs
    }

    pub fn per_stream_tokens_per_sec(&self) -> f64 {
        1.0 / self.step_secs
    }

    /// GB/s the step achieved: bytes it must read over its time.
    pub fn achieved_gbs(&self) -> f64 {
        self.bytes_per_step() as f64 / self.step_secs / 1e9
    }

    /// Achieved over the card's peak (1.0 = at the memory-bandwidth limit).
    pub fn bandwidth_fraction(&self, card_gbs: f64) -> f64 {
        self.achieved_gbs() / card_gbs
    }
}

/// A pass/fail check with what it compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ttft {
    pub model: String,
    pub prompt_tokens: usize,
    pub secs: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct GpuReport {
    pub card: String,
    pub card_bandwidth_gbs: f64,
    pub device: String,
    pub checks: Vec<Check>,
    pub decode: Vec<DecodeRow>,
    pub ttft: Vec<Ttft>,
}

impl GpuReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed)
    }

    pub fn to_json(&self) -> Value {
        let bw = self.card_bandwidth_gbs;
        json!({
            "card": self.card,
            "card_bandwidth_gbs": bw,
            "device": self.device,
            "passed": self.passed(),
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name, "passed": c.passed, "detail": c.detail,
            })).collect::<Vec<_>>(),
            "decode": self.decode.iter().map(|r| json!({
                "model": r.model,
                "batch": r.batch,
                "context": r.context,
                "step_ms": r.step_secs * 1e3,
                "tokens_per_sec": r.tokens_per_sec(),
                "per_stream_tokens_per_sec": r.per_stream_tokens_per_sec(),
                "weight_bytes": r.weight_bytes,
                "bytes_per_step": r.bytes_per_step(),
                "achieved_gbs": r.achieved_gbs(),
                "bandwidth_fraction": r.bandwidth_fraction(bw),
            })).collect::<Vec<_>>(),
            "ttft": self.ttft.iter().map(|t| json!({
                "model": t.model, "prompt_tokens": t.prompt_tokens, "ttft_ms": t.secs * 1e3,
            })).collect::<Vec<_>>(),
        })
    }

    /// The human-readable table (also written next to the JSON).
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "card: {} ({:.0} GB/s peak), device {}",
            self.card, self.card_bandwidth_gbs, self.device
        );
        for c in &self.checks {
            let mark = if c.passed { "PASS" } else { "FAIL" };
            let _ = writeln!(s, "{mark}  {}: {}", c.name, c.detail);
        }
        let _ = writeln!(
            s,
            "\n{:<10} {:>5} {:>7} {:>9} {:>10} {:>10} {:>9} {:>6}",
            "model", "batch", "context", "step ms", "tok/s", "tok/s/seq", "GB/s", "of BW"
        );
        for r in &self.decode {
            let _ = writeln!(
                s,
                "{:<10} {:>5} {:>7} {:>9.2} {:>10.1} {:>10.1} {:>9.1} {:>5.1}%",
                r.model,
                r.batch,
                r.context,
                r.step_secs * 1e3,
                r.tokens_per_sec(),
                r.per_stream_tokens_per_sec(),
                r.achieved_gbs(),
                r.bandwidth_fraction(self.card_bandwidth_gbs) * 100.0
            );
        }
        for t in &self.ttft {
            let _ = writeln!(
                s,
                "TTFT {} for a {}-token prompt: {:.1} ms",
                t.model,
                t.prompt_tokens,
                t.secs * 1e3
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(batch: usize, step_secs: f64) -> DecodeRow {
        DecodeRow {
            model: "dense-7b".into(),
            batch,
            context: 100,
            step_secs,
            weight_bytes: 13_000_000_000,
            kv_bytes_per_token: 500_000,
        }
    }

    #[test]
    fn bandwidth_fraction_counts_weights_once_and_each_sequences_cache() {
        // 13 GB of weights + 8 sequences x 100 positions x 0.5 MB = 13.4 GB in 10 ms.
        let r = row(8, 0.010);
        assert_eq!(r.bytes_per_step(), 13_400_000_000);
        assert!((r.achieved_gbs() - 1340.0).abs() < 1e-9);
        assert!((r.bandwidth_fraction(3350.0) - 0.4).abs() < 1e-12);
        assert!((r.tokens_per_sec() - 800.0).abs() < 1e-9);
        assert!((r.per_stream_tokens_per_sec() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn knows_the_cards_it_will_meet_and_no_others() {
        assert_eq!(card_bandwidth_gbs("NVIDIA H100 80GB HBM3"), Some(3350.0));
        assert_eq!(card_bandwidth_gbs("NVIDIA H100 PCIe"), Some(2000.0));
        assert_eq!(card_bandwidth_gbs("NVIDIA H200"), Some(4800.0));
        assert_eq!(card_bandwidth_gbs("NVIDIA GeForce GTX 1080"), None);
    }

    #[test]
    fn json_and_table_carry_every_figure() {
        let report = GpuReport {
            card: "NVIDIA H100 80GB HBM3".into(),
            card_bandwidth_gbs: 3350.0,
            device: "cuda:0".into(),
            checks: vec![
                Check {
                    name: "greedy cpu == gpu".into(),
                    passed: true,
                    detail: "4 prompts".into(),
                },
                Check {
                    name: "batch invariance".into(),
                    passed: false,
                    detail: "seq 2 differs at 5".into(),
                },
            ],
            decode: vec![row(8, 0.010)],
            ttft: vec![Ttft {
                model: "dense-7b".into(),
                prompt_tokens: 2000,
                secs: 0.25,
            }],
        };
        let j = report.to_json();
        assert_eq!(j["passed"], false);
        assert_eq!(j["checks"][1]["passed"], false);
        assert_eq!(j["decode"][0]["bytes_per_step"], 13_400_000_000u64);
        assert!((j["decode"][0]["bandwidth_fraction"].as_f64().unwrap_or(0.0) - 0.4).abs() < 1e-12);
        assert_eq!(j["ttft"][0]["ttft_ms"], 250.0);
        let t = report.table();
        assert!(
            t.contains("FAIL  batch invariance: seq 2 differs at 5"),
            "{t}"
        );
        assert!(
            t.contains("dense-7b       8     100     10.00      800.0      100.0    1340.0  40.0%"),
            "{t}"
        );
        assert!(
            t.contains("TTFT dense-7b for a 2000-token prompt: 250.0 ms"),
            "{t}"
        );
    }
}
