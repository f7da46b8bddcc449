//! `reasoning_content` over real HTTP on 127.0.0.1: a scripted model writes an R1-style reply
//! (the generation prompt opened `<think>`, the closing tag arrives split over tokens), and the
//! non-streaming reply, the SSE stream and the WebSocket all carry the reasoning apart from the
//! content; with the parser off, everything is content.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{client, post_chat, sse_data};
use deepseek_engine::engine::{self, Detokenizer, EngineConfig, StreamDecoder};
use deepseek_engine::metrics::Metrics;
use deepseek_engine::model::{CausalLm, KvCache, ModelInfo, SeqInput};
use deepseek_engine::scheduler::SchedulerConfig;
use deepseek_protocol::validate::{Limits, PromptBuilder, PromptMessage, ReasoningFormat};
use deepseek_server::{self as api, AppState};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// The reply, one piece per token; `</think>` is cut over three tokens.
const SCRIPT: &[&str] = &[
    "Let", " me", " think", ".\n</", "thi", "nk>", "\n\n", "The", " answer", " is", " 4.",
];
const REASONING: &str = "Let me think.\n";
const CONTENT: &str = "The answer is 4.";
const EOS: u32 = 0;
/// The one prompt token; token i (1..=SCRIPT.len()) prints SCRIPT[i - 1].
const PROMPT: u32 = SCRIPT.len() as u32 + 1;

/// Greedy decoding walks PROMPT -> 1 -> 2 -> ... -> SCRIPT.len() -> EOS.
struct ScriptedModel(ModelInfo);

impl CausalLm for ScriptedModel {
    fn info(&self) -> &ModelInfo {
        &self.0
    }

    fn new_cache(&self) -> KvCache {
        KvCache::default()
    }

    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(batch
            .iter()
            .map(|s| {
                let last = *s.tokens.last().unwrap_or(&EOS);
                let next = match last {
                    PROMPT => 1,
                    t if (t as usize) < SCRIPT.len() => t + 1,
                    _ => EOS,
                };
                let mut logits = vec![0.0; self.0.vocab_size];
                logits[next as usize] = 10.0;
                logits
            })
            .collect())
    }
}

struct ScriptedText {
    reasoning: Option<ReasoningFormat>,
}

struct PieceStream;

impl StreamDecoder for PieceStream {
    fn push(&mut self, token: u32) -> Option<String> {
        SCRIPT
            .get((token as usize).checked_sub(1)?)
            .map(|s| s.to_string())
    }
}

impl Detokenizer for ScriptedText {
    fn stream(&self) -> Box<dyn StreamDecoder> {
        Box::new(PieceStream)
    }
}

impl PromptBuilder for ScriptedText {
    fn prompt_tokens(&self, _: &[PromptMessage]) -> Result<Vec<u32>, String> {
        Ok(vec![PROMPT])
    }

    fn reasoning(&self) -> Option<ReasoningFormat> {
        self.reasoning
    }
}

async fn server(reasoning: Option<ReasoningFormat>) -> String {
    let info = ModelInfo {
        architecture: "scripted".into(),
        vocab_size: SCRIPT.len() + 2,
        context_length: 256,
        eos_token_ids: vec![EOS],
        bos_token_id: None,
        kv_bytes_per_token: 16,
    };
    let metrics = Arc::new(Metrics::new("scripted", "r1").unwrap());
    let config = EngineConfig {
        scheduler: SchedulerConfig {
            max_batch_size: 4,
            max_step_tokens: 64,
            kv_capacity_tokens: 4096,
        },
        max_queue: 16,
        step_timeout: std::time::Duration::from_secs(120),
        fault: None,
    };
    let text = Arc::new(ScriptedText { reasoning });
    let engine = engine::spawn(
        Box::new(ScriptedModel(info)),
        text.clone(),
        metrics.clone(),
        config,
    )
    .unwrap();
    while !engine.is_ready() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let state = Arc::new(AppState {
        engine,
        prompt: text,
        limits: Limits {
            served_model_name: "scripted".into(),
            context_length: 256,
            max_stop_strings: 4,
        },
        revision: "r1".into(),
        created: 0,
        metrics,
        max_body_bytes: 64 * 1024,
        degrade: deepseek_server::degrade::Degradation::new(Default::default()),
        origins: Default::default(),
        privacy: Default::default(),
        bounds: Default::default(),
        live: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    format!("http://{addr}")
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
