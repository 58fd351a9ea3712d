#pragma once
// PatchedPretransform on time-major buffers (SPEC section 4).
#include <cstdint>

namespace moss {

// Encoder patch: x (len x dim) -> y (len/h x dim*h); y[t][d*h + j] = x[t*h + j][d].
void patch_time_major(const float* x, int64_t len, int64_t dim, int64_t h, float* y);
// Decoder unpatch: x (len x dim*h) -> y (len*h x dim); y[t*h + j][d] = x[t][d*h + j].
void unpatch_time_major(const float* x, int64_t len, int64_t dim, int64_t h, float* y);

}  // namespace moss
