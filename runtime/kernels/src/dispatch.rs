//! Picks the row-dot function for a (format, path) pair once per matmul call. SIMD functions
//! need `unsafe` to call (they are `#[target_feature]`), so each gets a safe wrapper here;
//! wrappers are only reachable through a `KernelPath` that `QuantMatrix` verified on this CPU.
//! `Avx512Vnni` differs from `Avx2` only for the 32-value formats (`x86_q32::vnni`).

use super::act::{BlockQ8K, BlockQ8_0, BlockQ8_1};
use super::formats::WeightFormat;
use super::scalar;
use super::KernelPath;

pub type DotQ8_0 = fn(&[u8], &[BlockQ8_0]) -> f32;
pub type DotQ8_1 = fn(&[u8], &[BlockQ8_1]) -> f32;
pub type DotQ8K = fn(&[u8], &[BlockQ8K]) -> f32;
pub type DotF32 = fn(&[u8], &[f32]) -> f32;
/// One weight row against 4 activation rows `stride` blocks apart.
pub type Dot4<T> = fn(&[u8], &[T], usize) -> [f32; 4];

#[cfg(target_arch = "x86_64")]
mod x86w {
    use super::super::act::{BlockQ8K, BlockQ8_0, BlockQ8_1};
    use super::super::x86;
    use super::super::x86_q32::{avx2, vnni};

    // SAFETY (every wrapper): only selected for a `KernelPath` that `QuantMatrix::with_path`
    // and `KernelPath::detect` allow only when the CPU has its features (AVX2 + FMA + F16C,
    // plus AVX512VL + AVX512-VNNI for the `vnni` ones).
    macro_rules! wrap {
        ($($name:ident = $f:path: $act:ty;)*) => {$(
            pub fn $name(w: &[u8], a: &[$act]) -> f32 {
                // SAFETY: see above.
                unsafe { $f(w, a) }
            }
        )*};
    }
    wrap! {
        dot_q4_0 = avx2::dot_q4_0: BlockQ8_1;
        dot_q4_1 = avx2::dot_q4_1: BlockQ8_1;
        dot_q8_0 = avx2::dot_q8_0: BlockQ8_0;
        vnni_q4_0 = vnni::dot_q4_0: BlockQ8_1;
        vnni_q4_1 = vnni::dot_q4_1: BlockQ8_1;
        vnni_q8_0 = vnni::dot_q8_0: BlockQ8_0;
        dot_q4k = x86::dot_q4k: BlockQ8K;
        dot_q5k = x86::dot_q5k: BlockQ8K;
        dot_q6k = x86::dot_q6k: BlockQ8K;
        dot_f16 = x86::dot_f16: f32;
    }

    macro_rules! wrap4 {
        ($($name:ident = $f:path: $act:ty;)*) => {$(
            pub fn $name(w: &[u8], a: &[$act], stride: usize) -> [f32; 4] {
                // SAFETY: see above.
                unsafe { $f(w, a, stride) }
            }
        )*};
    }
    wrap4! {
        dot4_q4_0 = avx2::dot_q4_0_n::<4>: BlockQ8_1;
        dot4_q4_1 = avx2::dot_q4_1_n::<4>: BlockQ8_1;
        dot4_q8_0 = avx2::dot_q8_0_n::<4>: BlockQ8_0;
        vnni4_q4_0 = vnni::dot_q4_0_n::<4>: BlockQ8_1;
        vnni4_q4_1 = vnni::dot_q4_1_n::<4>: BlockQ8_1;
        vnni4_q8_0 = vnni::dot_q8_0_n::<4>: BlockQ8_0;
        dot4_q4k = x86::dot_q4k_n::<4>: BlockQ8K;
        dot4_q5k = x86::dot_q5k_n::<4>: BlockQ8K;
        dot4_q6k = x86::dot_q6k_n::<4>: BlockQ8K;
    }
}

#[cfg(target_arch = "x86_64")]
fn simd(path: KernelPath) -> bool {
    path != KernelPath::Scalar
}

#[cfg(target_arch = "x86_64")]
fn vnni(path: KernelPath) -> bool {
    path == KernelPath::Avx512Vnni
}

#[cfg(not(target_arch = "x86_64"))]
fn simd(_path: KernelPath) -> bool {
    false
}

/// Q8_0 weights against Q8_0 activations.
pub fn q8_0_dot(path: KernelPath) -> DotQ8_0 {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return if vnni(path) {
            x86w::vnni_q8_0
        } else {
            x86w::dot_q8_0
        };
    }
    let _ = simd(path);
    scalar::dot_q8_0
}

/// Q4_0 and Q4_1 weights against Q8_1 activations (both use the block sums).
pub fn q8_1_dot(format: WeightFormat, path: KernelPath) -> DotQ8_1 {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return match (format, vnni(path)) {
            (WeightFormat::Q4_0, true) => x86w::vnni_q4_0,
            (WeightFormat::Q4_0, false) => x86w::dot_q4_0,
            (_, true) => x86w::vnni_q4_1,
            (_, false) => x86w::dot_q4_1,
        };
    }
    let _ = simd(path);
    match format {
        WeightFormat::Q4_0 => scalar::dot_q4_0,
        _ => scalar::dot_q4_1,
    }
}

/// K-quant weights against Q8_K activations.
pub fn q8_k_dot(format: WeightFormat, path: KernelPath) -> DotQ8K {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return match format {
            WeightFormat::Q4K => x86w::dot_q4k,
            WeightFormat::Q5K => x86w::dot_q5k,
            _ => x86w::dot_q6k,
        };
    }
    let _ = simd(path);
    match format {
        WeightFormat::Q4K => scalar::dot_q4k,
        WeightFormat::Q5K => scalar::dot_q5k,
        _ => scalar::dot_q6k,
    }
}

/// f16 weights against f32 activations.
pub fn f16_dot(path: KernelPath) -> DotF32 {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return x86w::dot_f16;
    }
    let _ = simd(path);
    scalar::dot_f16
}

/// The 4-row form of `q8_0_dot`, where the path has one.
pub fn q8_0_dot4(path: KernelPath) -> Option<Dot4<BlockQ8_0>> {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return Some(if vnni(path) {
            x86w::vnni4_q8_0
        } else {
            x86w::dot4_q8_0
        });
    }
    let _ = simd(path);
    None
}

/// The 4-row form of `q8_k_dot`, where the path has one.
pub fn q8_k_dot4(format: WeightFormat, path: KernelPath) -> Option<Dot4<BlockQ8K>> {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return Some(match format {
            WeightFormat::Q4K => x86w::dot4_q4k,
            WeightFormat::Q5K => x86w::dot4_q5k,
            _ => x86w::dot4_q6k,
        });
    }
    let _ = (simd(path), format);
    None
}

/// The 4-row form of `q8_1_dot`, where the path has one.
pub fn q8_1_dot4(format: WeightFormat, path: KernelPath) -> Option<Dot4<BlockQ8_1>> {
    #[cfg(target_arch = "x86_64")]
    if simd(path) {
        return Some(match (format, vnni(path)) {
            (WeightFormat::Q4_0, true) => x86w::vnni4_q4_0,
            (WeightFormat::Q4_0, false) => x86w::dot4_q4_0,
            (_, true) => x86w::vnni4_q4_1,
            (_, false) => x86w::dot4_q4_1,
        });
    }
    let _ = (simd(path), format);
    None
}
