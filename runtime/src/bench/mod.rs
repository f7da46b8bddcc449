//! `deepseek-runtime bench`: a streaming load generator for any OpenAI-compatible server.
//! `concurrency` workers send `requests` chat requests in total and the report gives requests/s,
//! output tokens/s, TTFT, per-stream decode speed and latency percentiles, and errors.

mod client;
mod report;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use client::Sample;
pub use report::Report;

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Server base URL, e.g. http://127.0.0.1:8000
    #[arg(long, env = "DSR_BENCH_URL")]
    pub url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Requests in total.
    #[arg(long, default_value_t = 16)]
    pub requests: usize,
    /// max_tokens of each request.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Approximate prompt length in tokens.
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    /// `model` field; the server's first model from /v1/models when omitted.
    #[arg(long)]
    pub model: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
}

/// A prompt of about `n` tokens: short common words are one token each in most vocabularies.
pub fn prompt_of(n: usize) -> String {
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "we", "saw", "it",
    ];
    let body: Vec<&str> = (0..n.saturating_sub(12))
        .map(|i| words[i % words.len()])
        .collect();
    format!(
        "Write a long story that starts with these words: {}",
        body.join(" ")
    )
}

pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?;
    let base = args.url.trim_end_matches('/').to_string();
    let model = match &args.model {
        Some(m) => m.clone(),
        None => client::first_model(&http, &base).await?,
    };
    let job = Arc::new(client::Job {
        http,
        url: format!("{base}/v1/chat/completions"),
        model,
        prompt: prompt_of(args.prompt_tokens),
        max_tokens: args.max_tokens,
    });
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (job, next, total) = (job.clone(), next.clone(), args.requests);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while next.fetch_add(1, Ordering::SeqCst) < total {
                    samples.push(client::one_request(&job).await);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await?);
    }
    Ok(Report::new(&samples, started.elapsed(), args.concurrency))
}
