#pragma once
// The one layout copy of the codec: time-major rows (a frame's channels
// together, as the kernels want them) to channel-major rows (as the API and
// the reference hand them over), and back.
#include <cstdint>

namespace moss {

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols.
inline void transpose(const float* src, int64_t rows, int64_t cols, int64_t src_stride, float* dst, int64_t dst_stride) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}

}  // namespace moss
