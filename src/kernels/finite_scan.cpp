#include "kernels/finite_scan.h"

#include <algorithm>
#include <cstring>

#include "kernels/vector_math.h"

namespace moss {

namespace {

// A float is NaN or Inf exactly when its exponent bits are all ones, i.e. when
// its magnitude bits compare >= those of +Inf. A max over integer lanes
// compiles to vector max instructions; the natural loop (a min over the
// indices of non-finite values) stays scalar and read 11-14 GB/s here, a
// third of the machine's read bandwidth. Bits is the float's storage
// (uint32_t for float32, uint16_t for bf16/f16).
template <class Bits, class T>
[[gnu::always_inline]] inline bool has_non_finite(const T* p, int64_t n, Bits magnitude, Bits inf) {
  constexpr int kLanes = 64 / sizeof(Bits);
  Bits lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) {
      Bits bits;
      std::memcpy(&bits, p + i + j, sizeof bits);
      bits &= magnitude;
      lanes[j] = lanes[j] > bits ? lanes[j] : bits;
    }
  Bits top = 0;
  for (int j = 0; j < kLanes; ++j) top = std::max(top, lanes[j]);
  for (; i < n; ++i) {
    Bits bits;
    std::memcpy(&bits, p + i, sizeof bits);
    top = std::max<Bits>(top, bits & magnitude);
  }
  return top >= inf;
}

MOSS_VECTOR_CLONES
bool has_non_finite_32(const float* p, int64_t n) { return has_non_finite<uint32_t>(p, n, 0x7fffffffu, 0x7f800000u); }

MOSS_VECTOR_CLONES
bool has_non_finite_16(const uint16_t* p, int64_t n, uint16_t inf) {
  return has_non_finite<uint16_t>(p, n, uint16_t(0x7fff), inf);
}

// Blocks of 64 KB: small enough to split evenly over the threads, large enough
// that the per-block reduction costs nothing. Only a block that holds a bad
// value is searched for its index.
template <class T, class Any, class Bad>
int64_t first_bad(const T* p, int64_t n, Any any, Bad bad) {
  constexpr int64_t kBlock = (int64_t(1) << 16) / sizeof(T);
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  int64_t first = n;
#pragma omp parallel for reduction(min : first) schedule(static) if (blocks > 16)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * kBlock, len = std::min(kBlock, n - lo);
    if (!any(p + lo, len)) continue;
    for (int64_t i = lo; i < lo + len; ++i)
      if (bad(p[i])) {
        first = std::min(first, i);
        break;
      }
  }
  return first;
}

}  // namespace

int64_t first_non_finite(const float* p, int64_t n) {
  return first_bad(p, n, has_non_finite_32, [](float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    return (bits & 0x7fffffffu) >= 0x7f800000u;
  });
}

int64_t first_non_finite_16(const uint16_t* p, int64_t n, HalfFormat format) {
  // All-ones exponent: bf16 has float32's 8 bits (0x7f80), IEEE half 5 (0x7c00).
  const uint16_t inf = format == HalfFormat::BF16 ? 0x7f80 : 0x7c00;
  return first_bad(
      p, n, [inf](const uint16_t* q, int64_t len) { return has_non_finite_16(q, len, inf); },
      [inf](uint16_t v) { return (v & 0x7fff) >= inf; });
}

}  // namespace moss
