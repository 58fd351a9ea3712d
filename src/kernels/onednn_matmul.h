#pragma once
// A weight matrix multiplied through oneDNN's matmul primitive (brgemm),
// reading the plain (n x k) weights where they are (e.g. in the mapped file),
// with one primitive per row count, cached. On this machine's shapes it runs
// at 171-214 GFLOP/s where sgemm gets 131-213 (M=125: 177-192 against
// 131-137). Repacking into oneDNN's blocked layout was measured too: 5% faster
// offline (10 s encode 2.39 s against 2.52 s) for an 11.7 s load that copies
// the weights, so the weights stay in place.
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

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace moss
