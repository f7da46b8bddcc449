//! Causal attention of one query head over one sequence's KV cache, in f32: the scores
//! `q . k_j`, a softmax, and the weighted sum of `v_j`. The vector work runs 8 lanes wide on
//! AVX2 CPUs and in portable Rust elsewhere, one loop body compiled for both (`attend::<V>`);
//! both round identically (no FMA, the same summation order), so greedy outputs do not depend
//! on the CPU or on this module's optimisations. Positions go 4 at a time, so the SIMD form
//! runs 4 independent dependency chains and sums lanes with vector adds after a transpose.
//!
//! Tried and dropped: one task per GQA group (each key read once for all its query heads).
//! SmolLM2 has 3 KV heads, so 3 tasks per sequence on 2 threads balanced badly, and decode got
//! slower even at 1024 cached positions (65 vs 75-79 tok/s in-process): the cache reads are
//! not the bottleneck here.

use super::KernelPath;

/// Where one head's data lies in the row-major buffers of one sequence.
#[derive(Debug, Clone, Copy)]
pub struct HeadLayout {
    pub head_dim: usize,
    /// Floats per row of `q` (`n_heads * head_dim`).
    pub q_stride: usize,
    /// Floats per cached position (`n_kv_heads * head_dim`).
    pub kv_stride: usize,
}

/// Causal attention of query head `q_head` (reading KV head `kv_head`) for one sequence.
/// `q: [t][q_stride]` holds the sequence's new rows; `keys`/`values: [base + t][kv_stride]` hold
/// its whole history including the new rows, so new row `i` sees positions `0..=base + i`.
/// Returns `[t][head_dim]`.
pub fn attend_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    layout: HeadLayout,
    q_head: usize,
    kv_head: usize,
) -> Vec<f32> {
    attend_head_on(
        KernelPath::detect(),
        q,
        keys,
        values,
        layout,
        q_head,
        kv_head,
    )
}

/// As `attend_head`, on a chosen path (tests compare them); an unsupported path falls back to
/// the portable one.
pub fn attend_head_on(
    path: KernelPath,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    layout: HeadLayout,
    q_head: usize,
    kv_head: usize,
) -> Vec<f32> {
    let args = (q, keys, values, layout, q_head, kv_head);
    #[cfg(target_arch = "x86_64")]
    if path != KernelPath::Scalar && path.is_supported() {
        // SAFETY: AVX2 and FMA were verified on this CPU just above (every non-scalar path
        // includes them).
        return unsafe { x86::attend_avx2(args) };
    }
    let _ = path;
    attend::<Portable>(args)
}

type Args<'a> = (&'a [f32], &'a [f32], &'a [f32], HeadLayout, usize, usize);

/// The vector primitives attention needs. The 4-wide forms must round exactly as 4 calls of
/// the 1-wide ones in order (they exist so SIMD code can interleave 4 dependency chains).
trait F32Ops {
    fn dot(a: &[f32], b: &[f32]) -> f32;
    /// `acc += w * v`
    fn axpy(acc: &mut [f32], w: f32, v: &[f32]);

    #[inline(always)]
    fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        b.map(|b| Self::dot(a, b))
    }

    /// `acc += w[0] * v[0]; ...; acc += w[3] * v[3]`
    #[inline(always)]
    fn axpy4(acc: &mut [f32], w: [f32; 4], v: [&[f32]; 4]) {
        for (w, v) in w.into_iter().zip(v) {
            Self::axpy(acc, w, v);
        }
    }
}

struct Portable;

impl F32Ops for Portable {
    #[inline(always)]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        crate::vector::dot(a, b)
    }

    #[inline(always)]
    fn axpy(acc: &mut [f32], w: f32, v: &[f32]) {
        acc.iter_mut().zip(v).for_each(|(a, x)| *a += w * x);
    }
}

#[inline(always)]
fn attend<V: F32Ops>((q, keys, values, layout, q_head, kv_head): Args<'_>) -> Vec<f32> {
    let hd = layout.head_dim;
    let t = q.len() / layout.q_stride;
    let base = keys.len() / layout.kv_stride - t;
    let scale = 1.0 / (hd as f32).sqrt();
    let key = |j: usize| &keys[j * layout.kv_stride + kv_head * hd..][..hd];
    let value = |j: usize| &values[j * layout.kv_stride + kv_head * hd..][..hd];
    let mut out = vec![0.0; t * hd];
    let mut scores = Vec::with_capacity(base + t);
    for i in 0..t {
        let qi = &q[i * layout.q_stride + q_head * hd..][..hd];
        let n_keys = base + i + 1;
        scores.clear();
        let mut j = 0;
        while j + 4 <= n_keys {
            let s = V::dot4(qi, [key(j), key(j + 1), key(j + 2), key(j + 3)]);
            scores.extend(s.map(|s| s * scale));
            j += 4;
        }
        for j in j..n_keys {
            scores.push(V::dot(qi, key(j)) * scale);
        }
        crate::vector::softmax_in_place(&mut scores);
        let oi = &mut out[i * hd..(i + 1) * hd];
        let mut j = 0;
        while j + 4 <= n_keys {
            let w = [scores[j], scores[j + 1], scores[j + 2], scores[j + 3]];
            V::axpy4(oi, w, [value(j), value(j + 1), value(j + 2), value(j + 3)]);
            j += 4;
        }
        for (j, &w) in scores.iter().enumerate().skip(j) {
            V::axpy(oi, w, value(j));
        }
    }
    out
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{attend, Args, F32Ops};

    pub(super) struct Avx2Fma;

    impl F32Ops for Avx2Fma {
        #[inline(always)]
        fn dot(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: `Avx2Fma` is private to this module and only used inside `attend_avx2`,
            // which runs after AVX2 + FMA were verified.
            unsafe { dot(a, b) }
        }

        #[inline(always)]
        fn axpy(acc: &mut [f32], w: f32, v: &[f32]) {
            // SAFETY: as for `dot`.
            unsafe { axpy(acc, w, v) }
        }

        #[inline(always)]
        fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
            // SAFETY: as for `dot`.
            unsafe { dot4(a, b) }
        }

        #[inline(always)]
        fn axpy4(acc: &mut [f32], w: [f32; 4], v: [&[f32]; 4]) {
            // SAFETY: as for `dot`.
            unsafe { axpy4(acc, w, v) }
        }
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn attend_avx2(args: Args<'_>) -> Vec<f32> {
        attend::<Avx2Fma>(args)
    }

    /// The portable `dot` 8 lanes at a time: lane `j` sums `a[8c + j] * b[8c + j]` with a
    /// separate multiply and add (no FMA), then the lanes are added in order and the tail
    /// last, so the result is bit-identical to the portable path and greedy outputs do not
    /// depend on which path ran.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm256_setzero_ps();
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` keeps both 8-float loads in bounds.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_ps(a.as_ptr().add(i)),
                    _mm256_loadu_ps(b.as_ptr().add(i)),
                )
            };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(va, vb));
            i += 8;
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds exactly 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        lanes.iter().sum::<f32>() + tail
    }

    /// Four `dot`s with their chains interleaved (each rounds exactly as `dot`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot4(a: &[f32], b: [&[f32]; 4]) -> [f32; 4] {
        let n = b.iter().fold(a.len(), |n, b| n.min(b.len()));
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` keeps every 8-float load in bounds.
            let va = unsafe { _mm256_loadu_ps(a.as_ptr().add(i)) };
            for (acc, b) in acc.iter_mut().zip(b) {
                let vb = unsafe { _mm256_loadu_ps(b.as_ptr().add(i)) };
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(va, vb));
            }
            i += 8;
        }
        // Transpose so that `l[j]` holds lane `j` of the 4 accumulators; adding l[0], l[1],
        // ..., l[7] in order is, per position, exactly the portable sequential lane sum.
        let t0 = _mm256_unpacklo_ps(acc[0], acc[1]);
        let t1 = _mm256_unpackhi_ps(acc[0], acc[1]);
        let t2 = _mm256_unpacklo_ps(acc[2], acc[3]);
        let t3 = _mm256_unpackhi_ps(acc[2], acc[3]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2); // lanes 0 | 4
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2); // lanes 1 | 5
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3); // lanes 2 | 6
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3); // lanes 3 | 7
        let lo = _mm256_castps256_ps128;
        let hi = |v| _mm256_extractf128_ps::<1>(v);
        let l = [
            lo(u0),
            lo(u1),
            lo(u2),
            lo(u3),
            hi(u0),
            hi(u1),
            hi(u2),
            hi(u3),
        ];
        let sum = l[1..].iter().fold(l[0], |s, &v| _mm_add_ps(s, v));
        let mut out = [0.0f32; 4];
        // SAFETY: `out` holds exactly 4 floats.
        unsafe { _mm_storeu_ps(out.as_mut_ptr(), sum) };
        if i < n {
            for (o, b) in out.iter_mut().zip(b) {
                *o += a[i..n]
                    .iter()
                    .zip(&b[i..n])
                    .map(|(x, y)| x * y)
                    .sum::<f32>();
            }
        } else {
            // The portable form adds an empty tail, `-0.0` or `0.0`: `x + 0.0` differs from
            // `x` only for `x == -0.0`, which the softmax cannot tell from `0.0`.
            out.iter_mut().for_each(|o| *o += 0.0);
        }
        out
    }

    /// Four `axpy`s in order, each 8-float chunk of `acc` loaded and stored once.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn axpy4(acc: &mut [f32], w: [f32; 4], v: [&[f32]; 4]) {
        let n = v.iter().fold(acc.len(), |n, v| n.min(v.len()));
        let wv = w.map(|w| _mm256_set1_ps(w));
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` keeps every 8-float access in bounds.
            unsafe {
                let pa = acc.as_mut_ptr().add(i);
                let mut r = _mm256_loadu_ps(pa);
                for (wv, v) in wv.iter().zip(v) {
                    r = _mm256_add_ps(r, _mm256_mul_ps(*wv, _mm256_loadu_ps(v.as_ptr().add(i))));
                }
                _mm256_storeu_ps(pa, r);
            }
            i += 8;
        }
        for k in i..n {
            for (w, v) in w.iter().zip(v) {
                acc[k] += w * v[k];
            }
        }
    }

    /// `acc += w * v` with a separate multiply and add, as the portable form rounds.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    fn axpy(acc: &mut [f32], w: f32, v: &[f32]) {
        let n = acc.len().min(v.len());
        let wv = _mm256_set1_ps(w);
        let mut i = 0;
        while i + 8 <= n {
            // SAFETY: `i + 8 <= n` keeps both 8-float accesses in bounds.
            unsafe {
                let pa = acc.as_mut_ptr().add(i);
                let prod = _mm256_mul_ps(wv, _mm256_loadu_ps(v.as_ptr().add(i)));
                _mm256_storeu_ps(pa, _mm256_add_ps(_mm256_loadu_ps(pa), prod));
            }
            i += 8;
        }
        for k in i..n {
            acc[k] += w * v[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 2003) as f32 / 1001.5 - 1.0) * 2.0)
            .collect()
    }

    #[test]
    fn a_single_cached_position_returns_its_value_exactly() {
        let layout = HeadLayout {
            head_dim: 2,
            q_stride: 2,
            kv_stride: 2,
        };
        for path in [KernelPath::Scalar, KernelPath::detect()] {
            let out = attend_head_on(path, &[1.0, 0.0], &[0.5, 0.5], &[3.0, -1.0], layout, 0, 0);
            assert_eq!(out, vec![3.0, -1.0]);
        }
    }

    /// Bit for bit: greedy outputs must not depend on the path. Odd head sizes exercise the
    /// tails; GQA offsets exercise the strides.
    #[test]
    fn the_simd_path_equals_the_portable_one_bit_for_bit() {
        for head_dim in [64, 128, 13, 8] {
            let (n_heads, n_kv) = (6, 2);
            let layout = HeadLayout {
                head_dim,
                q_stride: n_heads * head_dim,
                kv_stride: n_kv * head_dim,
            };
            let (t, history) = (3, 40);
            let q = data(t * layout.q_stride, 1);
            let k = data(history * layout.kv_stride, 2);
            let v = data(history * layout.kv_stride, 3);
            for head in 0..n_heads {
                let kv = head / (n_heads / n_kv);
                let want = attend_head_on(KernelPath::Scalar, &q, &k, &v, layout, head, kv);
                let got = attend_head(&q, &k, &v, layout, head, kv);
                assert_eq!(got, want, "head_dim {head_dim} head {head}");
            }
        }
    }
}
