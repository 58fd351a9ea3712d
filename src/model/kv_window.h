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
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/attention.h"
#include "kernels/large_buffer.h"

namespace moss {

// Storage for the rings of one transformer's layers: each ring is carved from
// one block sized for all of them and rounded up to whole 2 MiB pages, so the
// rings lie one after another on huge pages. A v1 decoder layer's keys or
// values alone (0.65-1.6 MB) are below LargeVector's huge-page size or end in
// a partial huge page, and on 4 KiB pages a streaming step's attention reads
// them slower: the hardware prefetcher stops at each 4 KiB page and every page
// misses the TLB. moss_step_parts on the v1 decoder (Zen 4, 2 threads,
// 2026-12-05), a step's attention: 5.83 ms against 6.87 with a ring per
// allocation at 55 GB/s in the step, 6.27 against 7.41 at 35 GB/s.
class KvArena {
 public:
  explicit KvArena(int rings) : rings_(rings) {}
  // Zeroed storage for one ring of `floats`: the next slot of the current
  // block, or of a new one (sized for `rings` such rings) when the block is
  // full or was sized for rings of another size. The block lives as long as
  // any ring taken from it.
  std::shared_ptr<float> take(size_t floats);

 private:
  int rings_;
  std::shared_ptr<LargeVector<float>> block_;
  size_t ring_floats_ = 0, used_ = 0;
};

class KvWindow {
 public:
  // A window with its own storage (an arena for its keys and values alone).
  KvWindow() = default;
  // A window whose rings come from a transformer's shared arena.
  explicit KvWindow(std::shared_ptr<KvArena> arena) : arena_(std::move(arena)) {}
  // Copies would share the rings: a state is moved, never copied.
  KvWindow(const KvWindow&) = delete;
  KvWindow& operator=(const KvWindow&) = delete;
  KvWindow(KvWindow&&) = default;
  KvWindow& operator=(KvWindow&&) = default;

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
  HeadMajorKv view() const { return {kt_.get(), v_.get(), cap_, first_}; }
  int64_t bytes() const { return 2 * width_ * cap_ * int64_t(sizeof(float)); }

 private:
  // Moves the live rows to a new ring of cap slots (a whole number of tiles).
  void relayout(int64_t cap);
  // Head h of the rows append_per_head() counted last.
  void write_head(int h);

  // Per head, cap_ / kKeyTile tiles of [head_dim][kKeyTile] keys; per head,
  // cap_ x head_dim values. Both from arena_ (made on first use when null).
  std::shared_ptr<KvArena> arena_;
  std::shared_ptr<float> kt_, v_;
  int64_t width_ = 0, head_dim_ = 0;
  int64_t cap_ = 0, first_ = 0, rows_ = 0;  // live rows: slots first_, first_ + 1, ... mod cap_
  struct Pending {  // rows counted by append_per_head(), written head by head
    const float *k = nullptr, *v = nullptr;
    int64_t ld = 0, row0 = 0, n = 0;
  } pending_;
};

}  // namespace moss
