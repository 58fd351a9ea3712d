#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>

#include "kernels/vector_math.h"

namespace moss {

// One row at a time, compiled for AVX-512/AVX2 too. Sums are in double, kept
// in 32 explicit lanes: without reassociation flags a single running sum is a
// chain of dependent scalar adds (0.8 ms per 1000 x 768 rows, slower than the
// reads), while independent lanes vectorize. The lane count is fixed, so the
// result does not depend on the vector width.
constexpr int kSumLanes = 32;

MOSS_VECTOR_CLONES static double lane_sum(const float* x, int64_t n, double shift, bool square) {
  double lanes[kSumLanes] = {};
  const int64_t whole = n / kSumLanes * kSumLanes;
  if (square) {
    for (int64_t i = 0; i < whole; i += kSumLanes)
      for (int l = 0; l < kSumLanes; ++l) {
        const double d = double(x[i + l]) - shift;
        lanes[l] += d * d;
      }
  } else {
    for (int64_t i = 0; i < whole; i += kSumLanes)
      for (int l = 0; l < kSumLanes; ++l) lanes[l] += double(x[i + l]) - shift;
  }
  double sum = 0;
  for (int l = 0; l < kSumLanes; ++l) sum += lanes[l];
  for (int64_t i = whole; i < n; ++i) {
    const double d = double(x[i]) - shift;
    sum += square ? d * d : d;
  }
  return sum;
}

MOSS_VECTOR_CLONES static void layer_norm_row(const float* x, int64_t dim, const float* w, const float* b, float eps,
                                              float* y) {
  const float mean = float(lane_sum(x, dim, 0.0, false) / double(dim));
  const double var = lane_sum(x, dim, mean, true);
  const float inv = float(1.0 / std::sqrt(var / double(dim) + eps));
  for (int64_t i = 0; i < dim; ++i) y[i] = (x[i] - mean) * inv * w[i] + b[i];
}

MOSS_VECTOR_CLONES static void rms_norm_row(const float* x, int64_t dim, const float* alpha, float eps, float* y) {
  const double ss = lane_sum(x, dim, 0.0, true);
  const float inv = float(1.0 / std::sqrt(eps + ss / double(dim)));
  for (int64_t i = 0; i < dim; ++i) y[i] = x[i] * (alpha[i] * inv);
}

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* weight, const float* bias, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) layer_norm_row(x + r * dim, dim, weight, bias, eps, y + r * dim);
}

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* alpha, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) rms_norm_row(x + r * dim, dim, alpha, eps, y + r * dim);
}

float gelu(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f)); }

float activate(Activation a, float x) {
  switch (a) {
    case Activation::Sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Activation::Tanh: return std::tanh(x);
    case Activation::Relu: return x > 0 ? x : 0.0f;
    case Activation::LeakyRelu: return x > 0 ? x : 0.01f * x;
    case Activation::Elu: return x > 0 ? x : std::expm1(x);
    case Activation::Gelu: return gelu(x);
    case Activation::Silu: return x / (1.0f + std::exp(-x));
    case Activation::Mish: {
      float sp = x > 20.0f ? x : std::log1p(std::exp(x));  // softplus, threshold 20 as in PyTorch
      return x * std::tanh(sp);
    }
    case Activation::Softsign: return x / (1.0f + std::fabs(x));
    case Activation::Identity: return x;
  }
  return x;
}

MOSS_VECTOR_CLONES static void gelu_block(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + verf(x[i] * 0.70710678118654752f));
}

void gelu_span(float* x, int64_t n) { gelu_block(x, n); }

void activate_inplace(Activation a, float* x, int64_t n) {
  const int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  if (a == Activation::Gelu) {  // the hot one: vectorized exact-erf GELU
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t b = 0; b < blocks; ++b) gelu_block(x + b * kBlock, std::min(kBlock, n - b * kBlock));
    return;
  }
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = activate(a, x[i]);
}

}  // namespace moss
