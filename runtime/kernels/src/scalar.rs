//! Portable dot products of one weight row (raw GGUF block bytes) with one quantised activation
//! row. Correct on any target, and bit-identical to the SIMD kernels (`x86_q32`, `x86`): with
//! 8-bit activations a last-bit difference in one layer's output can move a later `round(x /
//! d)` to the next integer, and such flips compound over the layers into visibly different
//! logits (0.2-0.3 on SmolLM2, enough to change greedy answers). So these follow the SIMD
//! arithmetic step by step: the integer lane sums of a 256-bit byte dot (lane `l` sums bytes
//! `4l..4l + 4`, exact in any order), the same f32 accumulators, `mul_add` where SIMD uses FMA
//! (one rounding; native on aarch64, a libm call on x86 where only tests run this path), and
//! the same horizontal sum. Change a SIMD kernel's float steps only together with its mirror
//! here; `tests.rs` asserts `==` between the paths.

use super::act::{BlockQ8K, BlockQ8_0, BlockQ8_1};
use super::formats::{rd_f16, scale_min_k4};

/// The 8 f32 lanes of one `__m256` accumulator.
type Lanes = [f32; 8];

/// `hsum_ps` (llama.cpp's `hsum_float_8`): `((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7))`.
#[inline(always)]
fn hsum(a: Lanes) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

/// `_mm256_fmadd_ps(set1(d), cvtepi32_ps(v), acc)`.
#[inline(always)]
fn fma_lanes(acc: &mut Lanes, d: f32, v: [i32; 8]) {
    for (a, v) in acc.iter_mut().zip(v) {
        *a = d.mul_add(v as f32, *a);
    }
}

/// The i32 lanes of a 32-byte dot (`maddubs` + `madd`, or `vpdpbusd`): lane `l` sums
/// `q(b) * y[b]` for `b` in `4l..4l + 4`.
#[inline(always)]
fn byte_lanes(q: impl Fn(usize) -> i32, y: &[i8]) -> [i32; 8] {
    std::array::from_fn(|l| (4 * l..4 * l + 4).map(|b| q(b) * i32::from(y[b])).sum())
}

/// The `x86_q32` kernel shape: `blk` gives a block's lanes, scale and side term; even blocks
/// go to one accumulator, odd to another, then `fin(hsum(acc0 + acc1), side0 + side1)`.
#[inline(always)]
fn q32_dot<T>(
    w: &[u8],
    a: &[T],
    bb: usize,
    blk: impl Fn(&[u8], &T) -> ([i32; 8], f32, f32),
    fin: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [[0.0f32; 8]; 2];
    let mut side = [0.0f32; 2];
    for (k, (b, y)) in w.chunks_exact(bb).zip(a).enumerate() {
        let (v, d, s) = blk(b, y);
        fma_lanes(&mut acc[k % 2], d, v);
        side[k % 2] += s;
    }
    let sum: Lanes = std::array::from_fn(|l| acc[0][l] + acc[1][l]);
    fin(hsum(sum), side[0] + side[1])
}

/// Nibble `b` (0..32) of a 32-value block: low nibbles of the 16 bytes, then high ones.
#[inline(always)]
fn nibble(qs: &[u8], b: usize) -> i32 {
    i32::from(if b < 16 { qs[b] & 0xF } else { qs[b - 16] >> 4 })
}

pub fn dot_q4_0(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    q32_dot(
        w,
        a,
        18,
        |b, y| {
            let dw = rd_f16(b, 0);
            (
                byte_lanes(|j| nibble(&b[2..18], j), &y.qs),
                dw * y.d,
                dw * y.ds,
            )
        },
        |v, s| v - 8.0 * s,
    )
}

pub fn dot_q4_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    q32_dot(
        w,
        a,
        20,
        |b, y| {
            let v = byte_lanes(|j| nibble(&b[4..20], j), &y.qs);
            (v, rd_f16(b, 0) * y.d, rd_f16(b, 2) * y.s)
        },
        |v, s| v + s,
    )
}

pub fn dot_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    q32_dot(
        w,
        a,
        34,
        |b, y| {
            let v = byte_lanes(|j| i32::from(b[2 + j] as i8), &y.qs);
            (v, rd_f16(b, 0) * y.d, 0.0)
        },
        |v, _| v,
    )
}

/// Shared by Q4_K and Q5_K (`x86::dot_q4k_n`): `q(j, l)` yields value `l` (0..32) of
/// sub-block `j` (0..8). Lane `i` of a super-block is `sum_j sc_j * (bytes 4i..4i + 4 of
/// sub-block j)`, scaled by one FMA; the mins go to a scalar accumulator, subtracted last.
#[inline(always)]
fn dot_k4_like(w: &[u8], a: &[BlockQ8K], bb: usize, q: impl Fn(&[u8], usize, usize) -> i32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut acc_m = 0.0f32;
    for (b, y) in w.chunks_exact(bb).zip(a) {
        let scales = &b[4..16];
        let (d, dmin) = (rd_f16(b, 0) * y.d, rd_f16(b, 2) * y.d);
        let mut lanes = [0i32; 8];
        let mut summ = 0i32;
        for j in 0..8 {
            let (sc, m) = scale_min_k4(j, scales);
            let v = byte_lanes(|l| q(b, j, l), &y.qs[32 * j..32 * j + 32]);
            lanes
                .iter_mut()
                .zip(v)
                .for_each(|(s, v)| *s += i32::from(sc) * v);
            summ += i32::from(m) * (i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]));
        }
        acc_m += dmin * summ as f32;
        fma_lanes(&mut acc, d, lanes);
    }
    hsum(acc) - acc_m
}

pub fn dot_q4k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    dot_k4_like(w, a, 144, |b, j, l| {
        let v = b[16 + 32 * (j / 2) + l];
        i32::from(if j % 2 == 0 { v & 0xF } else { v >> 4 })
    })
}

pub fn dot_q5k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    dot_k4_like(w, a, 176, |b, j, l| {
        let v = b[48 + 32 * (j / 2) + l];
        let lo = if j % 2 == 0 { v & 0xF } else { v >> 4 };
        i32::from(lo) + if b[16 + l] & (1 << j) != 0 { 16 } else { 0 }
    })
}

/// As `x86::dot_q6k_n`: 8 chunks of 32 values (`idx = 4 * half + k`), each lane
/// `scale * sum((q - 32) * y)` over its 4 bytes, where bytes 0..16 of a chunk take scale
/// `2k` of the half and bytes 16..32 scale `2k + 1`.
pub fn dot_q6k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = [0.0f32; 8];
    for (b, y) in w.chunks_exact(210).zip(a) {
        let mut lanes = [0i32; 8];
        for half in 0..2 {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..160 + 32 * half];
            let sc = &b[192 + 8 * half..200 + 8 * half];
            for k in 0..4 {
                let q = |l: usize| {
                    let src = if k % 2 == 0 { ql[l] } else { ql[l + 32] };
                    let lo = if k < 2 { src & 0xF } else { src >> 4 };
                    i32::from(lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32
                };
                let o = 128 * half + 32 * k;
                let v = byte_lanes(q, &y.qs[o..o + 32]);
                for (i, (s, v)) in lanes.iter_mut().zip(v).enumerate() {
                    *s += i32::from(sc[2 * k + i / 4] as i8) * v;
                }
            }
        }
        fma_lanes(&mut acc, rd_f16(b, 208) * y.d, lanes);
    }
    hsum(acc)
}

/// f16 weights against f32 activations (no activation quantisation for float weights), as
/// `x86::dot_f16`: 8 FMA lanes over whole chunks of 8, their `hsum`, then the tail in order.
pub fn dot_f16(w: &[u8], a: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (wc, ac) = (w.chunks_exact(16), a.chunks_exact(8));
    let (wr, ar) = (wc.remainder(), ac.remainder());
    for (b, x) in wc.zip(ac) {
        for (l, s) in acc.iter_mut().enumerate() {
            *s = rd_f16(b, 2 * l).mul_add(x[l], *s);
        }
    }
    hsum(acc) + dot_f16_tail(wr, ar)
}

/// The values after the last whole chunk of 8, summed in order.
pub fn dot_f16_tail(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(2)
        .zip(a)
        .map(|(b, &x)| rd_f16(b, 0) * x)
        .sum()
}
