#pragma once
// Model configuration parsed from a published config.json (SPEC section 2).
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace moss {

enum class NormKind { LayerNorm, RmsNorm, RmsNormF32 };
enum class PositionalKind { None, Rope, Sin, SinRope };
enum class Activation { Sigmoid, Tanh, Relu, LeakyRelu, Elu, Gelu, Silu, Mish, Softsign, Identity };
enum class QuantizerKind { Rvq, SpecRvq, Rlfq, RandomPrefixRlfq };

struct TransformerConfig {
  int input_dimension = 0;
  int output_dimension = 0;
  int d_model = 0;
  int num_heads = 0;
  int num_layers = 0;
  int dim_feedforward = 2048;
  bool causal = false;
  NormKind norm = NormKind::LayerNorm;
  PositionalKind positional = PositionalKind::Sin;
  double max_period = 10000.0;
  std::optional<Activation> gating;   // nullopt: plain FFN with exact GELU
  std::optional<double> layer_scale;  // nullopt: no layer scale
  bool conv_layout = false;
  std::optional<double> context_duration;  // v2 per-module override
  // Derived at load: attention window in frames and the module's frame rate.
  int context = 0;
  double frame_rate = 0.0;

  bool uses_rope() const { return positional == PositionalKind::Rope || positional == PositionalKind::SinRope; }
  bool uses_sin() const { return positional == PositionalKind::Sin || positional == PositionalKind::SinRope; }
  int head_dim() const { return d_model / num_heads; }
  bool operator==(const TransformerConfig&) const = default;
  // Hidden width of the FFN (gated: H of SPEC section 5; plain: dim_feedforward).
  int ffn_hidden() const;
};

struct ModuleConfig {
  enum class Kind { Patch, Transformer } kind = Kind::Patch;
  int patch_size = 1;             // Patch only
  TransformerConfig transformer;  // Transformer only
  bool operator==(const ModuleConfig&) const = default;
};

struct QuantizerConfig {
  QuantizerKind kind = QuantizerKind::Rlfq;
  int input_dim = 0;
  int rvq_dim = 0;
  int output_dim = 0;
  int num_quantizers = 0;
  int codebook_size = 0;
  int codebook_dim = 0;
  bool is_lfq() const { return kind == QuantizerKind::Rlfq || kind == QuantizerKind::RandomPrefixRlfq; }
  bool operator==(const QuantizerConfig&) const = default;
};

// The largest model a config may describe: 2^33 parameters (32 GiB as
// float32). Larger configs are refused at parse time, before anything is
// allocated for them.
inline constexpr int64_t kMaxParameters = int64_t(1) << 33;

struct CodecConfig {
  int sampling_rate = 0;
  int downsample_rate = 0;
  double context_duration = 0.0;  // causal_transformer_context_duration, seconds
  int number_channels = 1;
  bool channel_interleave = true;
  bool v2_style = false;  // number_channels or a per-module context_duration present
  std::vector<ModuleConfig> encoder;
  std::vector<ModuleConfig> decoder;
  QuantizerConfig quantizer;

  // Audio channels of the checkpoint (1, or 2 for the 48 kHz stereo family).
  int channels() const { return number_channels; }
  bool interleaved() const { return channel_interleave && number_channels > 1; }
  double frame_rate() const { return double(sampling_rate) / downsample_rate; }
  // Parameters the config describes (the tensors a checkpoint must hold).
  int64_t parameter_count() const;
  // Floating-point operations (2 per multiply-add) of encoding or decoding
  // `frames` code frames offline: every matrix product plus windowed
  // attention (each query against min(position + 1, window) keys).
  double encode_flops(int64_t frames) const;
  double decode_flops(int64_t frames) const;

  bool operator==(const CodecConfig&) const = default;

  // Canonical JSON: model_type moss_audio_tokenizer, sorted keys, only the
  // fields that change the model; parse(to_json()) == *this.
  std::string to_json() const;

  // Parses and validates; errors name `source` and the offending field.
  static CodecConfig parse(const std::string& json_text, const std::string& source = "config.json");
  static CodecConfig load(const std::filesystem::path& path);
};

const char* to_string(NormKind);
const char* to_string(PositionalKind);
const char* to_string(Activation);
const char* to_string(QuantizerKind);

}  // namespace moss
