//! Activation quantisation, done once per matmul call as llama.cpp does: each activation row
//! becomes blocks of i8 with one f32 scale, so every weight-row dot is an integer dot.
//! Q8_0 pairs with Q8_0 weights, Q8_1 (adds the block sum) with Q4_0 and Q4_1, Q8_K (adds
//! sums of each 16 values) with the K-quants.

use super::formats::{QK, QK_K};

/// 32 activations as `qs * d`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; QK],
}

/// 32 activations as `qs * d`, with `s = d * sum(qs)` so Q4_1's offset costs one multiply.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub qs: [i8; QK],
}

/// 256 activations as `qs * d`, with the sum of each 16 `qs` (the K-quants' mins need them).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

impl Default for BlockQ8_0 {
    fn default() -> Self {
        Self { d: 0.0, qs: [0; QK] }
    }
}

impl Default for BlockQ8_1 {
    fn default() -> Self {
        Self {
            d: 0.0,
            s: 0.0,
            qs: [0; QK],
        }
    }
}

impl Default for BlockQ8K {
    fn default() -> Self {
        Self {
            d: 0.0,
            qs: [0; QK_K],
            bsums: [0; QK_K / 16],
        }
    }
}

/// Symmetric 8-bit quantisation of `x` into `qs`; returns the scale `d` (amax / 127).
#[inline]
fn quantize_i8(x: &[f32], qs: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        let s = v * id;
        // Round half away from zero; the cast saturates, and |s| <= 127 anyway.
        *q = (s + 0.5f32.copysign(s)) as i8;
    }
    d
}

/// Quantises `x` (a multiple of 32 long) into `out` (exactly `x.len() / 32` blocks).
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        blk.d = quantize_i8(xs, &mut blk.qs);
    }
}

/// Quantises `x` (a multiple of 32 long) into `out`, with block sums.
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        blk.d = quantize_i8(xs, &mut blk.qs);
        let sum: i32 = blk.qs.iter().map(|&q| i32::from(q)).sum();
        blk.s = blk.d * sum as f32;
    }
}

/// Quantises `x` (a multiple of 256 long) into `out`, with sums of each 16 values.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        blk.d = quantize_i8(xs, &mut blk.qs);
        for (s, q) in blk.bsums.iter_mut().zip(blk.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| i16::from(v)).sum();
        }
    }
}

/// Per-call activation buffers, reused across calls so the decode loop does not allocate.
#[derive(Debug, Default)]
pub struct ActScratch {
    pub q8_0: Vec<BlockQ8_0>,
    pub q8_1: Vec<BlockQ8_1>,
    pub q8_k: Vec<BlockQ8K>,
}

/// Grows `v` to at least `len` elements (never shrinks, so steady state is allocation-free).
pub(crate) fn ensure_len<T: Default + Clone>(v: &mut Vec<T>, len: usize) {
    if v.len() < len {
        v.resize(len, T::default());
    }
}
