#include "model/patch.h"

#include <cstring>

namespace moss {

void patch_time_major(const float* x, int64_t len, int64_t dim, int64_t h, float* y) {
  const int64_t frames = len / h;
  if (dim == 1) {  // mono waveform: the patch is a reshape
    std::memcpy(y, x, sizeof(float) * size_t(frames * h));
    return;
  }
  for (int64_t t = 0; t < frames; ++t)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t d = 0; d < dim; ++d) y[t * dim * h + d * h + j] = x[(t * h + j) * dim + d];
}

void unpatch_time_major(const float* x, int64_t len, int64_t dim, int64_t h, float* y) {
  if (dim == 1) {
    std::memcpy(y, x, sizeof(float) * size_t(len * h));
    return;
  }
  for (int64_t t = 0; t < len; ++t)
    for (int64_t j = 0; j < h; ++j)
      for (int64_t d = 0; d < dim; ++d) y[(t * h + j) * dim + d] = x[t * dim * h + d * h + j];
}

}  // namespace moss
