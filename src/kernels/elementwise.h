#pragma once
// Row-wise normalizations and pointwise activations, in float32.
#include <cstdint>

#include "moss_codec/config.h"

namespace moss {

// LayerNorm over the last axis: (x - mean) / sqrt(var + eps) * weight + bias.
void layer_norm(const float* x, int64_t rows, int64_t dim, const float* weight, const float* bias, float eps, float* y);
// RMSNorm as the reference computes it: y = x * (alpha * rsqrt(eps + mean(x^2))).
void rms_norm(const float* x, int64_t rows, int64_t dim, const float* alpha, float eps, float* y);

// Exact (erf) GELU; the tanh approximation is a known bug in one port.
float gelu(float x);
float activate(Activation a, float x);
void activate_inplace(Activation a, float* x, int64_t n);
// Exact GELU over x[0, n) on the calling thread, each value as
// activate_inplace(Gelu) computes it.
void gelu_span(float* x, int64_t n);

}  // namespace moss
