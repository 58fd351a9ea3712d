#include "kernels/gemm.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <algorithm>
#include <string>

#include "kernels/few_row_gemm.h"
#include "moss_codec/error.h"

namespace moss {

void sgemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
           int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // oneDNN rejects K = 0; the product is empty
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  // A few rows against a weight matrix (a streaming step) is a read of the
  // weights, which the few-row kernel does at the memory's speed.
  if (trans_b && m <= kFewRowsMax && (beta == 0.0f || beta == 1.0f) && few_row_gemm_available()) {
    few_row_gemm({a, lda, m, k, b, ldb, n, c, ldc, alpha, beta == 1.0f});
    return;
  }
  // Otherwise oneDNN runs such products on one thread, so split the output
  // columns between the threads, each reading its own slice.
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (trans_b && m <= 16 && threads > 1 && n >= 256 * threads && n * k >= (1 << 18)) {
    dnnl_status_t status = dnnl_success;
#pragma omp parallel num_threads(threads)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t n0 = (n * t / nt) & ~int64_t(15), n1 = t + 1 == nt ? n : (n * (t + 1) / nt) & ~int64_t(15);
      if (n1 > n0) {
        dnnl_status_t st = dnnl_sgemm('N', 'T', m, n1 - n0, k, alpha, a, lda, b + n0 * ldb, ldb, beta, c + n0, ldc);
        if (st != dnnl_success) {
#pragma omp critical
          status = st;
        }
      }
    }
    if (status != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(int(status)));
    return;
  }
  dnnl_status_t st = dnnl_sgemm('N', trans_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (st != dnnl_success) throw Error("oneDNN sgemm failed with status " + std::to_string(int(st)));
}

}  // namespace moss
