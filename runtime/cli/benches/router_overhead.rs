//! Router overhead: the same small backend called directly and through `deepseek-runtime route`
//! (one worker thread, i.e. one router core), in one run. Prints p50/p99 latency at
//! concurrency 1 (the latency the router adds) and requests/s at high concurrency (what one
//! router core forwards). Not asserted; numbers go to the README.
//!
//! `cargo bench -p deepseek-runtime --bench router_overhead`
//! Env: BENCH_SECS (per phase, default 5), BENCH_CONCURRENCY (default 64),
//! DSR_ROUTER_BIN (router binary; the one cargo built by default).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;

const REPLY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}"#;
const REQUEST: &str =
    r#"{"model":"m","messages":[{"role":"user","content":"Say hello."}],"max_tokens":16}"#;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Phase {
    label: String,
    requests: usize,
    errors: usize,
    secs: f64,
    p50_us: f64,
    p99_us: f64,
}

async fn phase(label: &str, url: &str, concurrency: usize, length: Duration) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (url, stop) = (url.to_string(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let (mut lat, mut errors) = (Vec::new(), 0);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let ok = match http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(REQUEST)
                        .send()
                        .await
                    {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if ok {
                        lat.push(t.elapsed().as_secs_f64() * 1e6);
                    } else {
                        errors += 1;
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let (mut lat, mut errors) = (Vec::new(), 0);
    for w in workers {
        let (l, e) = w.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let at = |p: f64| {
        lat.get(((p * lat.len() as f64) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Phase {
        label: label.to_string(),
        requests: lat.len(),
        errors,
        secs,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}

fn print(p: &Phase) {
    println!(
        "| {:<34} | {:>9.0} | {:>9.0} | {:>10.0} | {:>6} |",
        p.label,
        p.p50_us,
        p.p99_us,
        p.requests as f64 / p.secs,
        p.errors
    );
}

fn main() {
    // `cargo test --all-targets` runs this without `--bench`: a short smoke run then.
    let measuring = std::env::args().any(|a| a == "--bench");
    let secs = env_or("BENCH_SECS", 5);
    let length = if measuring {
        Duration::from_secs(secs)
    } else {
        Duration::from_millis(200)
    };
    let concurrency = env_or("BENCH_CONCURRENCY", 64) as usize;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let app = Router::new().route(
            "/v1/chat/completions",
            post(|| async { ([("content-type", "application/json")], REPLY) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let backend = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("routes.yaml");
        let routes =
            format!("revisions:\n  - name: r1\n    weight: 100\n    backends: [\"{backend}\"]\n");
        std::fs::write(&config, routes).unwrap();
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let bin = std::env::var("DSR_ROUTER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_deepseek-runtime").to_string());
        let _router = tokio::process::Command::new(bin)
            .args([
                "route",
                "--threads",
                "1",
                "--listen",
                &addr.to_string(),
                "--config",
            ])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let routed = format!("http://{addr}");
        while reqwest::get(format!("{routed}/readyz")).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (direct_url, routed_url) = (
            format!("{backend}/v1/chat/completions"),
            format!("{routed}/v1/chat/completions"),
        );
        println!("router overhead: {length:?} per phase, router on 1 worker thread");
        println!(
            "| {:<34} | {:>9} | {:>9} | {:>10} | {:>6} |",
            "phase", "p50 us", "p99 us", "req/s", "errors"
        );
        println!(
            "|{:-<36}|{:-<11}|{:-<11}|{:-<12}|{:-<8}|",
            "", "", "", "", ""
        );
        let mut results = Vec::new();
        for (c, label) in [(1, "concurrency 1"), (concurrency, "concurrency N")] {
            let label = label.replace('N', &concurrency.to_string());
            // Warm both paths' connection pools before measuring.
            phase("warm", &direct_url, c, length / 5).await;
            phase("warm", &routed_url, c, length / 5).await;
            let d = phase(&format!("direct, {label}"), &direct_url, c, length).await;
            let r = phase(&format!("via router, {label}"), &routed_url, c, length).await;
            print(&d);
            print(&r);
            results.push((d, r));
        }
        let (d1, r1) = &results[0];
        let (dn, rn) = &results[1];
        println!(
            "added latency at concurrency 1: p50 {:+.0} us, p99 {:+.0} us; \
             one router core forwards {:.0} req/s (direct {:.0} req/s)",
            r1.p50_us - d1.p50_us,
            r1.p99_us - d1.p99_us,
            rn.requests as f64 / rn.secs,
            dn.requests as f64 / dn.secs,
        );
    });
}
