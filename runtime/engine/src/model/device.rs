//! Where the linear layers' weights live (`--device cpu|cuda[:N]`). The CPU kernels run only on
//! CPU; on a CUDA device every `Linear` multiplies through candle's `QMatMul` on the GPU (the
//! activations travel to the device and back per layer; norms, RoPE and attention stay on the
//! CPU). Without the `cuda` cargo feature, candle answers `cuda` with a clear error at startup.
//! With it, the driver and CUDA libraries are opened at run time (vendor/README.md), so the same
//! binary runs `--device cpu` anywhere and `--device cuda` on a node without them is a startup
//! error naming what is missing, not cudarc's panic on first use.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;

use super::{DecoderWeights, LayerWeights, Linear};

/// A device as the `--device` flag names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    #[default]
    Cpu,
    /// A CUDA device by ordinal (`cuda` is `cuda:0`).
    Cuda(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device {0:?} is not one of cpu, cuda, cuda:N")]
pub struct BadDevice(pub String);

impl FromStr for DeviceSpec {
    type Err = BadDevice;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| BadDevice(s.to_string())),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device. A CUDA device in a build without the `cuda` feature is an error that
    /// says how to get one.
    pub fn open(self) -> candle_core::Result<Device> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda(n) => {
                cuda_libraries::check()
                    .map_err(|e| candle_core::Error::Msg(format!("--device {self}: {e}")))?;
                Device::new_cuda(n).map_err(|e| match e {
                    candle_core::Error::NotCompiledWithCudaSupport => {
                        candle_core::Error::Msg(format!(
                            "--device {self}: this binary was built without CUDA support \
                     (build with `--features cuda`)"
                        ))
                    }
                    other => other,
                })
            }
        }
    }
}

/// Whether the CUDA libraries the `cuda` build opens at run time can be opened here.
pub mod cuda_libraries {
    /// The libraries missing, in one sentence, or `Ok` when all load (always `Ok` in a build
    /// without the `cuda` feature: candle then refuses the device itself).
    pub fn check() -> Result<(), String> {
        let missing = missing();
        if missing.is_empty() {
            return Ok(());
        }
        Err(format!(
            "cannot load {} (a CUDA device needs the NVIDIA driver, 580 series or newer for \
             CUDA 13, and the CUDA 13 cuBLAS, cuRAND and NVRTC libraries on the library path; \
             on Kubernetes, a pod that requests an nvidia.com/gpu gets the driver)",
            missing.join(", ")
        ))
    }

    #[cfg(feature = "cuda")]
    fn missing() -> Vec<&'static str> {
        // SAFETY: each only `dlopen`s the library's candidate names (and closes them again);
        // loading these NVIDIA libraries runs no initialisation with preconditions of ours.
        let present: [(&str, bool); 5] = unsafe {
            [
                (
                    "libcuda.so.1 (the NVIDIA driver)",
                    cudarc::driver::sys::is_culib_present(),
                ),
                ("libcublas", cudarc::cublas::sys::is_culib_present()),
                ("libcublasLt", cudarc::cublaslt::sys::is_culib_present()),
                ("libcurand", cudarc::curand::sys::is_culib_present()),
                ("libnvrtc", cudarc::nvrtc::sys::is_culib_present()),
            ]
        };
        present
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect()
    }

    #[cfg(not(feature = "cuda"))]
    fn missing() -> Vec<&'static str> {
        Vec::new()
    }
}

/// Moves every linear layer of a decoder onto `device` (a no-op on CPU).
pub fn place_decoder(
    mut w: DecoderWeights,
    device: &Device,
) -> candle_core::Result<DecoderWeights> {
    if device.is_cpu() {
        return Ok(w);
    }
    for layer in &mut w.layers {
        for_each_linear(layer, |l| l.to_device(device))?;
    }
    w.lm_head = w.lm_head.to_device(device)?;
    Ok(w)
}

/// Replaces each of a layer's seven projections by `f` of it.
pub fn for_each_linear(
    layer: &mut LayerWeights,
    mut f: impl FnMut(&Linear) -> candle_core::Result<Linear>,
) -> candle_core::Result<()> {
    for l in [
        &mut layer.q,
        &mut layer.k,
        &mut layer.v,
        &mut layer.o,
        &mut layer.gate,
        &mut layer.up,
        &mut layer.down,
    ] {
        *l = f(l)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse_as_the_flag_documents() {
        assert_eq!("cpu".parse(), Ok(DeviceSpec::Cpu));
        assert_eq!("CUDA".parse(), Ok(DeviceSpec::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceSpec::Cuda(3)));
        assert_eq!(
            "cuda:x".parse::<DeviceSpec>(),
            Err(BadDevice("cuda:x".into()))
        );
        assert_eq!("tpu".parse::<DeviceSpec>(), Err(BadDevice("tpu".into())));
        assert_eq!(DeviceSpec::Cuda(1).to_string(), "cuda:1");
    }

    #[test]
    fn the_cpu_opens_and_cuda_without_the_feature_says_how_to_build_it() {
        assert!(DeviceSpec::Cpu.open().is_ok_and(|d| d.is_cpu()));
        if !cfg!(feature = "cuda") {
            let err = DeviceSpec::Cuda(0)
                .open()
                .expect_err("no CUDA in this build");
            assert!(err.to_string().contains("--features cuda"), "{err}");
        }
    }
}
