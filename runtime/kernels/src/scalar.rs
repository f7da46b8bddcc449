//! Portable dot products of one weight row (raw GGUF block bytes) with one quantised activation
//! row. Correct on any target; the SIMD paths must agree with these up to f32 rounding.

use super::act::{BlockQ8K, BlockQ8_0, BlockQ8_1};
use super::formats::{rd_f16, scale_min_k4};

pub fn dot_q4_0(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(18).zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            let lo = i32::from(b[2 + j] & 0xF) - 8;
            let hi = i32::from(b[2 + j] >> 4) - 8;
            sumi += lo * i32::from(y.qs[j]) + hi * i32::from(y.qs[j + 16]);
        }
        acc += sumi as f32 * rd_f16(b, 0) * y.d;
    }
    acc
}

pub fn dot_q4_1(w: &[u8], a: &[BlockQ8_1]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(20).zip(a) {
        let mut sumi = 0i32;
        for j in 0..16 {
            sumi += i32::from(b[4 + j] & 0xF) * i32::from(y.qs[j])
                + i32::from(b[4 + j] >> 4) * i32::from(y.qs[j + 16]);
        }
        acc += sumi as f32 * rd_f16(b, 0) * y.d + rd_f16(b, 2) * y.s;
    }
    acc
}

pub fn dot_q8_0(w: &[u8], a: &[BlockQ8_0]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(34).zip(a) {
        let sumi: i32 = (0..32)
            .map(|j| i32::from(b[2 + j] as i8) * i32::from(y.qs[j]))
            .sum();
        acc += sumi as f32 * rd_f16(b, 0) * y.d;
    }
    acc
}

/// Shared by Q4_K and Q5_K: `q(j, l)` yields value `l` (0..32) of sub-block `j` (0..8).
#[inline(always)]
fn dot_k4_like(b: &[u8], y: &BlockQ8K, q: impl Fn(usize, usize) -> i32) -> f32 {
    let scales = &b[4..16];
    let (mut sumi, mut summ) = (0i32, 0i32);
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, scales);
        let mut s = 0i32;
        for l in 0..32 {
            s += q(j, l) * i32::from(y.qs[32 * j + l]);
        }
        sumi += s * i32::from(sc);
        summ += i32::from(m) * (i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1]));
    }
    y.d * (rd_f16(b, 0) * sumi as f32 - rd_f16(b, 2) * summ as f32)
}

pub fn dot_q4k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(144).zip(a) {
        let qs = &b[16..144];
        acc += dot_k4_like(b, y, |j, l| {
            let v = qs[32 * (j / 2) + l];
            i32::from(if j % 2 == 0 { v & 0xF } else { v >> 4 })
        });
    }
    acc
}

pub fn dot_q5k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(176).zip(a) {
        let (qh, qs) = (&b[16..48], &b[48..176]);
        acc += dot_k4_like(b, y, |j, l| {
            let v = qs[32 * (j / 2) + l];
            let lo = if j % 2 == 0 { v & 0xF } else { v >> 4 };
            i32::from(lo) + if qh[l] & (1 << j) != 0 { 16 } else { 0 }
        });
    }
    acc
}

pub fn dot_q6k(w: &[u8], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (b, y) in w.chunks_exact(210).zip(a) {
        let mut sumi = 0i32;
        for half in 0..2 {
            let ql = &b[64 * half..64 * half + 64];
            let qh = &b[128 + 32 * half..160 + 32 * half];
            let sc = &b[192 + 8 * half..200 + 8 * half];
            let q8 = &y.qs[128 * half..128 * half + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = i32::from((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
                let q2 = i32::from((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                let q3 = i32::from((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                let q4 = i32::from((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                sumi += i32::from(sc[is] as i8) * q1 * i32::from(q8[l])
                    + i32::from(sc[is + 2] as i8) * q2 * i32::from(q8[l + 32])
                    + i32::from(sc[is + 4] as i8) * q3 * i32::from(q8[l + 64])
                    + i32::from(sc[is + 6] as i8) * q4 * i32::from(q8[l + 96]);
            }
        }
        acc += rd_f16(b, 208) * y.d * sumi as f32;
    }
    acc
}

/// f16 weights against f32 activations (no activation quantisation for float weights).
pub fn dot_f16(w: &[u8], a: &[f32]) -> f32 {
    w.chunks_exact(2)
        .zip(a)
        .map(|(b, &x)| rd_f16(b, 0) * x)
        .sum()
}
