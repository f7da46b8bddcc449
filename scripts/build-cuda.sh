#!/usr/bin/env bash
# Builds the CUDA-enabled `deepseek-runtime` (no GPU needed) and prints the binary's path.
#
# Its own target directory outside the repository (the `cuda` feature changes candle-core's
# features and every crate above it, and `-p deepseek-runtime` unifies features differently
# from the workspace's `--workspace` builds), keyed by the CUDA version, so the cold build
# (candle's kernels through nvcc: many minutes on 2 cores) is paid once and a warm run is a
# cargo no-op of a few seconds. DSR_CUDA_TARGET overrides where.
set -euo pipefail
cd "$(dirname "$0")/.."
# Run from a test (runtime/cli/tests/cuda_build.rs), this inherits the variables cargo sets for
# the test's package (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...). Build scripts such as ring's
# rerun when those change, so a warm build would recompile a dozen crates each time it is
# called from a test and again from a shell: drop them.
for var in $(compgen -e | grep -E '^(CARGO_(PKG_|MANIFEST_|CRATE_NAME|BIN_|TARGET_TMPDIR|PRIMARY_PACKAGE|CFG_|FEATURE_)|OUT_DIR$)' || true); do
  unset "$var"
done
./scripts/cuda-env.sh install
eval "$(./scripts/cuda-env.sh env)"
TARGET="${DSR_CUDA_TARGET:-$HOME/.cache/deepseek-k8s/cuda-target/$(basename "$(dirname "$(dirname "$CUDA_ROOT")")")}"
mkdir -p "$TARGET"
# `--release`: the image ships it and gpu-check times it. Quiet unless it fails or compiles.
cargo build --release --locked -p deepseek-runtime --features cuda --target-dir "$TARGET" >&2
echo "$TARGET/release/deepseek-runtime"
