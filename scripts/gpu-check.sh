#!/usr/bin/env bash
# `make gpu-check`: run on a machine with an NVIDIA GPU, designed to finish in under 8 minutes
# and to need nothing from the network there. It needs the CUDA-enabled binary (carried as
# $DSR_CUDA_BIN, or found where scripts/build-cuda.sh puts it, or built when the CUDA wheels are
# already cached), the SmolLM2 model in models/ and the parity fixtures of the repository.
# Extra arguments go to `deepseek-runtime gpu-check` (see its --help); `--device cpu` runs the
# whole pipeline without a GPU (that is how runtime/cli/tests/gpu_check.rs tests this script).
# Writes gpu-check-out/gpu-check.json and gpu-check-out/gpu-check.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${DSR_CUDA_BIN:-}"
if [ -z "$BIN" ]; then
  root="${DSR_CUDA_CACHE:-$HOME/.cache/deepseek-k8s}"
  BIN="$(ls -t "$root"/cuda-target/*/release/deepseek-runtime 2>/dev/null | head -1 || true)"
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "gpu-check: no CUDA binary carried (DSR_CUDA_BIN) or cached; building it" >&2
  BIN="$(./scripts/build-cuda.sh)"
fi

on_cpu=false
for a in "$@"; do [ "$a" = "cpu" ] && on_cpu=true; done
if ! $on_cpu; then
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu-check: nvidia-smi not found: this is not a GPU machine (pass --device cpu to dry-run)" >&2
    exit 2
  fi
  driver="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
  echo "gpu-check: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1), driver $driver" >&2
  # CUDA 13 (what the binary is built with) needs a driver of the 580 series or newer. On an
  # older driver the CUDA 12 route would be: build with the 12.9 wheels' headers and libraries
  # plus an nvcc from a CUDA 12 toolkit image (the 12.9 nvcc wheel has no nvcc driver) and
  # CUDARC_CUDA_VERSION=12090.
  if [ "${driver%%.*}" -lt 580 ]; then
    echo "gpu-check: driver $driver is older than 580: CUDA 13 will not run here" >&2
    exit 2
  fi
fi

exec timeout "${DSR_GPU_CHECK_TIMEOUT:-470}" "$BIN" gpu-check "$@"
