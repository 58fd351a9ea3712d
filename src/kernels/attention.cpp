#include "kernels/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/few_row_gemm.h"
#include "kernels/gemm.h"
#include "kernels/vector_math.h"

namespace moss {

// Softmax over row[jlo, jhi); the rest of the row (keys outside the window) is 0.
// Reductions keep 16 partial lanes, written as one GCC vector: GCC 12 left
// the same lanes written as an array as scalar code. Same sums lane by lane;
// 8 queries against 3 layers of 1000 cached keys (a standalone loop, Zen 4,
// 2026-12-05) 0.426-0.444 ms against 0.449-0.469. The exponentials are a
// plain map.
MOSS_VECTOR_CLONES static void softmax_window(float* row, int64_t span, int64_t jlo, int64_t jhi) {
  constexpr int L = 16;
  typedef float Lanes __attribute__((vector_size(L * sizeof(float))));
  float* x = row + jlo;
  const int64_t n = jhi - jlo, whole = n / L * L;
  float mx = -std::numeric_limits<float>::infinity();
  Lanes lanes = mx - Lanes{};
  for (int64_t j = 0; j < whole; j += L) {
    Lanes xj;
    std::memcpy(&xj, x + j, sizeof xj);
    lanes = xj > lanes ? xj : lanes;
  }
  for (int l = 0; l < L; ++l) mx = std::max(mx, lanes[l]);
  for (int64_t j = whole; j < n; ++j) mx = std::max(mx, x[j]);
  for (int64_t j = 0; j < n; ++j) x[j] = vexp(x[j] - mx);
  lanes = Lanes{};
  for (int64_t j = 0; j < whole; j += L) {
    Lanes xj;
    std::memcpy(&xj, x + j, sizeof xj);
    lanes += xj;
  }
  float sum = 0.0f;
  for (int l = 0; l < L; ++l) sum += lanes[l];
  for (int64_t j = whole; j < n; ++j) sum += x[j];
  const float inv = 1.0f / sum;
  for (int64_t j = 0; j < n; ++j) x[j] *= inv;
  for (int64_t j = 0; j < jlo; ++j) row[j] = 0.0f;
  for (int64_t j = jhi; j < span; ++j) row[j] = 0.0f;
}

namespace {

// Rows of scores as a layout's product left them: row r of a block at
// p + r * ld, span entries.
struct ScoreRows {
  float* p;
  int64_t ld;
};

// The loop both layouts share: per (head, block of up to 128 queries), the
// scores over the keys the block can see, the windowed softmax, and the
// weighted sum of values. scores_fn(h, lo, span, bq, qh, buffer, ahead)
// computes the scores into buffer (sizing it) and says where their rows are;
// values_fn(h, lo, span, bq, rows, oh, ahead) does the weighted sum. With
// ahead, the functions may request head h + 1's keys and values while they
// read head h's: in a run of heads the same thread takes it next (except at
// the end of its run, where the request serves the thread that does).
constexpr int64_t kBlock = 128;  // queries per task

template <class ScoresFn, class ValuesFn>
void attend(const AttentionShape& s, const float* q, int64_t ldq, float* out, int64_t ldo, ScoresFn scores_fn,
            ValuesFn values_fn, BeforeHead before = {}) {
  const int64_t nq = s.n_queries, nk = s.n_keys, offset = nk - nq;  // key row of query i is offset + i
  const int64_t blocks = (nq + kBlock - 1) / kBlock;
  // With one block of queries a head is one task, so its thread can do the
  // head's prior work; with more, tasks of one head run on several threads.
  if (before.fn && blocks > 1) {
    for (int h = 0; h < s.heads; ++h) before.fn(before.ctx, h);
    before = {};
  }
  const int64_t tasks = blocks * s.heads;
  // Threads only pay off on real work: a streaming step of a few frames would
  // spend longer waking a team than computing.
  const int64_t work = nq * std::min<int64_t>(nk, s.causal ? s.context + kBlock : nk) * s.head_dim * s.heads;
  // A streaming step over short windows (a head's keys and values within
  // 128 KB) gives each thread a run of consecutive heads: their keys (and
  // their values) lie one after the other in the head-major cache, so each
  // thread reads on where its last head ended instead of jumping a head at
  // a time (a read-only loop in this order: 1.25 ms for the 1-query stage's
  // 42 MB against 1.56-2.08 dealt one head at a time). Timed alternately
  // push by push in one streaming v1 decode (Zen 4, 2 threads, 2026-12-05):
  // 1 query against 32 layers of 125 keys 2.27-2.35 ms against 2.39-2.48
  // dealt one head at a time; 2 queries against 250 keys 0.81-0.85 against
  // 0.86-0.92. From 4 queries (256 KB and more a head) runs gained nothing
  // and 8 queries were 0.06-0.09 ms slower (fixed halves wait for the slower
  // thread, presumably).
  const int64_t window_bytes = std::min(nk, s.causal ? s.context + nq : nk) * s.head_dim * int64_t(2 * sizeof(float));
  const bool runs_of_heads = blocks == 1 && window_bytes <= (int64_t(128) << 10);
  // One query waits on memory between heads: its scores and weighted sum are
  // too little work to cover the reads, so a run of heads requests the next
  // head's keys and values (into L2) line for line as it reads this head's.
  // Timed alternately push by push in one streaming v1 decode (Zen 4, 2
  // threads, 2026-12-05, 100 pushes a mode at 35-41 GB/s): 1 query against 32
  // layers of 125 keys 1.51-1.67 ms against 1.72-1.86 in 3 of 3 runs, the
  // step 0.33-1.0 ms faster (medians of paired pushes). For 2 queries the
  // same requests gained nothing (0.67-0.71 ms either way).
  const bool read_ahead = runs_of_heads && nq == 1;
  const auto task_body = [&](int64_t task, std::vector<float>& buffer) {
    const int h = int(task % s.heads);
    if (before.fn) before.fn(before.ctx, h);
    const int64_t i0 = (task / s.heads) * kBlock, i1 = std::min(nq, i0 + kBlock), bq = i1 - i0;
    // Keys this block of queries can see.
    int64_t lo = 0, hi = nk;
    if (s.causal) {
      lo = std::max<int64_t>(0, offset + i0 - s.context + 1);
      hi = offset + i1;
    }
    const int64_t span = hi - lo;
    const bool ahead = read_ahead && h + 1 < s.heads;
    const ScoreRows rows = scores_fn(h, lo, span, bq, q + i0 * ldq + int64_t(h) * s.head_dim, buffer, ahead);
    for (int64_t r = 0; r < bq; ++r) {
      int64_t jlo = 0, jhi = span;  // visible range within the span
      if (s.causal) {
        const int64_t p = offset + i0 + r;
        jlo = std::max<int64_t>(0, p - s.context + 1) - lo;
        jhi = p + 1 - lo;
      }
      softmax_window(rows.p + r * rows.ld, span, jlo, jhi);
    }
    values_fn(h, lo, span, bq, rows, out + i0 * ldo + int64_t(h) * s.head_dim, ahead);
  };
#pragma omp parallel if (tasks > 1 && work > (1 << 16))
  {
    std::vector<float> buffer;
    if (runs_of_heads) {
#pragma omp for schedule(static)
      for (int64_t task = 0; task < tasks; ++task) task_body(task, buffer);
    } else {
#pragma omp for schedule(dynamic)
      for (int64_t task = 0; task < tasks; ++task) task_body(task, buffer);
    }
  }
}

// out[bq x d] = p[bq x span] V[span x d] (the weighted sum of values), rows
// ldp, ldv, ldo apart: the few-row kernel for a streaming step (cheaper than
// a call into oneDNN), sgemm otherwise.
void weighted_values(const float* p, int64_t ldp, int64_t bq, int64_t span, const float* v, int64_t ldv, int64_t d,
                     float* out, int64_t ldo, bool accumulate = false, int64_t read_ahead = 0) {
  if (bq <= kFewRowsMax && few_row_gemm_available())
    few_row_weighted_sum({p, ldp, bq, span, v, ldv, d, out, ldo, accumulate, read_ahead});
  else sgemm(false, bq, d, span, 1.0f, p, ldp, v, ldv, accumulate ? 1.0f : 0.0f, out, ldo);
}

}  // namespace

void windowed_attention(const AttentionShape& s, const float* q, int64_t ldq, const float* k, const float* v,
                        int64_t ldkv, float* out, int64_t ldo) {
  const float scale = 1.0f / std::sqrt(float(s.head_dim));
  const int64_t dh = s.head_dim;
  attend(
      s, q, ldq, out, ldo,
      [&](int h, int64_t lo, int64_t span, int64_t bq, const float* qh, std::vector<float>& buffer, bool) {
        buffer.resize(size_t(bq * span));
        sgemm(true, bq, span, dh, scale, qh, ldq, k + lo * ldkv + h * dh, ldkv, 0.0f, buffer.data(), span);
        return ScoreRows{buffer.data(), span};
      },
      [&](int h, int64_t lo, int64_t span, int64_t bq, ScoreRows p, float* oh, bool) {
        weighted_values(p.p, p.ld, bq, span, v + lo * ldkv + h * dh, ldkv, dh, oh, ldo);
      });
}

void windowed_attention(const AttentionShape& s, const float* q, int64_t ldq, const HeadMajorKv& kv, float* out,
                        int64_t ldo, BeforeHead before) {
  const float scale = 1.0f / std::sqrt(float(s.head_dim));
  const int64_t dh = s.head_dim, cap = kv.capacity;
  attend(
      s, q, ldq, out, ldo,
      [&](int h, int64_t lo, int64_t span, int64_t bq, const float* qh, std::vector<float>& buffer, bool ahead) {
        // Scores for whole tiles of keys, each run's tiles after the other's:
        // a wrapping first run ends on a tile boundary (cap is whole tiles),
        // so the rows hold the visible keys in order from the first one on.
        const RingRuns r = ring_runs(kv.first, cap, lo, span);
        const int64_t tile0 = r.slot / kKeyTile;
        const int64_t tiles1 = (r.slot % kKeyTile + r.first_run + kKeyTile - 1) / kKeyTile;
        const int64_t tiles2 = (r.second_run + kKeyTile - 1) / kKeyTile, width = (tiles1 + tiles2) * kKeyTile;
        buffer.resize(size_t(bq * width));
        const float* keys = kv.kt + int64_t(h) * cap * dh;  // this head's ring
        const auto score_tiles = [&](int64_t tile, int64_t tiles, int64_t column) {
          if (few_row_gemm_available()) {
            for (int64_t i = 0; i < bq; i += kFewRowsMax)
              few_row_tiled_scores({qh + i * ldq, ldq, std::min(kFewRowsMax, bq - i), dh, keys + tile * kKeyTile * dh,
                                    kKeyTile * dh, tiles, buffer.data() + i * width + column, width, scale,
                                    ahead ? cap * dh : 0});  // the next head's ring follows this one
          } else {
            for (int64_t t = 0; t < tiles; ++t)  // a tile is a plain (dh x 16) matrix
              sgemm(false, bq, kKeyTile, dh, scale, qh, ldq, keys + (tile + t) * kKeyTile * dh, kKeyTile, 0.0f,
                    buffer.data() + column + t * kKeyTile, width);
          }
        };
        score_tiles(tile0, tiles1, 0);
        if (tiles2 > 0) score_tiles(0, tiles2, tiles1 * kKeyTile);
        return ScoreRows{buffer.data() + r.slot % kKeyTile, width};
      },
      [&](int h, int64_t lo, int64_t span, int64_t bq, ScoreRows p, float* oh, bool ahead) {
        const RingRuns r = ring_runs(kv.first, cap, lo, span);
        const float* values = kv.v + int64_t(h) * cap * dh;  // this head's ring
        const int64_t next = ahead ? cap * dh : 0;            // the next head's ring follows this one
        weighted_values(p.p, p.ld, bq, r.first_run, values + r.slot * dh, dh, dh, oh, ldo, false, next);
        if (r.second_run > 0)
          weighted_values(p.p + r.first_run, p.ld, bq, r.second_run, values, dh, dh, oh, ldo, true, next);
      },
      before);
}

}  // namespace moss
