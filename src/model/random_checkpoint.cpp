#include "moss_codec/random_checkpoint.h"

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/half.h"
#include "moss_codec/error.h"
#include "moss_codec/quantization.h"

namespace moss {

namespace fs = std::filesystem;

namespace {

void add_transformer(std::vector<TensorSpec>& out, const TransformerConfig& t, const std::string& prefix) {
  const int64_t d = t.d_model, h = t.ffn_hidden();
  if (t.input_dimension != d) out.push_back({prefix + "input_proj.weight", {d, t.input_dimension}});
  for (int l = 0; l < t.num_layers; ++l) {
    const std::string p = prefix + "transformer.layers." + std::to_string(l) + ".";
    out.push_back({p + "self_attn.in_projs.0.weight", {3 * d, d}});
    out.push_back({p + "self_attn.out_projs.0.weight", {d, d}});
    for (const char* n : {"norm1", "norm2"}) {
      if (t.norm == NormKind::LayerNorm) {
        out.push_back({p + n + ".weight", {d}});
        out.push_back({p + n + ".bias", {d}});
      } else {
        out.push_back({p + n + ".alpha", {1, 1, d}});
      }
    }
    if (t.gating) {
      out.push_back({p + "gating.linear_in.weight", {2 * h, d}});
      out.push_back({p + "gating.linear_out.weight", {d, h}});
    } else {
      out.push_back({p + "linear1.weight", {h, d}});
      out.push_back({p + "linear2.weight", {d, h}});
    }
    if (t.layer_scale) {
      out.push_back({p + "layer_scale_1.scale", {d}});
      out.push_back({p + "layer_scale_2.scale", {d}});
    }
  }
  if (t.output_dimension != d) out.push_back({prefix + "output_proj.weight", {t.output_dimension, d}});
}

void add_conv(std::vector<TensorSpec>& out, const std::string& prefix, int64_t in, int64_t o) {
  if (in == o) return;
  out.push_back({prefix + ".bias", {o}});
  out.push_back({prefix + ".parametrizations.weight.original0", {o, 1, 1}});
  out.push_back({prefix + ".parametrizations.weight.original1", {o, in, 1}});
}

void add_chain(std::vector<TensorSpec>& out, const std::vector<ModuleConfig>& chain, const std::string& name) {
  for (size_t i = 0; i < chain.size(); ++i)
    if (chain[i].kind == ModuleConfig::Kind::Transformer)
      add_transformer(out, chain[i].transformer, name + "." + std::to_string(i) + ".");
}

// A small, fast, seedable generator (splitmix64); uniform in [-1, 1).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  float uniform() { return float(int64_t(next() >> 11) - (int64_t(1) << 52)) / float(int64_t(1) << 52); }
};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Values by role, like PyTorch's initializers, nudged off their defaults so
// that every parameter matters.
void fill(const TensorSpec& t, const CodecConfig& cfg, uint64_t seed, std::vector<float>& v) {
  Rng rng{seed ^ fnv1a(t.name)};
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  v.resize(size_t(n));
  const int64_t fan_in = t.shape.size() >= 2 ? t.shape[1] : 1;
  if (ends_with(t.name, "codebook.weight")) {
    for (auto& x : v) x = rng.uniform();
  } else if (ends_with(t.name, "norm1.weight") || ends_with(t.name, "norm2.weight") || ends_with(t.name, ".alpha")) {
    for (auto& x : v) x = 1.0f + 0.1f * rng.uniform();
  } else if (ends_with(t.name, "norm1.bias") || ends_with(t.name, "norm2.bias")) {
    for (auto& x : v) x = 0.1f * rng.uniform();
  } else if (ends_with(t.name, ".scale")) {
    float base = 0.01f;
    for (auto* chain : {&cfg.encoder, &cfg.decoder})
      for (auto& m : *chain)
        if (m.kind == ModuleConfig::Kind::Transformer && m.transformer.layer_scale) base = float(*m.transformer.layer_scale);
    for (auto& x : v) x = base * (1.0f + 0.5f * rng.uniform());
  } else if (ends_with(t.name, "original0")) {
    for (auto& x : v) x = 1.0f + 0.5f * rng.uniform();
  } else if (ends_with(t.name, ".bias")) {
    for (auto& x : v) x = 0.1f * rng.uniform();
  } else {  // linear and conv weights: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    const float bound = 1.0f / std::sqrt(float(fan_in));
    for (auto& x : v) x = bound * rng.uniform();
  }
}

}  // namespace

std::vector<TensorSpec> checkpoint_tensors(const CodecConfig& c) {
  std::vector<TensorSpec> out;
  add_chain(out, c.encoder, "encoder");
  const QuantizerConfig& q = c.quantizer;
  add_conv(out, "quantizer.input_proj", q.input_dim, q.rvq_dim);
  add_conv(out, "quantizer.output_proj", q.rvq_dim, q.output_dim);
  for (int i = 0; i < q.num_quantizers; ++i) {
    const std::string p = "quantizer.quantizers." + std::to_string(i);
    add_conv(out, p + ".in_proj", q.rvq_dim, q.codebook_dim);
    add_conv(out, p + ".out_proj", q.codebook_dim, q.rvq_dim);
    out.push_back({p + ".codebook.weight", {q.codebook_size, q.codebook_dim}});
  }
  add_chain(out, c.decoder, "decoder");
  return out;
}

void write_random_checkpoint(const fs::path& dir, const std::string& config_json, uint64_t seed, WeightDType dtype) {
  const CodecConfig cfg = CodecConfig::parse(config_json, "config");
  std::error_code ec;
  if (fs::exists(dir, ec)) throw Error(dir.string() + ": already exists");
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create folder: " + ec.message());
  {
    std::ofstream out(dir / "config.json");
    out << config_json;
    if (!out.flush()) throw Error((dir / "config.json").string() + ": write failed");
  }
  const std::vector<TensorSpec> specs = checkpoint_tensors(cfg);
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  std::vector<bool> narrow(specs.size());  // stored in 16 bits
  const char* narrow_name = dtype == WeightDType::F16 ? "F16" : "BF16";
  for (size_t i = 0; i < specs.size(); ++i) {
    narrow[i] = dtype != WeightDType::F32 && may_use_reduced_precision(specs[i].name);
    uint64_t n = 1;
    for (int64_t d : specs[i].shape) n *= uint64_t(d);
    const uint64_t bytes = n * (narrow[i] ? 2 : 4);
    header[specs[i].name] = {
        {"dtype", narrow[i] ? narrow_name : "F32"}, {"shape", specs[i].shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  header["__metadata__"] = {{"format", "pt"}, {"generator", "moss-codec init-random"}, {"seed", std::to_string(seed)}};
  std::string h = header.dump();
  while ((h.size() + 8) % 8 != 0) h.push_back(' ');
  std::ofstream out(dir / "model.safetensors", std::ios::binary | std::ios::trunc);
  if (!out) throw Error((dir / "model.safetensors").string() + ": cannot open for writing");
  const uint64_t hl = h.size();
  out.write(reinterpret_cast<const char*>(&hl), 8);
  out.write(h.data(), std::streamsize(h.size()));
  std::vector<float> values;
  std::vector<uint16_t> halves;
  for (size_t i = 0; i < specs.size(); ++i) {
    fill(specs[i], cfg, seed, values);
    if (narrow[i]) {
      halves.resize(values.size());
      for (size_t j = 0; j < values.size(); ++j)
        halves[j] = dtype == WeightDType::F16 ? float_to_half(values[j]) : float_to_bf16(values[j]);
      out.write(reinterpret_cast<const char*>(halves.data()), std::streamsize(halves.size() * 2));
    } else {
      out.write(reinterpret_cast<const char*>(values.data()), std::streamsize(values.size() * 4));
    }
  }
  if (!out.flush()) throw Error((dir / "model.safetensors").string() + ": write failed (disk full?)");
}

}  // namespace moss
