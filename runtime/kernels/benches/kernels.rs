//! Kernel micro-benchmarks: `QuantMatrix::matmul` for each GGUF format at SmolLM2-135M and
//! 7B (llama-style) shapes, n = 1 (decode) and 8 (batched decode), reported as GB/s of weights
//! streamed; candle's stock `QMatMul` at a few of the same shapes; and the machine's memory
//! read bandwidth, the ceiling a memory-bound n = 1 product can reach.
//! `KERNEL_BENCH_THREADS` sets the pool size (default 2, this project's CI machine).

use std::hint::black_box;
use std::time::Duration;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{Device, Module, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deepseek_kernels::{Executor, KernelPath, QuantMatrix, ThreadPool, WeightFormat};

/// (rows = out features, cols = in features, label)
const SHAPES: [(usize, usize, &str); 6] = [
    (576, 576, "smol_576x576"),
    (1536, 576, "smol_576to1536"),
    (576, 1536, "smol_1536to576"),
    (49152, 576, "smol_576to49152"),
    (4096, 4096, "7b_4096x4096"),
    (11008, 4096, "7b_4096to11008"),
];

const FORMATS: [(WeightFormat, GgmlDType); 7] = [
    (WeightFormat::Q4_0, GgmlDType::Q4_0),
    (WeightFormat::Q4_1, GgmlDType::Q4_1),
    (WeightFormat::Q8_0, GgmlDType::Q8_0),
    (WeightFormat::Q4K, GgmlDType::Q4K),
    (WeightFormat::Q5K, GgmlDType::Q5K),
    (WeightFormat::Q6K, GgmlDType::Q6K),
    (WeightFormat::F16, GgmlDType::F16),
];

fn threads() -> usize {
    std::env::var("KERNEL_BENCH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Pseudo-random block bytes with small finite f16 scales (a xorshift keeps setup fast).
fn weights(format: WeightFormat, rows: usize, cols: usize) -> Vec<u8> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut data: Vec<u8> = (0..rows * format.row_bytes(cols))
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect();
    let scale = half::f16::from_f32(0.01).to_le_bytes();
    for b in data.chunks_exact_mut(format.block_bytes()) {
        let at = match format {
            WeightFormat::Q6K => 208,
            _ => 0,
        };
        b[at..at + 2].copy_from_slice(&scale);
        if matches!(
            format,
            WeightFormat::Q4_1 | WeightFormat::Q4K | WeightFormat::Q5K
        ) {
            b[2..4].copy_from_slice(&scale);
        }
    }
    data
}

fn bench_formats(c: &mut Criterion) {
    let pool = ThreadPool::new(threads());
    for (format, _) in FORMATS {
        let mut g = c.benchmark_group(format!("matmul_{format:?}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(800));
        for (rows, cols, label) in SHAPES {
            if cols % format.block_len() != 0 {
                continue; // K-quants need 256-multiples; GGUF files use another format there.
            }
            let m = match QuantMatrix::new(format, rows, cols, weights(format, rows, cols)) {
                Ok(m) => m,
                Err(e) => panic!("bench matrix: {e}"),
            };
            g.throughput(Throughput::Bytes(m.weight_bytes() as u64));
            for n in [1usize, 8] {
                let x: Vec<f32> = (0..n * cols)
                    .map(|i| ((i % 97) as f32 - 48.0) / 50.0)
                    .collect();
                let mut out = vec![0.0f32; n * rows];
                g.bench_with_input(BenchmarkId::new(label, format!("n{n}")), &n, |b, &n| {
                    b.iter(|| m.matmul_with(&pool, black_box(&x), n, &mut out))
                });
            }
        }
        g.finish();
    }
}

/// Our kernels (SIMD and scalar) against candle's stock QMatMul on the same bytes.
fn bench_vs_candle(c: &mut Criterion) {
    let pool = ThreadPool::new(threads());
    let mut g = c.benchmark_group("vs_candle");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(800));
    for (format, dt) in [FORMATS[1], FORMATS[0], FORMATS[2]] {
        let (rows, cols) = (1536, 576);
        let data = weights(format, rows, cols);
        let ours = match QuantMatrix::new(format, rows, cols, data.clone()) {
            Ok(m) => m,
            Err(e) => panic!("bench matrix: {e}"),
        };
        let scalar = ours.clone().with_path(KernelPath::Scalar);
        let qt = QStorage::from_data(data.into(), &Device::Cpu, dt)
            .and_then(|s| QTensor::new(s, (rows, cols)))
            .and_then(QMatMul::from_qtensor);
        let (Ok(scalar), Ok(qmm)) = (scalar, qt) else {
            panic!("bench setup failed")
        };
        g.throughput(Throughput::Bytes(ours.weight_bytes() as u64));
        for n in [1usize, 8] {
            let x: Vec<f32> = (0..n * cols)
                .map(|i| ((i % 89) as f32 - 44.0) / 50.0)
                .collect();
            let xt = Tensor::from_vec(x.clone(), (n, cols), &Device::Cpu);
            let Ok(xt) = xt else { panic!("tensor") };
            let mut out = vec![0.0f32; n * rows];
            let id = |who: &str| BenchmarkId::new(format!("{format:?}_{who}"), format!("n{n}"));
            g.bench_function(id("ours"), |b| {
                b.iter(|| ours.matmul_with(&pool, black_box(&x), n, &mut out))
            });
            g.bench_function(id("ours_scalar"), |b| {
                b.iter(|| scalar.matmul_with(&pool, black_box(&x), n, &mut out))
            });
            g.bench_function(id("candle"), |b| b.iter(|| qmm.forward(black_box(&xt))));
        }
    }
    g.finish();
}

/// Read bandwidth of one and all threads over a buffer far larger than the caches.
fn bench_memory(c: &mut Criterion) {
    let words = 64 << 20; // 64 Mi u32 = 256 MiB
                          // Integer sums so the loop vectorises and the memory, not the adder, is the limit.
    let buf: Vec<u32> = (0..words).map(|i| (i % 7) as u32).collect();
    let sum = |s: &[u32]| s.iter().fold(0u32, |a, v| a.wrapping_add(*v));
    let mut g = c.benchmark_group("memory");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes((words * 4) as u64));
    g.bench_function("sum_1thread", |b| b.iter(|| sum(black_box(&buf))));
    let pool = ThreadPool::new(threads());
    g.bench_function("sum_pool", |b| {
        b.iter(|| {
            let next = std::sync::atomic::AtomicUsize::new(0);
            let chunk = 1 << 20;
            pool.run(&|| loop {
                let c = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if c * chunk >= words {
                    break;
                }
                black_box(sum(&buf[c * chunk..(c + 1) * chunk]));
            })
        })
    });
    let mut dst = vec![0u32; words];
    g.bench_function("memcpy", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&buf)))
    });
    g.finish();
}

/// rayon as the alternative pool: the same closure broadcast to every rayon worker.
struct Rayon(rayon::ThreadPool);

impl Executor for Rayon {
    fn threads(&self) -> usize {
        self.0.current_num_threads()
    }
    fn run(&self, f: &(dyn Fn() + Sync)) {
        self.0.broadcast(|_| f());
    }
}

/// The linear layers of one SmolLM2-135M decode step (30 layers of q, k, v, o, gate, up,
/// down; Q4_1; no output head) on our pool and on rayon: measures per-call pool overhead.
/// Run it once more with a competing process (`yes > /dev/null &`) to see degradation.
fn bench_pools(c: &mut Criterion) {
    let f = WeightFormat::Q4_1;
    let shapes = [
        (576, 576),
        (192, 576),
        (192, 576),
        (576, 576),
        (1536, 576),
        (1536, 576),
        (576, 1536),
    ];
    let layer: Vec<QuantMatrix> = shapes
        .iter()
        .map(
            |&(r, c)| match QuantMatrix::new(f, r, c, weights(f, r, c)) {
                Ok(m) => m,
                Err(e) => panic!("bench matrix: {e}"),
            },
        )
        .collect();
    let x: Vec<f32> = (0..1536).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
    let mut out = vec![0.0f32; 1536];
    let ours = ThreadPool::new(threads());
    let rayon = match rayon::ThreadPoolBuilder::new()
        .num_threads(threads())
        .build()
    {
        Ok(p) => Rayon(p),
        Err(e) => panic!("rayon: {e}"),
    };
    let mut g = c.benchmark_group("decode_step_linears_q4_1");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    let bytes: usize = layer.iter().map(QuantMatrix::weight_bytes).sum::<usize>() * 30;
    g.throughput(Throughput::Bytes(bytes as u64));
    let mut step = |pool: &dyn Executor| {
        for _ in 0..30 {
            for m in &layer {
                let (rows, cols) = (m.rows(), m.cols());
                let _ = m.matmul_with(pool, &x[..cols], 1, &mut out[..rows]);
            }
        }
    };
    g.bench_function("own_pool", |b| b.iter(|| step(&ours)));
    g.bench_function("rayon", |b| b.iter(|| step(&rayon)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = bench_pools, bench_memory, bench_vs_candle, bench_formats
}
criterion_main!(benches);
