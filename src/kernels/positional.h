#pragma once
// Rotary and sinusoidal position encodings at absolute positions, computed in
// float32 exactly as the reference does so that chunked and offline runs agree.
#include <cstdint>
#include <vector>

namespace moss {

// cos/sin tables for n rows and head size `head_dim`: entry
// [t * head_dim/2 + i] is for pair i of row t. build() makes rows for the
// positions [pos0, pos0 + n); append() adds rows for further positions, so
// that rows of several streams, each at its own position, share one table.
struct RopeTable {
  int64_t n = 0;
  int half = 0;
  std::vector<float> cos, sin;
  void build(int64_t pos0, int64_t n, int head_dim, double max_period);
  void append(int64_t pos0, int64_t n, int head_dim, double max_period);
};

// Rotates adjacent pairs (2i, 2i+1) of every head of q and k in place.
// x: n rows, row stride ld; heads*head_dim columns starting at x.
void apply_rope(float* x, int64_t n, int64_t ld, int heads, int head_dim, const RopeTable& table);

// The same rotation for the columns [c0, c1) of one row of a q|k|v product
// (q in columns [0, width), k in [width, 2 * width), v untouched) at table
// row t: a piece of the product's outputs as it is finished (c0, c1 even).
// Bit for bit what apply_rope does to those columns.
void apply_rope_columns(float* row, int64_t c0, int64_t c1, int64_t width, int head_dim, const RopeTable& table,
                        int64_t t);

// Adds [cos(p / mp^(i/(D/2-1))) for i < D/2, then sin(...)] to x (n x dim).
void add_sin_embedding(float* x, int64_t n, int dim, int64_t pos0, double max_period);

}  // namespace moss
