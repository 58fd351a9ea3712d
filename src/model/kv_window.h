#pragma once
// What one transformer layer of a stream remembers between chunks: the keys
// and values the next queries can still see. Stored head-major (each head's
// window contiguous; keys in tiles of kKeyTile transposed keys, see
// TiledScores) so that a streaming step's attention reads every head's keys
// and values front to back and scores 16 keys per vector.
//
// Each head's rows form a ring of capacity() slots: a push overwrites the
// oldest slots, so nothing moves once the ring holds the window plus the
// largest push (the sliding buffer before it moved each layer's window about
// every 66 one-frame pushes: in 28 of 600 pushes of the v1 decoder the
// appends took 5-8 ms instead of 0.3).
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/large_buffer.h"

namespace moss {

class KvWindow {
 public:
  // Appends n rows: row t's keys at k + t * ld and values at v + t * ld, each
  // heads * head_dim wide. keep (the rows kept after each chunk) sizes the
  // ring: keep + n rows rounded up to whole tiles, for the largest n so far.
  void append(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim, int64_t keep);
  // The same, with each head's rows written later by the returned hook, once
  // per head (windowed_attention's BeforeHead, so that the thread that reads
  // a head writes it; heads in any order, from any thread: they share no
  // memory). Room is made and the rows counted now; k and v must stay valid
  // until every head is written, and view() is the one to attend over.
  BeforeHead append_per_head(const float* k, const float* v, int64_t ld, int64_t n, int heads, int head_dim,
                             int64_t keep);
  // Drops all but the newest keep rows.
  void keep_newest(int64_t keep);
  void clear() { first_ = rows_ = 0; }

  int64_t rows() const { return rows_; }
  int64_t capacity() const { return cap_; }
  HeadMajorKv view() const { return {kt_.data(), v_.data(), cap_, first_}; }
  int64_t bytes() const { return int64_t((kt_.capacity() + v_.capacity()) * sizeof(float)); }

 private:
  // Moves the live rows to a new ring of cap slots (a whole number of tiles).
  void relayout(int64_t cap);
  // Head h of the rows append_per_head() counted last.
  void write_head(int h);

  // Per head, cap_ / kKeyTile tiles of [head_dim][kKeyTile] keys; per head,
  // cap_ x head_dim values.
  LargeVector<float> kt_, v_;
  int64_t width_ = 0, head_dim_ = 0;
  int64_t cap_ = 0, first_ = 0, rows_ = 0;  // live rows: slots first_, first_ + 1, ... mod cap_
  struct Pending {  // rows counted by append_per_head(), written head by head
    const float *k = nullptr, *v = nullptr;
    int64_t ld = 0, row0 = 0, n = 0;
  } pending_;
};

}  // namespace moss
