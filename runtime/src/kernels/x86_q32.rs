//! The 32-value block formats (Q4_0, Q4_1, Q8_0) in 256-bit SIMD, generated twice from one
//! body: with AVX2 `maddubs` + `madd` for the unsigned x signed byte dots, and with AVX-512
//! VNNI `vpdpbusd` (one instruction, no i16 intermediate) on CPUs that have it. Same safety
//! contract as `x86`: only called once `KernelPath` verified the features on this CPU.
//!
//! Each format has an `_n` form (one weight row against `N` activation rows `stride` blocks
//! apart, unpacking each weight block once) and a 1-row form that is `_n::<1>`. Both sum in
//! exactly the same order (even blocks into one accumulator, odd into another, which also
//! breaks the FMA latency chain), so a row's result is bit-identical whether it was computed
//! alone or in a batch: batched decode and chunked prefill reproduce single-sequence output.

use std::arch::x86_64::*;

use super::act::{BlockQ8_0, BlockQ8_1};
use super::x86::{hsum_ps, load32, load32_i8, nibbles32, rd_f16};

/// `$prep` unpacks weight block `$b` once; `$blk` dots it with activation block `$y`, giving
/// (i32 products as f32 lanes, their scale, a scalar side term); `$fin(v, side)` finishes.
macro_rules! q32_kernel {
    ($feat:literal, $name_n:ident, $name:ident, $act:ty, $bb:expr,
     |$b:ident| $prep:expr, |$wv:ident, $y:ident| $blk:expr, $fin:expr) => {
        #[target_feature(enable = $feat)]
        pub fn $name_n<const N: usize>(w: &[u8], a: &[$act], stride: usize) -> [f32; N] {
            let mut acc = [[_mm256_setzero_ps(); N]; 2];
            let mut side = [[0.0f32; N]; 2];
            let mut step = |j: usize, k: usize| {
                let $b = &w[k * $bb..(k + 1) * $bb];
                let $wv = $prep;
                for i in 0..N {
                    let $y = &a[i * stride + k];
                    let (v, d, s): (__m256, f32, f32) = $blk;
                    acc[j][i] = _mm256_fmadd_ps(_mm256_set1_ps(d), v, acc[j][i]);
                    side[j][i] += s;
                }
            };
            let nb = w.len() / $bb;
            let mut k = 0;
            while k + 1 < nb {
                step(0, k);
                step(1, k + 1);
                k += 2;
            }
            if k < nb {
                step(0, k);
            }
            let fin: fn(f32, f32) -> f32 = $fin;
            let mut out = [0.0f32; N];
            for i in 0..N {
                let v = hsum_ps(_mm256_add_ps(acc[0][i], acc[1][i]));
                out[i] = fin(v, side[0][i] + side[1][i]);
            }
            out
        }

        #[target_feature(enable = $feat)]
        pub fn $name(w: &[u8], a: &[$act]) -> f32 {
            $name_n::<1>(w, a, 0)[0]
        }
    };
}

macro_rules! q32_kernels {
    ($feat:literal, $dot:ident) => {
        // Q4_0 against Q8_1: nibbles stay unsigned and the `- 8` offset comes from the
        // activation block sum, `d_w * (d_a * sum(q * y) - 8 * d_a * sum(y))`.
        q32_kernel!(
            $feat,
            dot_q4_0_n,
            dot_q4_0,
            BlockQ8_1,
            18,
            |b| (rd_f16(b, 0), nibbles32(&b[2..18])),
            |wv, y| {
                let v = _mm256_cvtepi32_ps($dot(wv.1, load32_i8(&y.qs)));
                (v, wv.0 * y.d, wv.0 * y.ds)
            },
            |v, s| v - 8.0 * s
        );
        q32_kernel!(
            $feat,
            dot_q4_1_n,
            dot_q4_1,
            BlockQ8_1,
            20,
            |b| (rd_f16(b, 0), rd_f16(b, 2), nibbles32(&b[4..20])),
            |wv, y| {
                let v = _mm256_cvtepi32_ps($dot(wv.2, load32_i8(&y.qs)));
                (v, wv.0 * y.d, wv.1 * y.s)
            },
            |v, s| v + s
        );
        // Signed x signed via the sign trick (the byte dot needs one unsigned operand).
        q32_kernel!(
            $feat,
            dot_q8_0_n,
            dot_q8_0,
            BlockQ8_0,
            34,
            |b| {
                let qx = load32(&b[2..34]);
                (rd_f16(b, 0), qx, _mm256_sign_epi8(qx, qx))
            },
            |wv, y| {
                let sy = _mm256_sign_epi8(load32_i8(&y.qs), wv.1);
                (_mm256_cvtepi32_ps($dot(wv.2, sy)), wv.0 * y.d, 0.0)
            },
            |v, _| v
        );
    };
}

pub mod avx2 {
    use super::*;
    use crate::kernels::x86::dot_us8;
    q32_kernels!("avx2,fma,f16c", dot_us8);
}

pub mod vnni {
    use super::*;

    /// Unsigned x signed byte dot, 4 products summed per i32 lane, in one instruction.
    #[inline]
    #[target_feature(enable = "avx2,avx512vl,avx512vnni")]
    fn dot_vnni(u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    }

    q32_kernels!("avx2,fma,f16c,avx512vl,avx512vnni", dot_vnni);
}
