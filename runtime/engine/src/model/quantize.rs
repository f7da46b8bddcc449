//! In-situ quantization at load (`--quantize q8_0|q4_k`): dense weights (bf16, f16 or f32, as
//! safetensors checkpoints hold them) become the GGUF block formats `deepseek_kernels` runs, so a
//! bf16 checkpoint needs about a half (Q8_0) or a quarter and a bit (Q4_K) of the memory. Blocks
//! are written here, byte for byte in the layout `deepseek_kernels::formats` documents (the tests
//! read them back through its reference dequantization), with scales rounded up so no block is ever
//! clipped (candle's own Q4_K quantizer zeroes constant positive sub-blocks, for one), and the
//! result is an ordinary `Linear`: the CPU kernels share its bytes, a GPU gets it as is.
//!
//! A row length that is not a whole number of blocks cannot take the format: Q4_K (256-value
//! blocks) falls back to Q8_0 (32), and a row that fits neither stays dense. Embedding matrices
//! stay as loaded (rows are read one at a time); an untied output layer becomes Q8_0 whatever
//! the format, since 4-bit logits cost noticeably more quality than 4-bit projections do.

use std::borrow::Cow;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use half::f16;
use rayon::prelude::*;

use deepseek_kernels::formats::{QK, QK_K};

use super::device::for_each_linear;
use super::{DecoderWeights, Linear};

/// A `--quantize` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QuantFormat {
    /// 8-bit, 32-value blocks with one f16 scale (8.5 bits per weight).
    #[value(name = "q8_0")]
    Q8_0,
    /// 4-bit, 256-value super-blocks with 6-bit sub-block scales and mins (4.5 bits per weight).
    #[value(name = "q4_k")]
    Q4K,
}

impl QuantFormat {
    pub fn ggml(self) -> GgmlDType {
        match self {
            Self::Q8_0 => GgmlDType::Q8_0,
            Self::Q4K => GgmlDType::Q4K,
        }
    }

    /// The format a row of `cols` values can take: this one, else Q8_0, else none.
    pub fn for_row_len(self, cols: usize) -> Option<GgmlDType> {
        [self.ggml(), GgmlDType::Q8_0]
            .into_iter()
            .find(|t| cols > 0 && cols.is_multiple_of(t.block_size()))
    }
}

/// Whether a weight format is dense (a candidate for quantization).
pub fn is_dense(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16)
}

/// The dense storage format a tensor of `dtype` keeps when it is not quantized.
pub fn dense_format(dtype: DType) -> GgmlDType {
    match dtype {
        DType::F16 => GgmlDType::F16,
        DType::BF16 => GgmlDType::BF16,
        _ => GgmlDType::F32,
    }
}

/// Memory of the linear layers before and after, for the load log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuantStats {
    /// Layers that were quantized.
    pub quantized: usize,
    /// Layers kept as they were (already quantized, or rows not a whole number of blocks).
    pub kept: usize,
    pub bytes_before: usize,
    pub bytes_after: usize,
}

impl QuantStats {
    pub fn add(&mut self, before: &Linear, after: &Linear) {
        if before.dtype() == after.dtype() {
            self.kept += 1;
        } else {
            self.quantized += 1;
        }
        self.bytes_before += before.weight_bytes();
        self.bytes_after += after.weight_bytes();
    }

    /// One log line with the saving.
    pub fn log(&self, format: QuantFormat) {
        let mib = |b: usize| b as f64 / (1024.0 * 1024.0);
        tracing::info!(
            format = ?format,
            quantized = self.quantized,
            kept = self.kept,
            before_mib = format!("{:.1}", mib(self.bytes_before)),
            after_mib = format!("{:.1}", mib(self.bytes_after)),
            saved_mib = format!("{:.1}", mib(self.bytes_before.saturating_sub(self.bytes_after))),
            "linear weights quantized at load"
        );
    }
}

/// Writes one block of values as block bytes.
type BlockEncoder = fn(&[f32], &mut [u8]);

/// `weight` (`[out, in]`, any float dtype) in `target` blocks (Q8_0 or Q4_K), on the CPU.
pub fn quantize_tensor(weight: &Tensor, target: GgmlDType) -> candle_core::Result<QTensor> {
    let (rows, cols) = weight.dims2()?;
    let values = weight
        .to_device(&Device::Cpu)?
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let (block_len, block_bytes, encode): (usize, usize, BlockEncoder) = match target {
        GgmlDType::Q8_0 => (QK, 34, encode_q8_0),
        GgmlDType::Q4K => (QK_K, 144, encode_q4k),
        other => candle_core::bail!("load-time quantization to {other:?} is not supported"),
    };
    if !cols.is_multiple_of(block_len) {
        candle_core::bail!("{cols} columns are not a whole number of {target:?} blocks");
    }
    let mut bytes = vec![0u8; rows * cols / block_len * block_bytes];
    bytes
        .par_chunks_mut(block_bytes)
        .zip(values.par_chunks(block_len))
        .for_each(|(dst, src)| encode(src, dst));
    let storage = QStorage::from_data(Cow::Owned(bytes), &Device::Cpu, target)?;
    QTensor::new(storage, (rows, cols))
}

/// The smallest f16 at or above `v` (>= 0), as f32: scales rounded up never clip a block.
fn f16_ceil(v: f32) -> f16 {
    let h = f16::from_f32(v);
    if h.to_f32() < v {
        f16::from_bits(h.to_bits() + 1)
    } else {
        h
    }
}

/// One Q8_0 block: f16 scale amax/127 (rounded up), 32 i8. Error <= scale / 2.
fn encode_q8_0(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = f16_ceil(amax / 127.0);
    let inv = if d.to_f32() > 0.0 {
        1.0 / d.to_f32()
    } else {
        0.0
    };
    out[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    for (o, v) in out[2..].iter_mut().zip(x) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8 as u8;
    }
}

/// One Q4_K super-block (256 values, eight sub-blocks of 32): per sub-block a 6-bit scale and
/// a 6-bit min, both relative to f16 super-block factors rounded up so that every sub-block's
/// range is covered; values are `d*sc*q - dmin*m` with q in 0..=15. Error <= (d*sc) / 2.
fn encode_q4k(x: &[f32], out: &mut [u8]) {
    let mut mneg = [0f32; 8];
    let mut hi = [0f32; 8];
    for (j, sub) in x.chunks_exact(QK).enumerate() {
        mneg[j] = -sub.iter().fold(0f32, |m, &v| m.min(v));
        hi[j] = sub.iter().fold(f32::MIN, |m, &v| m.max(v));
    }
    let dmin = f16_ceil(mneg.iter().fold(0f32, |m, &v| m.max(v)) / 63.0);
    let m: [u8; 8] = std::array::from_fn(|j| steps(mneg[j], dmin.to_f32()));
    let offset: [f32; 8] = std::array::from_fn(|j| dmin.to_f32() * f32::from(m[j]));
    let need: [f32; 8] = std::array::from_fn(|j| (hi[j] + offset[j]).max(0.0) / 15.0);
    let d = f16_ceil(need.iter().fold(0f32, |a, &v| a.max(v)) / 63.0);
    let sc: [u8; 8] = std::array::from_fn(|j| steps(need[j], d.to_f32()));
    out[..2].copy_from_slice(&d.to_bits().to_le_bytes());
    out[2..4].copy_from_slice(&dmin.to_bits().to_le_bytes());
    let scales = &mut out[4..16];
    for j in 0..4 {
        scales[j] = sc[j] | ((sc[j + 4] >> 4) << 6);
        scales[j + 4] = m[j] | ((m[j + 4] >> 4) << 6);
        scales[j + 8] = (sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4);
    }
    let q: Vec<u8> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let step = d.to_f32() * f32::from(sc[i / QK]);
            if step > 0.0 {
                ((v + offset[i / QK]) / step).round().clamp(0.0, 15.0) as u8
            } else {
                0
            }
        })
        .collect();
    for j in 0..4 {
        for l in 0..QK {
            out[16 + QK * j + l] = q[64 * j + l] | (q[64 * j + QK + l] << 4);
        }
    }
}

/// `ceil(v / unit)` in 0..=63 (0 when unit is 0).
fn steps(v: f32, unit: f32) -> u8 {
    if unit > 0.0 {
        (v / unit).ceil().clamp(0.0, 63.0) as u8
    } else {
        0
    }
}

/// `lin` with its weight in `format` (or the fallback `for_row_len` allows); a layer that is
/// already quantized, or cannot be, is returned as it is.
pub fn quantize_linear(lin: &Linear, format: QuantFormat) -> candle_core::Result<Linear> {
    quantize_linear_to(lin, format, |f| f.ggml())
}

fn quantize_linear_to(
    lin: &Linear,
    format: QuantFormat,
    choose: impl Fn(QuantFormat) -> GgmlDType,
) -> candle_core::Result<Linear> {
    if !is_dense(lin.dtype()) {
        return Ok(lin.clone());
    }
    let preferred = choose(format);
    let target = [preferred, GgmlDType::Q8_0]
        .into_iter()
        .find(|t| lin.in_dim().is_multiple_of(t.block_size()));
    let Some(target) = target else {
        return Ok(lin.clone());
    };
    let dense = lin.weight().dequantize(&Device::Cpu)?;
    let q = quantize_tensor(&dense, target)?;
    Linear::from_arc(Arc::new(q), lin.bias().map(<[f32]>::to_vec))
}

/// Quantizes every projection of a llama-family decoder, and its output layer (to Q8_0) unless
/// it is tied to the embedding. Layers are replaced one at a time, so the dense copy of only
/// one layer exists beside the quantized model at any moment.
pub fn quantize_decoder(
    mut w: DecoderWeights,
    format: QuantFormat,
) -> candle_core::Result<(DecoderWeights, QuantStats)> {
    let mut stats = QuantStats::default();
    for layer in &mut w.layers {
        for_each_linear(layer, |l| {
            let q = quantize_linear(l, format)?;
            stats.add(l, &q);
            Ok(q)
        })?;
    }
    let tied = Arc::ptr_eq(w.lm_head.weight(), &w.embed);
    if !tied {
        let q = quantize_linear_to(&w.lm_head, format, |_| GgmlDType::Q8_0)?;
        stats.add(&w.lm_head, &q);
        w.lm_head = q;
    }
    Ok((w, stats))
}

#[cfg(test)]
#[path = "quantize_tests.rs"]
mod tests;
