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
/// `s` is rounded through f16 as ggml does (Q4_1 matches ggml with it); `ds` is the same
/// product in f32 (Q4_0's `- 8` offset uses it, and must be exact to match ggml's Q4_0).
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

/// `f32::round` (half away from zero) for |v| < 2^31, in a form that vectorises (the cast
/// truncates; the fraction is exact).
#[inline(always)]
fn round_away(v: f32) -> f32 {
    let t = (v as i32) as f32;
    let frac = v - t;
    t + f32::from(u8::from(frac >= 0.5)) - f32::from(u8::from(frac <= -0.5))
}

#[inline(always)]
fn to_f16(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// ggml's `quantize_row_q8_0` block: `d = amax / 127` stored as f16, `qs = round(x / d)`
/// with the unrounded `d`. Matching ggml bit for bit keeps outputs equal to candle's stock
/// path (and llama.cpp's), not just close. Returns the f16-rounded `d`.
#[inline]
fn quantize_i8(x: &[f32], qs: &mut [i8]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_away(v * id) as i8;
    }
    to_f16(d)
}

/// Quantises `x` (a multiple of 32 long) into `out` (exactly `x.len() / 32` blocks).
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        blk.d = quantize_i8(xs, &mut blk.qs);
    }
}

/// Quantises `x` (a multiple of 32 long) into `out`, with block sums (`s` rounded through
/// f16 twice, as ggml/candle compute it).
pub fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    for (blk, xs) in out.iter_mut().zip(x.chunks_exact(QK)) {
        blk.d = quantize_i8(xs, &mut blk.qs);
        let sum: i32 = blk.qs.iter().map(|&q| i32::from(q)).sum();
        blk.s = to_f16(to_f16(sum as f32) * blk.d);
        blk.ds = sum as f32 * blk.d;
    }
}

/// Quantises `x` (a multiple of 256 long) into `out`, with sums of each 16 values; ggml's
/// `quantize_row_q8_K` (scale from the signed maximum, f32 `d`).
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
            *q = round_away(iscale * v).clamp(-128.0, 127.0) as i8;
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
