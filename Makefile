# The two commands a newcomer runs: `make run` (serve the small real model on 127.0.0.1:8000)
# and `make test` (install what the tests need, then run every test).
SHELL := /bin/bash
MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
HOST ?= 127.0.0.1
PORT ?= 8000
THREADS ?= $(shell nproc)

.PHONY: model run test test-deps build cuda gpu-check bench bench-kernels crds fmt lint images soak

model:
	./scripts/fetch-model.sh

build:
	cargo build --release -p deepseek-runtime

# The CUDA-enabled binary, built without a GPU from NVIDIA's CUDA 13 pip wheels (cached under
# ~/.cache/deepseek-k8s/; scripts/build-cuda.sh prints where the binary is). Runs without the
# NVIDIA driver too (`--device cpu`, `fetch`); `--device cuda` needs it.
cuda:
	./scripts/build-cuda.sh

# On a machine with an NVIDIA GPU: correctness against the CPU and the references, decode tok/s
# at batch 1/8/32/64 as a fraction of memory bandwidth, TTFT; gpu-check-out/gpu-check.{json,txt}.
gpu-check: model
	./scripts/gpu-check.sh $(GPU_CHECK_ARGS)

run: model build
	./target/release/deepseek-runtime serve --model $(MODEL) --host $(HOST) --port $(PORT) \
		--served-model-name smollm2-135m-instruct --threads $(THREADS)

test-deps: model
	./scripts/test-deps.sh

# The operator and e2e tests run against a local Kubernetes control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok; scripts/control-plane.sh): test-deps builds it
# once (cached outside the repository), `test` starts it, runs every test with its KUBECONFIG
# and stops it again, whether the tests pass or not.
test: test-deps
	@env="$$(./scripts/control-plane.sh up)" && eval "$$env" && \
		trap './scripts/control-plane.sh down' EXIT && \
		cargo test --workspace --all-targets

# The soak of the chaos suite at full length: 64 concurrent streams against `serve` on the
# real model for DSR_SOAK_SECONDS (default here 300), then the same through the router; prints
# requests, errors, p50/p99 latency and the server's RSS at start and end. `make test` runs the
# same test for 30 seconds each.
DSR_SOAK_SECONDS ?= 300
soak: model
	DSR_SOAK_SECONDS=$(DSR_SOAK_SECONDS) cargo test --workspace --test soak -- --nocapture

# Side by side with llama.cpp's llama-server on the same model and threads (scripts/bench.sh).
bench: model build
	THREADS=$(THREADS) ./scripts/bench.sh $(BENCH_ARGS)

# Kernel micro-benchmarks: GB/s of weights streamed per format and shape, next to the
# machine's measured memory bandwidth.
bench-kernels:
	cargo bench -p deepseek-kernels --bench kernels

crds:
	cargo run -q -p deepseek-crds --bin crdgen > crds/deepseekdeployments.yaml.tmp
	mv crds/deepseekdeployments.yaml.tmp crds/deepseekdeployments.yaml
	cp crds/deepseekdeployments.yaml charts/deepseek-operator/crds/deepseekdeployments.yaml
	cargo run -q -p deepseek-e2e --bin crd-docs > docs/crd-reference.md.tmp
	mv docs/crd-reference.md.tmp docs/crd-reference.md

# The two container images (tags follow the workspace version; see the Dockerfiles for CUDA).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
images:
	docker build -f Dockerfile.runtime -t deepseek-runtime:$(VERSION) .
	docker build -f Dockerfile.operator -t deepseek-operator:$(VERSION) .

fmt:
	cargo fmt --all

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
