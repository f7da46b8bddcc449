#!/usr/bin/env bash
# The CUDA toolkit for building `deepseek-runtime --features cuda` without a GPU: NVIDIA's CUDA 13
# Python wheels (nvcc, cicc, headers, the static CUDA runtime) installed with pip into a cache
# outside the repository, keyed by version so a version bump installs beside the old one.
#
#   scripts/cuda-env.sh install   installs the wheels once (quiet when present)
#   scripts/cuda-env.sh env       prints the exports candle's build needs; use with eval
#   scripts/cuda-env.sh root      prints the toolkit's root (nvidia/cu13)
#
# Why these pins: the CUDA 12.9 nvcc wheel carries no `nvcc` driver, the CUDA 13 ones do.
# cudarc 0.19.10 knows CUDA up to 13.4, so CUDARC_CUDA_VERSION says 13040 although nvcc is 13.5
# (the driver API cudarc binds is backwards compatible). CUDA_COMPUTE_CAP=90 is the H100/H200
# (override it in the environment for another card).
set -euo pipefail
cd "$(dirname "$0")/.."

NVCC_VERSION=13.5.37
CCCL_VERSION=13.3.5.0.6
CUBLAS_VERSION=13.10.0.20
CURAND_VERSION=10.4.5.25
CACHE="${DSR_CUDA_CACHE:-$HOME/.cache/deepseek-k8s}/cuda-$NVCC_VERSION"
ROOT="$CACHE/nvidia/cu13"
# candle-kernels asks the linker for `-lcudart`. Only the static runtime is offered here (as
# libcudart.a), so the binary carries it and needs no libcudart.so at start; the static runtime
# opens the driver (libcuda.so.1) itself on first use, as cudarc does (vendor/README.md).
LINK="$CACHE/link"

install() {
  if [ -x "$ROOT/bin/nvcc" ] && [ -x "$ROOT/nvvm/bin/cicc" ] && [ -e "$LINK/libcudart.a" ]; then
    return 0
  fi
  local pip=.venv/bin/pip
  [ -x "$pip" ] || python3 -m venv .venv >&2
  mkdir -p "$CACHE"
  # Into a scratch directory first, so an interrupted install is never taken for a finished one.
  rm -rf "$CACHE.partial"
  "$pip" install --quiet --no-deps --target "$CACHE.partial" \
    "nvidia-cuda-nvcc==$NVCC_VERSION" "nvidia-cuda-crt==$NVCC_VERSION" \
    "nvidia-nvvm==$NVCC_VERSION" "nvidia-cuda-runtime==$NVCC_VERSION" \
    "nvidia-cuda-nvrtc==$NVCC_VERSION" "nvidia-cuda-cccl==$CCCL_VERSION" \
    "nvidia-cublas==$CUBLAS_VERSION" "nvidia-curand==$CURAND_VERSION" >&2
  rm -rf "$CACHE"
  mv "$CACHE.partial" "$CACHE"
  mkdir -p "$LINK"
  ln -sf "$ROOT/lib/libcudart_static.a" "$LINK/libcudart.a"
}

env_lines() {
  cat <<EOF
export CUDA_ROOT="$ROOT"
export CUDA_PATH="$ROOT"
export CUDA_HOME="$ROOT"
export PATH="$ROOT/bin:$ROOT/nvvm/bin:\$PATH"
export LIBRARY_PATH="$LINK\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
export CUDARC_CUDA_VERSION=13040
EOF
}

case "${1:-}" in
  install) install ;;
  env) env_lines ;;
  root) echo "$ROOT" ;;
  *) echo "usage: $0 install|env|root" >&2; exit 2 ;;
esac
