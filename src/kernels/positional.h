#pragma once
// Rotary and sinusoidal position encodings at absolute positions, computed in
// float32 exactly as the reference does so that chunked and offline runs agree.
#include <cstdint>
#include <vector>

namespace moss {

// cos/sin tables for positions [pos0, pos0 + n) and head size `head_dim`:
// entry [t * head_dim/2 + i] is for pair i at position pos0 + t.
struct RopeTable {
  int64_t pos0 = 0, n = 0;
  int half = 0;
  std::vector<float> cos, sin;
  void build(int64_t pos0, int64_t n, int head_dim, double max_period);
};

// Rotates adjacent pairs (2i, 2i+1) of every head of q and k in place.
// x: n rows, row stride ld; heads*head_dim columns starting at x.
void apply_rope(float* x, int64_t n, int64_t ld, int heads, int head_dim, const RopeTable& table);

// Adds [cos(p / mp^(i/(D/2-1))) for i < D/2, then sin(...)] to x (n x dim).
void add_sin_embedding(float* x, int64_t n, int dim, int64_t pos0, double max_period);

}  // namespace moss
