//! Faults: a dead backend is retried on its revision's other backend, a revision with no live
//! backend gets an OpenAI-shaped 502, a stalled backend a 504, and each counts in its class.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::time::{Duration, Instant};

use router_support::{backend, client, dead_url, fetch, routes_yaml, RouterProc};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_is_retried_on_the_revisions_other_backend() {
    let live = backend("live").await;
    let router = RouterProc::start(&routes_yaml(
        "",
        &[("r1", 100, vec![dead_url(), live.url.clone()])],
    ))
    .await;
    let http = client();
    for _ in 0..20 {
        let (status, body) = fetch(&http, &router.url, "/who").await;
        assert_eq!((status, body.as_str()), (200, "live"));
    }
    let s = router.revision_stats("r1", 20).await;
    assert_eq!(s["requests"], 20);
    assert_eq!(s["errors"]["connect"], 0, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_with_no_live_backend_answers_an_openai_shaped_502() {
    let router = RouterProc::start(&routes_yaml(
        "",
        &[("gone", 100, vec![dead_url(), dead_url()])],
    ))
    .await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", router.url))
        .json(&serde_json::json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert_eq!(body["error"]["code"], "upstream_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("'gone'") && message.contains("2 tried"),
        "{message}"
    );
    let s = router.revision_stats("gone", 1).await;
    assert_eq!(s["requests"], 1);
    assert_eq!(s["errors"]["connect"], 1, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_backend_hits_the_timeout_and_counts_as_timeout() {
    let b = backend("slow").await;
    let router = RouterProc::start(&routes_yaml(
        "timeoutSeconds: 1",
        &[("slow", 100, vec![b.url.clone()])],
    ))
    .await;
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/stall", router.url))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 504);
    assert!(
        waited >= Duration::from_millis(950) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    let s = router.revision_stats("slow", 1).await;
    assert_eq!(s["errors"]["timeout"], 1, "{s}");
    assert_eq!(s["errors"]["upstream_5xx"], 0, "{s}");
    assert_eq!(s["latency_seconds"]["cumulative_counts"][4], 0, "{s}");
    assert_eq!(s["latency_seconds"]["cumulative_counts"][5], 1, "{s}");
}

#[tokio::test]
async fn route_refuses_to_start_with_an_invalid_route_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.yaml");
    std::fs::write(
        &path,
        routes_yaml(
            "",
            &[("a", 10, vec![dead_url()]), ("b", 80, vec![dead_url()])],
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["route", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the weights sum to 90"), "{stderr}");
}
