#include "model/transformer.h"

#include <algorithm>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/few_row_gemm.h"
#include "kernels/positional.h"
#include "moss_codec/error.h"

namespace moss {

namespace {

// First name that exists among the naming schemes (v1 first, then v2).
std::string first_present(const WeightStore& store, const std::vector<std::string>& names) {
  for (auto& n : names)
    if (store.has(n)) return n;
  return names.front();  // reported as missing by take()
}

// A transformer matrix (out, in): stored blocked in a packed checkpoint
// (used in place where this CPU reads that layout), or plain, then packed
// for oneDNN when the store says so.
Linear matrix(WeightStore& store, const std::string& name, const std::vector<int64_t>& shape) {
  std::optional<TensorView> blocked = store.take_blocked(name, shape);
  Linear l = blocked ? Linear::from_blocked(*blocked, shape.at(0), shape.at(1)) : Linear(store.take_matrix(name, shape));
  // Unpacked (a CPU without that layout): the mapped blocked pages are unused.
  if (blocked && blocked->data && !l.in_file()) store.release_pages(blocked->data, blocked->nbytes);
  if (store.pack_matrices()) l.pack(store);
  if (l.packed()) store.note_packed(name, {l.packed_data(), l.packed_bytes(), shape, l.in_file()});
  return l;
}

// A projection exists when its sizes differ (v1) or when its tensor is present (v2).
Linear optional_projection(WeightStore& store, const std::string& name, int64_t in, int64_t out) {
  if (in == out && !store.has(name)) return {};
  return matrix(store, name, {out, in});
}

void add_scaled(float* x, const float* u, const FloatWeight& scale, int64_t n, int64_t d) {
  const float* s = scale.empty() ? nullptr : scale.data();
#pragma omp parallel for schedule(static) if (n * d > 65536)
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d; ++i) x[r * d + i] += s ? s[i] * u[r * d + i] : u[r * d + i];
}

// RoPE on the q and k columns of pieces of the in_proj product.
struct RopeOnOutputs {
  const RopeTable* table;
  int64_t width;  // d_model: q in columns [0, width), k in [width, 2 * width)
  int head_dim;
  static void run(void* self, float* y, int64_t ldy, int64_t m, int64_t n0, int64_t n1) {
    const RopeOnOutputs& r = *static_cast<const RopeOnOutputs*>(self);
    for (int64_t t = 0; t < m; ++t) apply_rope_columns(y + t * ldy, n0, n1, r.width, r.head_dim, *r.table, t);
  }
};

void gelu_on_outputs(void*, float* y, int64_t ldy, int64_t m, int64_t n0, int64_t n1) {
  for (int64_t t = 0; t < m; ++t) gelu_span(y + t * ldy + n0, n1 - n0);
}

}  // namespace

ProjectedTransformer::Norm ProjectedTransformer::load_norm(WeightStore& store, const std::string& name) const {
  const int64_t d = cfg_.d_model;
  Norm n;
  if (cfg_.norm == NormKind::LayerNorm) {
    n.weight = store.take(name + ".weight", {d});
    n.bias = store.take(name + ".bias", {d});
  } else {
    n.alpha = store.take(name + ".alpha", {1, 1, d});
  }
  return n;
}

void ProjectedTransformer::apply_norm(const Norm& norm, const float* x, int64_t n, float* y) const {
  switch (cfg_.norm) {
    case NormKind::LayerNorm: layer_norm(x, n, cfg_.d_model, norm.weight.data(), norm.bias.data(), 1e-5f, y); break;
    case NormKind::RmsNorm: rms_norm(x, n, cfg_.d_model, norm.alpha.data(), 1e-5f, y); break;
    case NormKind::RmsNormF32: rms_norm(x, n, cfg_.d_model, norm.alpha.data(), 1e-8f, y); break;
  }
}

ProjectedTransformer::ProjectedTransformer(const TransformerConfig& cfg, WeightStore& store, const std::string& prefix)
    : cfg_(cfg) {
  const int64_t d = cfg.d_model;
  input_proj_ = optional_projection(store, prefix + "input_proj.weight", cfg.input_dimension, d);
  output_proj_ = optional_projection(store, prefix + "output_proj.weight", d, cfg.output_dimension);
  for (int l = 0; l < cfg.num_layers; ++l) {
    const std::string p = prefix + "transformer.layers." + std::to_string(l) + ".";
    Layer layer;
    layer.norm1 = load_norm(store, p + "norm1");
    layer.norm2 = load_norm(store, p + "norm2");
    layer.in_proj =
        matrix(store, first_present(store, {p + "self_attn.in_projs.0.weight", p + "self_attn.in_proj.weight"}), {3 * d, d});
    layer.out_proj =
        matrix(store, first_present(store, {p + "self_attn.out_projs.0.weight", p + "self_attn.out_proj.weight"}), {d, d});
    const int64_t hidden = cfg.ffn_hidden();
    if (cfg.gating) {
      layer.ffn_in = matrix(store, p + "gating.linear_in.weight", {2 * hidden, d});
      layer.ffn_out = matrix(store, p + "gating.linear_out.weight", {d, hidden});
    } else {
      layer.ffn_in = matrix(store, first_present(store, {p + "linear1.weight", p + "ffn.0.weight"}), {hidden, d});
      layer.ffn_out = matrix(store, first_present(store, {p + "linear2.weight", p + "ffn.2.weight"}), {d, hidden});
    }
    if (cfg.layer_scale) {
      layer.scale1 = store.take(p + "layer_scale_1.scale", {d});
      layer.scale2 = store.take(p + "layer_scale_2.scale", {d});
    }
    layers_.push_back(std::move(layer));
  }
}

TransformerState ProjectedTransformer::new_state() const {
  TransformerState s;
  // Every layer's keys and values on one arena's huge pages (KvArena).
  const auto arena = std::make_shared<KvArena>(2 * int(layers_.size()));
  s.layers.reserve(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) s.layers.emplace_back(arena);
  return s;
}

void ProjectedTransformer::forward(const float* x_in, int64_t n, float* y, TransformerState* state,
                                   TransformerScratch& ws) const {
  run(x_in, &n, &state, 1, y, ws);
}

void ProjectedTransformer::forward_streams(const float* x, const int64_t* rows, TransformerState* const* states,
                                           int count, float* y, TransformerScratch& ws) const {
  for (int i = 0; i < count; ++i)
    if (!states[i]) throw Error("forward_streams: segment " + std::to_string(i) + " has no stream state");
  run(x, rows, states, count, y, ws);
}

void ProjectedTransformer::run(const float* x_in, const int64_t* rows, TransformerState* const* states, int count,
                               float* y, TransformerScratch& ws) const {
  int64_t n = 0;
  for (int i = 0; i < count; ++i) n += rows[i];
  if (n <= 0) return;
  const int64_t D = cfg_.d_model, H = cfg_.num_heads, dh = cfg_.head_dim();
  const int64_t hidden = cfg_.ffn_hidden();
  if (states[0] && !cfg_.causal) throw Error("streaming needs causal transformers; this module has causal=false");
  ws.x.resize(size_t(n * D));
  ws.h.resize(size_t(n * D));
  ws.qkv.resize(size_t(n * 3 * D));
  ws.attn.resize(size_t(n * D));
  ws.ff.resize(size_t(n * (cfg_.gating ? 2 * hidden : hidden)));
  if (cfg_.gating) ws.gated.resize(size_t(n * hidden));
  float* x = ws.x.data();

  if (input_proj_.present()) input_proj_.forward(x_in, n, x);
  else std::memcpy(x, x_in, sizeof(float) * size_t(n * D));

  // Positions go segment by segment: each stream continues from its own.
  ws.rope.n = 0;
  int64_t r0 = 0;
  for (int i = 0; i < count; r0 += rows[i], ++i) {
    const int64_t pos0 = states[i] ? states[i]->position : 0;
    if (cfg_.uses_sin()) add_sin_embedding(x + r0 * D, rows[i], int(D), pos0, cfg_.max_period);
    if (cfg_.uses_rope()) ws.rope.append(pos0, rows[i], int(dh), cfg_.max_period);
  }

  // A streaming step's few rows: its products are few-row ones, whose threads
  // can finish their own outputs (OutputHook).
  const bool few_rows = n <= kFewRowsMax;
  RopeOnOutputs rope_outputs{&ws.rope, D, int(dh)};
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    // Self-attention block.
    apply_norm(L.norm1, x, n, ws.h.data());
    // RoPE on each piece of q and k as the product finishes it.
    const OutputHook rope = few_rows && cfg_.uses_rope() ? OutputHook{RopeOnOutputs::run, &rope_outputs} : OutputHook{};
    L.in_proj.forward(ws.h.data(), n, ws.qkv.data(), false, rope);
    if (cfg_.uses_rope() && !rope.fn) {
      apply_rope(ws.qkv.data(), n, 3 * D, int(H), int(dh), ws.rope);      // q
      apply_rope(ws.qkv.data() + D, n, 3 * D, int(H), int(dh), ws.rope);  // k
    }
    r0 = 0;  // each segment attends over its own stream's window
    for (int i = 0; i < count; r0 += rows[i], ++i) {
      AttentionShape shape;
      shape.n_queries = rows[i];
      shape.heads = int(H);
      shape.head_dim = int(dh);
      shape.context = cfg_.context;
      shape.causal = cfg_.causal;
      const float* qkv = ws.qkv.data() + r0 * 3 * D;
      float* out = ws.attn.data() + r0 * D;
      if (TransformerState* state = states[i]) {
        // The new keys and values go into the cache head by head, each written
        // by the thread that attends over that head next.
        KvWindow& kv = state->layers[l];
        const BeforeHead write_rows = kv.append_per_head(qkv + D, qkv + 2 * D, 3 * D, rows[i], int(H), int(dh), kept_keys());
        shape.n_keys = kv.rows();
        windowed_attention(shape, qkv, 3 * D, kv.view(), out, D, write_rows);
        kv.keep_newest(kept_keys());
      } else {
        shape.n_keys = rows[i];
        windowed_attention(shape, qkv, 3 * D, qkv + D, qkv + 2 * D, 3 * D, out, D);
      }
    }
    L.out_proj.forward(ws.attn.data(), n, ws.h.data());
    add_scaled(x, ws.h.data(), L.scale1, n, D);

    // Feed-forward block.
    apply_norm(L.norm2, x, n, ws.h.data());
    // Without gating, GELU on each piece of the product as it is finished.
    const OutputHook gelu = few_rows && !cfg_.gating ? OutputHook{gelu_on_outputs, nullptr} : OutputHook{};
    L.ffn_in.forward(ws.h.data(), n, ws.ff.data(), false, gelu);
    const float* ff_out_in = ws.ff.data();
    if (cfg_.gating) {
      const Activation act = *cfg_.gating;
      float* g = ws.gated.data();
      const float* f = ws.ff.data();
#pragma omp parallel for schedule(static) if (n * hidden > 65536)
      for (int64_t r = 0; r < n; ++r)
        for (int64_t j = 0; j < hidden; ++j)
          g[r * hidden + j] = activate(act, f[r * 2 * hidden + j]) * f[r * 2 * hidden + hidden + j];
      ff_out_in = g;
    } else if (!gelu.fn) {
      activate_inplace(Activation::Gelu, ws.ff.data(), n * hidden);
    }
    L.ffn_out.forward(ff_out_in, n, ws.h.data());
    add_scaled(x, ws.h.data(), L.scale2, n, D);
  }
  for (int i = 0; i < count; ++i)
    if (states[i]) states[i]->position += rows[i];

  if (output_proj_.present()) output_proj_.forward(x, n, y);
  else std::memcpy(y, x, sizeof(float) * size_t(n * D));
}

}  // namespace moss
