//! Chaos: the real `serve` binary with a fault injected into its engine mid-batch (the hidden,
//! test-only `--fault-injection`): the engine thread panics, a kernel pool worker panics, or a
//! step never ends. Every in-flight stream must end with an error frame (never hang, never be
//! cut silently), `/readyz` must be 503 within a second, and `/healthz` must fail so Kubernetes
//! restarts the pod. Before the fix: `/readyz` stayed 200 and `/healthz` 200 after an engine
//! panic; a worker panic left the pool's `active` count up and every request hung forever; a
//! stuck step hung every request with health still green.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod chaos_support;

use std::time::{Duration, Instant};

use chaos_support::*;

/// Streams in flight when the fault strikes.
const STREAMS: usize = 4;

async fn in_flight_requests_fail_and_health_tells(fault: &str, extra: &[&str], code: &str) {
    let mut args = vec!["--fault-injection", fault];
    args.extend_from_slice(extra);
    let serve = Serve::start(&args).await;
    assert_eq!(serve.status("/healthz").await, 200);
    let client = client();
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let (client, url) = (client.clone(), serve.url.clone());
        let body = chat_body(&format!("Tell me story number {i}."), 200, true);
        streams.push(tokio::spawn(async move {
            let ending = tokio::time::timeout(
                Duration::from_secs(60),
                stream_chat(&client, &url, &body, None),
            )
            .await
            .expect("the stream hung: no error within 60 s")
            .0;
            (ending, Instant::now())
        }));
    }
    let mut last_end = None::<Instant>;
    for s in streams {
        let (ending, at) = s.await.unwrap();
        assert_eq!(ending, Ending::Error(code.into()), "fault {fault}");
        last_end = Some(last_end.map_or(at, |l: Instant| l.max(at)));
    }
    let ready = serve.status("/readyz").await;
    let within = last_end.unwrap().elapsed();
    assert_eq!(ready, 503, "fault {fault}: /readyz after the engine failed");
    assert!(within < Duration::from_secs(1), "{within:?}");
    assert_eq!(
        serve.status("/healthz").await,
        503,
        "fault {fault}: liveness"
    );
    // New work is refused at once, before any template rendering.
    let (ending, took) = stream_chat(&client, &serve.url, &chat_body("hi", 4, true), None).await;
    assert_eq!(ending, Ending::Refused(503, "engine_unavailable".into()));
    assert!(took < Duration::from_secs(1));
    println!(
        "fault {fault}: {STREAMS} streams ended with {code}; /readyz 503 {within:?} after the last"
    );
}

#[tokio::test]
async fn an_engine_panic_mid_batch() {
    in_flight_requests_fail_and_health_tells("engine-panic-after:12", &[], "engine_stopped").await;
}

#[tokio::test]
async fn a_kernel_worker_panic_mid_batch() {
    in_flight_requests_fail_and_health_tells("worker-panic-after:12", &[], "engine_stopped").await;
}

#[tokio::test]
async fn a_step_stuck_past_the_watchdog() {
    in_flight_requests_fail_and_health_tells(
        "stuck-step-after:12",
        &["--engine-step-timeout-secs", "1"],
        "engine_unavailable",
    )
    .await;
}
