//! The side-by-side table of `bench-compare`: one row per figure, both servers' values and a
//! ratio oriented so that above 1.0 always means "ours is ahead" (ours/peer for speeds,
//! peer/ours for times and memory).

use std::fmt::Write as _;

use super::Report;

/// One load: `requests` requests, `concurrency` at a time, prompts of about `prompt_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub concurrency: usize,
    pub prompt_tokens: usize,
    pub requests: usize,
}

/// Everything measured on one server.
#[derive(Debug, Clone)]
pub struct ServerResults {
    pub name: String,
    pub runs: Vec<(Scenario, Report)>,
    pub peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
}

struct Row {
    label: String,
    ours: Option<f64>,
    peer: Option<f64>,
    better: Better,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        let (o, p) = (self.ours?, self.peer?);
        let r = match self.better {
            Better::Higher => o / p,
            Better::Lower => p / o,
        };
        r.is_finite().then_some(r)
    }
}

fn find(results: &ServerResults, s: Scenario) -> Option<&Report> {
    results.runs.iter().find(|(x, _)| *x == s).map(|(_, r)| r)
}

/// The rows, in the order the issue asks for them: single-stream decode, prefill, aggregate
/// throughput at concurrency, TTFT percentiles of every load, peak RSS, errors.
fn rows(ours: &ServerResults, peer: &ServerResults, scenarios: &[Scenario]) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut figure = |label: String, s: Scenario, better: Better, f: fn(&Report) -> f64| {
        rows.push(Row {
            label,
            ours: find(ours, s).map(f),
            peer: find(peer, s).map(f),
            better,
        });
    };
    let single: Vec<_> = scenarios.iter().filter(|s| s.concurrency == 1).collect();
    let multi: Vec<_> = scenarios.iter().filter(|s| s.concurrency > 1).collect();
    if let Some(s) = single.iter().min_by_key(|s| s.prompt_tokens) {
        figure(
            format!("decode tok/s, 1 stream (~{}-token prompt)", s.prompt_tokens),
            **s,
            Better::Higher,
            |r| r.decode_tokens_per_sec_per_stream,
        );
    }
    for s in &single {
        figure(
            format!(
                "prefill tok/s, 1 stream (~{}-token prompt)",
                s.prompt_tokens
            ),
            **s,
            Better::Higher,
            |r| r.prefill_tokens_per_sec,
        );
    }
    for s in &multi {
        figure(
            format!(
                "output tok/s, {} streams (~{}-token prompts)",
                s.concurrency, s.prompt_tokens
            ),
            **s,
            Better::Higher,
            |r| r.output_tokens_per_sec,
        );
    }
    for s in single.iter().chain(&multi) {
        let at = format!("c={}, ~{} tok", s.concurrency, s.prompt_tokens);
        figure(format!("TTFT p50 ms ({at})"), **s, Better::Lower, |r| {
            r.ttft_ms[0]
        });
        figure(format!("TTFT p99 ms ({at})"), **s, Better::Lower, |r| {
            r.ttft_ms[2]
        });
    }
    let mib = |r: &ServerResults| r.peak_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0));
    rows.push(Row {
        label: "peak RSS MiB".into(),
        ours: mib(ours),
        peer: mib(peer),
        better: Better::Lower,
    });
    let errors = |r: &ServerResults| Some(r.runs.iter().map(|(_, x)| x.errors as f64).sum());
    rows.push(Row {
        label: "failed requests".into(),
        ours: errors(ours),
        peer: errors(peer),
        better: Better::Lower,
    });
    rows
}

fn cell(v: Option<f64>) -> String {
    match v {
        Some(v) if v.fract() == 0.0 && v.abs() < 1e9 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

/// The table as text (fixed-width columns, Markdown-compatible).
pub fn render(ours: &ServerResults, peer: &ServerResults, scenarios: &[Scenario]) -> String {
    let rows = rows(ours, peer, scenarios);
    let width = rows
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(10)
        .max(6);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| {:<width$} | {:>10} | {:>10} | {:>12} |",
        "figure", ours.name, peer.name, "ours ahead x"
    );
    let _ = writeln!(
        out,
        "|{}|{}|{}|{}|",
        "-".repeat(width + 2),
        "-".repeat(12),
        "-".repeat(12),
        "-".repeat(14)
    );
    for r in &rows {
        let ratio = r.ratio().map_or("-".into(), |x| format!("{x:.2}"));
        let _ = writeln!(
            out,
            "| {:<width$} | {:>10} | {:>10} | {:>12} |",
            r.label,
            cell(r.ours),
            cell(r.peer),
            ratio
        );
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::time::Duration;

    use super::super::Sample;
    use super::*;

    fn report(ttft_ms: u64, latency_ms: u64, tokens: u64, concurrency: usize) -> Report {
        let s = Sample::Ok {
            ttft: Duration::from_millis(ttft_ms),
            latency: Duration::from_millis(latency_ms),
            prompt_tokens: 50,
            completion_tokens: tokens,
        };
        Report::new(&[s], Duration::from_millis(latency_ms), concurrency)
    }

    fn results(name: &str, speed: u64, rss: u64) -> (ServerResults, Vec<Scenario>) {
        let single = Scenario {
            concurrency: 1,
            prompt_tokens: 50,
            requests: 1,
        };
        let multi = Scenario {
            concurrency: 8,
            ..single
        };
        let runs = vec![
            (single, report(100, 100 + 1000 / speed * 10, 11, 1)),
            (multi, report(200, 2000, 101 * speed, 8)),
        ];
        let r = ServerResults {
            name: name.into(),
            runs,
            peak_rss_bytes: Some(rss * 1024 * 1024),
        };
        (r, vec![single, multi])
    }

    #[test]
    fn ratios_above_one_mean_ours_is_ahead_for_speeds_and_for_memory() {
        let (ours, scenarios) = results("ours", 2, 100);
        let (peer, _) = results("peer", 1, 200);
        let table = render(&ours, &peer, &scenarios);
        let line = |label: &str| {
            table
                .lines()
                .find(|l| l.contains(label))
                .unwrap_or_else(|| panic!("no {label} in\n{table}"))
                .to_string()
        };
        // 10 tokens in 5000 ms vs 10000 ms: 2.0 vs 1.0 tok/s.
        assert!(
            line("decode tok/s, 1 stream").ends_with("2.00 |"),
            "{table}"
        );
        assert!(
            line("output tok/s, 8 streams").ends_with("2.00 |"),
            "{table}"
        );
        assert!(line("peak RSS MiB").contains(" 100 |"), "{table}");
        assert!(line("peak RSS MiB").ends_with("2.00 |"), "{table}");
        assert!(line("TTFT p50 ms (c=8").ends_with("1.00 |"), "{table}");
        assert!(line("failed requests").contains(" 0 |"), "{table}");
    }

    #[test]
    fn a_missing_figure_shows_a_dash_not_a_ratio() {
        let (ours, scenarios) = results("ours", 1, 100);
        let (mut peer, _) = results("peer", 1, 100);
        peer.runs.clear();
        peer.peak_rss_bytes = None;
        let table = render(&ours, &peer, &scenarios);
        let rss = table.lines().find(|l| l.contains("peak RSS")).unwrap();
        assert!(rss.trim_end().ends_with("- |"), "{table}");
    }
}
