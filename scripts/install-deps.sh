#!/usr/bin/env bash
# Installs everything moss-codec needs to build and test, from Debian 12 packages only.
# Safe to run repeatedly; uses sudo when not root.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
PKGS=(
  build-essential cmake pkg-config
  libdnnl-dev            # GEMM (sgemm at ~460-480 GFLOP/s here vs ~245 for OpenBLAS)
  nlohmann-json3-dev     # config.json, cases.json, safetensors headers
  libsndfile1-dev libsoxr-dev
  libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  pybind11-dev python3-dev python3-numpy  # Python module and its tests
  clang libclang-rt-14-dev  # libFuzzer and sanitizer runtimes for scripts/fuzz.sh
)
# qemu-x86_64 runs the portable.* tests: the binary under older x86-64 CPUs.
if [ "$(uname -m)" = x86_64 ]; then PKGS+=(qemu-user); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
