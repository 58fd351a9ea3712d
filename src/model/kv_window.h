#pragma once
// What one transformer layer of a stream remembers between chunks: the keys
// and values the next queries can still see. Stored head-major (each head's
// window contiguous; keys in tiles of kKeyTile transposed keys, see
// TiledScores) so that a streaming step's attention reads every head's keys
// and values front to back and scores 16 keys per vector.
#include <cstdint>
#include <vector>

#include "kernels/attention.h"

namespace moss {

class KvWindow {
 public:
  // Appends n rows: row t's keys at k + t * ld and values at v + t * ld, each
  // heads * head_dim wide. keep (the rows kept after each chunk) sizes the
  // buffer: it is compacted only when full and grows only when too small,
  // to keep + n plus half a window of slack, so a stream of small pushes
  // moves about two rows per row pushed.
  void append(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim, int64_t keep);
  // Drops all but the newest keep rows.
  void keep_newest(int64_t keep);
  void clear() { start_ = rows_ = 0; }

  int64_t rows() const { return rows_; }
  HeadMajorKv view() const { return {kt_.data(), v_.data(), cap_, start_}; }
  int64_t bytes() const { return int64_t((kt_.capacity() + v_.capacity()) * sizeof(float)); }

 private:
  void reserve_for(int64_t n, int64_t keep);
  void move_live_rows(float* kt, float* v, int64_t cap) const;

  // Per head, cap_ / kKeyTile tiles of [head_dim][kKeyTile] keys; per head,
  // cap_ x head_dim values. cap_ is a whole number of tiles.
  std::vector<float> kt_, v_;
  int64_t width_ = 0, head_dim_ = 0;
  int64_t cap_ = 0, start_ = 0, rows_ = 0;  // live rows [start_, start_ + rows_)
};

}  // namespace moss
