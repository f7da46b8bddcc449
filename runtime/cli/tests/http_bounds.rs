//! Per-request bounds over real HTTP and WebSocket on 127.0.0.1 with the fake model: deadlines
//! (time to first token, total), the server-wide concurrency cap, SSE keep-alive comments while
//! a request waits in the queue, the per-socket in-flight cap, server-assigned WebSocket ids,
//! and an `error` frame for a WebSocket request whose engine stopped.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::time::{Duration, Instant};

use common::*;
use deepseek_server::bounds::Bounds;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn req(content: &str, max_tokens: usize) -> Value {
    json!({"model": FAKE_MODEL_NAME, "messages": [{"role": "user", "content": content}],
           "max_tokens": max_tokens, "temperature": 0})
}

/// One sequence at a time, 10 ms per step.
fn one_at_a_time(bounds: Bounds) -> FakeServerConfig {
    FakeServerConfig {
        max_batch_size: 1,
        step_delay: Duration::from_millis(10),
        bounds,
        ..Default::default()
    }
}

/// Keeps the engine busy for about `tokens` * 10 ms.
fn occupy(base: &str, tokens: usize) -> tokio::task::JoinHandle<(u16, String)> {
    let base = base.to_string();
    tokio::spawn(async move {
        let (status, _, text) = post_chat(&base, &req("busy", tokens)).await;
        (status, text)
    })
}

#[tokio::test]
async fn a_request_stuck_in_the_queue_gets_a_first_token_timeout_with_keep_alives_meanwhile() {
    let base = fake_server(one_at_a_time(Bounds {
        first_token_timeout: Duration::from_millis(800),
        sse_keepalive: Duration::from_millis(200),
        ..Bounds::default()
    }))
    .await;
    let busy = occupy(&base, 240);
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Before: no deadline, the request waited behind the long one for as long as it ran.
    let started = Instant::now();
    let (status, _, text) = post_chat(&base, &req("waiting", 4)).await;
    assert_eq!(status, 504, "{text}");
    let err: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(err["error"]["code"], "first_token_timeout");
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut body = req("waiting stream", 4);
    body["stream"] = json!(true);
    let (status, _, text) = post_chat(&base, &body).await;
    assert_eq!(status, 200);
    assert!(
        text.matches(": keep-alive").count() >= 2,
        "keep-alive comments while queued: {text}"
    );
    let payloads = sse_data(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert!(text.contains("first_token_timeout"), "{text}");
    let page = metrics_page(&base).await;
    assert!(metric(&page, "dsr_sse_keepalives_total") >= 2.0);
    busy.abort();
}

#[tokio::test]
async fn a_request_running_past_its_total_deadline_ends_with_an_error() {
    let base = fake_server(one_at_a_time(Bounds {
        request_timeout: Duration::from_millis(500),
        ..Bounds::default()
    }))
    .await;
    let started = Instant::now();
    let (status, _, text) = post_chat(&base, &req("long", 200)).await;
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The engine is free again: the timed-out sequence was dropped.
    let reply = chat(&base, &req("after", 3)).await;
    assert_eq!(reply["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn requests_beyond_the_concurrency_cap_get_a_429_at_once() {
    let base = fake_server(one_at_a_time(Bounds {
        max_concurrent_requests: 2,
        ..Bounds::default()
    }))
    .await;
    let a = occupy(&base, 100);
    let b = occupy(&base, 100);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let page = metrics_page(&base).await;
    assert_eq!(metric(&page, "dsr_in_flight_requests"), 2.0);
    let (status, headers, text) = post_chat(&base, &req("third", 2)).await;
    assert_eq!(status, 429, "{text}");
    assert_eq!(headers["retry-after"], "1");
    assert!(text.contains("too_many_requests"), "{text}");
    assert_eq!(a.await.unwrap().0, 200);
    assert_eq!(b.await.unwrap().0, 200);
    assert_eq!(
        chat(&base, &req("later", 2)).await["object"],
        "chat.completion"
    );
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

/// The next text frame, or None when the socket closed (or 10 s passed without a frame).
async fn ws_next(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .ok()??;
        match msg.ok()? {
            Message::Text(t) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Frames until `done` or `error` for any request; returns that final frame and the deltas' ids.
async fn ws_until_final(ws: &mut Ws) -> (Value, Vec<String>) {
    let mut ids = Vec::new();
    loop {
        let f = ws_next(ws)
            .await
            .expect("the socket ended without a final frame");
        match f["type"].as_str().unwrap() {
            "delta" => ids.push(f["id"].as_str().unwrap().to_string()),
            _ => return (f, ids),
        }
    }
}

#[tokio::test]
async fn an_openai_style_frame_without_an_id_is_served_under_an_echoed_server_id() {
    let base = fake_server(FakeServerConfig::default()).await;
    let mut ws = ws_connect(&base).await;
    // Before: "every frame needs a string `id`" error.
    ws_send(&mut ws, req("no id", 3)).await;
    let (done, delta_ids) = ws_until_final(&mut ws).await;
    assert_eq!(done["type"], "done", "{done}");
    let id = done["id"].as_str().unwrap();
    assert!(id.starts_with("ws-"), "{id}");
    assert!(!delta_ids.is_empty() && delta_ids.iter().all(|d| d == id));
}

#[tokio::test]
async fn one_websocket_cannot_run_more_than_its_in_flight_cap() {
    let base = fake_server(one_at_a_time(Bounds {
        ws_max_in_flight: 2,
        ..Bounds::default()
    }))
    .await;
    let mut ws = ws_connect(&base).await;
    for id in ["a", "b", "c"] {
        let mut r = req(id, 20);
        r["id"] = json!(id);
        ws_send(&mut ws, r).await;
    }
    let mut finals = std::collections::HashMap::new();
    while finals.len() < 3 {
        let f = ws_next(&mut ws).await.unwrap();
        if f["type"] != "delta" {
            finals.insert(f["id"].as_str().unwrap().to_string(), f);
        }
    }
    assert_eq!(finals["a"]["type"], "done");
    assert_eq!(finals["b"]["type"], "done");
    assert_eq!(finals["c"]["type"], "error");
    assert_eq!(finals["c"]["error"]["code"], "too_many_in_flight");
}

#[tokio::test]
async fn a_websocket_request_whose_engine_stops_gets_an_error_frame_and_health_tells() {
    let base = fake_server(FakeServerConfig {
        step_delay: Duration::from_millis(5),
        fault: Some("engine-panic-after:5".parse().unwrap()),
        ..Default::default()
    })
    .await;
    let mut ws = ws_connect(&base).await;
    let mut r = req("doomed", 100);
    r["id"] = json!("doomed");
    ws_send(&mut ws, r).await;
    // Before: the engine's channel closed and no frame came, the client waited forever.
    let (last, _) = ws_until_final(&mut ws).await;
    assert_eq!(last["type"], "error", "{last}");
    assert_eq!(last["id"], "doomed");
    assert_eq!(last["error"]["code"], "engine_stopped");
    let health = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let ready = client().get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    // A new request on the same socket is refused cleanly, before any work.
    ws_send(&mut ws, req("after", 3)).await;
    let f = ws_next(&mut ws).await.unwrap();
    assert_eq!(f["error"]["code"], "engine_unavailable", "{f}");
}

#[tokio::test]
async fn an_idle_websocket_is_pinged_then_closed() {
    let base = fake_server(FakeServerConfig {
        bounds: Bounds {
            ws_ping_interval: Duration::from_millis(100),
            ws_idle_timeout: Duration::from_millis(600),
            ..Bounds::default()
        },
        ..Default::default()
    })
    .await;
    let mut ws = ws_connect(&base).await;
    let started = Instant::now();
    let mut pings = 0;
    // Before: no ping and no idle timeout, an abandoned socket stayed open forever.
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("the idle socket was never closed");
        match msg {
            Some(Ok(Message::Ping(_))) => pings += 1,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
    let lived = started.elapsed();
    assert!(pings >= 2, "{pings} pings");
    assert!(
        lived >= Duration::from_millis(500) && lived < Duration::from_secs(3),
        "{lived:?}"
    );
}
