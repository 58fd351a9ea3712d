#include "machine_probe.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MOSS_NO_CLONES)
#define MOSS_PROBE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOSS_PROBE_CLONES
#endif

namespace moss::cli {

namespace {

constexpr int kChains = 12;

#if defined(__x86_64__) && defined(__GNUC__)
// Explicit FMA instructions: each of the 12 chains feeds only itself, enough
// independent work to cover the FMA latency on both pipes.
__attribute__((target("avx512f"), noinline)) float fma_chains_avx512(int64_t iters, float seed) {
  __m512 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + float(c));
  const __m512 m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], m, a);
  }
  float lanes[16], s = 0;
  for (int c = 0; c < kChains; ++c) {
    _mm512_storeu_ps(lanes, acc[c]);
    for (float v : lanes) s += v;
  }
  return s;
}

__attribute__((target("avx2,fma"), noinline)) float fma_chains_avx2(int64_t iters, float seed) {
  __m256 acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + float(c));
  const __m256 m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], m, a);
  }
  float lanes[8], s = 0;
  for (int c = 0; c < kChains; ++c) {
    _mm256_storeu_ps(lanes, acc[c]);
    for (float v : lanes) s += v;
  }
  return s;
}
#endif

// Returns the checksum; *flops_per_iter is set to the FLOPs of one iteration.
float fma_chains(int64_t iters, float seed, double* flops_per_iter) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f")) {
    *flops_per_iter = 2.0 * 16 * kChains;
    return fma_chains_avx512(iters, seed);
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *flops_per_iter = 2.0 * 8 * kChains;
    return fma_chains_avx2(iters, seed);
  }
#endif
  float acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = seed + float(c);
  for (int64_t it = 0; it < iters; ++it)
    for (int c = 0; c < kChains; ++c) acc[c] = std::fma(acc[c], 0.9999999f, 1e-7f);
  *flops_per_iter = 2.0 * kChains;
  float s = 0;
  for (float v : acc) s += v;
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
    double flops_per_iter = 0;
    const auto t0 = std::chrono::steady_clock::now();
    int threads = 1;
#pragma omp parallel reduction(+ : sink)
    {
#pragma omp single
      threads = omp_get_num_threads();
      sink += fma_chains(iters, float(omp_get_thread_num()), &flops_per_iter);
    }
    if (sink == -1.0f) return 0;  // keep the result alive
    best = std::max(best, flops_per_iter * double(iters) * threads / seconds(t0) / 1e9);
  }
  return best;
}

ReadBandwidthProbe::ReadBandwidthProbe(long long buffer_mib) : buf_(static_cast<size_t>(int64_t(buffer_mib) << 18)) {
  const int64_t n = int64_t(buf_.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf_[size_t(i)] = float(i & 1023);
}

double ReadBandwidthProbe::measure(int passes) const {
  const int64_t n = int64_t(buf_.size()), chunk = int64_t(1) << 20;
  double best = 0;
  for (int rep = 0; rep < passes; ++rep) {
    double total = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t c = 0; c < n / chunk; ++c) total += sum_block(buf_.data() + c * chunk, chunk);
    const double s = seconds(t0);
    if (total == -1.0) return 0;  // keep the sum alive
    best = std::max(best, double(n / chunk * chunk) * 4 / s / 1e9);
  }
  return best;
}

double measure_read_bandwidth_gbs() { return ReadBandwidthProbe(1024).measure(3); }

}  // namespace moss::cli
