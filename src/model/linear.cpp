#include "model/linear.h"

#include "kernels/gemm.h"

namespace moss {

Linear::Linear(FloatWeight weight, FloatWeight bias) : w_(std::move(weight)), b_(std::move(bias)) {
  out_ = w_.shape().at(0);
  in_ = w_.shape().at(1);
  // Matrices big enough to matter get oneDNN's matmul for many-row products.
  if (w_.data() && b_.empty() && out_ * in_ >= (1 << 16)) matmul_ = std::make_unique<OnednnMatmul>(w_.data(), out_, in_);
}

// Products of more rows than this go through matmul; fewer (streaming steps)
// through sgemm, which hands up to 8 rows to the few-row kernel and splits
// 9-16 over the threads: both read the weights faster than matmul there.
static constexpr int64_t kMatmulMinRows = 17;

void Linear::forward(const float* x, int64_t rows, float* y, bool accumulate) const {
  if (matmul_ && rows >= kMatmulMinRows && !accumulate) {
    matmul_->forward(x, rows, y);
    return;
  }
  if (!b_.empty() && !accumulate) {
    // Start from the bias and accumulate the product onto it.
    const float* b = b_.data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_; ++o) y[r * out_ + o] = b[o];
    linear_forward(x, rows, in_, w_.data(), out_, y, true);
    return;
  }
  linear_forward(x, rows, in_, w_.data(), out_, y, accumulate);
  if (!b_.empty()) {
    const float* b = b_.data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_; ++o) y[r * out_ + o] += b[o];
  }
}

}  // namespace moss
