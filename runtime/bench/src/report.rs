//! Aggregates bench samples into throughput and latency percentiles.

use std::fmt;
use std::time::Duration;

use super::Sample;

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub concurrency: usize,
    pub requests: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub wall: Duration,
    pub requests_per_sec: f64,
    pub output_tokens_per_sec: f64,
    /// Mean of each stream's (completion tokens - 1) / (latency - TTFT).
    pub decode_tokens_per_sec_per_stream: f64,
    /// Sum of prompt tokens / sum of TTFT: prefill speed when requests do not overlap.
    pub prefill_tokens_per_sec: f64,
    pub ttft_ms: [f64; 3],
    pub latency_ms: [f64; 3],
    pub mean_completion_tokens: f64,
}

/// p50, p90, p99 in milliseconds (nearest rank).
fn percentiles(mut v: Vec<f64>) -> [f64; 3] {
    if v.is_empty() {
        return [0.0; 3];
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    [at(0.5), at(0.9), at(0.99)]
}

impl Report {
    pub fn new(samples: &[Sample], wall: Duration, concurrency: usize) -> Self {
        let (mut ttft, mut lat, mut decode) = (Vec::new(), Vec::new(), Vec::new());
        let (mut out_tokens, mut prompt_tokens, mut ttft_sum) = (0u64, 0u64, 0.0);
        let mut errors = Vec::new();
        for s in samples {
            match s {
                Sample::Ok {
                    ttft: t,
                    latency,
                    prompt_tokens: p,
                    completion_tokens: c,
                } => {
                    ttft.push(t.as_secs_f64() * 1e3);
                    lat.push(latency.as_secs_f64() * 1e3);
                    out_tokens += c;
                    prompt_tokens += p;
                    ttft_sum += t.as_secs_f64();
                    let gen_time = (*latency - *t).as_secs_f64();
                    if *c > 1 && gen_time > 0.0 {
                        decode.push((*c - 1) as f64 / gen_time);
                    }
                }
                Sample::Err(e) => errors.push(e.clone()),
            }
        }
        let secs = wall.as_secs_f64().max(1e-9);
        let ok = ttft.len();
        Self {
            concurrency,
            requests: samples.len(),
            errors: errors.len(),
            first_error: errors.first().cloned(),
            wall,
            requests_per_sec: ok as f64 / secs,
            output_tokens_per_sec: out_tokens as f64 / secs,
            decode_tokens_per_sec_per_stream: mean(&decode),
            prefill_tokens_per_sec: if ttft_sum > 0.0 {
                prompt_tokens as f64 / ttft_sum
            } else {
                0.0
            },
            ttft_ms: percentiles(ttft),
            latency_ms: percentiles(lat),
            mean_completion_tokens: if ok > 0 {
                out_tokens as f64 / ok as f64
            } else {
                0.0
            },
        }
    }
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [t50, t90, t99] = self.ttft_ms;
        let [l50, l90, l99] = self.latency_ms;
        writeln!(f, "concurrency            {}", self.concurrency)?;
        writeln!(
            f,
            "requests               {} ({} errors) in {:.2}s",
            self.requests,
            self.errors,
            self.wall.as_secs_f64()
        )?;
        writeln!(f, "requests/s             {:.2}", self.requests_per_sec)?;
        writeln!(
            f,
            "output tokens/s        {:.1}",
            self.output_tokens_per_sec
        )?;
        writeln!(
            f,
            "decode tokens/s/stream {:.1}",
            self.decode_tokens_per_sec_per_stream
        )?;
        writeln!(
            f,
            "prefill tokens/s       {:.1}",
            self.prefill_tokens_per_sec
        )?;
        writeln!(
            f,
            "mean output tokens     {:.1}",
            self.mean_completion_tokens
        )?;
        writeln!(f, "TTFT ms    p50 {t50:.1}  p90 {t90:.1}  p99 {t99:.1}")?;
        write!(f, "latency ms p50 {l50:.1}  p90 {l90:.1}  p99 {l99:.1}")?;
        if let Some(e) = &self.first_error {
            write!(f, "\nfirst error: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(ttft_ms: u64, latency_ms: u64, completion: u64) -> Sample {
        Sample::Ok {
            ttft: Duration::from_millis(ttft_ms),
            latency: Duration::from_millis(latency_ms),
            prompt_tokens: 10,
            completion_tokens: completion,
        }
    }

    #[test]
    fn computes_throughput_and_percentiles() {
        let samples = vec![
            ok(100, 1100, 11),
            ok(200, 1200, 11),
            Sample::Err("boom".into()),
        ];
        let r = Report::new(&samples, Duration::from_secs(2), 2);
        assert_eq!((r.requests, r.errors), (3, 1));
        assert_eq!(r.output_tokens_per_sec, 11.0);
        assert_eq!(r.decode_tokens_per_sec_per_stream, 10.0);
        assert_eq!(r.ttft_ms, [100.0, 200.0, 200.0]);
        assert!((r.prefill_tokens_per_sec - 20.0 / 0.3).abs() < 1e-6);
    }
}
