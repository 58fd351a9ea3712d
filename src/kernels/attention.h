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

}  // namespace moss
