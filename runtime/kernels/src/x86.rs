//! AVX2 + FMA (+ F16C for f16 rows) dot products, the same arithmetic as `scalar` in 256-bit
//! integer SIMD, after llama.cpp's ggml-cpu kernels. Each function is only ever called after
//! `KernelPath::Avx2` (or a superset) was verified on this CPU; slices are bounds-checked by
//! `chunks_exact`, and every raw load stays inside the block it was taken from.

use std::arch::x86_64::*;

use super::act::BlockQ8K;

/// f16 at `b[at..at + 2]` to f32 in one instruction (half's portable conversion costs more
/// than a whole 32-value block dot).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn rd_f16(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_ps(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    _mm_cvtss_f32(_mm_add_ss(r, _mm_movehdup_ps(r)))
}

/// 32 bytes from `p`.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load32(p: &[u8]) -> __m256i {
    debug_assert!(p.len() >= 32);
    // SAFETY: callers pass slices of at least 32 bytes (block fields of fixed size).
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn load32_i8(p: &[i8; 32]) -> __m256i {
    // SAFETY: `p` is exactly 32 bytes.
    unsafe { _mm256_loadu_si256(p.as_ptr().cast()) }
}

/// 16 bytes of nibbles -> 32 bytes: low nibbles first (values 0..16), then high (16..32).
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn nibbles32(p: &[u8]) -> __m256i {
    debug_assert!(p.len() >= 16);
    // SAFETY: callers pass the 16-byte nibble field of a block.
    let t = unsafe { _mm_loadu_si128(p.as_ptr().cast()) };
    let both = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Sum of products of unsigned bytes `u` (< 128 in our use) with signed bytes `s`, as 8 i32.
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn dot_us8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// The 8 scales and 8 mins of a Q4_K/Q5_K super-block, unpacked from 12 bytes (ggml's utmp).
#[inline(always)]
fn k4_scales_mins(s: &[u8]) -> ([u8; 8], [u8; 8]) {
    let u = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, u2) = (u(0), u(1), u(2));
    let sc0 = u0 & 0x3f3f_3f3f;
    let sc1 = (u2 & 0x0f0f_0f0f) | (((u0 >> 6) & 0x0303_0303) << 4);
    let mn0 = u1 & 0x3f3f_3f3f;
    let mn1 = ((u2 >> 4) & 0x0f0f_0f0f) | (((u1 >> 6) & 0x0303_0303) << 4);
    let join = |a: u32, b: u32| {
        let (x, y) = (a.to_le_bytes(), b.to_le_bytes());
        [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
    };
    (join(sc0, sc1), join(mn0, mn1))
}

/// sum over sub-blocks of m_j * (sum of the 32 activations of sub-block j).
#[inline(always)]
fn k4_min_sum(mins: &[u8; 8], y: &BlockQ8K) -> i32 {
    (0..8)
        .map(|j| i32::from(mins[j]) * (i32::from(y.bsums[2 * j]) + i32::from(y.bsums[2 * j + 1])))
        .sum()
}

/// The K-quant kernels come in an `_n` form: one weight row against `N` activation rows
/// `stride` blocks apart, unpacking each weight super-block (scales, mins, nibbles) once for
/// all of them. The 1-row functions are `_n::<1>`, and every row is summed in the same order
/// whatever `N`, so batched rows are bit-identical to rows computed alone.
macro_rules! k_rows {
    ($name:ident, $name_n:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        pub fn $name(w: &[u8], a: &[BlockQ8K]) -> f32 {
            $name_n::<1>(w, a, 0)[0]
        }
    };
}

/// The integer part of a Q4_K / Q5_K super-block against one Q8_K block: the unpacked 4- or
/// 5-bit values (`lo[j]`, `hi[j]`: sub-blocks `2j` and `2j + 1`) times the activations, each
/// sub-block weighted by its 6-bit scale.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn k4_quant_dot(lo: &[__m256i; 4], hi: &[__m256i; 4], sc: &[u8; 8], y: &BlockQ8K) -> __m256i {
    let mut sumi = _mm256_setzero_si256();
    for j in 0..4 {
        let pl = _mm256_maddubs_epi16(lo[j], load32(as_u8(&y.qs[64 * j..64 * j + 32])));
        let ph = _mm256_maddubs_epi16(hi[j], load32(as_u8(&y.qs[64 * j + 32..64 * j + 64])));
        let pl = _mm256_madd_epi16(_mm256_set1_epi16(i16::from(sc[2 * j])), pl);
        let ph = _mm256_madd_epi16(_mm256_set1_epi16(i16::from(sc[2 * j + 1])), ph);
        sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
    }
    sumi
}

/// Asserts that `N` rows of `nb` blocks, `stride` apart, lie inside `a`.
#[inline(always)]
fn check_rows<const N: usize>(a: &[BlockQ8K], nb: usize, stride: usize) {
    assert!(N == 0 || nb == 0 || a.len() >= (N - 1) * stride + nb);
}

k_rows!(dot_q4k, dot_q4k_n);
k_rows!(dot_q5k, dot_q5k_n);
k_rows!(dot_q6k, dot_q6k_n);

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q4k_n<const N: usize>(w: &[u8], a: &[BlockQ8K], stride: usize) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0F);
    let nb = w.len() / 144;
    check_rows::<N>(a, nb, stride);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [0.0f32; N];
    for (k, b) in w.chunks_exact(144).enumerate() {
        let (dw, dminw) = (rd_f16(b, 0), rd_f16(b, 2));
        let (sc, mins) = k4_scales_mins(&b[4..16]);
        let mut lo = [_mm256_setzero_si256(); 4];
        let mut hi = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            let q4 = load32(&b[16 + 32 * j..48 + 32 * j]);
            lo[j] = _mm256_and_si256(q4, m4);
            hi[j] = _mm256_and_si256(_mm256_srli_epi16(q4, 4), m4);
        }
        for i in 0..N {
            let y = &a[i * stride + k];
            let (d, dmin) = (dw * y.d, dminw * y.d);
            acc_m[i] += dmin * k4_min_sum(&mins, y) as f32;
            let sumi = k4_quant_dot(&lo, &hi, &sc, y);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    let mut out = [0.0f32; N];
    for i in 0..N {
        out[i] = hsum_ps(acc[i]) - acc_m[i];
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q5k_n<const N: usize>(w: &[u8], a: &[BlockQ8K], stride: usize) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    let nb = w.len() / 176;
    check_rows::<N>(a, nb, stride);
    let mut acc = [_mm256_setzero_ps(); N];
    let mut acc_m = [0.0f32; N];
    for (k, b) in w.chunks_exact(176).enumerate() {
        let (dw, dminw) = (rd_f16(b, 0), rd_f16(b, 2));
        let (sc, mins) = k4_scales_mins(&b[4..16]);
        let hbits = load32(&b[16..48]);
        // Bit k of each qh byte is the fifth bit of sub-block k; move it to bit 4.
        let h = |k: i32| {
            let bit = _mm256_and_si256(_mm256_srl_epi16(hbits, _mm_cvtsi32_si128(k)), one);
            _mm256_slli_epi16(bit, 4)
        };
        let mut lo = [_mm256_setzero_si256(); 4];
        let mut hi = [_mm256_setzero_si256(); 4];
        for j in 0..4 {
            let q = load32(&b[48 + 32 * j..80 + 32 * j]);
            lo[j] = _mm256_add_epi8(_mm256_and_si256(q, m4), h(2 * j as i32));
            hi[j] = _mm256_add_epi8(
                _mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                h(2 * j as i32 + 1),
            );
        }
        for i in 0..N {
            let y = &a[i * stride + k];
            let (d, dmin) = (dw * y.d, dminw * y.d);
            acc_m[i] += dmin * k4_min_sum(&mins, y) as f32;
            let sumi = k4_quant_dot(&lo, &hi, &sc, y);
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    let mut out = [0.0f32; N];
    for i in 0..N {
        out[i] = hsum_ps(acc[i]) - acc_m[i];
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_q6k_n<const N: usize>(w: &[u8], a: &[BlockQ8K], stride: usize) -> [f32; N] {
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(3);
    let m32 = _mm256_set1_epi8(32);
    let nb = w.len() / 210;
    check_rows::<N>(a, nb, stride);
    let mut acc = [_mm256_setzero_ps(); N];
    for (k, b) in w.chunks_exact(210).enumerate() {
        let dw = rd_f16(b, 208);
        // The 6-bit values of both halves, unpacked once: q[4 * half + k].
        let mut q = [_mm256_setzero_si256(); 8];
        let mut s = [_mm256_setzero_si256(); 8];
        for half in 0..2 {
            let qh = load32(&b[128 + 32 * half..160 + 32 * half]);
            let ql1 = load32(&b[64 * half..64 * half + 32]);
            let ql2 = load32(&b[64 * half + 32..64 * half + 64]);
            let high = |s: i32| {
                let v = _mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(s)), m2);
                _mm256_slli_epi16(v, 4)
            };
            q[4 * half] = _mm256_or_si256(_mm256_and_si256(ql1, m4), high(0));
            q[4 * half + 1] = _mm256_or_si256(_mm256_and_si256(ql2, m4), high(2));
            q[4 * half + 2] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), high(4));
            q[4 * half + 3] =
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql2, 4), m4), high(6));
            let sc = &b[192 + 8 * half..200 + 8 * half];
            for kk in 0..4 {
                s[4 * half + kk] = _mm256_set_m128i(
                    _mm_set1_epi16(i16::from(sc[2 * kk + 1] as i8)),
                    _mm_set1_epi16(i16::from(sc[2 * kk] as i8)),
                );
            }
        }
        for i in 0..N {
            let y = &a[i * stride + k];
            let d = dw * y.d;
            let mut sumi = _mm256_setzero_si256();
            for (idx, (qk, sk)) in q.iter().zip(&s).enumerate() {
                let o = 32 * idx;
                let q8 = load32(as_u8(&y.qs[o..o + 32]));
                // (q6 - 32) * q8 = q6 * q8 - 32 * q8, keeping maddubs' unsigned operand >= 0.
                let p =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(*qk, q8), _mm256_maddubs_epi16(m32, q8));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(*sk, p));
            }
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    let mut out = [0.0f32; N];
    for i in 0..N {
        out[i] = hsum_ps(acc[i]);
    }
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
pub fn dot_f16(w: &[u8], a: &[f32]) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let (wc, ac) = (w.chunks_exact(16), a.chunks_exact(8));
    let (wr, ar) = (wc.remainder(), ac.remainder());
    for (b, x) in wc.zip(ac) {
        // SAFETY: `b` is 16 bytes (8 f16) and `x` is 8 f32, both from chunks_exact.
        let (wv, xv) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(b.as_ptr().cast())),
                _mm256_loadu_ps(x.as_ptr()),
            )
        };
        acc = _mm256_fmadd_ps(wv, xv, acc);
    }
    hsum_ps(acc) + super::scalar::dot_f16_tail(wr, ar)
}

#[inline(always)]
fn as_u8(s: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid for both.
    unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
}
