#include "model/kv_window.h"

#include <algorithm>
#include <cstring>

#include "kernels/few_row_gemm.h"

namespace moss {

// Copies the live rows to buffers with row capacity `cap`, at the same place
// within their key tile (so keys move as whole tiles): row start_ goes to row
// start_ % kKeyTile. memmove: the destination may be these very buffers.
void KvWindow::move_live_rows(float* kt, float* v, int64_t cap) const {
  if (rows_ == 0) return;
  const int64_t heads = width_ / head_dim_, phase = start_ % kKeyTile;
  const int64_t tile0 = start_ / kKeyTile, tiles = (phase + rows_ + kKeyTile - 1) / kKeyTile;
  for (int64_t h = 0; h < heads; ++h) {
    std::memmove(kt + h * cap * head_dim_, kt_.data() + (h * cap_ + tile0 * kKeyTile) * head_dim_,
                 sizeof(float) * size_t(tiles * kKeyTile * head_dim_));
    std::memmove(v + (h * cap + phase) * head_dim_, v_.data() + (h * cap_ + start_) * head_dim_,
                 sizeof(float) * size_t(rows_ * head_dim_));
  }
}

// Makes room for n more rows after the live ones: moves the live rows to the
// front, into a larger buffer only when this one cannot hold them plus n (so
// a stream's memory stops changing once it has seen its largest push).
void KvWindow::reserve_for(int64_t n, int64_t keep) {
  if (start_ + rows_ + n <= cap_) return;
  const int64_t phase = start_ % kKeyTile;
  int64_t cap = cap_;
  if (phase + rows_ + n > cap_) {
    cap = std::max(keep, rows_) + n + std::max<int64_t>(keep / 2, 16) + phase;
    cap = (cap + kKeyTile - 1) / kKeyTile * kKeyTile;
  }
  if (cap == cap_) {  // compact in place
    move_live_rows(kt_.data(), v_.data(), cap_);
  } else {
    std::vector<float> kt(size_t(width_ * cap)), v(size_t(width_ * cap));
    move_live_rows(kt.data(), v.data(), cap);
    kt_.swap(kt);
    v_.swap(v);
    cap_ = cap;
  }
  start_ = phase;
}

void KvWindow::append(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim, int64_t keep) {
  if (width_ != int64_t(heads) * head_dim || head_dim_ != head_dim) {  // first use
    width_ = int64_t(heads) * head_dim;
    head_dim_ = head_dim;
    kt_.clear();
    v_.clear();
    cap_ = start_ = rows_ = 0;
  }
  reserve_for(n, keep);
  const int64_t row0 = start_ + rows_;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t row = row0 + t;
    const float* kr = k + t * ld;
    const float* vr = v + t * ld;
    for (int64_t h = 0; h < heads; ++h) {
      float* tile = kt_.data() + (h * cap_ + row / kKeyTile * kKeyTile) * head_dim_ + row % kKeyTile;
      for (int64_t c = 0; c < head_dim_; ++c) tile[c * kKeyTile] = kr[h * head_dim_ + c];
      std::memcpy(v_.data() + (h * cap_ + row) * head_dim_, vr + h * head_dim_, sizeof(float) * size_t(head_dim_));
    }
  }
  rows_ += n;
}

void KvWindow::keep_newest(int64_t keep) {
  if (rows_ > keep) {
    start_ += rows_ - keep;
    rows_ = keep;
  }
}

}  // namespace moss
