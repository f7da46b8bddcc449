//! The one linear layer every architecture uses for its projections: `y = x W^T (+ b)`.
//! This is the single place where a weight matmul happens, so a faster CPU kernel
//! (`deepseek_kernels`) can replace candle's `QMatMul` here without touching any architecture.
//!
//! Shapes: input `[n_tokens, in_dim]` f32 row-major, output `[n_tokens, out_dim]` f32 row-major.
//! The weight is stored as GGUF lays it out: `[out_dim, in_dim]` in any GGML block format.
//!
//! On CPU, formats with a `deepseek_kernels` kernel (Q4_0, Q4_1, Q8_0, Q4_K, Q5_K, Q6_K, F16) run
//! through `QuantMatrix` (SIMD, activations quantised once, batched rows share weight reads);
//! other formats, and any weight on a GPU, use candle's `QMatMul`. `DEEPSEEK_CPU_KERNELS=stock`
//! forces `QMatMul` everywhere (speed and output comparisons).
//!
//! Dense checkpoints (safetensors bf16/f16/f32) enter through the one constructor `from_dense`,
//! so load-time conversions (in-situ quantization) have a single place to live.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QStorage, QTensor};
use candle_core::{DType, Device, Module, Tensor};

use super::quantize::{self, QuantFormat};
use deepseek_kernels::{self as kernels, QuantMatrix};

/// A (possibly quantized) weight matrix with an optional f32 bias.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Arc<QTensor>,
    matmul: QMatMul,
    /// The CPU kernel path, when the format has one (shares the weight's bytes, no copy).
    fast: Option<QuantMatrix>,
    bias: Option<Vec<f32>>,
    in_dim: usize,
    out_dim: usize,
}

impl Linear {
    /// `weight` has shape `[out_dim, in_dim]`; `bias`, when given, has `out_dim` entries.
    pub fn new(weight: QTensor, bias: Option<Vec<f32>>) -> candle_core::Result<Self> {
        Self::from_arc(Arc::new(weight), bias)
    }

    /// A dense `[out_dim, in_dim]` weight from a safetensors checkpoint (f32, f16 or bf16; other
    /// dtypes are converted to f32). The weight keeps its precision: f32 stays exact (parity
    /// tests), f16 takes the CPU kernel path, bf16 is multiplied by candle in f32.
    pub fn from_dense(weight: &Tensor, bias: Option<Vec<f32>>) -> candle_core::Result<Self> {
        let format = match weight.dtype() {
            DType::F16 => GgmlDType::F16,
            DType::BF16 => GgmlDType::BF16,
            _ => GgmlDType::F32,
        };
        // `QTensor::quantize` reads the raw storage from offset 0: a narrowed or strided view
        // must become its own buffer first.
        let weight = if weight.is_contiguous() && weight.layout().start_offset() == 0 {
            weight.clone()
        } else {
            weight.force_contiguous()?
        };
        Self::new(QTensor::quantize(&weight, format)?, bias)
    }

    /// Like `new`, sharing a weight that is also used elsewhere (tied embeddings).
    pub fn from_arc(weight: Arc<QTensor>, bias: Option<Vec<f32>>) -> candle_core::Result<Self> {
        let (out_dim, in_dim) = weight.shape().dims2()?;
        if let Some(b) = &bias {
            if b.len() != out_dim {
                candle_core::bail!("bias has {} entries, weight has {out_dim} rows", b.len());
            }
        }
        let matmul = QMatMul::from_arc(weight.clone())?;
        let fast = kernels::fast_path_enabled()
            .then(|| QuantMatrix::from_qtensor_arc(weight.clone()).ok())
            .flatten();
        Ok(Self {
            weight,
            matmul,
            fast,
            bias,
            in_dim,
            out_dim,
        })
    }

    /// A dense `[out_dim, in_dim]` weight (bf16, f16 or f32) quantized at load (`--quantize`):
    /// into `format`, or Q8_0 when a row is not a whole number of `format` blocks, or kept dense
    /// when it fits neither (see `quantize`).
    pub fn from_dense_quantized(
        weight: &Tensor,
        bias: Option<Vec<f32>>,
        format: QuantFormat,
    ) -> candle_core::Result<Self> {
        let (_, in_dim) = weight.dims2()?;
        let q = match format.for_row_len(in_dim) {
            Some(target) => quantize::quantize_tensor(weight, target)?,
            None => QTensor::quantize(weight, quantize::dense_format(weight.dtype()))?,
        };
        Self::new(q, bias)
    }

    /// The same layer with its weight on `device`; on a GPU it multiplies through candle's
    /// `QMatMul` there (the CPU kernels only run on CPU).
    pub fn to_device(&self, device: &Device) -> candle_core::Result<Self> {
        if self.weight.device().same_device(device) {
            return Ok(self.clone());
        }
        let data = self.weight.data()?;
        let storage = QStorage::from_data(data, device, self.weight.dtype())?;
        let moved = QTensor::new(storage, self.weight.shape().clone())?;
        Self::from_arc(Arc::new(moved), self.bias.clone())
    }

    /// Bytes the weight takes in memory.
    pub fn weight_bytes(&self) -> usize {
        self.weight.storage_size_in_bytes()
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The weight's block format (Q4_1, Q8_0, F16, ...).
    pub fn dtype(&self) -> GgmlDType {
        self.weight.dtype()
    }

    /// The raw weight, `[out_dim, in_dim]`, for kernels that read GGML blocks directly.
    pub fn weight(&self) -> &Arc<QTensor> {
        &self.weight
    }

    /// Whether products run on `deepseek_kernels` (else candle's `QMatMul`).
    pub fn uses_cpu_kernels(&self) -> bool {
        self.fast.is_some()
    }

    pub fn bias(&self) -> Option<&[f32]> {
        self.bias.as_deref()
    }

    /// Several layers applied to the same input (a layer's q/k/v, or gate/up): on the CPU
    /// kernels the input is quantised once and all their rows run as one pool job. Each
    /// result equals the layer's own `forward`.
    pub fn forward_group<const N: usize>(
        layers: [&Linear; N],
        x: &[f32],
        n_tokens: usize,
    ) -> candle_core::Result<[Vec<f32>; N]> {
        let fast = layers.map(|l| l.fast.as_ref());
        let fits = layers.iter().all(|l| l.in_dim * n_tokens == x.len());
        if !fits || fast.iter().any(Option::is_none) {
            let mut outs = Vec::with_capacity(N);
            for l in layers {
                outs.push(l.forward(x, n_tokens)?);
            }
            return outs
                .try_into()
                .map_err(|_| candle_core::Error::Msg("forward_group arity".into()));
        }
        let mats = fast.map(|m| m.expect("checked above: every layer has the kernel path"));
        let mut outs: [Vec<f32>; N] =
            std::array::from_fn(|i| vec![0.0f32; n_tokens * layers[i].out_dim]);
        kernels::matmul_group(mats, x, n_tokens, outs.each_mut().map(Vec::as_mut_slice))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        for (l, out) in layers.iter().zip(outs.iter_mut()) {
            l.add_bias(out);
        }
        Ok(outs)
    }

    fn add_bias(&self, out: &mut [f32]) {
        if let Some(bias) = &self.bias {
            for row in out.chunks_exact_mut(self.out_dim) {
                row.iter_mut().zip(bias).for_each(|(y, b)| *y += b);
            }
        }
    }

    /// `x`: `[n_tokens, in_dim]` -> `[n_tokens, out_dim]`.
    pub fn forward(&self, x: &[f32], n_tokens: usize) -> candle_core::Result<Vec<f32>> {
        if x.len() != n_tokens * self.in_dim {
            candle_core::bail!(
                "linear input has {} floats, expected {n_tokens} x {}",
                x.len(),
                self.in_dim
            );
        }
        let mut out = match &self.fast {
            Some(m) => {
                let mut out = vec![0.0f32; n_tokens * self.out_dim];
                m.matmul(x, n_tokens, &mut out)
                    .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                out
            }
            None => {
                // On a GPU the activations go to the weight's device and come back.
                let xs = Tensor::from_slice(x, (n_tokens, self.in_dim), &self.weight.device())?;
                self.matmul.forward(&xs)?.flatten_all()?.to_vec1::<f32>()?
            }
        };
        self.add_bias(&mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], b: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut out = vec![0.0; n * m];
        for t in 0..n {
            for o in 0..m {
                let dot: f32 = (0..k).map(|i| x[t * k + i] * w[o * k + i]).sum();
                out[t * m + o] = dot + b[o];
            }
        }
        out
    }

    #[test]
    fn f32_linear_with_bias_matches_a_plain_matmul() -> candle_core::Result<()> {
        let (n, k, m) = (3, 32, 5);
        let w: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
            .collect();
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let b: Vec<f32> = (0..m).map(|i| i as f32).collect();
        let wt = Tensor::from_slice(&w, (m, k), &Device::Cpu)?;
        let lin = Linear::new(QTensor::quantize(&wt, GgmlDType::F32)?, Some(b.clone()))?;
        let got = lin.forward(&x, n)?;
        let want = reference(&w, &b, &x, n, k, m);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-4, "{g} vs {w}");
        }
        Ok(())
    }

    #[test]
    fn quantized_cpu_weights_take_the_kernel_path_and_agree_with_qmatmul() -> candle_core::Result<()>
    {
        let (n, k, m) = (3, 64, 9);
        let w: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
            .collect();
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let wt = Tensor::from_slice(&w, (m, k), &Device::Cpu)?;
        let lin = Linear::new(QTensor::quantize(&wt, GgmlDType::Q8_0)?, None)?;
        assert_eq!(lin.uses_cpu_kernels(), kernels::fast_path_enabled());
        let got = lin.forward(&x, n)?;
        let xs = Tensor::from_slice(&x, (n, k), &Device::Cpu)?;
        let want = lin.matmul.forward(&xs)?.flatten_all()?.to_vec1::<f32>()?;
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-3, "{g} vs {w}");
        }
        Ok(())
    }

    #[test]
    fn a_group_forward_equals_each_layer_alone_with_its_bias() -> candle_core::Result<()> {
        let (n, k) = (3, 64);
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 5 % 11) as f32 - 5.0) / 10.0)
            .collect();
        let layer = |m: usize, dtype, bias: bool| -> candle_core::Result<Linear> {
            let w: Vec<f32> = (0..m * k)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 10.0)
                .collect();
            let wt = Tensor::from_slice(&w, (m, k), &Device::Cpu)?;
            let b = bias.then(|| (0..m).map(|i| i as f32).collect());
            Linear::new(QTensor::quantize(&wt, dtype)?, b)
        };
        // Same activation format (quantised once), a different one, and candle's F32 path.
        let q = layer(9, GgmlDType::Q4_1, true)?;
        let k_ = layer(4, GgmlDType::Q4_0, false)?;
        let v = layer(4, GgmlDType::Q8_0, true)?;
        let f = layer(4, GgmlDType::F32, true)?;
        let [a, b, c] = Linear::forward_group([&q, &k_, &v], &x, n)?;
        assert_eq!(a, q.forward(&x, n)?);
        assert_eq!(b, k_.forward(&x, n)?);
        assert_eq!(c, v.forward(&x, n)?);
        let [d, e] = Linear::forward_group([&q, &f], &x, n)?;
        assert_eq!(d, q.forward(&x, n)?);
        assert_eq!(e, f.forward(&x, n)?);
        Ok(())
    }

    #[test]
    fn rejects_an_input_of_the_wrong_width() -> candle_core::Result<()> {
        let wt = Tensor::zeros((4, 32), candle_core::DType::F32, &Device::Cpu)?;
        let lin = Linear::new(QTensor::quantize(&wt, GgmlDType::Q8_0)?, None)?;
        assert!(lin.forward(&[0.0; 31], 1).is_err());
        Ok(())
    }
}

#[cfg(test)]
mod batch_invariance {
    use super::*;

    /// Largest difference between each row computed alone and inside a batch of `n` rows.
    fn worst_row_difference(dtype: GgmlDType) -> candle_core::Result<f32> {
        let (n, k, m) = (5, 512, 64);
        let w: Vec<f32> = (0..m * k)
            .map(|i| (((i * 7919) % 1000) as f32 / 500.0 - 1.0) * 0.05)
            .collect();
        let x: Vec<f32> = (0..n * k)
            .map(|i| ((i * 104729) % 997) as f32 / 498.5 - 1.0)
            .collect();
        let wt = Tensor::from_slice(&w, (m, k), &Device::Cpu)?;
        let lin = Linear::new(QTensor::quantize(&wt, dtype)?, None)?;
        let all = lin.forward(&x, n)?;
        let mut worst = 0f32;
        for r in 0..n {
            let one = lin.forward(&x[r * k..(r + 1) * k], 1)?;
            for (a, b) in one.iter().zip(&all[r * m..(r + 1) * m]) {
                worst = worst.max((a - b).abs());
            }
        }
        Ok(worst)
    }

    /// What makes "same seed, same text alone or in a batch" hold: rows do not see each other.
    /// The block formats are bit-exact (their 4-row kernels sum each row in the single-row
    /// order); candle's F32 gemm and the F16 path differ only in the last bits.
    #[test]
    fn every_format_gives_each_row_the_same_result_alone_or_in_a_batch() -> candle_core::Result<()>
    {
        for dtype in [
            GgmlDType::Q4_0,
            GgmlDType::Q4_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            assert_eq!(worst_row_difference(dtype)?, 0.0, "{dtype:?}");
        }
        for dtype in [GgmlDType::F32, GgmlDType::F16] {
            let worst = worst_row_difference(dtype)?;
            assert!(worst < 1e-5, "{dtype:?}: {worst}");
        }
        Ok(())
    }
}
