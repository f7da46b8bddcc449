//! Kernel correctness: every format, on every path this CPU has, against the reference
//! (dequantise then f32 dot), on random blocks with extreme scales; the reference itself is
//! checked against candle's own dequantisation, so the block layouts are ggml's.

use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::act::{quantize_q8_0, quantize_q8_1, quantize_q8_k, BlockQ8K, BlockQ8_0, BlockQ8_1};
use super::formats::{dequantize_row, WeightFormat, QK_K};
use super::{dispatch, matmul_group_with, KernelError, KernelPath, QuantMatrix, ThreadPool};

pub(super) const FORMATS: [WeightFormat; 7] = [
    WeightFormat::Q4_0,
    WeightFormat::Q4_1,
    WeightFormat::Q8_0,
    WeightFormat::Q4K,
    WeightFormat::Q5K,
    WeightFormat::Q6K,
    WeightFormat::F16,
];

/// Scales from f16 subnormals to near the f16 maximum, and zero.
const SCALES: [f32; 8] = [0.0, 6.0e-8, 1.0e-4, 0.01, 0.3, 1.0, 100.0, 60000.0];

pub(super) fn paths() -> Vec<KernelPath> {
    [KernelPath::Scalar, KernelPath::Avx2, KernelPath::Avx512Vnni]
        .into_iter()
        .filter(|p| p.is_supported())
        .collect()
}

fn put_f16(b: &mut [u8], at: usize, v: f32) {
    b[at..at + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

fn rand_scale(rng: &mut StdRng) -> f32 {
    let s = SCALES[rng.random_range(0..SCALES.len())];
    if rng.random_bool(0.5) {
        -s
    } else {
        s
    }
}

/// `rows` random rows of `cols` values: random quant bytes, then valid (finite) scales.
pub(super) fn random_weights(
    format: WeightFormat,
    rows: usize,
    cols: usize,
    rng: &mut StdRng,
) -> Vec<u8> {
    let mut data = vec![0u8; rows * format.row_bytes(cols)];
    rng.fill(&mut data[..]);
    for b in data.chunks_exact_mut(format.block_bytes()) {
        match format {
            WeightFormat::Q4_0 | WeightFormat::Q8_0 | WeightFormat::F16 => {
                let s = rand_scale(rng);
                put_f16(b, 0, s);
            }
            WeightFormat::Q4_1 | WeightFormat::Q4K | WeightFormat::Q5K => {
                let (d, m) = (rand_scale(rng).abs(), rand_scale(rng));
                put_f16(b, 0, d);
                put_f16(b, 2, m);
            }
            WeightFormat::Q6K => {
                let s = rand_scale(rng);
                put_f16(b, 208, s);
            }
        }
    }
    data
}

/// Activations whose magnitude changes block by block (some blocks all zero).
pub(super) fn random_acts(len: usize, rng: &mut StdRng) -> Vec<f32> {
    let mut x = vec![0.0f32; len];
    for blk in x.chunks_mut(32) {
        let mag = [0.0, 1.0e-3, 1.0, 1.0e3][rng.random_range(0..4)];
        for v in blk.iter_mut() {
            *v = rng.random_range(-1.0f32..1.0) * mag;
        }
    }
    x
}

fn dequant(format: WeightFormat, row: &[u8], cols: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; cols];
    dequantize_row(format, row, &mut w);
    w
}

/// The activations as the kernel sees them after quantisation, and the per-value bound of the
/// quantisation error (about half a step of the value's block scale).
fn quantised_view(format: WeightFormat, x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut deq = Vec::with_capacity(x.len());
    let mut err = Vec::with_capacity(x.len());
    let mut push = |d: f32, qs: &[i8]| {
        for &q in qs {
            deq.push(f32::from(q) * d);
            // Half a step, plus the f16 rounding of the stored scale (ggml's layout).
            err.push(d.abs() * 0.57);
        }
    };
    match format {
        WeightFormat::Q8_0 => {
            let mut a = vec![BlockQ8_0::default(); x.len() / 32];
            quantize_q8_0(x, &mut a);
            a.iter().for_each(|b| push(b.d, &b.qs));
        }
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
            let mut a = vec![BlockQ8_1::default(); x.len() / 32];
            quantize_q8_1(x, &mut a);
            a.iter().for_each(|b| push(b.d, &b.qs));
        }
        WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q6K => {
            let mut a = vec![BlockQ8K::default(); x.len() / QK_K];
            quantize_q8_k(x, &mut a);
            a.iter().for_each(|b| push(b.d, &b.qs));
        }
        WeightFormat::F16 => {
            deq.extend_from_slice(x);
            err.resize(x.len(), 0.0);
        }
    }
    (deq, err)
}

/// Reference value of one output, its error bound from activation quantisation, and the size
/// of the sum (for the f32 rounding allowance).
fn reference(format: WeightFormat, row: &[u8], x: &[f32]) -> (f64, f64, f64) {
    let w = dequant(format, row, x.len());
    let (xq, err) = quantised_view(format, x);
    let exact: f64 = w
        .iter()
        .zip(x)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let qbound: f64 = w
        .iter()
        .zip(&err)
        .map(|(a, e)| f64::from(a.abs() * e))
        .sum();
    let mag: f64 = w
        .iter()
        .zip(&xq)
        .map(|(a, b)| f64::from((a * b).abs()))
        .sum();
    (exact, qbound, mag)
}

fn check_matmul(format: WeightFormat, path: KernelPath, rows: usize, cols: usize, n: usize) {
    let mut rng = StdRng::seed_from_u64((rows * 1000 + cols + n) as u64);
    let data = random_weights(format, rows, cols, &mut rng);
    let x = random_acts(n * cols, &mut rng);
    let m = QuantMatrix::new(format, rows, cols, data)
        .and_then(|m| m.with_path(path))
        .expect("valid matrix");
    let mut out = vec![0.0f32; n * rows];
    m.matmul_with(&ThreadPool::new(1), &x, n, &mut out)
        .expect("shapes match");
    let rb = format.row_bytes(cols);
    for i in 0..n {
        for r in 0..rows {
            let xi = &x[i * cols..(i + 1) * cols];
            let (exact, qbound, mag) = reference(
                format,
                &m.data().expect("cpu bytes")[r * rb..(r + 1) * rb],
                xi,
            );
            let got = f64::from(out[i * rows + r]);
            let tol = qbound * 1.001 + mag * 2e-5 + 1e-30;
            assert!(
                (got - exact).abs() <= tol,
                "{format:?} {path:?} row {r} act {i}: got {got}, want {exact} +- {tol}"
            );
        }
    }
}

#[test]
fn every_format_matches_the_reference_on_every_path_for_n_1_3_8_and_odd_rows() {
    for format in FORMATS {
        let cols = if format.block_len() == QK_K { 512 } else { 96 };
        for path in paths() {
            for (rows, n) in [(1, 1), (7, 3), (13, 8), (5, 1), (33, 3), (9, 5)] {
                check_matmul(format, path, rows, cols, n);
            }
        }
    }
}

#[test]
fn dequantisation_matches_candle_for_every_format() {
    use candle_core::quantized::{GgmlDType, QStorage, QTensor};
    use candle_core::Device;
    let mut rng = StdRng::seed_from_u64(11);
    let dtypes = [
        GgmlDType::Q4_0,
        GgmlDType::Q4_1,
        GgmlDType::Q8_0,
        GgmlDType::Q4K,
        GgmlDType::Q5K,
        GgmlDType::Q6K,
        GgmlDType::F16,
    ];
    for (format, dt) in FORMATS.into_iter().zip(dtypes) {
        let (rows, cols) = (3, 512);
        let data = random_weights(format, rows, cols, &mut rng);
        let storage = QStorage::from_data(data.clone().into(), &Device::Cpu, dt).expect("storage");
        let qt = QTensor::new(storage, (rows, cols)).expect("qtensor");
        let theirs: Vec<f32> = qt
            .dequantize(&Device::Cpu)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .expect("dequantize");
        let mut ours = vec![0.0f32; rows * cols];
        for (row, out) in data
            .chunks_exact(format.row_bytes(cols))
            .zip(ours.chunks_exact_mut(cols))
        {
            dequantize_row(format, row, out);
        }
        assert_eq!(ours, theirs, "{format:?}");
        let m = QuantMatrix::from_qtensor(&qt).expect("supported");
        assert_eq!((m.format(), m.rows(), m.cols()), (format, rows, cols));
        assert_eq!(m.data().expect("cpu bytes").as_ref(), &data[..]);
        let shared = QuantMatrix::from_qtensor_arc(std::sync::Arc::new(qt)).expect("supported");
        assert_eq!(shared.data().expect("cpu bytes").as_ref(), &data[..]);
    }
}

#[test]
fn matmul_on_three_threads_equals_single_threaded() {
    let mut rng = StdRng::seed_from_u64(3);
    let pool = ThreadPool::new(3);
    for format in FORMATS {
        let (rows, cols) = (301, 512);
        let data = random_weights(format, rows, cols, &mut rng);
        let m = QuantMatrix::new(format, rows, cols, data).expect("valid matrix");
        for n in [1, 8] {
            let x = random_acts(n * cols, &mut rng);
            let mut one = vec![0.0f32; n * rows];
            let mut three = vec![1.0f32; n * rows];
            m.matmul_with(&ThreadPool::new(1), &x, n, &mut one)
                .expect("shapes match");
            for _ in 0..3 {
                m.matmul_with(&pool, &x, n, &mut three)
                    .expect("shapes match");
                assert_eq!(one, three, "{format:?} n={n}");
            }
        }
    }
}

#[test]
fn batched_rows_are_bit_identical_to_separate_single_row_calls_on_every_path() {
    let mut rng = StdRng::seed_from_u64(5);
    let (rows, cols, n) = (40, 512, 19);
    for (path, format) in paths().into_iter().flat_map(|p| FORMATS.map(|f| (p, f))) {
        let data = random_weights(format, rows, cols, &mut rng);
        let m = QuantMatrix::new(format, rows, cols, data)
            .and_then(|m| m.with_path(path))
            .expect("valid matrix");
        let x = random_acts(n * cols, &mut rng);
        let mut batched = vec![0.0f32; n * rows];
        m.matmul(&x, n, &mut batched).expect("shapes match");
        for i in 0..n {
            let mut single = vec![0.0f32; rows];
            m.matmul(&x[i * cols..(i + 1) * cols], 1, &mut single)
                .expect("shapes match");
            // Bit-identical, not just close: activation quantisation would turn any rounding
            // difference into a visible one after a few layers.
            assert_eq!(
                single,
                batched[i * rows..(i + 1) * rows],
                "{path:?} {format:?} {i}"
            );
        }
    }
}

/// Checks one q/k/v-style group: one shared input, several matrices; each output equals its
/// own `matmul`, bit for bit.
fn check_group<const N: usize>(group: [(WeightFormat, usize); N], rng: &mut StdRng) {
    let pool = ThreadPool::new(3);
    let cols = 512;
    let mats = group.map(|(f, rows)| {
        QuantMatrix::new(f, rows, cols, random_weights(f, rows, cols, rng)).expect("valid matrix")
    });
    for n in [1, 5] {
        let x = random_acts(n * cols, rng);
        let mut outs = mats.each_ref().map(|m| vec![f32::NAN; n * m.rows()]);
        let views = outs.each_mut().map(Vec::as_mut_slice);
        matmul_group_with(&pool, mats.each_ref(), &x, n, views).expect("shapes match");
        for (m, got) in mats.iter().zip(&outs) {
            let mut alone = vec![0.0f32; n * m.rows()];
            m.matmul_with(&pool, &x, n, &mut alone)
                .expect("shapes match");
            assert_eq!(&alone, got, "{:?} n={n}", m.format());
        }
    }
}

/// Same formats (input quantised once), different K-quants (one Q8_K input), and formats that
/// pair with different activation formats (run one by one).
#[test]
fn a_group_product_equals_each_matrix_alone_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(11);
    use WeightFormat::*;
    check_group([(Q4_1, 64), (Q4_1, 16), (Q4_1, 16)], &mut rng);
    check_group([(Q4K, 40), (Q6K, 24)], &mut rng);
    check_group([(Q8_0, 33), (Q4_0, 7), (F16, 5)], &mut rng);
    check_group([(F16, 9)], &mut rng);
}

#[test]
fn a_group_rejects_matrices_of_different_widths() {
    let a = QuantMatrix::new(WeightFormat::Q8_0, 1, 32, vec![0; 34]).expect("valid matrix");
    let b = QuantMatrix::new(WeightFormat::Q8_0, 1, 64, vec![0; 68]).expect("valid matrix");
    let (mut oa, mut ob) = ([0.0f32; 1], [0.0f32; 1]);
    let err = matmul_group_with(
        &ThreadPool::new(1),
        [&a, &b],
        &[0.0; 32],
        1,
        [&mut oa, &mut ob],
    )
    .expect_err("widths differ");
    assert!(matches!(err, KernelError::ShapeMismatch { cols: 64, .. }));
}

#[test]
fn rejects_mismatched_activation_and_output_lengths() {
    let m = QuantMatrix::new(WeightFormat::Q8_0, 2, 32, vec![0; 68]).expect("valid matrix");
    let mut out = vec![0.0; 2];
    let err = m.matmul(&[0.0; 31], 1, &mut out).expect_err("x too short");
    assert!(matches!(err, KernelError::ShapeMismatch { x_len: 31, .. }));
    let err = m
        .matmul(&[0.0; 32], 1, &mut [0.0; 3])
        .expect_err("out too long");
    assert!(matches!(err, KernelError::ShapeMismatch { out_len: 3, .. }));
}

#[test]
fn rejects_bad_weight_shapes_and_unsupported_formats() {
    let err = QuantMatrix::new(WeightFormat::Q4K, 1, 96, vec![]).expect_err("not 256-multiple");
    assert_eq!(
        err,
        KernelError::ColsNotBlockMultiple {
            format: WeightFormat::Q4K,
            cols: 96
        }
    );
    let err = QuantMatrix::new(WeightFormat::Q4_0, 2, 32, vec![0; 35]).expect_err("short data");
    assert_eq!(
        err,
        KernelError::DataLength {
            expected: 36,
            got: 35
        }
    );
    let qt = candle_core::quantized::QTensor::quantize(
        &candle_core::Tensor::zeros((2, 256), candle_core::DType::F32, &candle_core::Device::Cpu)
            .expect("tensor"),
        candle_core::quantized::GgmlDType::Q2K,
    )
    .expect("quantize");
    let err = QuantMatrix::from_qtensor(&qt).expect_err("no Q2K kernel");
    assert_eq!(
        err,
        KernelError::UnsupportedFormat(candle_core::quantized::GgmlDType::Q2K)
    );
}

#[test]
fn dispatch_returns_the_scalar_kernel_for_the_scalar_path() {
    let f = dispatch::q8_1_dot(WeightFormat::Q4_1, KernelPath::Scalar);
    assert!(std::ptr::fn_addr_eq(
        f,
        super::scalar::dot_q4_1 as dispatch::DotQ8_1
    ));
}
