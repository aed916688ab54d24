# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
# Build trees: build/ (optimised), build-asan/ (ASan+UBSan), build-tsan/ (TSan), build-fuzz/ (clang libFuzzer).
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps build run test test-fast fuzz-long bench clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j $(JOBS)

run: build
	@scripts/run.sh

test: deps
	@scripts/test.sh

# Longer fuzz runs by hand: FUZZ_SECONDS per target (default 300).
fuzz-long: deps
	@FUZZ_SECONDS=$${FUZZ_SECONDS:-300} scripts/fuzz.sh

# Every microbenchmark with its defaults, then the HTTP ratios (bench/http.sh; COMPARE=... for a
# red line's cost, see its head comment). Figures go into bench/RESULTS.md with the command.
bench: build
	@for b in build/bench/bench_*; do echo "== $$b"; $$b || exit 1; done
	@bench/http.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz
