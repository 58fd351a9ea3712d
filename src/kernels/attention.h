#pragma once
// Multi-head scaled dot-product attention with a causal sliding window, for a
// block of new queries against keys that may include cached earlier frames.
#include <cstdint>

namespace moss {

struct AttentionShape {
  int64_t n_queries = 0;  // new frames; they are the last n_queries key rows
  int64_t n_keys = 0;     // cached + new rows in k and v
  int heads = 0;
  int head_dim = 0;
  int64_t context = 0;    // query p sees key s iff 0 <= p - s < context
  bool causal = true;     // false: every query sees every key
};

// q: n_queries rows (stride ldq); k, v: n_keys rows (stride ldkv); out: n_queries
// rows (stride ldo). Head h occupies columns [h*head_dim, (h+1)*head_dim).
// Cost is O(n_queries x min(context, n_keys)), not quadratic in the stream.
void windowed_attention(const AttentionShape& s, const float* q, int64_t ldq, const float* k, const float* v,
                        int64_t ldkv, float* out, int64_t ldo);

// A stream's cached keys and values, head-major so that each head's window is
// contiguous: a ring of `capacity` slots per head (a whole number of tiles),
// key row i (0 = the oldest of n_keys) in slot j = (first + i) % capacity.
// Keys in tiles of kKeyTile (16, few_row_gemm.h) transposed keys: component c
// of slot j is kt[(h * capacity + j / 16 * 16) * head_dim + c * 16 + j % 16];
// values v[(h * capacity + j) * head_dim + c].
struct HeadMajorKv {
  const float* kt = nullptr;
  const float* v = nullptr;
  int64_t capacity = 0, first = 0;
};

// Where rows [lo, lo + span) of a ring of `capacity` slots whose oldest row
// is in slot `first` lie: one run of slots from `slot` and, when they wrap, a
// second run from slot 0. capacity must be > 0.
struct RingRuns {
  int64_t slot, first_run, second_run;
};
inline RingRuns ring_runs(int64_t first, int64_t capacity, int64_t lo, int64_t span) {
  const int64_t slot = (first + lo) % capacity, first_run = span < capacity - slot ? span : capacity - slot;
  return {slot, first_run, span - first_run};
}

// Work on a head's cache that must be done before its attention reads it,
// fn(ctx, head) once per head: a streaming step's new keys and values, written
// by the thread that then reads that head. They land in the window's newest
// tiles, which the attention reads anyway, so their cache misses are taken in
// parallel and in place of the attention's own (appending them all first, on
// one thread, was ~1 ms of a 70-120 ms v1 decode step).
struct BeforeHead {
  void (*fn)(void* ctx, int head) = nullptr;
  void* ctx = nullptr;
};

// The same attention against a head-major cache (the queries' own keys must
// be in it, as its last n_queries rows, once before(h) has run for head h).
void windowed_attention(const AttentionShape& s, const float* q, int64_t ldq, const HeadMajorKv& kv, float* out,
                        int64_t ldo, BeforeHead before = {});

}  // namespace moss
