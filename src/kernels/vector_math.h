#pragma once
// Branch-free float32 exp and erf that compilers vectorize, and the attribute
// that compiles a loop for AVX-512 and AVX2 as well as the baseline, picked at
// run time by CPU features (the default build has no -march=native).
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(MOSS_NO_CLONES)
#define MOSS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOSS_VECTOR_CLONES
#endif

namespace moss {

// exp(x) to about 1 ulp (Cephes' expf polynomial after range reduction by ln 2).
inline float vexp(float x) {
  // Comparisons, not fmin/fmax: their NaN rules keep compilers from using
  // vector min/max instructions.
  x = x < -87.33654f ? -87.33654f : x;
  x = x > 88.72284f ? 88.72284f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (int32_t(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return p * scale;
}

// erf(x) with absolute error below 1.5e-7 (Abramowitz & Stegun 7.1.26).
inline float verf(float x) {
  const float a = std::fabs(x);
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * vexp(-a * a);
  return std::copysign(y, x);
}

}  // namespace moss
