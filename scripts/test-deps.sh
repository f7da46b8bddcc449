#!/usr/bin/env bash
# Installs what the tests need that cargo does not bring: a Python virtualenv with the official
# OpenAI client (compatibility tests), Prometheus, the Helm SDK, and the local Kubernetes control
# plane the operator and e2e tests run against. Idempotent and quiet when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import openai' 2>/dev/null; then
  .venv/bin/pip install --quiet 'openai>=1.40'
fi
# A local S3-compatible endpoint (`moto_server`) for the model-files fetch/backup/restore tests.
if [ ! -x .venv/bin/moto_server ]; then
  .venv/bin/pip install --quiet 'moto[server]>=5'
fi
# promtool (alert rule checks and unit tests) and a Prometheus server (scrape test): Debian's
# `prometheus` package. Installed once; a machine without apt must provide both on PATH.
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "test-deps: promtool/prometheus missing and apt-get unavailable; install Prometheus" >&2
    exit 1
  fi
fi
# redis-server for the shared rate-limit tests (security_ratelimit.rs starts its own), and
# PostgreSQL (initdb + postgres) for the conversation-store tests (privacy_store.rs starts its
# own server; Debian's `postgresql` package puts them in /usr/lib/postgresql/*/bin).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "test-deps: ${missing[*]} missing and apt-get unavailable; install them" >&2
    exit 1
  fi
fi
# The real Helm v4 SDK (no helm binary needed) for the chart tests in e2e/tests/chart.rs.
if ! .venv/bin/python -c 'import helm_python' 2>/dev/null; then
  .venv/bin/pip install --quiet 'helm-python-sdk==0.2.2'
fi
# The local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kwok, kubectl), built from the Go modules pinned in tools/control-plane/ into
# ~/.cache/deepseek-k8s/control-plane/ (20-30 minutes the first time on 2 cores, then reused).
./scripts/control-plane.sh build
# The CUDA-enabled runtime (issue 21): NVIDIA's CUDA 13 wheels into ~/.cache/deepseek-k8s/cuda-*/
# and `cargo build --release --features cuda` into its own cached target directory (the first
# time many minutes on 2 cores; then a cargo no-op). runtime/cli/tests/cuda_build.rs runs it.
./scripts/build-cuda.sh >/dev/null
