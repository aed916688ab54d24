# The two commands a newcomer needs: `make run` and `make test`. Everything else is a helper.
# Build trees: build/ (optimised), build-asan/ (ASan+UBSan), build-tsan/ (TSan), build-fuzz/ (clang
# libFuzzer), build-release/ and build-clang/ (make test's compile-only phases), build-install/.
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
DESTDIR ?=

.PHONY: all deps build run test test-fast fuzz-long bench install clean

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

# libredline for other programs: headers, libredline.a and libredline.so, redline.pc and the CMake
# package under $(DESTDIR)$(PREFIX) (README.md says how to link). A Release build of the library
# alone in its own tree, since the prefix is written into redline.pc.
install:
	@cmake -S . -B build-install -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX="$(PREFIX)" \
	  -DRDL_BUILD_APPS=OFF -DRDL_BUILD_TESTS=OFF -DRDL_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-install -j $(JOBS)
	@DESTDIR="$(DESTDIR)" cmake --install build-install

clean:
	rm -rf build build-asan build-tsan build-fuzz build-release build-clang build-install
