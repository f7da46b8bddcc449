//! Where the linear layers' weights live (`--device cpu|cuda[:N]`). The CPU kernels run only on
//! CPU; on a CUDA device every `Linear` multiplies through candle's `QMatMul` on the GPU (the
//! activations travel to the device and back per layer; norms, RoPE and attention stay on the
//! CPU). Without the `cuda` cargo feature, candle answers `cuda` with a clear error at startup;
//! nothing here is behind a `cfg`, so the crate compiles the same with and without the feature.

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
            Self::Cuda(n) => Device::new_cuda(n).map_err(|e| match e {
                candle_core::Error::NotCompiledWithCudaSupport => candle_core::Error::Msg(format!(
                    "--device {self}: this binary was built without CUDA support \
                     (build with `--features cuda`)"
                )),
                other => other,
            }),
        }
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
