#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + AddressSanitizer + UBSan and runs
# each for FUZZ_SECONDS (default 60) on a seed corpus made of fuzz/seeds and
# the reference fixtures. Fails on any finding; the crashing input is copied to
# fuzz/regressions/<target>/, where the default test suite replays it.
# FUZZ_SEED (default 1) and a per-target run cap (about a minute's worth
# here; FUZZ_RUNS overrides it, 0 = time only) make the CI gate a fixed,
# reproducible sequence of inputs. Vary the seed and drop the cap to explore.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${FUZZ_SECONDS:-60}"
BUILD_DIR="${BUILD_DIR:-build-fuzz}"
SHARED="${MOSS_SHARED_DIR:-../shared}"
CC=clang CXX=clang++ cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOSS_FUZZ=ON \
  -DMOSS_SANITIZE=address,undefined -DMOSS_BUILD_TESTS=OFF -DMOSS_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" --target fuzz_safetensors fuzz_index fuzz_config fuzz_npy fuzz_layout fuzz_audio
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
for t in safetensors index config npy layout audio; do
  corpus="$work/corpus-$t"
  mkdir -p "$corpus" "$work/artifacts-$t"
  cp fuzz/seeds/$t/* "$corpus"/ 2>/dev/null || true
  case $t in
    safetensors) cp "$SHARED"/fixtures/tiny/model.safetensors "$SHARED"/fixtures/variants/*.safetensors "$corpus"/ 2>/dev/null || true ;;
    index) cp "$SHARED"/fixtures/*/model.safetensors.index.json "$corpus"/ 2>/dev/null || true ;;
    config) for f in "$SHARED"/fixtures/*/config.json; do cp "$f" "$corpus/$(basename "$(dirname "$f")").json"; done ;;
    audio) cp assets/*.wav "$corpus"/ ;;
  esac
  case $t in
    safetensors) runs=180000 ;; index) runs=180000 ;; config) runs=600000 ;;
    npy) runs=1200000 ;; layout) runs=4000000 ;; audio) runs=9000 ;;
  esac
  runs="${FUZZ_RUNS:-$runs}"
  [ "$runs" = 0 ] && runs=-1
  echo "== fuzz_$t for at most ${SECONDS_EACH}s / $runs runs on $(ls "$corpus" | wc -l) seeds"
  if ! ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/fuzz/lsan.supp" "$BUILD_DIR/fuzz/fuzz_$t" "$corpus" -max_total_time="$SECONDS_EACH" -runs="$runs" -seed="${FUZZ_SEED:-1}" -max_len=262144 \
      -rss_limit_mb=4096 -timeout=20 -artifact_prefix="$work/artifacts-$t/" -print_final_stats=1 2>"$work/log-$t"; then
    tail -40 "$work/log-$t"
    for a in "$work/artifacts-$t"/*; do
      [ -f "$a" ] && cp "$a" "fuzz/regressions/$t/" && echo "kept $(basename "$a") in fuzz/regressions/$t/"
    done
    status=1
  else
    grep -E "stat::number_of_executed_units|Done" "$work/log-$t" | tail -2
  fi
done
if [ "$status" -ne 0 ]; then echo "fuzzing found problems"; else echo "fuzzing: no findings"; fi
exit "$status"
