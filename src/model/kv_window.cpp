#include "model/kv_window.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "kernels/few_row_gemm.h"

namespace moss {

namespace {
int64_t whole_tiles(int64_t rows) { return (rows + kKeyTile - 1) / kKeyTile * kKeyTile; }
}  // namespace

std::shared_ptr<float> KvArena::take(size_t floats) {
  if (!block_ || floats != ring_floats_ || block_->size() - used_ < floats) {
    constexpr size_t kPageFloats = kHugePageBytes / sizeof(float);
    if (floats > (size_t(-1) >> 2) / size_t(rings_)) throw std::bad_alloc();  // the sizes below cannot wrap
    const size_t total = (floats * size_t(rings_) + kPageFloats - 1) / kPageFloats * kPageFloats;
    block_ = std::make_shared<LargeVector<float>>(total);
    ring_floats_ = floats;
    used_ = 0;
  }
  float* ring = block_->data() + used_;
  used_ += floats;
  return std::shared_ptr<float>(block_, ring);  // shares the block's ownership
}

// Moves the live rows into a new ring of cap slots, the oldest at the same
// place within its key tile (so keys move as whole tiles): the live slots are
// one run from first_ and, when they wrap, a second run from slot 0, each
// copied to follow the previous one.
void KvWindow::relayout(int64_t cap) {
  const int64_t heads = width_ / head_dim_, phase = first_ % kKeyTile;
  if (!arena_) arena_ = std::make_shared<KvArena>(2);
  std::shared_ptr<float> kt = arena_->take(size_t(width_ * cap)), v = arena_->take(size_t(width_ * cap));
  struct Run {
    int64_t from, to, rows;  // slots
  };
  const RingRuns live = rows_ > 0 ? ring_runs(first_, cap_, 0, rows_) : RingRuns{0, 0, 0};
  const Run runs[2] = {{live.slot, phase, live.first_run}, {0, phase + live.first_run, live.second_run}};
  for (const Run& r : runs) {
    if (r.rows == 0) continue;
    // r.from and r.to agree modulo kKeyTile (cap_ is whole tiles).
    const int64_t tile_from = r.from / kKeyTile, tile_to = r.to / kKeyTile;
    const int64_t tiles = (r.from % kKeyTile + r.rows + kKeyTile - 1) / kKeyTile;
    for (int64_t h = 0; h < heads; ++h) {
      std::memcpy(kt.get() + (h * cap + tile_to * kKeyTile) * head_dim_,
                  kt_.get() + (h * cap_ + tile_from * kKeyTile) * head_dim_,
                  sizeof(float) * size_t(tiles * kKeyTile * head_dim_));
      std::memcpy(v.get() + (h * cap + r.to) * head_dim_, v_.get() + (h * cap_ + r.from) * head_dim_,
                  sizeof(float) * size_t(r.rows * head_dim_));
    }
  }
  kt_.swap(kt);
  v_.swap(v);
  cap_ = cap;
  first_ = phase;
}

BeforeHead KvWindow::append_per_head(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim,
                                     int64_t keep) {
  if (width_ != int64_t(heads) * head_dim || head_dim_ != head_dim) {  // first use
    width_ = int64_t(heads) * head_dim;
    head_dim_ = head_dim;
    kt_.reset();
    v_.reset();
    cap_ = first_ = rows_ = 0;
  }
  // Sized for the full window plus this push at once, so a stream's ring
  // moves only when a push is larger than any before it.
  if (rows_ + n > cap_) relayout(whole_tiles(first_ % kKeyTile + std::max(keep, rows_) + n));
  pending_ = {k, v, ld, rows_, n};
  rows_ += n;
  return {[](void* self, int h) { static_cast<KvWindow*>(self)->write_head(h); }, this};
}

void KvWindow::write_head(int h) {
  const Pending& p = pending_;
  for (int64_t t = 0; t < p.n; ++t) {
    const int64_t slot = (first_ + p.row0 + t) % cap_;
    const float* kr = p.k + t * p.ld + int64_t(h) * head_dim_;
    float* tile = kt_.get() + (h * cap_ + slot / kKeyTile * kKeyTile) * head_dim_ + slot % kKeyTile;
    for (int64_t c = 0; c < head_dim_; ++c) tile[c * kKeyTile] = kr[c];
    std::memcpy(v_.get() + (h * cap_ + slot) * head_dim_, p.v + t * p.ld + int64_t(h) * head_dim_,
                sizeof(float) * size_t(head_dim_));
  }
}

void KvWindow::append(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim, int64_t keep) {
  const BeforeHead write = append_per_head(k, v, ld, n, heads, head_dim, keep);
  for (int h = 0; h < heads; ++h) write.fn(write.ctx, h);
}

void KvWindow::keep_newest(int64_t keep) {
  if (rows_ > keep) {
    first_ = (first_ + rows_ - keep) % cap_;
    rows_ = keep;
  }
}

}  // namespace moss
