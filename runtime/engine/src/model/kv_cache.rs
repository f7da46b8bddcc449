//! Per-sequence KV cache: for every layer, the keys and values of every position the sequence
//! has seen, stored row-major as `[position][kv_head][head_dim]` f32.
//!
//! Latent-attention models (deepseek2) store one compressed row per position instead: their
//! cache is made with `KvCache::latent`, holds `[position][latent_dim]` in `keys` and no values.
//!
//! Growth is amortised: the buffers reserve geometrically (at least doubling) and new rows are
//! written in place behind the old ones, so a decode step copies only its own new row, never
//! the whole history.

/// One layer's keys and values; both `[len][kv_dim]` f32, row-major.
#[derive(Debug, Default, Clone)]
pub struct LayerKv {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

/// One sequence's cached keys and values, layer by layer.
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    /// Floats per position per layer for keys (and again for values): `kv_heads * head_dim`.
    kv_dim: usize,
    /// Floats per position per layer for values: `kv_dim`, or 0 for a latent cache.
    value_dim: usize,
    /// Positions committed by completed forward passes.
    len: usize,
}

impl KvCache {
    /// An empty cache for a model with `n_layers` layers of `kv_dim` floats per position.
    pub fn new(n_layers: usize, kv_dim: usize) -> Self {
        Self {
            layers: vec![LayerKv::default(); n_layers],
            kv_dim,
            value_dim: kv_dim,
            len: 0,
        }
    }

    /// An empty cache that keeps one `latent_dim`-float row per position and layer (in `keys`;
    /// `values` stay empty): the compressed KV of multi-head latent attention.
    pub fn latent(n_layers: usize, latent_dim: usize) -> Self {
        Self {
            layers: vec![LayerKv::default(); n_layers],
            kv_dim: latent_dim,
            value_dim: 0,
            len: 0,
        }
    }

    /// Number of positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes currently allocated (capacity, not just the used part), for memory accounting.
    pub fn allocated_bytes(&self) -> usize {
        self.layers
            .iter()
            .map(|l| (l.keys.capacity() + l.values.capacity()) * std::mem::size_of::<f32>())
            .sum()
    }

    /// Bytes used by the positions held.
    pub fn used_bytes(&self) -> usize {
        self.len * self.layers.len() * (self.kv_dim + self.value_dim) * std::mem::size_of::<f32>()
    }

    /// Makes room for `additional` more positions in every layer without further reallocation.
    /// `Vec::reserve` grows at least geometrically, so repeated one-token steps stay amortised O(1).
    pub fn reserve(&mut self, additional: usize) {
        for layer in &mut self.layers {
            layer.keys.reserve(additional * self.kv_dim);
            layer.values.reserve(additional * self.value_dim);
        }
    }

    /// Drops every position after `len` (e.g. to re-run a chunk); keeps the allocation.
    pub fn truncate(&mut self, len: usize) {
        if len >= self.len {
            return;
        }
        for layer in &mut self.layers {
            layer.keys.truncate(len * self.kv_dim);
            layer.values.truncate(len * self.value_dim);
        }
        self.len = len;
    }

    /// Empties the cache and frees its memory.
    pub fn clear(&mut self) {
        for layer in &mut self.layers {
            *layer = LayerKv::default();
        }
        self.len = 0;
    }

    pub(crate) fn n_layers(&self) -> usize {
        self.layers.len()
    }

    pub(crate) fn kv_dim(&self) -> usize {
        self.kv_dim
    }

    pub(crate) fn value_dim(&self) -> usize {
        self.value_dim
    }

    /// Appends `rows` new positions to `layer` (keys and values `[rows][kv_dim]`), and returns
    /// that layer's whole history including them. `commit` must follow once every layer got
    /// its rows.
    pub(crate) fn append(&mut self, layer: usize, keys: &[f32], values: &[f32]) -> &LayerKv {
        let l = &mut self.layers[layer];
        l.keys.extend_from_slice(keys);
        l.values.extend_from_slice(values);
        &self.layers[layer]
    }

    /// Records `rows` new positions after every layer was appended to.
    pub(crate) fn commit(&mut self, rows: usize) {
        self.len += rows;
    }

    /// Rolls every layer back to the committed length (after a failed forward pass).
    pub(crate) fn rollback(&mut self) {
        for layer in &mut self.layers {
            layer.keys.truncate(self.len * self.kv_dim);
            layer.values.truncate(self.len * self.value_dim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_one_row_at_a_time_reallocates_only_logarithmically_often() {
        let mut cache = KvCache::new(1, 4);
        let mut reallocations = 0;
        let mut last_cap = 0;
        for _ in 0..1000 {
            cache.reserve(1);
            cache.append(0, &[1.0; 4], &[2.0; 4]);
            cache.commit(1);
            let cap = cache.layers[0].keys.capacity();
            if cap != last_cap {
                reallocations += 1;
                last_cap = cap;
            }
        }
        assert_eq!(cache.len(), 1000);
        assert!(reallocations <= 12, "{reallocations} reallocations");
        assert_eq!(cache.used_bytes(), 1000 * 2 * 4 * 4);
        assert!(cache.allocated_bytes() >= cache.used_bytes());
    }

    #[test]
    fn rollback_drops_uncommitted_rows_of_every_layer() {
        let mut cache = KvCache::new(2, 2);
        cache.append(0, &[1.0, 2.0], &[3.0, 4.0]);
        cache.append(1, &[1.0, 2.0], &[3.0, 4.0]);
        cache.commit(1);
        cache.append(0, &[5.0, 6.0], &[7.0, 8.0]);
        cache.rollback();
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.layers[0].keys, vec![1.0, 2.0]);
        cache.truncate(0);
        assert!(cache.is_empty());
        assert!(cache.layers[1].values.is_empty());
    }
}
