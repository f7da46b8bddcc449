//! The `deepseek-runtime serve` binary as Kubernetes runs it: flags from the environment,
//! readiness after warm-up, and SIGTERM letting an in-flight stream finish before exit 0.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/real.rs"]
mod real;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use real::*;
use serde_json::{json, Value};

use deepseek_test_support::free_port;

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_and_exits_zero() {
    let port = free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_deepseek-runtime"))
        .arg("serve")
        .env("DSR_MODEL", model_path())
        .env("DSR_PORT", port.to_string())
        .env("DSR_SERVED_MODEL_NAME", "from-env")
        .env("DSR_CONTEXT_LENGTH", "512")
        .env("DSR_SHUTDOWN_GRACE_SECS", "120")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(&base).await;
    let models: Value = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        models["data"][0]["id"], "from-env",
        "flags come from DSR_* variables"
    );

    let body = json!({"model": "from-env", "messages": [{"role": "user", "content": "Tell me a story."}],
                      "max_tokens": 16, "temperature": 0, "stream": true});
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let mut text = String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()).into_owned();

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    while let Some(chunk) = stream.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let payloads = sse_data(&text);
    assert_eq!(
        payloads.last().map(String::as_str),
        Some("[DONE]"),
        "{text}"
    );
    assert!(text.contains(r#""finish_reason":"length""#), "{text}");

    let exit = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code(), Some(0));
    assert!(
        client()
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
}
