#!/usr/bin/env bash
# Longer fuzzing by hand: every libFuzzer target for FUZZ_SECONDS (default 300) each,
# keeping what it finds in build-fuzz/fuzz-corpus/<target>/. Crashes are written to the
# test directory (build-fuzz/tests/) as crash-*; add each one to the parser's unit table once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
CC=clang cmake -S . -B build-fuzz -DRDL_SANITIZE=address,undefined -DRDL_FUZZ=ON \
      -DRDL_FUZZ_SECONDS="$FUZZ_SECONDS" -DRDL_FUZZ_SEED="${FUZZ_SEED:-0}" >/dev/null
cmake --build build-fuzz -j "$(nproc)"
ctest --test-dir build-fuzz -L fuzz --output-on-failure --timeout $((FUZZ_SECONDS + 120))
