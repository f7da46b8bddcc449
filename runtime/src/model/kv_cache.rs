//! Per-sequence KV cache (to be written by the model work).

/// One sequence's cached keys and values, layer by layer.
#[derive(Debug, Default)]
pub struct KvCache {}

impl KvCache {
    /// Number of positions held.
    pub fn len(&self) -> usize {
        0
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
