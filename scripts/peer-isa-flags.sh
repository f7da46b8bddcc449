#!/usr/bin/env bash
# Prints the CMake arguments that build llama.cpp (the `make bench` peer) for this CPU's
# instruction sets, named one by one instead of GGML_NATIVE=ON (-march=native).
#
# Why not -march=native: some VMs of this project's kind (Intel Xeon) advertise AMX in cpuid
# while the process may not use it; a native build then dies at start (llama-server SIGSEGV,
# llama-bench SIGILL). So: every extension /proc/cpuinfo lists, from SSE4.2 to AVX-512 VNNI and
# BF16, and never AMX. The same flags key the build's cache, so a machine with another CPU
# builds its own peer instead of running one made for a different instruction set.
set -euo pipefail

flags=" $(grep -m1 '^flags' "${CPUINFO:-/proc/cpuinfo}" | cut -d: -f2) "
has() { for f in "$@"; do [[ "$flags" == *" $f "* ]] || return 1; done; }
on_off() { if has "$@"; then echo ON; else echo OFF; fi; }

args=(
    -DGGML_NATIVE=OFF
    -DGGML_SSE42="$(on_off sse4_2)"
    -DGGML_AVX="$(on_off avx)"
    -DGGML_AVX2="$(on_off avx2)"
    -DGGML_BMI2="$(on_off bmi2)"
    -DGGML_FMA="$(on_off fma)"
    -DGGML_F16C="$(on_off f16c)"
    -DGGML_AVX_VNNI="$(on_off avx_vnni)"
    # ggml's GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
    -DGGML_AVX512="$(on_off avx512f avx512cd avx512vl avx512dq avx512bw)"
    -DGGML_AVX512_VBMI="$(on_off avx512f avx512vbmi)"
    -DGGML_AVX512_VNNI="$(on_off avx512f avx512_vnni)"
    -DGGML_AVX512_BF16="$(on_off avx512f avx512_bf16)"
    -DGGML_AMX_TILE=OFF
    -DGGML_AMX_INT8=OFF
    -DGGML_AMX_BF16=OFF
)
echo "${args[*]}"
