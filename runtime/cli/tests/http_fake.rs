//! HTTP API tests over the deterministic fake model (in process, real HTTP on 127.0.0.1):
//! response shapes, SSE order, errors, the queue limit, the WebSocket protocol. The same
//! behaviours against the real model are in `http_model.rs`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::Duration;

use common::*;
use deepseek_engine::engine::testing::{next_token, FakeTokenizer};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn greedy_after(prompt_text: &str, n: usize) -> String {
    let mut last = *FakeTokenizer::encode(prompt_text).last().unwrap();
    let toks: Vec<u32> = (0..n)
        .map(|_| {
            last = next_token(last);
            last
        })
        .collect();
    FakeTokenizer::decode(&toks)
}

fn req(content: &str, max_tokens: usize) -> Value {
    json!({"model": FAKE_MODEL_NAME, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0})
}

#[tokio::test]
async fn a_chat_completion_has_the_openai_shape_and_exact_usage() {
    let base = fake_server(FakeServerConfig::default()).await;
    let v = chat(&base, &req("hello", 5)).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], FAKE_MODEL_NAME);
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        greedy_after(".hello", 5)
    );
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": 6, "completion_tokens": 5, "total_tokens": 11})
    );
}

#[tokio::test]
async fn a_stream_sends_role_deltas_finish_usage_and_done_in_order() {
    let base = fake_server(FakeServerConfig::default()).await;
    let mut body = req("hello", 5);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (content, finish, usage, payloads) = stream_chat(&base, &body).await;
    let first: Value = serde_json::from_str(&payloads[0]).unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content, greedy_after(".hello", 5));
    assert_eq!(finish, "length");
    assert_eq!(usage.unwrap()["completion_tokens"], 5);
    let usage_chunk: Value = serde_json::from_str(&payloads[payloads.len() - 2]).unwrap();
    assert_eq!(
        usage_chunk["choices"],
        json!([]),
        "usage comes in its own chunk after finish"
    );
}

#[tokio::test]
async fn a_stop_string_ends_the_reply_before_it() {
    let base = fake_server(FakeServerConfig::default()).await;
    let full = greedy_after(".hi", 12);
    let stop = &full[4..6];
    let mut body = req("hi", 12);
    body["stop"] = json!([stop]);
    let v = chat(&base, &body).await;
    assert_eq!(
        v["choices"][0]["message"]["content"],
        full[..full.find(stop).unwrap()]
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn every_bad_input_gets_an_openai_error_and_the_server_keeps_answering() {
    let cfg = FakeServerConfig::default();
    let limit = cfg.max_body_bytes;
    let base = fake_server(cfg).await;
    let failures = check_bad_inputs(&base, bad_inputs(FAKE_MODEL_NAME, limit, 256)).await;
    assert!(failures.is_empty(), "{failures:#?}");
    let v = chat(&base, &req("still here", 2)).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let page = metrics_page(&base).await;
    assert!(
        page.contains(r#"type="unknown_role""#),
        "errors are counted by type"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_openai_errors() {
    let base = fake_server(FakeServerConfig::default()).await;
    let resp = client()
        .get(format!("{base}/v1/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    let resp = client()
        .get(format!("{base}/v1/chat/completions"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let base = fake_server(FakeServerConfig {
        max_batch_size: 1,
        max_queue: 1,
        step_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let running = tokio::spawn({
        let base = base.clone();
        async move { post_chat(&base, &req("a", 200)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let queued = tokio::spawn({
        let base = base.clone();
        async move { post_chat(&base, &req("b", 2)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, headers, text) = post_chat(&base, &req("c", 2)).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(headers["retry-after"], "1");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(running.await.unwrap().0, 200);
    assert_eq!(queued.await.unwrap().0, 200);
}

#[tokio::test]
async fn models_health_readiness_and_metrics_answer() {
    let base = fake_server(FakeServerConfig::default()).await;
    let models: Value = client()
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], FAKE_MODEL_NAME);
    for path in ["/healthz", "/readyz"] {
        let resp = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    chat(&base, &req("count me", 3)).await;
    let page = metrics_page(&base).await;
    assert_eq!(metric(&page, "dsr_generation_tokens_total"), 3.0);
    assert!(page.contains(r#"model="fake-model""#) && page.contains(r#"revision="r1""#));
    for name in [
        "dsr_time_to_first_token_seconds_count",
        "dsr_request_duration_seconds_count",
    ] {
        assert_eq!(metric(&page, name), 1.0, "{name}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(base: &str) -> Ws {
    let url = format!("{}/ws/chat", base.replace("http://", "ws://"));
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn ws_send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn the_websocket_runs_several_requests_on_one_connection() {
    let base = fake_server(FakeServerConfig::default()).await;
    let mut ws = ws_connect(&base).await;
    let mut a = req("one", 4);
    a["id"] = json!("a");
    let mut b = req("two", 6);
    b["id"] = json!("b");
    ws_send(&mut ws, a).await;
    ws_send(&mut ws, b).await;
    let mut text = std::collections::HashMap::<String, String>::new();
    let mut done = std::collections::HashMap::new();
    while done.len() < 2 {
        let f = ws_next(&mut ws).await;
        let id = f["id"].as_str().unwrap().to_string();
        match f["type"].as_str().unwrap() {
            "delta" => text
                .entry(id)
                .or_default()
                .push_str(f["content"].as_str().unwrap()),
            "done" => {
                done.insert(id, f);
            }
            other => panic!("unexpected frame {other}: {f}"),
        }
    }
    assert_eq!(text["a"], greedy_after(".one", 4));
    assert_eq!(text["b"], greedy_after(".two", 6));
    assert_eq!(done["b"]["finish_reason"], "length");
    assert_eq!(done["b"]["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn the_websocket_cancels_a_request_and_reports_bad_frames() {
    let base = fake_server(FakeServerConfig {
        step_delay: Duration::from_millis(5),
        ..Default::default()
    })
    .await;
    let mut ws = ws_connect(&base).await;
    let mut long = req("long", 200);
    long["id"] = json!("long");
    ws_send(&mut ws, long).await;
    assert_eq!(ws_next(&mut ws).await["type"], "delta");
    ws_send(&mut ws, json!({"type": "cancel", "id": "long"})).await;
    loop {
        let f = ws_next(&mut ws).await;
        if f["type"] == "cancelled" {
            assert_eq!(f["id"], "long");
            break;
        }
        assert_eq!(f["type"], "delta");
    }
    ws_send(&mut ws, json!({"id": "bad", "messages": []})).await;
    let f = ws_next(&mut ws).await;
    assert_eq!(
        (f["type"].as_str(), f["id"].as_str()),
        (Some("error"), Some("bad"))
    );
    assert_eq!(f["error"]["code"], "empty_messages");
    ws.send(Message::Text("not json".into())).await.unwrap();
    assert_eq!(ws_next(&mut ws).await["error"]["code"], "invalid_json");
}
