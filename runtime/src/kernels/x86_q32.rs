//! The 32-value block formats (Q4_0, Q4_1, Q8_0) in 256-bit SIMD, generated twice from one
//! body: with AVX2 `maddubs` + `madd` for the unsigned x signed byte dots, and with AVX-512
//! VNNI `vpdpbusd` (one instruction, no i16 intermediate) on CPUs that have it. Same safety
//! contract as `x86`: only called once `KernelPath` verified the features on this CPU.

use std::arch::x86_64::*;

use super::act::{BlockQ8_0, BlockQ8_1};
use super::x86::{hsum_ps, load32, load32_i8, nibbles32, rd_f16};

/// One weight row against one activation row: two blocks per step into two accumulators, so
/// the FMA latency chain does not bound a memory-bound decode product.
macro_rules! single_row {
    ($feat:literal, $name:ident, $act:ty, $bb:expr, |$b:ident, $y:ident| $block:expr, $fin:expr) => {
        #[target_feature(enable = $feat)]
        pub fn $name(w: &[u8], a: &[$act]) -> f32 {
            let mut acc = [_mm256_setzero_ps(); 2];
            let mut side = [0.0f32; 2];
            let mut step = |j: usize, $b: &[u8], $y: &$act| {
                let (v, d, s): (__m256, f32, f32) = $block;
                acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(d), v, acc[j]);
                side[j] += s;
            };
            let (pairs, ys) = (w.chunks_exact(2 * $bb), a.chunks_exact(2));
            let (rest, yrest) = (pairs.remainder(), ys.remainder());
            for (b2, y2) in pairs.zip(ys) {
                step(0, &b2[..$bb], &y2[0]);
                step(1, &b2[$bb..], &y2[1]);
            }
            if let (Some(y), true) = (yrest.first(), rest.len() == $bb) {
                step(0, rest, y);
            }
            let fin: fn(f32, f32) -> f32 = $fin;
            fin(hsum_ps(_mm256_add_ps(acc[0], acc[1])), side[0] + side[1])
        }
    };
}

macro_rules! q32_kernels {
    ($feat:literal, $dot:ident) => {
        /// The 32-wide formats below come in an `_n` form: one weight row against `N` activation
        /// rows (`stride` blocks apart), unpacking each weight block once for all `N`.
        /// Q4_0 against Q8_1: nibbles stay unsigned (no sign tricks) and the `- 8` offset is taken
        /// once per block from the activation block sum, `d_w * (d_a * sum(q * y) - 8 * s_a)`.
        #[target_feature(enable = $feat)]
        pub fn dot_q4_0_n<const N: usize>(w: &[u8], a: &[BlockQ8_1], stride: usize) -> [f32; N] {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut offs = [0.0f32; N];
            for (k, b) in w.chunks_exact(18).enumerate() {
                let dw = rd_f16(b, 0);
                let qx = nibbles32(&b[2..18]);
                for i in 0..N {
                    let y = &a[i * stride + k];
                    offs[i] += dw * y.ds;
                    let p = _mm256_cvtepi32_ps($dot(qx, load32_i8(&y.qs)));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), p, acc[i]);
                }
            }
            let mut out = [0.0f32; N];
            for i in 0..N {
                out[i] = hsum_ps(acc[i]) - 8.0 * offs[i];
            }
            out
        }

        #[target_feature(enable = $feat)]
        pub fn dot_q4_1_n<const N: usize>(w: &[u8], a: &[BlockQ8_1], stride: usize) -> [f32; N] {
            let mut acc = [_mm256_setzero_ps(); N];
            let mut summs = [0.0f32; N];
            for (k, b) in w.chunks_exact(20).enumerate() {
                let (dw, mw) = (rd_f16(b, 0), rd_f16(b, 2));
                let qx = nibbles32(&b[4..20]);
                for i in 0..N {
                    let y = &a[i * stride + k];
                    summs[i] += mw * y.s;
                    let p = _mm256_cvtepi32_ps($dot(qx, load32_i8(&y.qs)));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), p, acc[i]);
                }
            }
            let mut out = [0.0f32; N];
            for i in 0..N {
                out[i] = hsum_ps(acc[i]) + summs[i];
            }
            out
        }

        #[target_feature(enable = $feat)]
        pub fn dot_q8_0_n<const N: usize>(w: &[u8], a: &[BlockQ8_0], stride: usize) -> [f32; N] {
            let mut acc = [_mm256_setzero_ps(); N];
            for (k, b) in w.chunks_exact(34).enumerate() {
                let dw = rd_f16(b, 0);
                let qx = load32(&b[2..34]);
                let ax = _mm256_sign_epi8(qx, qx);
                for i in 0..N {
                    let y = &a[i * stride + k];
                    let sy = _mm256_sign_epi8(load32_i8(&y.qs), qx);
                    let p = _mm256_cvtepi32_ps($dot(ax, sy));
                    acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y.d), p, acc[i]);
                }
            }
            let mut out = [0.0f32; N];
            for i in 0..N {
                out[i] = hsum_ps(acc[i]);
            }
            out
        }

        single_row!(
            $feat,
            dot_q4_0,
            BlockQ8_1,
            18,
            |b, y| {
                let dw = rd_f16(b, 0);
                let v = _mm256_cvtepi32_ps($dot(nibbles32(&b[2..18]), load32_i8(&y.qs)));
                (v, dw * y.d, dw * y.ds)
            },
            |v, s| v - 8.0 * s
        );

        single_row!(
            $feat,
            dot_q4_1,
            BlockQ8_1,
            20,
            |b, y| {
                let v = _mm256_cvtepi32_ps($dot(nibbles32(&b[4..20]), load32_i8(&y.qs)));
                (v, rd_f16(b, 0) * y.d, rd_f16(b, 2) * y.s)
            },
            |v, s| v + s
        );

        single_row!(
            $feat,
            dot_q8_0,
            BlockQ8_0,
            34,
            |b, y| {
                let qx = load32(&b[2..34]);
                let sy = _mm256_sign_epi8(load32_i8(&y.qs), qx);
                let v = _mm256_cvtepi32_ps($dot(_mm256_sign_epi8(qx, qx), sy));
                (v, rd_f16(b, 0) * y.d, 0.0)
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
