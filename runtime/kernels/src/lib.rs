//! deepseek-kernels: the CPU arithmetic under the models. Is: GGUF block formats, SIMD and
//! portable row-dot kernels, CPU attention of one head, small vector ops, the compute pool.
//! Is NOT: any model, tensor layout of an architecture, or loader; `deepseek-engine` builds
//! the models on top and this crate never imports from it.
//!
//! CPU linear-layer kernels for GGUF block formats (SIMD with runtime detection + portable
//! fallback). The model's linear layers (`deepseek_engine::model::linear`) call into this crate on CPU.
//!
//! - `formats`: block layouts and reference dequantisation;
//! - `act`: activation quantisation (Q8_0 / Q8_1 / Q8_K), once per matmul call;
//! - `scalar`, `x86`, `x86_q32`: row-dot kernels (portable, AVX2, AVX-512 VNNI), chosen by
//!   `dispatch`;
//! - `matrix`: `QuantMatrix::matmul`; `pool`: the parking thread pool it runs on;
//! - `attention`: one head over its KV rows; `vector`: dot product and softmax on f32 rows.

pub mod act;
pub mod attention;
mod dispatch;
pub mod formats;
pub mod matrix;
pub mod pool;
pub mod scalar;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_exact;
pub mod vector;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_q32;

pub use formats::{dequantize_row, WeightFormat};
pub use matrix::{format_of, matmul_group, matmul_group_with, QuantMatrix};
pub use pool::{Executor, ThreadPool};

use std::sync::OnceLock;

use candle_core::quantized::GgmlDType;

/// Whether model layers should use these kernels: yes unless `DEEPSEEK_CPU_KERNELS=stock`
/// (read once), which keeps candle's own matmul for before/after comparisons.
pub fn fast_path_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("DEEPSEEK_CPU_KERNELS").map_or(true, |v| v != "stock"))
}

/// Which implementation of the row-dot kernels runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// Portable Rust, correct on every target.
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// `Avx2` plus AVX512VL + AVX512-VNNI byte dots for the 32-value formats.
    Avx512Vnni,
}

impl KernelPath {
    /// The path to use on this CPU (decided once): `DEEPSEEK_CPU_PATH=scalar|avx2|avx512vnni`
    /// when set and supported, else `Avx2` where supported. `Avx512Vnni` is never chosen
    /// automatically: on an AVX-512 Zen 4 its 256-bit `vpdpbusd` made Q4_1 products 35%
    /// slower than AVX2's `maddubs` + `madd` (criterion `matmul_Q4_1`, 26.0 vs 35.8 us).
    pub fn detect() -> Self {
        static PATH: OnceLock<KernelPath> = OnceLock::new();
        *PATH.get_or_init(|| {
            let forced = std::env::var("DEEPSEEK_CPU_PATH")
                .ok()
                .and_then(|v| match v.as_str() {
                    "scalar" => Some(Self::Scalar),
                    "avx2" => Some(Self::Avx2),
                    "avx512vnni" => Some(Self::Avx512Vnni),
                    _ => None,
                });
            forced
                .into_iter()
                .chain([Self::Avx2])
                .find(|p| p.is_supported())
                .unwrap_or(Self::Scalar)
        })
    }

    /// Whether this CPU can run the path.
    pub fn is_supported(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => {
                Self::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Self::Avx2 | Self::Avx512Vnni => false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum KernelError {
    #[error("weight format {0:?} has no CPU kernel")]
    UnsupportedFormat(GgmlDType),
    #[error("{cols} columns is not a whole number of {format:?} blocks")]
    ColsNotBlockMultiple { format: WeightFormat, cols: usize },
    #[error("weight data is {got} bytes, expected {expected}")]
    DataLength { expected: usize, got: usize },
    #[error("kernel path {0:?} is not supported by this CPU")]
    PathUnavailable(KernelPath),
    #[error("matmul of {rows}x{cols} weights with n={n}: x has {x_len} values, out has {out_len}")]
    ShapeMismatch {
        rows: usize,
        cols: usize,
        n: usize,
        x_len: usize,
        out_len: usize,
    },
    #[error("weights must be in CPU memory")]
    NotOnCpu,
    #[error("candle: {0}")]
    Candle(String),
}
