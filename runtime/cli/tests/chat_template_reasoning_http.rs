//! `reasoning_content` over real HTTP on 127.0.0.1: a scripted model writes an R1-style reply
//! (the generation prompt opened `<think>`, the closing tag arrives split over tokens), and the
//! non-streaming reply, the SSE stream and the WebSocket all carry the reasoning apart from the
//! content; with the parser off, everything is content.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;
#[path = "common/scripted.rs"]
mod scripted;

use std::time::Duration;

use common::{client, post_chat, sse_data};
use deepseek_protocol::validate::ReasoningFormat;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The reply, one piece per token; `</think>` is cut over three tokens.
const SCRIPT: &[&str] = &[
    "Let", " me", " think", ".\n</", "thi", "nk>", "\n\n", "The", " answer", " is", " 4.",
];
const REASONING: &str = "Let me think.\n";
const CONTENT: &str = "The answer is 4.";

async fn server(reasoning: Option<ReasoningFormat>) -> String {
    scripted::scripted_server(SCRIPT, reasoning).await.0
}

const R1: Option<ReasoningFormat> = Some(ReasoningFormat::Think {
    opened_by_prompt: true,
});

fn body(stream: bool) -> Value {
    json!({"model": "scripted", "messages": [{"role": "user", "content": "2+2?"}],
           "temperature": 0, "max_tokens": 50, "stream": stream})
}

#[tokio::test]
async fn a_reply_carries_reasoning_content_apart_from_content() {
    let base = server(R1).await;
    let (status, _, text) = post_chat(&base, &body(false)).await;
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let message = &v["choices"][0]["message"];
    assert_eq!(message["reasoning_content"], REASONING);
    assert_eq!(message["content"], CONTENT);
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn stream_deltas_carry_reasoning_and_content_separately_and_never_a_partial_tag() {
    let base = server(R1).await;
    let (status, _, text) = post_chat(&base, &body(true)).await;
    assert_eq!(status, 200, "{text}");
    let payloads = sse_data(&text);
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    let (mut reasoning, mut content) = (String::new(), String::new());
    for p in &payloads[..payloads.len() - 1] {
        let v: Value = serde_json::from_str(p).unwrap();
        let delta = &v["choices"][0]["delta"];
        if let Some(r) = delta["reasoning_content"].as_str() {
            assert!(
                !r.contains('<'),
                "a partial tag leaked into reasoning: {r:?}"
            );
            reasoning.push_str(r);
        }
        if let Some(c) = delta["content"].as_str() {
            assert!(!c.contains("think>"), "a tag leaked into content: {c:?}");
            content.push_str(c);
        }
    }
    assert_eq!(reasoning, REASONING);
    assert_eq!(content, CONTENT);
}

#[tokio::test]
async fn websocket_deltas_carry_reasoning_content() {
    let base = server(R1).await;
    let url = format!("{}/ws/chat", base.replace("http://", "ws://"));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut req = body(false);
    req["id"] = json!("a");
    ws.send(Message::Text(req.to_string().into()))
        .await
        .unwrap();
    let (mut reasoning, mut content) = (String::new(), String::new());
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        match v["type"].as_str().unwrap() {
            "delta" => {
                reasoning.push_str(v["reasoning_content"].as_str().unwrap_or(""));
                content.push_str(v["content"].as_str().unwrap());
            }
            "done" => break,
            other => panic!("unexpected frame {other}: {v}"),
        }
    }
    assert_eq!((reasoning.as_str(), content.as_str()), (REASONING, CONTENT));
}

#[tokio::test]
async fn with_the_parser_off_everything_is_content() {
    let base = server(None).await;
    let v: Value = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = &v["choices"][0]["message"];
    assert!(message.get("reasoning_content").is_none(), "{v}");
    assert_eq!(message["content"], SCRIPT.concat());
}
