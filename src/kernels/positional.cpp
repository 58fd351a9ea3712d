#include "kernels/positional.h"

#include <algorithm>
#include <cmath>

namespace moss {

void RopeTable::build(int64_t pos0, int64_t count, int head_dim, double max_period) {
  n = 0;
  append(pos0, count, head_dim, max_period);
}

void RopeTable::append(int64_t pos0, int64_t count, int head_dim, double max_period) {
  const int64_t t0 = n;
  n += count;
  half = head_dim / 2;
  cos.resize(size_t(n * half));
  sin.resize(size_t(n * half));
  const float coef = float(-std::log(max_period) * 2.0 / head_dim);
  std::vector<float> freqs(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) freqs[size_t(i)] = std::exp(float(i) * coef);
  for (int64_t t = 0; t < count; ++t) {
    const float pos = float(pos0 + t);
    for (int i = 0; i < half; ++i) {
      const float angle = freqs[size_t(i)] * pos;
      cos[size_t((t0 + t) * half + i)] = std::cos(angle);
      sin[size_t((t0 + t) * half + i)] = std::sin(angle);
    }
  }
}

namespace {
// Pairs [i0, i1) of one head. Every rotation goes through this one function,
// whichever caller and range, so that a pair's result never depends on how
// the rows were cut into pieces.
__attribute__((noinline)) void rotate_pairs(float* v, const float* c, const float* s, int i0, int i1) {
  for (int i = i0; i < i1; ++i) {
    const float x0 = v[2 * i], x1 = v[2 * i + 1];
    v[2 * i] = x0 * c[i] - x1 * s[i];
    v[2 * i + 1] = x0 * s[i] + x1 * c[i];
  }
}
}  // namespace

void apply_rope(float* x, int64_t n, int64_t ld, int heads, int head_dim, const RopeTable& table) {
  const int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (n * heads * head_dim > 65536)
  for (int64_t t = 0; t < n; ++t) {
    const float* c = table.cos.data() + t * half;
    const float* s = table.sin.data() + t * half;
    for (int h = 0; h < heads; ++h) rotate_pairs(x + t * ld + int64_t(h) * head_dim, c, s, 0, half);
  }
}

void apply_rope_columns(float* row, int64_t c0, int64_t c1, int64_t width, int head_dim, const RopeTable& table,
                        int64_t t) {
  const int half = head_dim / 2;
  const float* c = table.cos.data() + t * half;
  const float* s = table.sin.data() + t * half;
  for (int64_t col = c0; col < std::min(c1, 2 * width);) {  // head by head
    const int64_t head_start = col / head_dim * head_dim, end = std::min(c1, head_start + head_dim);
    rotate_pairs(row + head_start, c, s, int((col - head_start) / 2), int((end - head_start) / 2));
    col = end;
  }
}

void add_sin_embedding(float* x, int64_t n, int dim, int64_t pos0, double max_period) {
  const int half = dim / 2;
  std::vector<float> div(static_cast<size_t>(half));
  const float mp = float(max_period);
  for (int i = 0; i < half; ++i) div[size_t(i)] = std::pow(mp, float(i) / float(half - 1));
  for (int64_t t = 0; t < n; ++t) {
    const float pos = float(pos0 + t);
    float* row = x + t * dim;
    for (int i = 0; i < half; ++i) {
      const float phase = pos / div[size_t(i)];
      row[i] += std::cos(phase);
      row[half + i] += std::sin(phase);
    }
  }
}

}  // namespace moss
