#pragma once
// Matrix products through oneDNN's sgemm (run-time CPU dispatch, threaded).
#include <cstdint>

namespace moss {

// Row-major C[m x n] = alpha * A[m x k] * op(B) + beta * C, where op(B) is
// B[k x n] (trans_b false) or B[n x k] transposed (trans_b true).
void sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc);

// y[rows x out] = x[rows x in] * W^T (+ y when accumulate), W row-major [out x in]
// as stored by PyTorch's Linear.
inline void linear_forward(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y,
                           bool accumulate = false) {
  sgemm(true, rows, out, in, 1.0f, x, in, w, in, accumulate ? 1.0f : 0.0f, y, out);
}

}  // namespace moss
