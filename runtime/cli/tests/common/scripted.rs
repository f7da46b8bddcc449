//! A scripted model served over real HTTP: greedy decoding walks the prompt token to tokens
//! 1..=N, token i printing `script[i - 1]`, then EOS. For tests that need an exact reply text
//! (reasoning split over tokens, personal data to redact) without a real model.

use std::sync::Arc;
use std::time::Duration;

use deepseek_engine::engine::{self, Detokenizer, EngineConfig, StreamDecoder};
use deepseek_engine::metrics::Metrics;
use deepseek_engine::model::{CausalLm, KvCache, ModelInfo, SeqInput};
use deepseek_engine::scheduler::SchedulerConfig;
use deepseek_protocol::validate::{Limits, PromptBuilder, PromptMessage, ReasoningFormat};
use deepseek_server::{self as api, AppState};

pub const SCRIPTED_MODEL: &str = "scripted";
const EOS: u32 = 0;

struct ScriptedModel {
    info: ModelInfo,
    script_len: u32,
}

impl ScriptedModel {
    /// The one prompt token (after the script's tokens).
    fn prompt(script_len: u32) -> u32 {
        script_len + 1
    }
}

impl CausalLm for ScriptedModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_cache(&self) -> KvCache {
        KvCache::default()
    }

    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let prompt = Self::prompt(self.script_len);
        Ok(batch
            .iter()
            .map(|s| {
                let next = match *s.tokens.last().unwrap_or(&EOS) {
                    t if t == prompt => 1,
                    t if t < self.script_len => t + 1,
                    _ => EOS,
                };
                let mut logits = vec![0.0; self.info.vocab_size];
                logits[next as usize] = 10.0;
                logits
            })
            .collect())
    }
}

struct ScriptedText {
    script: &'static [&'static str],
    reasoning: Option<ReasoningFormat>,
}

struct PieceStream(&'static [&'static str]);

impl StreamDecoder for PieceStream {
    fn push(&mut self, token: u32) -> Option<String> {
        self.0
            .get((token as usize).checked_sub(1)?)
            .map(|s| s.to_string())
    }
}

impl Detokenizer for ScriptedText {
    fn stream(&self) -> Box<dyn StreamDecoder> {
        Box::new(PieceStream(self.script))
    }
}

impl PromptBuilder for ScriptedText {
    fn prompt_tokens(&self, _: &[PromptMessage]) -> Result<Vec<u32>, String> {
        Ok(vec![ScriptedModel::prompt(self.script.len() as u32)])
    }

    fn reasoning(&self) -> Option<ReasoningFormat> {
        self.reasoning
    }
}

/// Serves the scripted model on 127.0.0.1 (engine warmed up); returns its base URL and state.
pub async fn scripted_server(
    script: &'static [&'static str],
    reasoning: Option<ReasoningFormat>,
) -> (String, Arc<AppState>) {
    let info = ModelInfo {
        architecture: SCRIPTED_MODEL.into(),
        vocab_size: script.len() + 2,
        context_length: 256,
        eos_token_ids: vec![EOS],
        bos_token_id: None,
        kv_bytes_per_token: 16,
    };
    let metrics = Arc::new(Metrics::new(SCRIPTED_MODEL, "r1").unwrap());
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
    let text = Arc::new(ScriptedText { script, reasoning });
    let model = ScriptedModel {
        info,
        script_len: script.len() as u32,
    };
    let engine = engine::spawn(Box::new(model), text.clone(), metrics.clone(), config).unwrap();
    while !engine.is_ready() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let state = Arc::new(AppState {
        engine,
        prompt: text,
        limits: Limits {
            served_model_name: SCRIPTED_MODEL.into(),
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
    let app = api::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), state)
}
