#!/usr/bin/env bash
# Runs the whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer,
# then the concurrency tests under ThreadSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOSS_SANITIZE=address,undefined -DMOSS_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$(nproc)"
LSAN_OPTIONS=suppressions="$PWD/fuzz/lsan.supp" ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j"$(nproc)"
# ThreadSanitizer cannot see inside libgomp, so OpenMP runs single-threaded
# here; the user threads that share one model are what is checked.
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOSS_SANITIZE=thread -DMOSS_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j"$(nproc)" --target moss_tests
# setarch -R: GCC 12's TSan runtime cannot map its shadow under the high ASLR
# entropy of recent kernels.
OMP_NUM_THREADS=1 TSAN_OPTIONS=halt_on_error=1 setarch "$(uname -m)" -R build-tsan/tests/moss_tests --gtest_filter='*Thread*:*Concurren*'
