//! `QuantMatrix`: a weight matrix in a GGUF block format and its product with a batch of f32
//! activation rows. Activations are quantised once per call into a reused per-thread scratch;
//! output rows are split across the pool in small chunks; each weight row, once loaded, is
//! dotted with every activation row of a tile before moving on, so n > 1 shares weight reads.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};

use super::act::{ensure_len, quantize_q8_0, quantize_q8_1, quantize_q8_k, ActScratch};
use super::dispatch::{self, Dot4};
use super::formats::WeightFormat;
use super::pool::{self, Executor};
use super::{KernelError, KernelPath};

/// The 1-row kernel and, where the path has one, the 4-row kernel.
type RowDots<T> = (fn(&[u8], &[T]) -> f32, Option<Dot4<T>>);

/// Activation rows processed against each loaded weight row (keeps their blocks in L1/L2).
const ACT_TILE: usize = 16;

thread_local! {
    static SCRATCH: RefCell<ActScratch> = RefCell::new(ActScratch::default());
}

/// Where the block bytes live: our own copy, or a CPU `QTensor` shared with candle (no copy).
#[derive(Debug, Clone)]
enum Weights {
    Owned(Vec<u8>),
    Shared(Arc<QTensor>),
}

/// A `rows x cols` weight matrix (rows = output features, cols = input features) stored as
/// GGUF blocks, row after row.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    format: WeightFormat,
    rows: usize,
    cols: usize,
    data: Weights,
    path: KernelPath,
}

impl QuantMatrix {
    /// Wraps raw block bytes; uses the fastest kernel path this CPU supports.
    pub fn new(
        format: WeightFormat,
        rows: usize,
        cols: usize,
        data: Vec<u8>,
    ) -> Result<Self, KernelError> {
        check(format, rows, cols, data.len())?;
        Ok(Self {
            format,
            rows,
            cols,
            data: Weights::Owned(data),
            path: KernelPath::detect(),
        })
    }

    /// Builds from a `QTensor` of shape `[rows, cols]` (candle's weight layout), copying its
    /// bytes.
    pub fn from_qtensor(t: &QTensor) -> Result<Self, KernelError> {
        let (format, rows, cols) = describe(t)?;
        let data = t.data().map_err(|e| KernelError::Candle(e.to_string()))?;
        Self::new(format, rows, cols, data.into_owned())
    }

    /// Builds from a CPU `QTensor` without copying: the matrix reads candle's own block bytes
    /// (so a weight shared with an embedding or a fallback `QMatMul` is stored once).
    pub fn from_qtensor_arc(t: Arc<QTensor>) -> Result<Self, KernelError> {
        let (format, rows, cols) = describe(&t)?;
        if !t.device().is_cpu() {
            return Err(KernelError::NotOnCpu);
        }
        let len = t
            .data()
            .map_err(|e| KernelError::Candle(e.to_string()))?
            .len();
        check(format, rows, cols, len)?;
        Ok(Self {
            format,
            rows,
            cols,
            data: Weights::Shared(t),
            path: KernelPath::detect(),
        })
    }

    /// Forces a kernel path (tests and benches); fails when this CPU lacks it.
    pub fn with_path(mut self, path: KernelPath) -> Result<Self, KernelError> {
        if !path.is_supported() {
            return Err(KernelError::PathUnavailable(path));
        }
        self.path = path;
        Ok(self)
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn path(&self) -> KernelPath {
        self.path
    }
    /// Bytes of weights one full product streams.
    pub fn weight_bytes(&self) -> usize {
        self.rows * self.format.row_bytes(self.cols)
    }

    /// The raw block bytes, row after row.
    pub fn data(&self) -> Result<Cow<'_, [u8]>, KernelError> {
        match &self.data {
            Weights::Owned(v) => Ok(Cow::Borrowed(v)),
            Weights::Shared(t) => t.data().map_err(|e| KernelError::Candle(e.to_string())),
        }
    }

    /// `out[i][r] = sum_c x[i][c] * W[r][c]`: `x` is `n x cols`, `out` is `n x rows`, both
    /// row-major. Runs on the process-wide kernel pool.
    pub fn matmul(&self, x: &[f32], n: usize, out: &mut [f32]) -> Result<(), KernelError> {
        self.matmul_with(pool::global(), x, n, out)
    }

    /// As `matmul`, on the given pool.
    pub fn matmul_with<E: Executor + ?Sized>(
        &self,
        pool: &E,
        x: &[f32],
        n: usize,
        out: &mut [f32],
    ) -> Result<(), KernelError> {
        matmul_group_with(pool, [self], x, n, [out])
    }

    fn shape_error(&self, n: usize, x_len: usize, out_len: usize) -> KernelError {
        KernelError::ShapeMismatch {
            rows: self.rows,
            cols: self.cols,
            n,
            x_len,
            out_len,
        }
    }
}

/// Which activation quantisation a weight format is dotted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ActKind {
    Q8_0,
    Q8_1,
    Q8K,
    F32,
}

fn act_kind(format: WeightFormat) -> ActKind {
    match format {
        WeightFormat::Q8_0 => ActKind::Q8_0,
        WeightFormat::Q4_0 | WeightFormat::Q4_1 => ActKind::Q8_1,
        WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q6K => ActKind::Q8K,
        WeightFormat::F16 => ActKind::F32,
    }
}

/// Products of several matrices with the same input, e.g. a layer's `q`, `k` and `v`:
/// `outs[m] = x W_m^T`. When their formats pair with the same activation format, `x` is
/// quantised once and all their rows share one pool job (one hand-off and one wait instead of
/// one per matrix); otherwise they run one after the other. Each output is bit-identical to
/// the matrix's own `matmul`. Arrays, not slices: nothing is allocated per call.
pub fn matmul_group<const N: usize>(
    mats: [&QuantMatrix; N],
    x: &[f32],
    n: usize,
    outs: [&mut [f32]; N],
) -> Result<(), KernelError> {
    matmul_group_with(pool::global(), mats, x, n, outs)
}

/// As `matmul_group`, on the given pool.
pub fn matmul_group_with<E: Executor + ?Sized, const N: usize>(
    pool: &E,
    mats: [&QuantMatrix; N],
    x: &[f32],
    n: usize,
    outs: [&mut [f32]; N],
) -> Result<(), KernelError> {
    let Some(first) = mats.first() else {
        return Ok(());
    };
    for (m, out) in mats.iter().zip(&outs) {
        if m.cols != first.cols || x.len() != n * m.cols || out.len() != n * m.rows {
            return Err(m.shape_error(n, x.len(), out.len()));
        }
    }
    if n == 0 {
        return Ok(());
    }
    let kind = act_kind(first.format);
    if mats.iter().any(|m| act_kind(m.format) != kind) {
        for (m, out) in mats.into_iter().zip(outs) {
            m.matmul_with(pool, x, n, out)?;
        }
        return Ok(());
    }
    let mut failed = None;
    let datas = mats.map(|m| {
        m.data().unwrap_or_else(|e| {
            failed = Some(e);
            Cow::Borrowed(&[][..])
        })
    });
    if let Some(e) = failed {
        return Err(e);
    }
    let sinks = outs.map(OutSink::new);
    let parts: [Part<'_>; N] = std::array::from_fn(|i| Part {
        m: mats[i],
        w: datas[i].as_ref(),
        sink: sinks[i],
    });
    let cols = first.cols;
    SCRATCH.with(|s| {
        let s = &mut *s.borrow_mut();
        match kind {
            ActKind::Q8_0 => {
                let blocks = n * cols / 32;
                ensure_len(&mut s.q8_0, blocks);
                quantize_q8_0(x, &mut s.q8_0[..blocks]);
                run_parts(pool, &parts, &s.q8_0[..blocks], cols / 32, |m| {
                    (dispatch::q8_0_dot(m.path), dispatch::q8_0_dot4(m.path))
                });
            }
            ActKind::Q8_1 => {
                let blocks = n * cols / 32;
                ensure_len(&mut s.q8_1, blocks);
                quantize_q8_1(x, &mut s.q8_1[..blocks]);
                run_parts(pool, &parts, &s.q8_1[..blocks], cols / 32, |m| {
                    (
                        dispatch::q8_1_dot(m.format, m.path),
                        dispatch::q8_1_dot4(m.format, m.path),
                    )
                });
            }
            ActKind::Q8K => {
                let blocks = n * cols / 256;
                ensure_len(&mut s.q8_k, blocks);
                quantize_q8_k(x, &mut s.q8_k[..blocks]);
                run_parts(pool, &parts, &s.q8_k[..blocks], cols / 256, |m| {
                    (
                        dispatch::q8_k_dot(m.format, m.path),
                        dispatch::q8_k_dot4(m.format, m.path),
                    )
                });
            }
            ActKind::F32 => {
                run_parts(pool, &parts, x, cols, |m| (dispatch::f16_dot(m.path), None));
            }
        }
    });
    Ok(())
}

/// One matrix of a group product: its block bytes and where its output goes.
struct Part<'a> {
    m: &'a QuantMatrix,
    w: &'a [u8],
    sink: OutSink,
}

/// Splits the output rows of every part into chunks handed out over the pool; `acts` holds
/// `n` rows of `per_row` blocks. Each weight row, once loaded, is dotted with every activation
/// row of a tile before moving on, so n > 1 shares weight reads.
fn run_parts<T: Sync, E: Executor + ?Sized>(
    pool: &E,
    parts: &[Part<'_>],
    acts: &[T],
    per_row: usize,
    dots_of: impl Fn(&QuantMatrix) -> RowDots<T> + Sync,
) {
    let n = acts.len() / per_row;
    let total_rows: usize = parts.iter().map(|p| p.m.rows).sum();
    let chunk = (total_rows / (pool.threads() * 8)).clamp(4, 256);
    let n_chunks: usize = parts.iter().map(|p| p.m.rows.div_ceil(chunk)).sum();
    let next = AtomicUsize::new(0);
    let work = || loop {
        let mut c = next.fetch_add(1, Ordering::Relaxed);
        if c >= n_chunks {
            break;
        }
        let mut part = 0;
        while c >= parts[part].m.rows.div_ceil(chunk) {
            c -= parts[part].m.rows.div_ceil(chunk);
            part += 1;
        }
        let p = &parts[part];
        let rows = p.m.rows;
        let (r0, r1) = (c * chunk, ((c + 1) * chunk).min(rows));
        let rb = p.m.format.row_bytes(p.m.cols);
        let (dot, dot4) = dots_of(p.m);
        for t0 in (0..n).step_by(ACT_TILE) {
            let end = (t0 + ACT_TILE).min(n);
            for r in r0..r1 {
                let w = &p.w[r * rb..(r + 1) * rb];
                let mut i = t0;
                if let Some(dot4) = dot4 {
                    while i + 4 <= end {
                        let v = dot4(w, &acts[i * per_row..(i + 4) * per_row], per_row);
                        for (k, v) in v.into_iter().enumerate() {
                            p.sink.write((i + k) * rows + r, v);
                        }
                        i += 4;
                    }
                }
                for i in i..end {
                    let v = dot(w, &acts[i * per_row..(i + 1) * per_row]);
                    p.sink.write(i * rows + r, v);
                }
            }
        }
    };
    if n_chunks == 1 {
        work();
    } else {
        pool.run(&work);
    }
}

/// Shared write access to the output for threads that own disjoint output rows.
#[derive(Clone, Copy)]
struct OutSink {
    ptr: *mut f32,
    len: usize,
}

// SAFETY: threads write disjoint indices (each output row `r` belongs to one chunk, and one
// chunk to one thread), and the owner of the `&mut [f32]` waits for all of them.
unsafe impl Sync for OutSink {}

impl OutSink {
    fn new(out: &mut [f32]) -> Self {
        // The pointer outlives the `&mut` it came from: callers keep the buffer borrowed
        // (and untouched) until the pool job that writes through it has finished.
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    #[inline(always)]
    fn write(&self, i: usize, v: f32) {
        assert!(i < self.len);
        // SAFETY: in bounds (checked above); no other thread writes index `i` (see Sync).
        unsafe { *self.ptr.add(i) = v };
    }
}

fn check(format: WeightFormat, rows: usize, cols: usize, len: usize) -> Result<(), KernelError> {
    if cols == 0 || !cols.is_multiple_of(format.block_len()) {
        return Err(KernelError::ColsNotBlockMultiple { format, cols });
    }
    let expected = rows * format.row_bytes(cols);
    if len != expected {
        return Err(KernelError::DataLength { expected, got: len });
    }
    Ok(())
}

fn describe(t: &QTensor) -> Result<(WeightFormat, usize, usize), KernelError> {
    let format = format_of(t.dtype()).ok_or(KernelError::UnsupportedFormat(t.dtype()))?;
    let (rows, cols) = t
        .shape()
        .dims2()
        .map_err(|e| KernelError::Candle(e.to_string()))?;
    Ok((format, rows, cols))
}

/// The kernel format of a candle GGML dtype, when this module implements it.
pub fn format_of(d: GgmlDType) -> Option<WeightFormat> {
    Some(match d {
        GgmlDType::Q4_0 => WeightFormat::Q4_0,
        GgmlDType::Q4_1 => WeightFormat::Q4_1,
        GgmlDType::Q8_0 => WeightFormat::Q8_0,
        GgmlDType::Q4K => WeightFormat::Q4K,
        GgmlDType::Q5K => WeightFormat::Q5K,
        GgmlDType::Q6K => WeightFormat::Q6K,
        GgmlDType::F16 => WeightFormat::F16,
        _ => return None,
    })
}
