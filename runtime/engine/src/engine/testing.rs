//! Test support: a deterministic fake `CausalLm`, its tokenizer and prompt builder, so the
//! engine, scheduler and HTTP layers can be tested in milliseconds without model files. Not used
//! by the server binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Detokenizer, StreamDecoder};
use crate::model::{CausalLm, KvCache, ModelInfo, SeqInput};
use deepseek_protocol::validate::{PromptBuilder, PromptMessage};

/// Token `i` is the character `ALPHABET[i]`; token 0 is EOS and has no text.
pub const ALPHABET: &[u8] = b"\0abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .";
pub const EOS: u32 = 0;

/// Next-token rule of the fake model: greedy decoding follows `t -> next_token(t)`.
pub fn next_token(last: u32) -> u32 {
    // Never EOS unless `eos_after` says so, so generation length is controlled by the test.
    1 + (last * 5 + 3) % (ALPHABET.len() as u32 - 1)
}

/// Deterministic fake model. Logits depend only on the last fed token (so batching cannot
/// change them); a clear peak at `next_token(last)` and a spread elsewhere for sampling.
pub struct FakeModel {
    info: ModelInfo,
    /// Batch sizes of every forward call, for assertions about batching.
    pub batches: Arc<Mutex<Vec<usize>>>,
    /// Sleep per forward call, to keep sequences running while a test acts.
    pub step_delay: Duration,
    /// If set, greedy decoding emits EOS when this token is the last one.
    pub eos_after: Option<u32>,
}

impl FakeModel {
    pub fn new(context_length: usize) -> Self {
        Self {
            info: ModelInfo {
                architecture: "fake".into(),
                vocab_size: ALPHABET.len(),
                context_length,
                eos_token_ids: vec![EOS],
                bos_token_id: Some(1),
                kv_bytes_per_token: 16,
            },
            batches: Arc::new(Mutex::new(Vec::new())),
            step_delay: Duration::ZERO,
            eos_after: None,
        }
    }

    fn logits_after(&self, last: u32) -> Vec<f32> {
        let mut logits: Vec<f32> = (0..self.info.vocab_size as u32)
            .map(|j| ((j * 7 + last * 13) % 17) as f32 * 0.15)
            .collect();
        logits[EOS as usize] = -10.0;
        let peak = if self.eos_after == Some(last) {
            EOS
        } else {
            next_token(last)
        };
        logits[peak as usize] = 4.0;
        logits
    }
}

impl CausalLm for FakeModel {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn new_cache(&self) -> KvCache {
        KvCache::default()
    }

    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>> {
        if let Ok(mut b) = self.batches.lock() {
            b.push(batch.len());
        }
        if !self.step_delay.is_zero() {
            std::thread::sleep(self.step_delay);
        }
        batch
            .iter()
            .map(|s| {
                let last = *s
                    .tokens
                    .last()
                    .ok_or_else(|| anyhow::anyhow!("empty input"))?;
                Ok(self.logits_after(last))
            })
            .collect()
    }
}

/// Character-level tokenizer over `ALPHABET` (unknown characters are skipped).
pub struct FakeTokenizer;

impl FakeTokenizer {
    pub fn encode(text: &str) -> Vec<u32> {
        text.bytes()
            .filter_map(|b| ALPHABET.iter().position(|&a| a == b && b != 0))
            .map(|p| p as u32)
            .collect()
    }

    pub fn decode(tokens: &[u32]) -> String {
        tokens
            .iter()
            .filter(|&&t| t != EOS)
            .filter_map(|&t| ALPHABET.get(t as usize).map(|&b| b as char))
            .collect()
    }
}

struct FakeStream;

impl StreamDecoder for FakeStream {
    fn push(&mut self, token: u32) -> Option<String> {
        let s = FakeTokenizer::decode(&[token]);
        (!s.is_empty()).then_some(s)
    }
}

impl Detokenizer for FakeTokenizer {
    fn stream(&self) -> Box<dyn StreamDecoder> {
        Box::new(FakeStream)
    }
}

/// "Template": each message's text after a `.` separator, so prompts are easy to count.
impl PromptBuilder for FakeTokenizer {
    fn prompt_tokens(&self, messages: &[PromptMessage]) -> Result<Vec<u32>, String> {
        let text: String = messages.iter().map(|m| format!(".{}", m.content)).collect();
        Ok(Self::encode(&text))
    }
}
