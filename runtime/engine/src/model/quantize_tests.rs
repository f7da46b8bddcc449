//! Round-trip error bounds of load-time quantization, read back through the kernels' own
//! reference dequantization (so the bytes are checked to be the layout our kernels expect), and
//! quantized layers against the dense product.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use deepseek_kernels::{dequantize_row, WeightFormat};

fn random_rows(rows: usize, cols: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..rows * cols)
        .map(|_| rng.random_range(-1.0f32..1.0) * scale)
        .collect()
}

/// Quantizes `rows x cols` values to `format` and reads them back with `deepseek_kernels::formats`.
fn round_trip(values: &[f32], rows: usize, cols: usize, format: QuantFormat) -> Vec<f32> {
    let t = Tensor::from_slice(values, (rows, cols), &Device::Cpu).expect("tensor");
    let q = quantize_tensor(&t, format.ggml()).expect("quantizes");
    let kernel_format = match format {
        QuantFormat::Q8_0 => WeightFormat::Q8_0,
        QuantFormat::Q4K => WeightFormat::Q4K,
    };
    let bytes = q.data().expect("bytes");
    assert_eq!(
        bytes.len(),
        rows * kernel_format.row_bytes(cols),
        "layout size"
    );
    let mut out = vec![0f32; rows * cols];
    let row_bytes = kernel_format.row_bytes(cols);
    for (r, dst) in out.chunks_exact_mut(cols).enumerate() {
        dequantize_row(
            kernel_format,
            &bytes[r * row_bytes..(r + 1) * row_bytes],
            dst,
        );
    }
    out
}

/// Worst error of each block over its bound; fails with the block's details when above 1.
fn check_blocks(values: &[f32], got: &[f32], block: usize, bound: impl Fn(&[f32]) -> f32) {
    for (i, (x, y)) in values.chunks(block).zip(got.chunks(block)).enumerate() {
        let limit = bound(x);
        let worst = x
            .iter()
            .zip(y)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst <= limit,
            "block {i}: error {worst} above {limit} ({x:?} -> {y:?})"
        );
    }
}

fn amax(x: &[f32]) -> f32 {
    x.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Q8_0: half a step of amax/127, plus the scale's f16 rounding (relative 2^-11) over 127 steps.
fn q8_bound(x: &[f32]) -> f32 {
    let d = amax(x) / 127.0;
    0.5 * d + amax(x) * 2f32.powi(-10) + 1e-7
}

/// Q4_K: one step of the block-wide range over 15 levels (sub-block scales and mins are
/// themselves 6-bit, so half a step is not guaranteed), plus f16 rounding of the scales.
fn q4k_bound(x: &[f32]) -> f32 {
    let (lo, hi) = x
        .iter()
        .fold((0f32, 0f32), |(l, h), &v| (l.min(v), h.max(v)));
    (hi - lo) / 15.0 + amax(x) * 2f32.powi(-9) + 1e-7
}

fn extreme_rows(cols: usize) -> Vec<Vec<f32>> {
    let mut outlier = vec![0.01f32; cols];
    outlier[7] = 1000.0;
    vec![
        vec![0.0; cols],
        vec![3.0; cols],
        vec![-2.5; cols],
        (0..cols)
            .map(|i| if i % 2 == 0 { 60000.0 } else { -60000.0 })
            .collect(),
        (0..cols).map(|i| (i as f32 - 100.0) * 1e-6).collect(),
        outlier,
        (0..cols).map(|i| i as f32).collect(),
    ]
}

#[test]
fn q8_0_round_trip_stays_within_half_a_step_per_block_for_random_rows() {
    let (rows, cols) = (8, 512);
    for (seed, scale) in [(1, 1.0), (2, 0.02), (3, 40.0)] {
        let x = random_rows(rows, cols, seed, scale);
        let y = round_trip(&x, rows, cols, QuantFormat::Q8_0);
        check_blocks(&x, &y, 32, q8_bound);
    }
}

#[test]
fn q4_k_round_trip_stays_within_one_step_per_block_for_random_rows() {
    let (rows, cols) = (8, 512);
    for (seed, scale) in [(4, 1.0), (5, 0.02), (6, 40.0)] {
        let x = random_rows(rows, cols, seed, scale);
        let y = round_trip(&x, rows, cols, QuantFormat::Q4K);
        check_blocks(&x, &y, 256, q4k_bound);
    }
}

#[test]
fn extreme_rows_round_trip_within_their_bounds() {
    let cols = 256;
    for row in extreme_rows(cols) {
        let y8 = round_trip(&row, 1, cols, QuantFormat::Q8_0);
        check_blocks(&row, &y8, 32, q8_bound);
        let y4 = round_trip(&row, 1, cols, QuantFormat::Q4K);
        check_blocks(&row, &y4, 256, q4k_bound);
    }
}

#[test]
fn a_zero_row_stays_exactly_zero() {
    let zeros = vec![0f32; 256];
    for f in [QuantFormat::Q8_0, QuantFormat::Q4K] {
        assert!(
            round_trip(&zeros, 1, 256, f).iter().all(|&v| v == 0.0),
            "{f:?}"
        );
    }
}

/// ||a - b|| / ||b||.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    let num: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f32 = b.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

fn dense_product(w: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
    (0..n * m)
        .map(|i| {
            (0..k)
                .map(|j| x[(i / m) * k + j] * w[(i % m) * k + j])
                .sum()
        })
        .collect()
}

#[test]
fn a_quantized_linear_matches_the_dense_product_within_tolerance() -> candle_core::Result<()> {
    let (n, k, m) = (3, 512, 48);
    let w = random_rows(m, k, 7, 0.05);
    let x = random_rows(n, k, 8, 1.0);
    let want = dense_product(&w, &x, n, k, m);
    let wt = Tensor::from_slice(&w, (m, k), &Device::Cpu)?.to_dtype(DType::BF16)?;
    for (format, tolerance) in [(QuantFormat::Q8_0, 0.01), (QuantFormat::Q4K, 0.1)] {
        let lin = Linear::from_dense_quantized(&wt, None, format)?;
        assert_eq!(lin.dtype(), format.ggml());
        let got = lin.forward(&x, n)?;
        let err = relative_error(&got, &want);
        assert!(err < tolerance, "{format:?}: relative error {err}");
    }
    Ok(())
}

#[test]
fn rows_that_are_not_whole_blocks_fall_back_to_q8_0_or_stay_dense() -> candle_core::Result<()> {
    let w96 = Tensor::from_slice(&random_rows(4, 96, 9, 1.0), (4, 96), &Device::Cpu)?;
    let lin = Linear::from_dense_quantized(&w96, None, QuantFormat::Q4K)?;
    assert_eq!(lin.dtype(), GgmlDType::Q8_0);
    let w20 = Tensor::from_slice(&random_rows(4, 20, 10, 1.0), (4, 20), &Device::Cpu)?;
    let lin = Linear::from_dense_quantized(&w20.to_dtype(DType::F16)?, None, QuantFormat::Q8_0)?;
    assert_eq!(lin.dtype(), GgmlDType::F16);
    Ok(())
}

#[test]
fn quantizing_a_dense_layer_shrinks_it_and_keeps_the_bias() -> candle_core::Result<()> {
    let (m, k) = (64, 256);
    let w = Tensor::from_slice(&random_rows(m, k, 11, 1.0), (m, k), &Device::Cpu)?;
    let bias: Vec<f32> = (0..m).map(|i| i as f32).collect();
    let dense = Linear::new(QTensor::quantize(&w, GgmlDType::F32)?, Some(bias.clone()))?;
    let mut stats = QuantStats::default();
    for format in [QuantFormat::Q8_0, QuantFormat::Q4K] {
        let q = quantize_linear(&dense, format)?;
        stats.add(&dense, &q);
        assert_eq!(q.bias(), Some(bias.as_slice()));
        assert_eq!(q.uses_cpu_kernels(), deepseek_kernels::fast_path_enabled());
    }
    assert_eq!(stats.quantized, 2);
    assert_eq!(stats.bytes_before, 2 * m * k * 4);
    assert_eq!(stats.bytes_after, m * (k / 32) * 34 + m * (k / 256) * 144);
    let again = quantize_linear(
        &quantize_linear(&dense, QuantFormat::Q8_0)?,
        QuantFormat::Q4K,
    )?;
    assert_eq!(
        again.dtype(),
        GgmlDType::Q8_0,
        "an already quantized layer is kept"
    );
    Ok(())
}
