#pragma once
// A weight matrix multiplied through oneDNN's matmul primitive (brgemm),
// reading the plain (n x k) weights where they are (e.g. in the mapped file),
// with one primitive per row count, cached, all sharing the calling thread's
// scratch buffer (where brgemm packs weight blocks). On the Zen 4 host of
// 2026-11 it ran at 171-214 GFLOP/s where sgemm got 131-213 (M=125: 177-192
// against 131-137); on the Zen 5 host of 2026-12-02 at 289-348 in the model
// (313-359 alone; 245-330 in the model with a scratch buffer per primitive).
// Repacking into oneDNN's blocked layout was measured too: on Zen 4 5% faster
// offline (10 s encode 2.39 s against 2.52 s) for an 11.7 s load that copies
// the weights; on Zen 5 the products alone ran 10-20% faster (356-386
// GFLOP/s), but a copy doubles what a load costs and the streaming kernels
// read the plain layout, so the weights stay in place by default; pack() is
// the opt-in copy, and adopt_blocked() reads a packed checkpoint's blocked
// tensors where they are mapped.
#include <cstdint>
#include <memory>

namespace moss {

class OnednnMatmul {
 public:
  // w: row-major (n x k), as PyTorch stores Linear weights; must outlive this.
  // Null: the weights are passed to each forward instead.
  OnednnMatmul(const float* w, int64_t n, int64_t k);
  ~OnednnMatmul();
  // y[m x n] = x[m x k] W^T, with W at w when given (a widened copy of 16-bit
  // weights), else the constructor's. Thread-safe.
  void forward(const float* x, int64_t m, float* y, const float* w = nullptr) const;

  // Copies the weights into oneDNN's own blocked layout (BA16a64b for
  // float32: 16 k by 64 n tiles, the same for every row count), on huge
  // pages, and reads only that copy from then on: the products then skip
  // repacking weight blocks on every call (10-20% faster on the v1 shapes,
  // identical results). Where oneDNN has no blocked float32 kernel (before
  // AVX-512) nothing is copied and packed() stays false. Once packed() the
  // plain weights may be released. Not thread-safe; call before any forward.
  void pack();
  bool packed() const;
  int64_t packed_bytes() const;
  // The blocked copy (packed() only): packed_bytes() bytes, for writing a
  // packed checkpoint.
  const float* packed_data() const;

  // Packed checkpoints (`moss-codec pack`) store each matrix in the one
  // blocked layout this class packs into, named here for the file format.
  static constexpr const char* kBlockedLayout = "BA16a64b";
  // Bytes of an (n x k) matrix in that layout (padded to whole 16 x 64 tiles).
  static int64_t blocked_bytes(int64_t n, int64_t k);
  // Whether this CPU's matmul reads an (n x k) matrix in that layout (brgemm
  // on AVX-512), so that a stored blocked copy can be used where it lies.
  static bool blocked_is_native(int64_t n, int64_t k);
  // Uses `blocked` (blocked_bytes(n, k) bytes in that layout, 64-byte
  // aligned; must outlive this) as the packed weights, copying nothing.
  // Only where blocked_is_native; not thread-safe; call before any forward.
  void adopt_blocked(const float* blocked);
  // Writes the plain row-major (n x k) matrix held in `blocked` to `plain`:
  // the exact values, on any CPU (a reorder, no arithmetic).
  static void unpack_blocked(const float* blocked, int64_t n, int64_t k, float* plain);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace moss
