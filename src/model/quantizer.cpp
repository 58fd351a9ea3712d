#include "model/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/gemm.h"

namespace moss {

namespace {

// A weight-normalized 1x1 convolution with bias, or nothing when sizes agree and
// no tensor is stored (the reference's identity).
Linear conv1x1(WeightStore& store, const std::string& prefix, int64_t in, int64_t out) {
  if (in == out && !store.has_weight(prefix)) return {};
  FloatWeight w = store.take_weight_norm(prefix, {out, in, 1});
  FloatWeight b = store.take(prefix + ".bias", {out});
  return Linear(std::move(w), std::move(b));
}

void apply_or_copy(const Linear& proj, const float* x, int64_t n, int64_t dim, float* y) {
  if (proj.present()) proj.forward(x, n, y);
  else std::memcpy(y, x, sizeof(float) * size_t(n * dim));
}

}  // namespace

ResidualQuantizer::ResidualQuantizer(const QuantizerConfig& cfg, WeightStore& store) : cfg_(cfg) {
  input_proj_ = conv1x1(store, "quantizer.input_proj", cfg.input_dim, cfg.rvq_dim);
  output_proj_ = conv1x1(store, "quantizer.output_proj", cfg.rvq_dim, cfg.output_dim);
  const int64_t size = cfg.codebook_size, dim = cfg.codebook_dim, rvq = cfg.rvq_dim;
  for (int i = 0; i < cfg.num_quantizers; ++i) {
    const std::string p = "quantizer.quantizers." + std::to_string(i) + ".";
    Codebook b;
    b.in_proj = conv1x1(store, p + "in_proj", rvq, dim);
    Linear out_proj = conv1x1(store, p + "out_proj", dim, rvq);
    FloatWeight raw = store.take(p + "codebook.weight", {size, dim});
    b.search.assign(raw.data(), raw.data() + size * dim);
    b.search_sq.resize(size_t(size));
    for (int64_t j = 0; j < size; ++j) {
      float* row = b.search.data() + j * dim;
      if (cfg.is_lfq()) {  // F.normalize: x / max(||x||, 1e-12); an all-zero row stays zero
        double ss = 0;
        for (int64_t c = 0; c < dim; ++c) ss += double(row[c]) * row[c];
        const float denom = std::max(float(std::sqrt(ss)), 1e-12f);
        for (int64_t c = 0; c < dim; ++c) row[c] /= denom;
      }
      float sq = 0;
      for (int64_t c = 0; c < dim; ++c) sq += row[c] * row[c];
      b.search_sq[size_t(j)] = sq;
    }
    b.embedded.resize(size_t(size * rvq));
    apply_or_copy(out_proj, raw.data(), size, dim, b.embedded.data());
    books_.push_back(std::move(b));
  }
}

void ResidualQuantizer::encode(const float* z, int64_t n, int nq, int32_t* codes, int64_t code_stride,
                               QuantizerScratch& ws) const {
  const int64_t rvq = cfg_.rvq_dim, dim = cfg_.codebook_dim, size = cfg_.codebook_size;
  ws.r.resize(size_t(n * rvq));
  ws.e.resize(size_t(n * dim));
  ws.dots.resize(size_t(n * size));
  apply_or_copy(input_proj_, z, n, cfg_.input_dim, ws.r.data());
  for (int i = 0; i < nq; ++i) {
    const Codebook& b = books_[size_t(i)];
    apply_or_copy(b.in_proj, ws.r.data(), n, rvq, ws.e.data());
    if (cfg_.is_lfq())
      for (int64_t t = 0; t < n; ++t) {
        float* e = ws.e.data() + t * dim;
        double ss = 0;
        for (int64_t c = 0; c < dim; ++c) ss += double(e[c]) * e[c];
        const float denom = std::max(float(std::sqrt(ss)), 1e-12f);
        for (int64_t c = 0; c < dim; ++c) e[c] /= denom;
      }
    sgemm(true, n, size, dim, 1.0f, ws.e.data(), dim, b.search.data(), dim, 0.0f, ws.dots.data(), size);
    for (int64_t t = 0; t < n; ++t) {
      const float* e = ws.e.data() + t * dim;
      float esq = 0;
      for (int64_t c = 0; c < dim; ++c) esq += e[c] * e[c];
      // Squared Euclidean distance in the reference's expanded form; the lowest
      // index wins a tie.
      const float* dots = ws.dots.data() + t * size;
      int64_t best = 0;
      float best_d = esq - 2.0f * dots[0] + b.search_sq[0];
      for (int64_t j = 1; j < size; ++j) {
        const float d = esq - 2.0f * dots[j] + b.search_sq[size_t(j)];
        if (d < best_d) {
          best_d = d;
          best = j;
        }
      }
      codes[i * code_stride + t] = int32_t(best);
      const float* q = b.embedded.data() + best * rvq;
      float* r = ws.r.data() + t * rvq;
      for (int64_t c = 0; c < rvq; ++c) r[c] -= q[c];
    }
  }
}

void ResidualQuantizer::decode(const int32_t* codes, int64_t code_stride, int64_t n, int nq, float* out,
                               QuantizerScratch& ws) const {
  const int64_t rvq = cfg_.rvq_dim;
  ws.acc.assign(size_t(n * rvq), 0.0f);
  for (int i = 0; i < nq; ++i) {
    const Codebook& b = books_[size_t(i)];
    for (int64_t t = 0; t < n; ++t) {
      const float* q = b.embedded.data() + int64_t(codes[i * code_stride + t]) * rvq;
      float* a = ws.acc.data() + t * rvq;
      for (int64_t c = 0; c < rvq; ++c) a[c] += q[c];
    }
  }
  apply_or_copy(output_proj_, ws.acc.data(), n, rvq, out);
}

}  // namespace moss
