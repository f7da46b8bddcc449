//! Activation quantisation, done once per matmul call as llama.cpp does: each activation row
//! becomes blocks of i8 with one f32 scale, so every weight-row dot is an integer dot.
//! Q8_0 pairs with Q8_0 weights, Q8_1 (adds the block sum) with Q4_0 and Q4_1, Q8_K (adds
//! sums of each 16 values) with the K-quants.

use half::f16;

use super::formats::{QK, QK_K};

/// 32 activations as `qs * d`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_0 {
    pub d: f32,
    pub qs: [i8; QK],
}

/// 32 activations as `qs * d`, with `s = d * sum(qs)` so Q4_1's offset costs one multiply.
/// `s` is rounded through f16 as ggml stores it (Q4_1 uses it, as ggml's Q4_1 kernel does);
/// `ds` is `sum(qs) * d` in f32 with the stored `d` (Q4_0's `- 8` offset uses it).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BlockQ8_1 {
    pub d: f32,
    pub s: f32,
    pub ds: f32,
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
        Self {
            d: 0.0,
            qs: [0; QK],
        }
    }
}

impl Default for BlockQ8_1 {
    fn default() -> Self {
        Self {
            d: 0.0,
            s: 0.0,
            ds: 0.0,
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

/// Round half to even for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction bits, so the
/// addition itself rounds (to nearest even, the default mode). This is ggml's `nearest_int`
/// and what `_mm256_round_ps(_MM_ROUND_NEAREST)` in its x86 `quantize_row_q8_0/1` does; a
/// plain add and subtract (Rust never reassociates), so the loop vectorises on every target.
#[inline(always)]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}

#[inline(always)]
fn to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// llama.cpp's x86 `quantize_row_q8_0` block (what it runs on the machines we compare with):
/// `d = amax / 127` (stored as f16), `qs = round_half_even(x * (127 / amax))` with the
/// reciprocal taken of `amax`, not of `d`. Returns the unrounded and the f16-rounded `d`.
#[inline]
fn quantize_i8(x: &[f32], qs: &mut [i8]) -> (f32, f32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_even(v * id) as i8;
    }
    (d, to_f16(d))
}

/// Quantises `x` (a multiple of 32 long) into `out` (exactly `x.len() / 32` blocks).
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        blk.d = quantize_i8(xs, &mut blk.qs).1;
    }
}

/// Quantises `x` (a multiple of 32 long) into `out`, with block sums: `s = f16(d * sum)` with
/// the unrounded f32 `d`, as llama.cpp's x86 `quantize_row_q8_1` stores it.
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        let (d, d16) = quantize_i8(xs, &mut blk.qs);
        let sum: i32 = blk.qs.iter().map(|&q| i32::from(q)).sum();
        blk.d = d16;
        blk.s = to_f16(d * sum as f32);
        blk.ds = sum as f32 * d16;
    }
}

/// Quantises `x` (a multiple of 256 long) into `out`, with sums of each 16 values; ggml's
/// `quantize_row_q8_K_ref`, which x86 runs too (scale from the signed maximum, f32 `d`,
/// `nearest_int` = round half to even, capped at 127).
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (mut max, mut amax) = (0.0f32, 0.0f32);
        for &v in xs {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            *blk = BlockQ8K::default();
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in blk.qs.iter_mut().zip(xs) {
            *q = round_even(iscale * v).min(127.0) as i8;
        }
        blk.d = 1.0 / iscale;
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
