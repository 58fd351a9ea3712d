#pragma once
// Residual quantizer (SPEC section 6): LFQ (rlfq, random_prefix_rlfq) or VQ
// (rvq, spec_rvq), with weight-normalized 1x1-convolution projections.
#include <cstdint>
#include <vector>

#include "io/weight_store.h"
#include "model/linear.h"
#include "moss_codec/config.h"

namespace moss {

struct QuantizerScratch {
  std::vector<float> r, e, dots, acc;
};

class ResidualQuantizer {
 public:
  ResidualQuantizer(const QuantizerConfig& cfg, WeightStore& store);

  const QuantizerConfig& config() const { return cfg_; }

  // z: n rows of input_dim. Writes codes[i * code_stride + t] for i < nq.
  void encode(const float* z, int64_t n, int nq, int32_t* codes, int64_t code_stride, QuantizerScratch& ws) const;
  // codes[i * code_stride + t] (already range-checked) -> n rows of output_dim.
  void decode(const int32_t* codes, int64_t code_stride, int64_t n, int nq, float* out, QuantizerScratch& ws) const;

 private:
  struct Codebook {
    Linear in_proj;                // rvq_dim -> codebook_dim; absent: identity
    std::vector<float> search;     // (size x dim): normalized rows for LFQ, raw for VQ
    std::vector<float> search_sq;  // squared norms of the search rows
    std::vector<float> embedded;   // (size x rvq_dim): out_proj(raw row), precomputed at load
  };

  QuantizerConfig cfg_;
  Linear input_proj_, output_proj_;  // absent: identity
  std::vector<Codebook> books_;
};

}  // namespace moss
