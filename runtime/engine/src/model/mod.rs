//! What a forward pass consumes and owns: the batch of sequences, each sequence's KV cache, and the
//! `CausalLm` trait every architecture implements. The engine depends only on this module's
//! types, never on a concrete architecture.

mod batch;
pub mod decoder;
pub mod deepseek2;
pub mod device;
pub mod kv_cache;
pub mod linear;
pub mod mla;
pub mod moe;
pub mod ops;
pub mod quantize;
pub mod rope_scaling;

pub use decoder::{Decoder, DecoderConfig, DecoderWeights, LayerWeights};
pub use deepseek2::Deepseek2;
pub use kv_cache::KvCache;
pub use linear::Linear;
pub use ops::RopeStyle;

/// Static facts about a loaded model that the engine, the scheduler and the API need.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// GGUF `general.architecture` or config.json `model_type`: "llama", "qwen2", "deepseek2".
    pub architecture: String,
    pub vocab_size: usize,
    /// Maximum positions (prompt + generated) one sequence may hold.
    pub context_length: usize,
    /// Tokens that end generation (from the model metadata).
    pub eos_token_ids: Vec<u32>,
    pub bos_token_id: Option<u32>,
    /// KV cache bytes one token of one sequence costs, for the scheduler's memory budget.
    pub kv_bytes_per_token: usize,
}

/// One sequence's share of a batched forward pass.
pub struct SeqInput<'a> {
    /// New tokens to feed: a prompt chunk at prefill, one token at decode. Never empty.
    pub tokens: &'a [u32],
    /// The sequence's own cache; `cache.len()` is the position of `tokens[0]`. The forward pass
    /// appends the new tokens' keys and values to it.
    pub cache: &'a mut KvCache,
}

/// A decoder-only language model that runs many sequences of different lengths together.
pub trait CausalLm: Send {
    fn info(&self) -> &ModelInfo;

    /// An empty cache for a new sequence.
    fn new_cache(&self) -> KvCache;

    /// Runs every sequence of the batch in one pass (linear layers see all new tokens of all
    /// sequences as one matrix; attention runs per sequence over its own cache).
    /// Returns the logits of each sequence's last new token: `[batch.len()][vocab_size]`.
    fn forward(&self, batch: &mut [SeqInput<'_>]) -> anyhow::Result<Vec<Vec<f32>>>;
}
