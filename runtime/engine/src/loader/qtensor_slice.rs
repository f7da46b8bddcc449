//! Pieces of a GGML tensor without dequantizing it: the matrices of a 3-D tensor (one per
//! expert in `ffn_*_exps`, one per head in `attn_k_b` / `attn_v_b`) and row ranges of a matrix
//! (gate and up halves of a fused `ffn_gate_up_exps`, per-head rows of `attn_kv_b`).
//! A row of a GGML tensor is a whole number of blocks, so both are plain byte ranges and the
//! pieces keep the file's block format, bit for bit.

use std::borrow::Cow;
use std::ops::Range;

use candle_core::quantized::{QStorage, QTensor};
use candle_core::Device;

/// Bytes one row of `t` takes (its innermost dimension, in blocks).
fn row_bytes(t: &QTensor) -> candle_core::Result<usize> {
    let cols = *t.shape().dims().last().unwrap_or(&0);
    let dtype = t.dtype();
    if !cols.is_multiple_of(dtype.block_size()) {
        candle_core::bail!(
            "rows of {cols} values are not whole {dtype:?} blocks of {}",
            dtype.block_size()
        );
    }
    Ok(cols / dtype.block_size() * dtype.type_size())
}

fn from_bytes(t: &QTensor, bytes: &[u8], rows: usize, cols: usize) -> candle_core::Result<QTensor> {
    let storage = QStorage::from_data(Cow::Owned(bytes.to_vec()), &Device::Cpu, t.dtype())?;
    QTensor::new(storage, (rows, cols))
}

/// The matrices `[d1, d2]` of a `[d0, d1, d2]` tensor, in order.
pub fn matrices(t: &QTensor) -> candle_core::Result<Vec<QTensor>> {
    let (n, rows, cols) = t.shape().dims3()?;
    let per = rows * row_bytes(t)?;
    let data = t.data()?;
    (0..n)
        .map(|i| from_bytes(t, &data[i * per..(i + 1) * per], rows, cols))
        .collect()
}

/// Rows `range` of a matrix `[rows, cols]`.
pub fn rows(t: &QTensor, range: Range<usize>) -> candle_core::Result<QTensor> {
    let (n, cols) = t.shape().dims2()?;
    if range.end > n || range.start > range.end {
        candle_core::bail!("rows {range:?} of a matrix with {n} rows");
    }
    let rb = row_bytes(t)?;
    let data = t.data()?;
    from_bytes(
        t,
        &data[range.start * rb..range.end * rb],
        range.len(),
        cols,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::GgmlDType;
    use candle_core::Tensor;

    fn values(t: &QTensor) -> Vec<f32> {
        t.dequantize(&Device::Cpu)
            .and_then(|d| d.flatten_all())
            .and_then(|d| d.to_vec1())
            .expect("dequantize")
    }

    #[test]
    fn matrices_of_a_quantized_3d_tensor_are_its_slices_bit_for_bit() {
        let data: Vec<f32> = (0..3 * 2 * 64).map(|i| (i as f32 * 0.37).sin()).collect();
        let dense = Tensor::from_vec(data, (3, 2, 64), &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&dense, GgmlDType::Q8_0).expect("quantize");
        let all = values(&q);
        let parts = matrices(&q).expect("split");
        assert_eq!(parts.len(), 3);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.shape().dims(), &[2, 64]);
            assert_eq!(values(p), all[i * 128..(i + 1) * 128].to_vec());
        }
    }

    #[test]
    fn a_row_range_keeps_exactly_those_rows() {
        let data: Vec<f32> = (0..4 * 32).map(|i| i as f32).collect();
        let dense = Tensor::from_vec(data.clone(), (4, 32), &Device::Cpu).expect("tensor");
        let q = QTensor::quantize(&dense, GgmlDType::F32).expect("f32");
        let mid = rows(&q, 1..3).expect("rows");
        assert_eq!(mid.shape().dims(), &[2, 32]);
        assert_eq!(values(&mid), data[32..96].to_vec());
        assert!(rows(&q, 3..5).is_err());
    }
}
