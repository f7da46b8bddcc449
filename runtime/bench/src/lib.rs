//! deepseek-bench: load generation against OpenAI-compatible servers over HTTP. Is NOT: a
//! model benchmark in-process (the criterion benches live with the kernels and the engine).
//!
//! `deepseek-runtime bench`: a streaming load generator for any OpenAI-compatible server.
//! `concurrency` workers send `requests` chat requests in total and the report gives requests/s,
//! output tokens/s, TTFT, per-stream decode speed and latency percentiles, and errors.
//! `compare` runs the same loads against our server and llama.cpp's `llama-server`.

mod client;
pub mod compare;
pub mod gpu_check;
mod report;
mod server;
mod table;

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
    /// Ask the server to generate through end-of-sequence (`ignore_eos`), so every request
    /// produces exactly `max_tokens` tokens (fixed-length loads, as vLLM's benchmarks use).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Send `cache_prompt: false` (llama-server's per-slot prompt cache; other servers ignore
    /// the field), so prefill figures measure prefill, not cache hits on the chat template.
    #[arg(long)]
    pub no_prompt_cache: bool,
}

/// A prompt of about `n` tokens (short common words are one token each in most vocabularies),
/// different for each `request` number from its first word on, so no server can answer it from
/// a prefix cache filled by an earlier request (runs number requests from a random start).
pub fn prompt_of(n: usize, request: u64) -> String {
    let request = request as usize;
    let words = [
        "the", "cat", "sat", "on", "a", "mat", "and", "we", "saw", "it",
    ];
    let body: Vec<&str> = (0..n.saturating_sub(14))
        .map(|i| words[(i * 7 + request * 3 + i / words.len()) % words.len()])
        .collect();
    format!(
        "Story {request}. Write a long story that starts with these words: {}",
        body.join(" ")
    )
}

pub async fn run(args: BenchArgs) -> anyhow::Result<Report> {
    // A fresh connection per request: llama-server (cpp-httplib) closes streamed connections
    // that a pool would try to reuse ("error sending request"), and a connect on 127.0.0.1
    // costs microseconds.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .pool_max_idle_per_host(0)
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
        prompt_tokens: args.prompt_tokens,
        max_tokens: args.max_tokens,
        ignore_eos: args.ignore_eos,
        no_prompt_cache: args.no_prompt_cache,
        first_request: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 % 1_000_000_007),
    });
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (job, next, total) = (job.clone(), next.clone(), args.requests);
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= total {
                        break;
                    }
                    samples.push(client::one_request(&job, i).await);
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
