#pragma once
// Products of a few rows (1-8: one streaming step) with a large weight matrix.
// They are reads of the weights, nothing else: each thread streams its own
// contiguous slice of W once, with every row of x applied to each weight
// vector while it is in registers. Written for this because oneDNN's sgemm
// ran the v1 decoder's per-frame products at ~26 GB/s of weight reads where
// memory gave ~35-47 (BM_WeightStream in bench/ measures both).
#include <cstdint>

#include "kernels/half.h"

namespace moss {

// The most rows few_row_gemm handles; more go through sgemm/matmul.
inline constexpr int64_t kFewRowsMax = 8;

// Work on a product's outputs as soon as they are final, done by the thread
// that computed them while they are still in its cache: fn(ctx, y, ldy, m,
// n0, n1) once for each piece [n0, n1) of the outputs (all m rows; pieces
// start at multiples of 8, in any order, from any thread). A streaming step's
// GELU and RoPE, run on one thread after the product, mostly waited for the
// other core's half of the outputs: 0.47 and 0.25 ms of a v1 decode step
// (Zen 4, 2026-12-05), about as much with those passes split over both
// threads.
struct OutputHook {
  void (*fn)(void* ctx, float* y, int64_t ldy, int64_t m, int64_t n0, int64_t n1) = nullptr;
  void* ctx = nullptr;
  void operator()(float* y, int64_t ldy, int64_t m, int64_t n0, int64_t n1) const {
    if (fn) fn(ctx, y, ldy, m, n0, n1);
  }
};

// y[m x n] = alpha * x[m x k] W^T (+ y when accumulate), W row-major [n x k];
// ld* are row strides in elements; then after() on the outputs.
struct FewRowProduct {
  const float* x = nullptr;
  int64_t ldx = 0, m = 0, k = 0;
  const float* w = nullptr;
  int64_t ldw = 0, n = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  float alpha = 1.0f;
  bool accumulate = false;
  // Set instead of w: W stored as 16-bit floats (a bf16/f16 checkpoint used in
  // place), widened as it is loaded, in the same order of FMAs as float32 W.
  const uint16_t* w16 = nullptr;
  HalfFormat w16_format = HalfFormat::BF16;
  // Set instead of w: W in oneDNN's blocked layout BA16a64b (a packed
  // checkpoint, or LoadOptions::pack_weights), where matmul reads it: strips
  // of kBlockedStrip outputs, strip s at w_blocked + s * blocked_depth(k) *
  // kBlockedStrip holding its outputs' weights input by input (the weight of
  // output s * 64 + j for input t at t * 64 + j). Padding (outputs past n,
  // inputs past k) is never used. ldw is ignored.
  const float* w_blocked = nullptr;
  OutputHook after = {};
};

// Outputs per strip of a blocked W, and the inputs a strip stores (k rounded
// up to oneDNN's 16-input tiles).
inline constexpr int64_t kBlockedStrip = 64;
inline constexpr int64_t blocked_depth(int64_t k) { return (k + 15) / 16 * 16; }

// y[m x d] = p[m x span] V[span x d] (+ y when accumulate; V row-major, rows
// ldv apart): the weighted sum of values in a streaming step's attention.
struct WeightedSum {
  const float* p = nullptr;
  int64_t ldp = 0, m = 0, span = 0;
  const float* v = nullptr;
  int64_t ldv = 0, d = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  bool accumulate = false;
  // Nonzero: every line of V read is also requested into L2 at v + this
  // many floats (the next head's values, which the caller reads next).
  int64_t read_ahead = 0;
};

// Keys stored in tiles of kKeyTile: tile t holds keys t*kKeyTile.. as
// [depth][kKeyTile] (each of the depth features of those keys side by side),
// tiles `tile_stride` floats apart. A streaming step's scores then read each
// head's keys front to back (keys stored as plain rows of a transposed matrix
// were read as 64 strided streams, at a third of the memory's speed).
inline constexpr int64_t kKeyTile = 16;

// y[m x (tiles * kKeyTile)] = alpha * q[m x depth] K^T over `tiles` tiles.
struct TiledScores {
  const float* q = nullptr;
  int64_t ldq = 0, m = 0, depth = 0;
  const float* k = nullptr;
  int64_t tile_stride = 0, tiles = 0;
  float* y = nullptr;
  int64_t ldy = 0;
  float alpha = 1.0f;
  // Nonzero: every line of keys read is also requested into L2 at k + this
  // many floats (the next head's keys, which the caller reads next).
  int64_t read_ahead = 0;
};

// The instruction sets there are kernels for; Best is what this CPU runs best.
enum class FewRowIsa { Best, Avx512, Avx2 };

// Whether this CPU runs the kernel for isa (Best: any few-row kernel at all;
// none off x86-64, where sgemm serves instead).
bool few_row_gemm_available(FewRowIsa isa = FewRowIsa::Best);

// Runs p (1 <= p.m <= kFewRowsMax; few_row_gemm_available(isa) must hold),
// splitting the n outputs over the OpenMP threads unless already in parallel.
// Tests name an isa to check every kernel on one machine.
void few_row_gemm(const FewRowProduct& p, FewRowIsa isa = FewRowIsa::Best);

// out[0, n) = in[0, n) widened to float32 (exact), split over the OpenMP
// threads unless already in parallel: 16-bit weights for products of many
// rows, which oneDNN takes in float32 only. Runs on any CPU.
void widen_half(const uint16_t* in, HalfFormat format, int64_t n, float* out);

// Runs s (1 <= s.m <= kFewRowsMax) on the calling thread; same conditions.
void few_row_weighted_sum(const WeightedSum& s, FewRowIsa isa = FewRowIsa::Best);
void few_row_tiled_scores(const TiledScores& s, FewRowIsa isa = FewRowIsa::Best);

}  // namespace moss
