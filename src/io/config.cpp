// Parsing and validation of published config.json files (SPEC section 2).
#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "moss_codec/config.h"
#include "moss_codec/error.h"

namespace moss {

using nlohmann::json;

const char* to_string(NormKind k) {
  switch (k) {
    case NormKind::LayerNorm: return "layer_norm";
    case NormKind::RmsNorm: return "rms_norm";
    case NormKind::RmsNormF32: return "rms_norm_f32";
  }
  return "?";
}
const char* to_string(PositionalKind k) {
  switch (k) {
    case PositionalKind::None: return "none";
    case PositionalKind::Rope: return "rope";
    case PositionalKind::Sin: return "sin";
    case PositionalKind::SinRope: return "sin_rope";
  }
  return "?";
}
const char* to_string(Activation a) {
  switch (a) {
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
    case Activation::Relu: return "relu";
    case Activation::LeakyRelu: return "leaky_relu";
    case Activation::Elu: return "elu";
    case Activation::Gelu: return "gelu";
    case Activation::Silu: return "silu";
    case Activation::Mish: return "mish";
    case Activation::Softsign: return "softsign";
    case Activation::Identity: return "identity";
  }
  return "?";
}
const char* to_string(QuantizerKind k) {
  switch (k) {
    case QuantizerKind::Rvq: return "rvq";
    case QuantizerKind::SpecRvq: return "spec_rvq";
    case QuantizerKind::Rlfq: return "rlfq";
    case QuantizerKind::RandomPrefixRlfq: return "random_prefix_rlfq";
  }
  return "?";
}

int TransformerConfig::ffn_hidden() const {
  if (!gating) return dim_feedforward;
  return dim_feedforward == 4 * d_model ? (21 * d_model) / 8 : (2 * dim_feedforward) / 3;
}

namespace {

// Field readers that name the field (with its path) in every error.
struct Reader {
  const json& j;
  std::string prefix;  // e.g. "config.json: encoder_kwargs[1]."

  [[noreturn]] void fail(const std::string& field, const std::string& msg) const {
    throw Error(prefix + field + ": " + msg);
  }
  bool has(const std::string& k) const { return j.contains(k) && !j.at(k).is_null(); }
  const json& need(const std::string& k) const {
    if (!has(k)) fail(k, "missing required field");
    return j.at(k);
  }
  int64_t integer(const std::string& k, bool positive = true) const {
    const json& v = need(k);
    int64_t x;
    if (v.is_number_integer()) x = v.get<int64_t>();
    else if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() && std::fabs(v.get<double>()) < 1e15)
      x = int64_t(v.get<double>());
    else fail(k, "expected an integer, got " + v.dump());
    if (positive && x <= 0) fail(k, "must be > 0, got " + std::to_string(x));
    if (x > (int64_t(1) << 30)) fail(k, "value " + std::to_string(x) + " is implausibly large (limit 2^30)");
    return x;
  }
  int64_t integer_or(const std::string& k, int64_t def) const { return has(k) ? integer(k) : def; }
  double number(const std::string& k) const {
    const json& v = need(k);
    if (!v.is_number()) fail(k, "expected a number, got " + v.dump());
    double x = v.get<double>();
    if (!std::isfinite(x)) fail(k, "must be finite");
    return x;
  }
  bool boolean_or(const std::string& k, bool def) const {
    if (!has(k)) return def;
    const json& v = j.at(k);
    if (!v.is_boolean()) fail(k, "expected true or false, got " + v.dump());
    return v.get<bool>();
  }
  std::string string_or(const std::string& k, const std::string& def) const {
    if (!has(k)) return def;
    const json& v = j.at(k);
    if (!v.is_string()) fail(k, "expected a string, got " + v.dump());
    return v.get<std::string>();
  }
};

template <typename E, size_t N>
E pick(const Reader& r, const std::string& field, const std::string& value, const std::pair<const char*, E> (&options)[N]) {
  std::string names;
  for (auto& [name, e] : options) {
    if (value == name) return e;
    names += std::string(names.empty() ? "" : ", ") + name;
  }
  r.fail(field, "unknown value '" + value + "' (expected one of: " + names + ")");
}

const std::pair<const char*, NormKind> kNorms[] = {
    {"layer_norm", NormKind::LayerNorm}, {"rms_norm", NormKind::RmsNorm}, {"rms_norm_f32", NormKind::RmsNormF32}};
const std::pair<const char*, PositionalKind> kPositions[] = {{"none", PositionalKind::None},
                                                              {"rope", PositionalKind::Rope},
                                                              {"sin", PositionalKind::Sin},
                                                              {"sin_rope", PositionalKind::SinRope}};
const std::pair<const char*, Activation> kActivations[] = {
    {"sigmoid", Activation::Sigmoid}, {"tanh", Activation::Tanh},     {"relu", Activation::Relu},
    {"leaky_relu", Activation::LeakyRelu}, {"elu", Activation::Elu},  {"gelu", Activation::Gelu},
    {"silu", Activation::Silu},       {"mish", Activation::Mish},     {"softsign", Activation::Softsign},
    {"identity", Activation::Identity}};
const std::pair<const char*, QuantizerKind> kQuantizers[] = {{"rvq", QuantizerKind::Rvq},
                                                              {"spec_rvq", QuantizerKind::SpecRvq},
                                                              {"rlfq", QuantizerKind::Rlfq},
                                                              {"random_prefix_rlfq", QuantizerKind::RandomPrefixRlfq}};

ModuleConfig parse_module(const Reader& r) {
  ModuleConfig m;
  std::string type = r.string_or("module_type", "");
  if (type.empty()) r.fail("module_type", "missing required field");
  if (type == "PatchedPretransform") {
    m.kind = ModuleConfig::Kind::Patch;
    m.patch_size = int(r.integer("patch_size"));
    return m;
  }
  if (type != "Transformer")
    r.fail("module_type", "unknown module type '" + type + "' (expected PatchedPretransform or Transformer)");
  m.kind = ModuleConfig::Kind::Transformer;
  TransformerConfig& t = m.transformer;
  t.input_dimension = int(r.integer("input_dimension"));
  t.output_dimension = int(r.integer("output_dimension"));
  t.d_model = int(r.integer("d_model"));
  t.num_heads = int(r.integer("num_heads"));
  t.num_layers = int(r.integer("num_layers", /*positive=*/false));
  if (t.num_layers < 0) r.fail("num_layers", "must be >= 0");
  t.dim_feedforward = int(r.integer_or("dim_feedforward", 2048));
  t.causal = r.boolean_or("causal", false);
  t.norm = pick(r, "norm", r.string_or("norm", "layer_norm"), kNorms);
  t.positional = pick(r, "positional_embedding", r.string_or("positional_embedding", "sin"), kPositions);
  if (r.has("max_period")) {
    t.max_period = r.number("max_period");
    if (t.max_period <= 0) r.fail("max_period", "must be > 0");
  }
  std::string gating = r.string_or("gating", "none");
  if (gating != "none") t.gating = pick(r, "gating", gating, kActivations);
  if (r.has("layer_scale")) t.layer_scale = r.number("layer_scale");
  t.conv_layout = r.boolean_or("conv_layout", false);
  if (r.has("context_duration")) {
    t.context_duration = r.number("context_duration");
    if (*t.context_duration <= 0) r.fail("context_duration", "must be > 0");
  }
  if (t.d_model % t.num_heads != 0)
    r.fail("d_model", "d_model " + std::to_string(t.d_model) + " is not divisible by num_heads " + std::to_string(t.num_heads));
  if (t.uses_rope() && t.head_dim() % 2 != 0)
    r.fail("num_heads", "RoPE needs an even head size, got d_model/num_heads = " + std::to_string(t.head_dim()));
  if (t.uses_sin() && (t.d_model % 2 != 0 || t.d_model < 4))
    r.fail("positional_embedding", "sinusoidal embedding needs an even d_model >= 4, got " + std::to_string(t.d_model));
  if (t.gating && t.ffn_hidden() <= 0) r.fail("dim_feedforward", "gives an empty gated hidden layer");
  return m;
}

std::vector<ModuleConfig> parse_modules(const json& root, const std::string& key, const std::string& source) {
  if (!root.contains(key) || !root.at(key).is_array()) throw Error(source + ": " + key + ": missing or not a list of modules");
  std::vector<ModuleConfig> out;
  size_t i = 0;
  for (const json& m : root.at(key)) {
    std::string path = source + ": " + key + "[" + std::to_string(i++) + "]";
    if (!m.is_object()) throw Error(path + ": not an object");
    out.push_back(parse_module(Reader{m, path + "."}));
  }
  return out;
}

// Attention window in frames: int() truncation in v1, round-half-to-even in v2.
int window_frames(double rate, double duration, bool v2) {
  double x = rate * duration;
  double w = v2 ? std::nearbyint(x) : std::trunc(x);
  if (w > double(1 << 30)) throw Error("attention window of " + std::to_string(x) + " frames is implausibly large");
  return int(w);
}

}  // namespace

CodecConfig CodecConfig::parse(const std::string& text, const std::string& source) {
  json root;
  try {
    root = json::parse(text);
  } catch (const std::exception& e) {
    throw Error(source + ": not valid JSON: " + e.what());
  }
  if (!root.is_object()) throw Error(source + ": top level is not a JSON object");
  Reader r{root, source + ": "};
  CodecConfig c;
  if (r.has("sampling_rate")) c.sampling_rate = int(r.integer("sampling_rate"));
  else if (r.has("sample_rate")) c.sampling_rate = int(r.integer("sample_rate"));
  else r.fail("sampling_rate", "missing required field (alias sample_rate)");
  c.downsample_rate = int(r.integer("downsample_rate"));
  c.context_duration = r.number("causal_transformer_context_duration");
  if (c.context_duration <= 0) r.fail("causal_transformer_context_duration", "must be > 0");
  c.v2_style = r.has("number_channels");
  c.number_channels = int(r.integer_or("number_channels", 1));
  if (c.number_channels > 64) r.fail("number_channels", "at most 64 channels are supported");
  c.channel_interleave = r.boolean_or("enable_channel_interleave", true);

  c.encoder = parse_modules(root, "encoder_kwargs", source);
  c.decoder = parse_modules(root, "decoder_kwargs", source);
  for (auto* list : {&c.encoder, &c.decoder})
    for (auto& m : *list)
      if (m.kind == ModuleConfig::Kind::Transformer && m.transformer.context_duration) c.v2_style = true;

  // Quantizer: quantizer_kwargs.quantizer_type wins over the top-level one.
  if (!root.contains("quantizer_kwargs") || !root["quantizer_kwargs"].is_object())
    r.fail("quantizer_kwargs", "missing required object");
  Reader q{root["quantizer_kwargs"], source + ": quantizer_kwargs."};
  std::string qtype = q.string_or("quantizer_type", r.string_or("quantizer_type", "rvq"));
  c.quantizer.kind = pick(q.has("quantizer_type") ? q : r, "quantizer_type", qtype, kQuantizers);
  c.quantizer.input_dim = int(q.integer("input_dim"));
  c.quantizer.rvq_dim = int(q.integer_or("rvq_dim", c.quantizer.input_dim));
  c.quantizer.output_dim = int(q.integer_or("output_dim", c.quantizer.input_dim));
  c.quantizer.num_quantizers = int(q.integer("num_quantizers"));
  c.quantizer.codebook_size = int(q.integer("codebook_size"));
  c.quantizer.codebook_dim = int(q.integer("codebook_dim"));

  // Patch products and the channel width chain.
  const int C = c.number_channels;
  const int64_t expected = int64_t(c.downsample_rate) * (c.interleaved() ? C : 1);
  auto product = [](const std::vector<ModuleConfig>& ms) {
    int64_t p = 1;
    for (auto& m : ms)
      if (m.kind == ModuleConfig::Kind::Patch) p *= m.patch_size;
    return p;
  };
  auto what = c.interleaved() ? " (downsample_rate x number_channels, interleaved)" : " (downsample_rate)";
  if (product(c.encoder) != expected)
    throw Error(source + ": encoder_kwargs: patch sizes multiply to " + std::to_string(product(c.encoder)) + ", expected " +
                std::to_string(expected) + what);
  if (product(c.decoder) != expected)
    throw Error(source + ": decoder_kwargs: patch sizes multiply to " + std::to_string(product(c.decoder)) + ", expected " +
                std::to_string(expected) + what);

  double rate = double(c.sampling_rate) * (c.interleaved() ? C : 1);
  int64_t width = c.interleaved() ? 1 : C;
  for (size_t i = 0; i < c.encoder.size(); ++i) {
    auto& m = c.encoder[i];
    std::string path = source + ": encoder_kwargs[" + std::to_string(i) + "]";
    if (m.kind == ModuleConfig::Kind::Patch) {
      width *= m.patch_size;
      rate /= m.patch_size;
      if (width > (1 << 30)) throw Error(path + ".patch_size: channel width overflows");
    } else {
      auto& t = m.transformer;
      if (t.input_dimension != width)
        throw Error(path + ".input_dimension: is " + std::to_string(t.input_dimension) + " but the previous module gives " +
                    std::to_string(width) + " channels");
      t.frame_rate = rate;
      t.context = window_frames(rate, t.context_duration.value_or(c.context_duration), c.v2_style);
      width = t.output_dimension;
    }
  }
  if (width != c.quantizer.input_dim)
    throw Error(source + ": quantizer_kwargs.input_dim: is " + std::to_string(c.quantizer.input_dim) +
                " but the encoder gives " + std::to_string(width) + " channels");
  width = c.quantizer.output_dim;
  for (size_t i = 0; i < c.decoder.size(); ++i) {
    auto& m = c.decoder[i];
    std::string path = source + ": decoder_kwargs[" + std::to_string(i) + "]";
    if (m.kind == ModuleConfig::Kind::Patch) {
      if (width % m.patch_size != 0)
        throw Error(path + ".patch_size: " + std::to_string(width) + " channels are not divisible by patch_size " +
                    std::to_string(m.patch_size));
      width /= m.patch_size;
      rate *= m.patch_size;
    } else {
      auto& t = m.transformer;
      if (t.input_dimension != width)
        throw Error(path + ".input_dimension: is " + std::to_string(t.input_dimension) + " but the previous module gives " +
                    std::to_string(width) + " channels");
      t.frame_rate = rate;
      t.context = window_frames(rate, t.context_duration.value_or(c.context_duration), c.v2_style);
      width = t.output_dimension;
    }
  }
  const int64_t out_channels = c.interleaved() ? 1 : C;
  if (width != out_channels)
    throw Error(source + ": decoder_kwargs: the decoder ends with " + std::to_string(width) + " channels, expected " +
                std::to_string(out_channels));
  for (auto* list : {&c.encoder, &c.decoder})
    for (auto& m : *list)
      if (m.kind == ModuleConfig::Kind::Transformer && m.transformer.causal && m.transformer.context < 1)
        throw Error(source + ": a causal transformer at " + std::to_string(m.transformer.frame_rate) +
                    " frames/s gets an attention window of " + std::to_string(m.transformer.context) +
                    " frames; the context duration is too short");
  if (c.parameter_count() > kMaxParameters)
    throw Error(source + ": describes " + std::to_string(c.parameter_count()) + " parameters, beyond the limit of " +
                std::to_string(kMaxParameters) + " (kMaxParameters)");
  return c;
}

int64_t CodecConfig::parameter_count() const {
  // Terms are products of two values <= 2^30; sums and the per-layer product
  // saturate at INT64_MAX instead of overflowing.
  auto sat_add = [](int64_t a, int64_t b) { return a > INT64_MAX - b ? INT64_MAX : a + b; };
  auto sat_mul = [](int64_t a, int64_t b) { return (a != 0 && b > INT64_MAX / a) ? INT64_MAX : a * b; };
  int64_t n = 0;
  for (auto* chain : {&encoder, &decoder})
    for (auto& m : *chain) {
      if (m.kind != ModuleConfig::Kind::Transformer) continue;
      const TransformerConfig& t = m.transformer;
      const int64_t d = t.d_model, h = t.ffn_hidden();
      if (t.input_dimension != d) n = sat_add(n, int64_t(t.input_dimension) * d);
      if (t.output_dimension != d) n = sat_add(n, int64_t(t.output_dimension) * d);
      const int64_t ffn = sat_mul(t.gating ? 3 * d : 2 * d, h);
      const int64_t norms = t.norm == NormKind::LayerNorm ? 4 * d : 2 * d;
      const int64_t layer = sat_add(sat_add(sat_mul(4 * d, d), ffn), norms + (t.layer_scale ? 2 * d : 0));
      n = sat_add(n, sat_mul(layer, t.num_layers));
    }
  const QuantizerConfig& q = quantizer;
  auto conv = [](int64_t in, int64_t out) { return in == out ? 0 : in * out + 2 * out; };
  n = sat_add(n, conv(q.input_dim, q.rvq_dim) + conv(q.rvq_dim, q.output_dim));
  const int64_t per_book = sat_add(sat_mul(q.codebook_size, q.codebook_dim),
                                   conv(q.rvq_dim, q.codebook_dim) + conv(q.codebook_dim, q.rvq_dim));
  return sat_add(n, sat_mul(per_book, q.num_quantizers));
}

static json module_json(const ModuleConfig& m) {
  if (m.kind == ModuleConfig::Kind::Patch) return {{"module_type", "PatchedPretransform"}, {"patch_size", m.patch_size}};
  const TransformerConfig& t = m.transformer;
  json j = {{"module_type", "Transformer"},
            {"input_dimension", t.input_dimension},
            {"output_dimension", t.output_dimension},
            {"d_model", t.d_model},
            {"num_heads", t.num_heads},
            {"num_layers", t.num_layers},
            {"dim_feedforward", t.dim_feedforward},
            {"causal", t.causal},
            {"norm", to_string(t.norm)},
            {"positional_embedding", to_string(t.positional)},
            {"max_period", t.max_period},
            {"gating", t.gating ? to_string(*t.gating) : "none"},
            {"layer_scale", t.layer_scale ? json(*t.layer_scale) : json(nullptr)},
            {"conv_layout", t.conv_layout}};
  if (t.context_duration) j["context_duration"] = *t.context_duration;
  return j;
}

std::string CodecConfig::to_json() const {
  json j;
  j["model_type"] = "moss_audio_tokenizer";
  j["sampling_rate"] = sampling_rate;
  j["downsample_rate"] = downsample_rate;
  j["causal_transformer_context_duration"] = context_duration;
  // number_channels also marks a config as v2-style (round-half-to-even windows).
  if (v2_style || number_channels != 1 || !channel_interleave) {
    j["number_channels"] = number_channels;
    j["enable_channel_interleave"] = channel_interleave;
  }
  j["encoder_kwargs"] = json::array();
  for (auto& m : encoder) j["encoder_kwargs"].push_back(module_json(m));
  j["decoder_kwargs"] = json::array();
  for (auto& m : decoder) j["decoder_kwargs"].push_back(module_json(m));
  j["quantizer_kwargs"] = {{"quantizer_type", to_string(quantizer.kind)}, {"input_dim", quantizer.input_dim},
                           {"rvq_dim", quantizer.rvq_dim},                {"output_dim", quantizer.output_dim},
                           {"num_quantizers", quantizer.num_quantizers},  {"codebook_size", quantizer.codebook_size},
                           {"codebook_dim", quantizer.codebook_dim}};
  return j.dump(2) + "\n";
}

static double transformer_flops(const TransformerConfig& t, int64_t n) {
  const double d = t.d_model, h = t.ffn_hidden();
  double per_row = 0;
  if (t.input_dimension != t.d_model) per_row += 2.0 * t.input_dimension * d;
  if (t.output_dimension != t.d_model) per_row += 2.0 * t.output_dimension * d;
  const double layer = 2.0 * (4 * d * d) + 2.0 * (t.gating ? 3 * d * h : 2 * d * h);
  // Keys seen per query: min(p + 1, window), summed over positions 0..n-1.
  double keys = 0;
  const double w = t.causal ? double(t.context) : double(n);
  const double full = std::min(double(n), w);
  keys = full * (full + 1) / 2 + (double(n) - full) * w;
  if (!t.causal) keys = double(n) * double(n);
  return per_row * double(n) + t.num_layers * (layer * double(n) + 4.0 * d * keys);
}

static double chain_flops(const std::vector<ModuleConfig>& chain, int64_t rows, bool encoder) {
  double f = 0;
  for (auto& m : chain) {
    if (m.kind == ModuleConfig::Kind::Patch) rows = encoder ? rows / m.patch_size : rows * m.patch_size;
    else f += transformer_flops(m.transformer, rows);
  }
  return f;
}

double CodecConfig::encode_flops(int64_t frames) const {
  const int64_t samples = frames * downsample_rate * (interleaved() ? number_channels : 1);
  const QuantizerConfig& q = quantizer;
  const double quant = 2.0 * frames *
                       (double(q.input_dim) * q.rvq_dim +
                        q.num_quantizers * (2.0 * q.rvq_dim * q.codebook_dim + double(q.codebook_size) * q.codebook_dim));
  return chain_flops(encoder, samples, true) + quant;
}

double CodecConfig::decode_flops(int64_t frames) const {
  const double quant = 2.0 * frames * double(quantizer.rvq_dim) * quantizer.output_dim;
  return chain_flops(decoder, frames, false) + quant;
}

CodecConfig CodecConfig::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot open config");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse(ss.str(), path.string());
}

}  // namespace moss
