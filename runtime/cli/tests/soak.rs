//! Soak: 64 concurrent streams against `serve` on the real model, then the same through the
//! router (`deepseek-runtime route` with a routes file pointing at the server), each for
//! `DSR_SOAK_SECONDS` (30 in `make test`, 300 in `make soak`). Zero errors, and the server's
//! resident memory grows less than 5% after warm-up. Requests, errors, p50/p99 latency and RSS
//! at start and end are printed (run with `--nocapture` to see them).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod chaos_support;
mod router_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chaos_support::*;
use router_support::{routes_yaml, RouterProc};

const CONCURRENCY: usize = 64;
/// Rounds of `CONCURRENCY` requests before memory is measured (allocator pools, KV caches of a
/// full batch, connection pools all reach their working size).
const WARM_UP_ROUNDS: usize = 1;

fn soak_duration() -> Duration {
    let secs = std::env::var("DSR_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

struct Report {
    requests: usize,
    errors: Vec<Ending>,
    latencies: Vec<Duration>,
}

/// `CONCURRENCY` clients, each streaming chats back to back until `until`.
async fn load(base: &str, until: Instant) -> Report {
    let client = client();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|w| {
            let (client, base) = (client.clone(), base.to_string());
            tokio::spawn(async move {
                let mut results = Vec::new();
                let mut n = 0usize;
                loop {
                    let body =
                        chat_body(&format!("Write a haiku about the number {w}-{n}."), 8, true);
                    results.push(stream_chat(&client, &base, &body, None).await);
                    n += 1;
                    if Instant::now() >= until {
                        return results;
                    }
                }
            })
        })
        .collect();
    let mut report = Report {
        requests: 0,
        errors: Vec::new(),
        latencies: Vec::new(),
    };
    for w in workers {
        for (ending, took) in w.await.unwrap() {
            report.requests += 1;
            match ending {
                Ending::Finished(_) => report.latencies.push(took),
                other => report.errors.push(other),
            }
        }
    }
    report.latencies.sort();
    report
}

async fn soak(label: &str, serve: &Serve, base: &str) {
    // Warm-up: rounds of one request per client.
    for _ in 0..WARM_UP_ROUNDS {
        let warm = load(base, Instant::now()).await;
        assert!(warm.errors.is_empty(), "{:?}", warm.errors);
    }
    let rss_start = serve.rss_kib();
    let report = load(base, Instant::now() + soak_duration()).await;
    let rss_end = serve.rss_kib();
    let growth = (rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0;
    println!(
        "soak {label}: {} s, {} requests, {} errors, p50 {:.0} ms, p99 {:.0} ms, server RSS {} KiB -> {} KiB ({growth:+.2}%)",
        soak_duration().as_secs(),
        report.requests,
        report.errors.len(),
        percentile_ms(&report.latencies, 0.50),
        percentile_ms(&report.latencies, 0.99),
        rss_start,
        rss_end,
    );
    assert!(
        report.errors.is_empty(),
        "{label}: {:?}",
        &report.errors[..report.errors.len().min(5)]
    );
    assert!(report.requests >= CONCURRENCY);
    assert!(growth < 5.0, "{label}: RSS grew {growth:.2}% after warm-up");
}

#[tokio::test]
async fn sixty_four_streams_direct_then_through_the_router() {
    let serve = Arc::new(Serve::start(&[]).await);
    soak("direct", &serve, &serve.url).await;
    let router = RouterProc::start(&routes_yaml(
        "",
        &[("stable", 100, vec![serve.url.clone()])],
    ))
    .await;
    soak("router", &serve, &router.url).await;
}
