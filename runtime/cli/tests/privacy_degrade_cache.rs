//! The degradation cache keeps answers redacted: a scripted model answers with a phone number,
//! an email and a card number over real HTTP (JSON and SSE); the answer the client got is the
//! model's own (the model's output is not altered), but what the cache would replay under
//! overload holds only placeholders.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{chat, stream_chat};
use deepseek_engine::engine::{self, Detokenizer, EngineConfig, StreamDecoder};
use deepseek_engine::metrics::Metrics;
use deepseek_engine::model::{CausalLm, KvCache, ModelInfo, SeqInput};
use deepseek_engine::scheduler::SchedulerConfig;
use deepseek_protocol::validate::{Limits, PromptBuilder, PromptMessage};
use deepseek_server::degrade::{request_key, Admission, Degradation};
use deepseek_server::{self as api, AppState};
use serde_json::json;

/// The reply, one piece per token.
const SCRIPT: &[&str] = &[
    "Call ",
    "138 1234 5678",
    " or mail ",
    "li.lei@example.com",
    ", card 4111 1111 1111 1111.",
];
const ANSWER: &str = "Call 138 1234 5678 or mail li.lei@example.com, card 4111 1111 1111 1111.";
const REDACTED: &str = "Call [PHONE] or mail [EMAIL], card [CARD].";
const EOS: u32 = 0;
const PROMPT: u32 = SCRIPT.len() as u32 + 1;
const MODEL: &str = "scripted";

/// Greedy decoding walks PROMPT -> 1 -> ... -> SCRIPT.len() -> EOS.
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
                let next = match *s.tokens.last().unwrap_or(&EOS) {
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

struct ScriptedText;
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
}

async fn server() -> (String, Arc<AppState>) {
    let info = ModelInfo {
        architecture: "scripted".into(),
        vocab_size: SCRIPT.len() + 2,
        context_length: 256,
        eos_token_ids: vec![EOS],
        bos_token_id: None,
        kv_bytes_per_token: 16,
    };
    let metrics = Arc::new(Metrics::new(MODEL, "r1").unwrap());
    let config = EngineConfig {
        scheduler: SchedulerConfig {
            max_batch_size: 4,
            max_step_tokens: 64,
            kv_capacity_tokens: 4096,
        },
        max_queue: 16,
        step_timeout: Duration::from_secs(120),
        fault: None,
    };
    let text = Arc::new(ScriptedText);
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
            served_model_name: MODEL.into(),
            context_length: 256,
            max_stop_strings: 4,
        },
        revision: "r1".into(),
        created: 0,
        metrics,
        max_body_bytes: 64 * 1024,
        degrade: Degradation::new(Default::default()),
        origins: Default::default(),
        privacy: Default::default(),
        live: deepseek_server::bounds::Live::new(&Default::default()),
        bounds: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}

/// What the cache would replay for the request `body` if the server were overloaded (the key
/// is the exact request, less how the reply is delivered).
fn cached(state: &AppState, body: &serde_json::Value) -> String {
    let req: deepseek_protocol::ChatCompletionRequest =
        serde_json::from_value(body.clone()).unwrap();
    match state.degrade.admit(usize::MAX, &request_key(&req), false) {
        Admission::Cached(answer) => answer.content,
        other => panic!("nothing cached for {body}: {other:?}"),
    }
}

#[tokio::test]
async fn answers_reach_the_client_whole_but_the_cache_keeps_them_redacted() {
    let (base, state) = server().await;
    let body = |content: &str, stream: bool| json!({"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": stream});
    let v = chat(&base, &body("plain", false)).await;
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);
    assert_eq!(cached(&state, &body("plain", false)), REDACTED);

    let (content, _, _, _) = stream_chat(&base, &body("streamed", true)).await;
    assert_eq!(content, ANSWER);
    assert_eq!(cached(&state, &body("streamed", true)), REDACTED);
}
