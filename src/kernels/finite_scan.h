#pragma once
// The load-time NaN/Inf check over every weight: one read of the checkpoint,
// so it must run at memory bandwidth, not at the speed of a scalar loop.
#include <cstdint>

#include "kernels/half.h"

namespace moss {

// Index of the first NaN or Inf in p[0, n), or n when every value is finite.
// Splits the range over the OpenMP threads.
int64_t first_non_finite(const float* p, int64_t n);

// The same over 16-bit floats kept in place.
int64_t first_non_finite_16(const uint16_t* p, int64_t n, HalfFormat format);

}  // namespace moss
