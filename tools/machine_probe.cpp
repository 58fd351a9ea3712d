#include "machine_probe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MOSS_NO_CLONES)
#define MOSS_PROBE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOSS_PROBE_CLONES
#endif

namespace moss::cli {

namespace {

constexpr int kChains = 12, kLanes = 16;

// 12 chains x 16 lanes of fused multiply-adds; the compiler keeps each chain in
// its own vector register and cannot merge them (each feeds only itself).
MOSS_PROBE_CLONES __attribute__((noinline)) float fma_chains(int64_t iters, float seed) {
  float acc[kChains][kLanes];
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) acc[c][l] = seed + float(c * kLanes + l) * 1e-3f;
  const float m = 0.9999999f, a = 1e-7f;
  for (int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kChains; ++c)
#pragma GCC unroll 16
      for (int l = 0; l < kLanes; ++l) acc[c][l] = __builtin_fmaf(acc[c][l], m, a);
  float s = 0;
  for (int c = 0; c < kChains; ++c)
    for (int l = 0; l < kLanes; ++l) s += acc[c][l];
  return s;
}

MOSS_PROBE_CLONES __attribute__((noinline)) float sum_block(const float* p, int64_t n) {
  float s[16] = {0};
  for (int64_t i = 0; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) s[l] += p[i + l];
  float t = 0;
  for (float v : s) t += v;
  return t;
}

double seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

double measure_fma_peak_gflops() {
  const int64_t iters = 20000000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    float sink = 0;
    const auto t0 = std::chrono::steady_clock::now();
    int threads = 1;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      sink += fma_chains(iters, float(omp_get_thread_num()));
    }
    if (sink == -1.0f) return 0;  // keep the result alive
    best = std::max(best, 2.0 * kChains * kLanes * double(iters) * threads / seconds(t0) / 1e9);
  }
  return best;
}

double measure_read_bandwidth_gbs() {
  const int64_t n = int64_t(256) << 20;  // 1 GiB of floats
  std::vector<float> buf(static_cast<size_t>(n));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = float(i & 1023);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double total = 0;
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t chunk = int64_t(1) << 20;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t c = 0; c < n / chunk; ++c) total += sum_block(buf.data() + c * chunk, chunk);
    const double s = seconds(t0);
    if (total == -1.0) return 0;  // keep the sum alive
    best = std::max(best, double(n) * 4 / s / 1e9);
  }
  return best;
}

}  // namespace moss::cli
