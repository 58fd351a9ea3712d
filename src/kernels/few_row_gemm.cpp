#include "kernels/few_row_gemm.h"

#include <omp.h>

#include <atomic>
#include <cstdint>
#include <algorithm>
#include <type_traits>

#include "kernels/half.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define MOSS_FEW_ROW_KERNELS 1
#endif

namespace moss {

#if MOSS_FEW_ROW_KERNELS

namespace {
// What CPUID says beyond __builtin_cpu_supports.
//
// F16C (IEEE half conversion), which the AVX2 kernels use: from CPUID, as
// clang 14's __builtin_cpu_supports does not know it.
bool cpu_has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}

// "AuthenticAMD", from CPUID leaf 0 (vendor string in EBX, EDX, ECX).
bool cpu_is_amd() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(0, &a, &b, &c, &d) && b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;
}

// Whether one input row against short weight rows prefetches weights in
// software (see few_rows in few_row_gemm_body.inc): a gain on Intel cores, a
// loss on AMD's, whose own prefetcher streams these reads best.
bool one_row_prefetch() {
  static const bool enabled = !cpu_is_amd();
  return enabled;
}
}  // namespace

// The same kernel text compiled for AVX-512 and for AVX2+FMA; the caller picks
// by the CPU's features at run time, so the default build stays portable.
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f")
#endif
namespace few_rows_avx512 {
struct Vec {
  using V = __m512;
  static constexpr int kLanes = 16, kRegisters = 32;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  // 16 weights stored as bfloat16 (the high half of a float32) or IEEE half;
  // zero-masked forms, as GCC 12 warns on the unmasked ones' undefined source.
  static V load_bf16(const uint16_t* p) {
    const __m512i wide = _mm512_maskz_cvtepu16_epi32(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, wide, 16));
  }
  static V load_f16(const uint16_t* p) {
    return _mm512_maskz_cvtph_ps(0xFFFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V broadcast(float f) { return _mm512_set1_ps(f); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  // The masked forms: GCC 12 warns on the unmasked ones' undefined source.
  static float sum(V v) {
    v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(v);
  }
  // s[m * 4 + r] = sum(a[m][r]) by the same tree as sum(), 16 sums at once:
  // each level adds pairs of vectors after interleaving their halves, so after
  // four levels every lane holds one total (45 shuffles and adds, not 128).
  template <int Lo, int Hi>  // lanes Lo of (a, b) plus lanes Hi, as 128-bit blocks
  static V add_blocks(V a, V b) {
    return _mm512_add_ps(_mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, Lo), _mm512_mask_shuffle_f32x4(a, 0xFFFF, a, b, Hi));
  }
  template <int Lo, int Hi>  // the same with floats within each 128-bit block
  static V add_floats(V a, V b) {
    return _mm512_add_ps(_mm512_mask_shuffle_ps(a, 0xFFFF, a, b, Lo), _mm512_mask_shuffle_ps(a, 0xFFFF, a, b, Hi));
  }
  static void sums_4x4(const V a[4][4], float* s) {
    // Taking v_i = a[i % 4][i / 4] leaves lanes 4m..4m+3 holding a[m][0..3].
    V w[8], x[4];
    for (int p = 0; p < 8; ++p) w[p] = add_blocks<0x44, 0xEE>(a[(2 * p) % 4][(2 * p) / 4], a[(2 * p + 1) % 4][(2 * p + 1) / 4]);
    for (int q = 0; q < 4; ++q) x[q] = add_blocks<0x88, 0xDD>(w[2 * q], w[2 * q + 1]);
    const V z0 = add_floats<0x44, 0xEE>(x[0], x[1]), z1 = add_floats<0x44, 0xEE>(x[2], x[3]);
    _mm512_store_ps(s, add_floats<0x88, 0xDD>(z0, z1));
  }
};
using Operands = FewRowProduct;
#include "kernels/few_row_gemm_body.inc"
}  // namespace few_rows_avx512
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
namespace few_rows_avx2 {
struct Vec {
  using V = __m256;
  static constexpr int kLanes = 8, kRegisters = 16;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load_bf16(const uint16_t* p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
  }
  static V load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V broadcast(float f) { return _mm256_set1_ps(f); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static float sum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static void sums_4x4(const V a[4][4], float* s) {
    for (int m = 0; m < 4; ++m)
      for (int r = 0; r < 4; ++r) s[m * 4 + r] = sum(a[m][r]);
  }
};
using Operands = FewRowProduct;
#include "kernels/few_row_gemm_body.inc"
}  // namespace few_rows_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace {
struct Kernels {
  void (*range)(const FewRowProduct&, int64_t, int64_t) = nullptr;
  void (*weighted_sum)(const WeightedSum&) = nullptr;
  void (*tiled_scores)(const TiledScores&) = nullptr;
  void (*widen)(const uint16_t*, HalfFormat, int64_t, int64_t, float*) = nullptr;
};

Kernels kernels_for(FewRowIsa isa) {
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
  const Kernels k512{few_rows_avx512::few_rows_range, few_rows_avx512::few_rows_weighted_sum,
                     few_rows_avx512::few_rows_tiled_scores, few_rows_avx512::widen_half_range};
  const Kernels k2{few_rows_avx2::few_rows_range, few_rows_avx2::few_rows_weighted_sum,
                   few_rows_avx2::few_rows_tiled_scores, few_rows_avx2::widen_half_range};
  switch (isa) {
    case FewRowIsa::Avx512: return avx512 ? k512 : Kernels{};
    case FewRowIsa::Avx2: return avx2 ? k2 : Kernels{};
    case FewRowIsa::Best: break;
  }
  return avx512 ? k512 : avx2 ? k2 : Kernels{};
}

Kernels kernels(FewRowIsa isa) {
  static const Kernels best = kernels_for(FewRowIsa::Best);
  return isa == FewRowIsa::Best ? best : kernels_for(isa);
}
}  // namespace

bool few_row_gemm_available(FewRowIsa isa) { return kernels(isa).range != nullptr; }

void few_row_weighted_sum(const WeightedSum& s, FewRowIsa isa) { kernels(isa).weighted_sum(s); }

void few_row_tiled_scores(const TiledScores& s, FewRowIsa isa) { kernels(isa).tiled_scores(s); }

namespace {
// One thread's share of a product's output rows, in units of 8 rows (the
// row-blocked kernels' unit, so that every row is summed by the same kernel
// however the rows are shared out; for blocked W, its 64-output strips):
// front in the high 32 bits, back in the
// low. Its owner takes pieces from the front, threads that ran out of their
// own take them from the back. A line each: the owners' claims do not contend.
struct alignas(64) RowShare {
  std::atomic<uint64_t> ends{0};

  static uint64_t pack(int64_t front, int64_t back) { return (uint64_t(front) << 32) | uint64_t(back); }

  // Claims a piece ([*u0, *u1) in units) of what is left, max(least, left / 4)
  // from the front or max(least, left / 2) from the back; false when none is.
  bool claim(bool owner, int64_t least, int64_t* u0, int64_t* u1) {
    uint64_t cur = ends.load(std::memory_order_relaxed);
    for (;;) {
      const int64_t f = int64_t(cur >> 32), b = int64_t(cur & 0xffffffffu), left = b - f;
      if (left <= 0) return false;
      const int64_t take = std::min(left, std::max(least, owner ? left / 4 : left / 2));
      const int64_t nf = owner ? f + take : f, nb = owner ? b : b - take;
      if (ends.compare_exchange_weak(cur, pack(nf, nb), std::memory_order_relaxed)) {
        *u0 = owner ? f : nb;
        *u1 = owner ? nf : b;
        return true;
      }
    }
  }
};
constexpr int kMaxShares = 64;
constexpr int64_t kShareUnit = 8;  // rows per unit of a RowShare
}  // namespace

void few_row_gemm(const FewRowProduct& p, FewRowIsa isa) {
  const auto run = kernels(isa).range;
  // Below ~256 KB of weights the threads' start-up costs more than the read.
  const int threads =
      omp_in_parallel() || p.n * p.k < (int64_t(1) << 16) ? 1 : std::min(omp_get_max_threads(), kMaxShares);
  const auto piece = [&](int64_t n0, int64_t n1) {  // outputs [n0, n1), then their hook
    run(p, n0, n1);
    p.after(p.y, p.ldy, p.m, n0, n1);
  };
  if (threads == 1) {
    piece(0, p.n);
    return;
  }
  // Each thread streams its own contiguous share of the weights, and one that
  // finishes first takes pieces off the end of another's. Fixed halves left
  // the threads 13% of a streaming decode's product time apart on average
  // (Zen 4, two threads sharing memory: whichever finishes first leaves the
  // other reading alone, slower); sharing out all rows in small pieces on
  // demand cost 2.8%, as each piece restarts the hardware prefetcher.
  // Blocked weights are shared out by whole strips, which their kernel reads.
  const int64_t unit = p.w_blocked ? kBlockedStrip : kShareUnit;
  const int64_t units = (p.n + unit - 1) / unit;
  // Pieces of at least ~128 KB of float32 weights (64 KB of 16-bit ones): a
  // few microseconds of reading.
  const int64_t least = std::max<int64_t>(1, (int64_t(128) << 10) / (unit * int64_t(sizeof(float)) * p.k));
  RowShare shares[kMaxShares];
  for (int t = 0; t < threads; ++t) shares[t].ends.store(RowShare::pack(units * t / threads, units * (t + 1) / threads));
#pragma omp parallel num_threads(threads)
  {
    // Over every share: a runtime that starts fewer threads leaves some unowned.
    const int t = omp_get_thread_num();
    int64_t u0 = 0, u1 = 0;
    for (int i = 0; i < threads; ++i) {
      RowShare& share = shares[(t + i) % threads];
      while (share.claim(i == 0, least, &u0, &u1)) piece(u0 * unit, std::min(p.n, u1 * unit));
    }
  }
}

#endif

// Chunks of 16 K values split over the threads; below 4 chunks one thread.
void widen_half(const uint16_t* in, HalfFormat format, int64_t n, float* out) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  void (*widen)(const uint16_t*, HalfFormat, int64_t, int64_t, float*) = nullptr;  // none: the scalar loop
#if MOSS_FEW_ROW_KERNELS
  widen = kernels(FewRowIsa::Best).widen;
#endif
#pragma omp parallel for schedule(static) if (chunks >= 4 && !omp_in_parallel())
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = std::min(n, i0 + kChunk);
    if (widen) {
      widen(in, format, i0, i1, out);
    } else {
      for (int64_t i = i0; i < i1; ++i) out[i] = widen_value(in[i], format);
    }
  }
}

#if !MOSS_FEW_ROW_KERNELS  // no x86-64 kernels: callers use sgemm

bool few_row_gemm_available(FewRowIsa) { return false; }
void few_row_gemm(const FewRowProduct&, FewRowIsa) {}
void few_row_weighted_sum(const WeightedSum&, FewRowIsa) {}
void few_row_tiled_scores(const TiledScores&, FewRowIsa) {}

#endif

}  // namespace moss
