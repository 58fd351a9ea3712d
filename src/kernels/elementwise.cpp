#include "kernels/elementwise.h"

#include <cmath>

namespace moss {

void layer_norm(const float* x, int64_t rows, int64_t dim, const float* weight, const float* bias, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double sum = 0;
    for (int64_t i = 0; i < dim; ++i) sum += xr[i];
    const float mean = float(sum / dim);
    double var = 0;
    for (int64_t i = 0; i < dim; ++i) {
      double d = double(xr[i]) - mean;
      var += d * d;
    }
    const float inv = float(1.0 / std::sqrt(var / dim + eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * inv * weight[i] + bias[i];
  }
}

void rms_norm(const float* x, int64_t rows, int64_t dim, const float* alpha, float eps, float* y) {
#pragma omp parallel for schedule(static) if (rows * dim > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0;
    for (int64_t i = 0; i < dim; ++i) ss += double(xr[i]) * xr[i];
    const float inv = float(1.0 / std::sqrt(eps + ss / dim));
    for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * (alpha[i] * inv);
  }
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

void activate_inplace(Activation a, float* x, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) x[i] = activate(a, x[i]);
}

}  // namespace moss
