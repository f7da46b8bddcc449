//! Degradation under overload, over real HTTP on 127.0.0.1 with the fake model: with the queue
//! past its threshold a repeated request (the exact conversation and parameters) is answered
//! from the cache (marked and counted), anything else gets 429 with Retry-After at once, and the
//! server generates again when load drops. Only complete (`stop`) answers are replayed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use deepseek_server::degrade::DegradeConfig;
use serde_json::{json, Value};

fn req(content: &str, max_tokens: usize) -> Value {
    json!({"model": FAKE_MODEL_NAME, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0})
}

/// A request the fake model ends with `finish_reason: stop`: its stop string is the third
/// character the model writes for this prompt (learnt from a probe).
async fn stopping_req(base: &str, content: &str) -> Value {
    let probe = chat(base, &req(content, 3)).await;
    let text = probe["choices"][0]["message"]["content"].as_str().unwrap();
    let stop: String = text.chars().nth(2).unwrap().to_string();
    let mut r = req(content, 50);
    r["stop"] = json!([stop]);
    r
}

/// One sequence at a time, 10 ms per step: a 200-token request keeps the engine busy ~2 s.
async fn busy_server(streaming: bool) -> String {
    fake_server(FakeServerConfig {
        max_batch_size: 1,
        max_queue: 16,
        step_delay: Duration::from_millis(10),
        degrade: DegradeConfig {
            queue_threshold: 1,
            streaming,
            ..DegradeConfig::default()
        },
        ..Default::default()
    })
    .await
}

/// Starts one long running request and one waiting behind it; returns once one is queued.
async fn saturate(base: &str) -> Vec<tokio::task::JoinHandle<u16>> {
    let mut load = Vec::new();
    for name in ["long-a", "long-b"] {
        let base = base.to_string();
        load.push(tokio::spawn(async move {
            post_chat(&base, &req(name, 200)).await.0
        }));
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    load
}

/// `dsr_degraded_responses_total` for one outcome.
fn degraded(page: &str, outcome: &str) -> f64 {
    let label = format!(r#"outcome="{outcome}""#);
    page.lines()
        .find(|l| l.starts_with("dsr_degraded_responses_total{") && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn an_overloaded_server_answers_repeats_from_cache_and_sheds_new_prompts() {
    let base = busy_server(false).await;
    let asked = stopping_req(&base, "What is Rust?").await;
    let first = chat(&base, &asked).await;
    assert_eq!(first["choices"][0]["finish_reason"], "stop");
    let truncated = req("Cut me short", 4);
    assert_eq!(
        chat(&base, &truncated).await["choices"][0]["finish_reason"],
        "length"
    );
    let load = saturate(&base).await;

    let (status, headers, text) = post_chat(&base, &asked).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-dsr-degraded"], "cached");
    let cached: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        cached["choices"][0]["message"]["content"],
        first["choices"][0]["message"]["content"]
    );
    assert_eq!(cached["choices"][0]["finish_reason"], "stop");
    assert_eq!(cached["usage"], first["usage"]);

    // Before the fix each of these got the cached answer: the key lower-cased and collapsed
    // whitespace and ignored max_tokens, and truncated answers were stored.
    let mut respelt = asked.clone();
    respelt["messages"][0]["content"] = json!("  what is   RUST? ");
    let mut shorter = asked.clone();
    shorter["max_tokens"] = json!(1);
    for (name, body) in [
        ("respelt", respelt),
        ("shorter", shorter),
        ("truncated", truncated),
    ] {
        let (status, _, text) = post_chat(&base, &body).await;
        assert_eq!(status, 429, "{name}: {text}");
    }

    let (status, headers, text) = post_chat(&base, &req("a question never asked", 4)).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(headers["retry-after"], "1");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "overloaded");
    assert_eq!(err["error"]["type"], "rate_limit_error");

    let mut stream = asked.clone();
    stream["stream"] = json!(true);
    let (status, _, _) = post_chat(&base, &stream).await;
    assert_eq!(
        status, 429,
        "streaming is not served from the cache by default"
    );

    let page = metrics_page(&base).await;
    assert_eq!(degraded(&page, "cached"), 1.0);
    assert_eq!(degraded(&page, "shed"), 5.0);

    for job in load {
        assert_eq!(job.await.unwrap(), 200, "the load itself is never dropped");
    }
    let (status, headers, text) = post_chat(&base, &req("a question never asked", 4)).await;
    assert_eq!(status, 200, "recovered once the queue drained: {text}");
    assert!(headers.get("x-dsr-degraded").is_none());
}

#[tokio::test]
async fn streaming_requests_get_cached_answers_when_enabled() {
    let base = busy_server(true).await;
    let mut body = stopping_req(&base, "Tell me a joke").await;
    body["stream"] = json!(true);
    let (content, finish, _, _) = stream_chat(&base, &body).await;
    let load = saturate(&base).await;

    let (status, headers, text) = post_chat(&base, &body).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["x-dsr-degraded"], "cached");
    let (again, again_finish, _, _) = stream_chat_body(&text);
    assert_eq!((again, again_finish), (content, finish));
    for job in load {
        assert_eq!(job.await.unwrap(), 200);
    }
}
