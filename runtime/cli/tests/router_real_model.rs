//! The router in front of two real `serve` processes on the small SmolLM2 model: a streamed
//! chat through the router is the same token stream as a direct call, both revisions get
//! traffic, and the router's stats count it.
#![allow(clippy::unwrap_used)]

mod router_support;

use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;
use router_support::{client, routes_yaml, RouterProc};
use serde_json::{json, Value};

struct Serve {
    url: String,
    _child: tokio::process::Child,
}

async fn serve(revision: &str) -> Serve {
    let model = deepseek_test_support::model_path();
    let port = deepseek_test_support::free_port();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .args(["serve", "--host", "127.0.0.1", "--threads", "1"])
        .args(["--port", &port.to_string(), "--revision", revision])
        .args(["--served-model-name", "smollm2", "--context-length", "512"])
        .arg("--model")
        .arg(&model)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    deepseek_test_support::wait_for_http_ready(&format!("{url}/readyz"), Duration::from_secs(120))
        .await;
    Serve { url, _child: child }
}

/// Streams a greedy chat; returns the serving revision header, the content and the number of
/// network reads that carried content (more than one means it was not buffered).
async fn stream(base: &str) -> (String, String, usize) {
    let body = json!({
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 12,
        "temperature": 0,
        "stream": true,
    });
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let revision = resp
        .headers()
        .get("x-dsr-revision")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let (mut text, mut reads) = (String::new(), 0);
    let mut chunks = resp.bytes_stream();
    while let Some(c) = chunks.next().await {
        let c = c.unwrap();
        if std::str::from_utf8(&c).unwrap().contains("\"content\"") {
            reads += 1;
        }
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    let mut content = String::new();
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line != "[DONE]" {
            let v: Value = serde_json::from_str(line).unwrap();
            content.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    (revision, content, reads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_model_streams_through_the_router_unchanged_from_both_revisions() {
    let (stable, canary) = tokio::join!(serve("stable"), serve("canary"));
    let router = RouterProc::start(&routes_yaml(
        "",
        &[
            ("stable", 50, vec![stable.url.clone()]),
            ("canary", 50, vec![canary.url.clone()]),
        ],
    ))
    .await;
    let (_, direct, _) = stream(&stable.url).await;
    assert!(!direct.is_empty());
    let mut served = Vec::new();
    for _ in 0..2 {
        let (revision, content, reads) = stream(&router.url).await;
        assert_eq!(content, direct, "revision {revision} answered differently");
        assert!(reads > 1, "the stream arrived in {reads} read(s)");
        served.push(revision);
    }
    served.sort();
    assert_eq!(served, vec!["canary", "stable"]);
    for name in ["stable", "canary"] {
        let s = router.revision_stats(name, 1).await;
        assert_eq!(s["requests"], 1, "{s}");
        assert_eq!(s["errors"]["upstream_5xx"], 0, "{s}");
    }
}
