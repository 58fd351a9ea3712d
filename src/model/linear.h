#pragma once
// The one seam through which every weight matrix is used: a linear layer that
// owns (or borrows from the mapping) its float32 weights. Reduced-precision
// storage can be added here without touching model code.
#include <cstdint>
#include <memory>

#include "io/weight_store.h"
#include "kernels/onednn_matmul.h"

namespace moss {

class Linear {
 public:
  Linear() = default;
  // weight: (out, in) or (out, in, 1); bias: (out) or empty.
  explicit Linear(FloatWeight weight, FloatWeight bias = {});

  bool present() const { return !w_.empty(); }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // y[rows x out] = x[rows x in] W^T + b (added to y when accumulate).
  void forward(const float* x, int64_t rows, float* y, bool accumulate = false) const;

 private:
  FloatWeight w_, b_;
  std::unique_ptr<OnednnMatmul> matmul_;  // oneDNN matmul on the same weights (many rows)
  int64_t in_ = 0, out_ = 0;
};

}  // namespace moss
