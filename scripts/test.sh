#!/usr/bin/env bash
# Every test CI runs, in phases, each in its own build tree:
#   1. unit + integration on the optimised build (build/)
#   2. the builds a user will try, compiled only, each one test: Release (-O3) with gcc
#      (build-release/: library, apps, tests) and Release with clang (build-clang/: library and
#      apps; clang compiles the tests in the TSan and fuzz trees); no benches
#   3. unit + integration under ASan+UBSan (build-asan/), leaks included
#   4. the concurrent modules under TSan (build-tsan/)
#   5. short libFuzzer runs of every parser target (build-fuzz/, clang, ASan+UBSan)
# Ends with one line counting every test of every phase: "total: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

JOBS=${JOBS:-$(nproc)}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}   # 21 targets, two at a time: CI stays under 20 minutes
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}   # third-party leaks only
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# The integration tests' npm peers (tests/node), installed from the lockfile when missing.
if [ ! -d tests/node/node_modules ] && command -v npm >/dev/null 2>&1; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error) || echo "npm ci failed: OTLP tests will fail"
fi

passed=0
failed=0
summary=()

configure_and_build() {   # dir, cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; return 1; }
  cmake --build "$dir" -j "$JOBS" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; return 1; }
}

# Runs ctest and adds its counts to the totals. A build failure counts as one failed test.
phase() {   # name, dir, ctest args...
  local name=$1 dir=$2; shift 2
  echo "==== $name"
  local log="$dir.ctest.log"
  ctest --test-dir "$dir" --output-on-failure "$@" 2>&1 | tee "$log"
  local line p=0 f=0
  line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
  if [ -n "$line" ]; then
    local total
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/')
    total=$(echo "$line" | sed -E 's/.* out of ([0-9]+).*/\1/')
    p=$((total - f))
  elif grep -q "No tests were found" "$log"; then
    f=1; echo "$name: no tests found"
  else
    f=1
  fi
  passed=$((passed + p)); failed=$((failed + f))
  summary+=("$name: $p passed, $f failed")
}

build_failed() {   # name
  echo "$1: build failed"
  failed=$((failed + 1))
  summary+=("$1: build failed")
}

# A build that is its own test: it passes when it compiles warning-free (-Werror).
build_phase() {   # name, dir, cmake args...
  local name=$1 dir=$2; shift 2
  echo "==== $name"
  if configure_and_build "$dir" -DRDL_BUILD_BENCH=OFF "$@"; then
    passed=$((passed + 1))
    summary+=("$name: 1 passed, 0 failed")
  else
    build_failed "$name"
  fi
}

if configure_and_build build -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
  phase "unit" build -L unit -j "$JOBS"
  phase "integration" build -L integration
else
  build_failed "release build"
fi

build_phase "release build (gcc -O3)" build-release -DCMAKE_BUILD_TYPE=Release
CC=clang build_phase "release build (clang)" build-clang -DCMAKE_BUILD_TYPE=Release -DRDL_BUILD_TESTS=OFF

# The sanitizer trees build the static library only: the programs and tests link that one.
if configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DRDL_SANITIZE=address,undefined \
     -DRDL_BUILD_SHARED=OFF; then
  phase "unit (asan+ubsan)" build-asan -L unit -j "$JOBS"
  phase "integration (asan+ubsan)" build-asan -L integration
else
  build_failed "asan build"
fi

if CC=clang configure_and_build build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRDL_SANITIZE=thread \
     -DRDL_BUILD_SHARED=OFF; then
  phase "concurrent (tsan)" build-tsan -L concurrent
else
  build_failed "tsan build"
fi

if CC=clang configure_and_build build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DRDL_SANITIZE=address,undefined -DRDL_FUZZ=ON -DRDL_BUILD_SHARED=OFF \
     -DRDL_FUZZ_SECONDS="$FUZZ_SECONDS" -DRDL_FUZZ_SEED="${FUZZ_SEED:-1}"; then
  phase "fuzz (${FUZZ_SECONDS}s each)" build-fuzz -L fuzz -j "$JOBS"
else
  build_failed "fuzz build"
fi

echo "==== summary"
for s in "${summary[@]}"; do echo "  $s"; done
echo "total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
