#pragma once
// Projected causal transformer (SPEC sections 4-5): input_proj -> pre-norm
// layers with windowed attention -> output_proj, on time-major rows.
#include <memory>
#include <string>
#include <vector>

#include "io/weight_store.h"
#include "kernels/large_buffer.h"
#include "kernels/positional.h"
#include "model/kv_window.h"
#include "model/linear.h"
#include "moss_codec/config.h"

namespace moss {

// What one stream of one transformer remembers between chunks: its absolute
// position and, per layer, the keys/values the next queries can still see.
struct TransformerState {
  int64_t position = 0;
  std::vector<KvWindow> layers;
  void reset() {
    position = 0;
    for (auto& l : layers) l.clear();
  }
};

// Per-call scratch, reused across layers and calls; never shared between threads.
struct TransformerScratch {
  LargeVector<float> x, h, qkv, attn, ff, gated;
  RopeTable rope;
};

class ProjectedTransformer {
 public:
  // prefix: e.g. "encoder.1." Both tensor naming schemes are accepted.
  ProjectedTransformer(const TransformerConfig& cfg, WeightStore& store, const std::string& prefix);

  const TransformerConfig& config() const { return cfg_; }
  int64_t input_dim() const { return cfg_.input_dimension; }
  int64_t output_dim() const { return cfg_.output_dimension; }

  // x: n rows of input_dim; y: n rows of output_dim. Without a state the rows are
  // a whole sequence starting at position 0; with one they continue its stream,
  // and the result equals the offline pass over the concatenation.
  void forward(const float* x, int64_t n, float* y, TransformerState* state, TransformerScratch& ws) const;

  // Rows of several streams in one pass: segment i is rows[i] consecutive rows
  // continuing states[i] (distinct states of this transformer). The products,
  // norms and activations take all the rows at once, so the weights are read
  // once for every stream; positions and attention stay per stream. Each
  // segment's result equals forward() of its rows alone, within float32
  // rounding (a product of more rows may take another kernel).
  void forward_streams(const float* x, const int64_t* rows, TransformerState* const* states, int count, float* y,
                       TransformerScratch& ws) const;

  TransformerState new_state() const;
  // Keys a stream's window keeps after each chunk (context - 1).
  int64_t kept_keys() const { return cfg_.context > 0 ? cfg_.context - 1 : 0; }

 private:
  struct Norm {
    FloatWeight weight, bias;  // layer_norm
    FloatWeight alpha;         // rms_norm(_f32), shape (1, 1, D)
  };
  struct Layer {
    Norm norm1, norm2;
    Linear in_proj, out_proj;  // self_attn.in_proj(s) (3D x D), out_proj(s) (D x D)
    Linear ffn_in, ffn_out;    // linear1/linear2 (ffn.0/ffn.2) or gating.linear_in/linear_out
    FloatWeight scale1, scale2;  // layer_scale_{1,2}.scale (D), empty when layer_scale is null
  };

  Norm load_norm(WeightStore& store, const std::string& name) const;
  void apply_norm(const Norm& norm, const float* x, int64_t n, float* y) const;
  // forward() and forward_streams(): count segments (count 1 and a null state
  // for a whole offline sequence).
  void run(const float* x, const int64_t* rows, TransformerState* const* states, int count, float* y,
           TransformerScratch& ws) const;

  TransformerConfig cfg_;
  Linear input_proj_, output_proj_;  // absent: identity
  std::vector<Layer> layers_;
};

}  // namespace moss
