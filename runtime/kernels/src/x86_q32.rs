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
//! `scalar` mirrors these float steps exactly (the paths are bit-identical, `tests_exact`).
//!
//! Against llama.cpp's AVX2 `ggml_vec_dot_q4_1_q8_1` (what it runs for Q4_1 on x86): the same
//! integer lanes, `d_w * d_a` then FMA, `hsum_float_8`, and `+ summs` of `m * s` last; but
//! llama.cpp keeps one accumulator where we keep two (even/odd blocks), so outputs differ from
//! llama.cpp's in the last bits. Measured (criterion `matmul_Q4_1`, 1 thread, Zen 4, back to
//! back): one accumulator made batch-1 products 12-30% slower (576x576 18.3 -> 20.6 us,
//! 1536->576 45.8 -> 54.6 us, 4096x4096 0.84 -> 1.08 ms; n=8 unchanged): the FMA chain is
//! the critical path, so we keep two. Its Q4_0 pairs with
//! Q8_0 activations and subtracts 8 in the bytes; ours pairs with Q8_1 and subtracts
//! `8 * d_w * ds` once per row. Neither matters for parity with llama.cpp beyond last-bit
//! noise (its attention, norms and f16 KV cache round differently anyway); both are the next
//! step if bitwise agreement with its kernels is wanted, measured for speed first.

use std::arch::x86_64::*;

use super::act::{BlockQ8_0, BlockQ8_1};
use super::x86::{hsum_ps, load32, load32_i8, nibbles32, rd_f16};

/// One weight block `$k` against the `$n` activation rows: `$prep` unpacks weight block `$b`
/// once; `$blk` dots it with activation block `$y`, giving (i32 products as f32 lanes, their
/// scale, a scalar side term). A macro, not a closure: a closure is compiled as a separate
/// function without the caller's target features, with the accumulators in memory (measured:
/// that cost a third of the decode step).
macro_rules! q32_step {
    ($acc:ident, $side:ident, $k:expr, $w:ident, $a:ident, $stride:ident, $n:ident, $bb:expr,
     |$b:ident| $prep:expr, |$wv:ident, $y:ident| $blk:expr) => {{
        let k = $k;
        let $b = &$w[k * $bb..(k + 1) * $bb];
        let $wv = $prep;
        for i in 0..$n {
            // SAFETY: `i * stride + k < (N - 1) * stride + nb <= a.len()`, asserted on entry.
            let $y = unsafe { $a.get_unchecked(i * $stride + k) };
            let (v, d, s): (__m256, f32, f32) = $blk;
            $acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), v, $acc[i]);
            $side[i] += s;
        }
    }};
}

/// `$fin(v, side)` finishes a row's sum.
macro_rules! q32_kernel {
    ($feat:literal, $name_n:ident, $name:ident, $act:ty, $bb:expr,
     |$b:ident| $prep:expr, |$wv:ident, $y:ident| $blk:expr, $fin:expr) => {
        #[target_feature(enable = $feat)]
        pub fn $name_n<const N: usize>(w: &[u8], a: &[$act], stride: usize) -> [f32; N] {
            let nb = w.len() / $bb;
            assert!(N == 0 || nb == 0 || a.len() >= (N - 1) * stride + nb);
            let (mut acc0, mut acc1) = ([_mm256_setzero_ps(); N], [_mm256_setzero_ps(); N]);
            let (mut side0, mut side1) = ([0.0f32; N], [0.0f32; N]);
            let mut k = 0;
            while k + 1 < nb {
                q32_step!(
                    acc0,
                    side0,
                    k,
                    w,
                    a,
                    stride,
                    N,
                    $bb,
                    |$b| $prep,
                    |$wv, $y| $blk
                );
                q32_step!(
                    acc1,
                    side1,
                    k + 1,
                    w,
                    a,
                    stride,
                    N,
                    $bb,
                    |$b| $prep,
                    |$wv, $y| $blk
                );
                k += 2;
            }
            if k < nb {
                q32_step!(
                    acc0,
                    side0,
                    k,
                    w,
                    a,
                    stride,
                    N,
                    $bb,
                    |$b| $prep,
                    |$wv, $y| $blk
                );
            }
            let fin: fn(f32, f32) -> f32 = $fin;
            let mut out = [0.0f32; N];
            for i in 0..N {
                let v = hsum_ps(_mm256_add_ps(acc0[i], acc1[i]));
                out[i] = fin(v, side0[i] + side1[i]);
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
    use crate::x86::dot_us8;
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
