//! How a batch of sequences becomes one row-major matrix for a forward pass: each sequence's
//! new tokens are consecutive rows, each row keeps its own absolute position. Shared by every
//! architecture, with the checks that keep a bad batch from reaching the arithmetic.

use std::ops::Range;

use anyhow::bail;

use super::{KvCache, SeqInput};

/// Each sequence's rows in the batch matrix, and every row's absolute position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchLayout {
    pub ranges: Vec<Range<usize>>,
    pub positions: Vec<usize>,
}

/// The layout of `batch`, after checking that every sequence has new tokens, carries a cache
/// the model made (`cache_fits`), stays within `max_positions` and only uses ids below
/// `vocab_size`.
pub fn layout(
    batch: &[SeqInput<'_>],
    cache_fits: impl Fn(&KvCache) -> bool,
    max_positions: usize,
    vocab_size: usize,
) -> anyhow::Result<BatchLayout> {
    let mut ranges = Vec::with_capacity(batch.len());
    let mut positions = Vec::new();
    for (i, seq) in batch.iter().enumerate() {
        if seq.tokens.is_empty() {
            bail!("sequence {i} of the batch has no new tokens");
        }
        if !cache_fits(seq.cache) {
            bail!("sequence {i} carries a KV cache made for a different model");
        }
        let start = seq.cache.len();
        let end = start + seq.tokens.len();
        if end > max_positions {
            bail!("sequence {i} would reach {end} positions, beyond the context length {max_positions}");
        }
        if let Some(&bad) = seq.tokens.iter().find(|&&t| t as usize >= vocab_size) {
            bail!("token id {bad} is outside the vocabulary");
        }
        let row0 = positions.len();
        positions.extend(start..end);
        ranges.push(row0..positions.len());
    }
    Ok(BatchLayout { ranges, positions })
}
