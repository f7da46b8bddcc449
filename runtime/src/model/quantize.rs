//! In-situ quantization at load (`--quantize q8_0|q4_k`): dense weights (bf16, f16 or f32, as
//! safetensors checkpoints hold them) become the GGUF block formats `crate::kernels` runs, so a
//! bf16 checkpoint needs about a half (Q8_0) or a quarter and a bit (Q4_K) of the memory. Blocks
//! are produced by candle's ggml-compatible quantizer, byte for byte the layout
//! `kernels::formats` documents (the tests check it through our own reference dequantization),
//! and the result is an ordinary `Linear`: the CPU kernels share its bytes, a GPU gets it as is.
//!
//! A row length that is not a whole number of blocks cannot take the format: Q4_K (256-value
//! blocks) falls back to Q8_0 (32), and a row that fits neither stays dense. Embedding matrices
//! stay as loaded (rows are read one at a time); an untied output layer becomes Q8_0 whatever
//! the format, since 4-bit logits cost noticeably more quality than 4-bit projections do.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};

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
            .find(|t| cols > 0 && cols % t.block_size() == 0)
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

/// `weight` (`[out, in]`, any float dtype, on the CPU) in `target` blocks.
pub fn quantize_tensor(weight: &Tensor, target: GgmlDType) -> candle_core::Result<QTensor> {
    let w = weight.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
    QTensor::quantize(&w, target)
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
        .find(|t| lin.in_dim() % t.block_size() == 0);
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
