#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "moss_codec/config.h"
#include "test_util.h"

namespace moss::test {

using nlohmann::json;

static json load_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

static std::vector<int> windows(const std::vector<ModuleConfig>& ms) {
  std::vector<int> w;
  for (auto& m : ms)
    if (m.kind == ModuleConfig::Kind::Transformer) w.push_back(m.transformer.context);
  return w;
}

TEST(Config, PublishedV1WindowsAndAliases) {
  CodecConfig c = CodecConfig::load(fs::path(MOSS_SHARED_DIR) / "configs/moss-audio-tokenizer-24k.config.json");
  EXPECT_EQ(c.sampling_rate, 24000);
  EXPECT_EQ(c.downsample_rate, 1920);
  EXPECT_FALSE(c.v2_style);
  EXPECT_EQ(windows(c.encoder), (std::vector<int>{1000, 500, 250, 125}));
  EXPECT_EQ(windows(c.decoder), (std::vector<int>{125, 250, 500, 1000}));
  EXPECT_EQ(c.quantizer.kind, QuantizerKind::Rlfq);
  EXPECT_EQ(c.quantizer.num_quantizers, 32);
  EXPECT_DOUBLE_EQ(c.frame_rate(), 12.5);
}

TEST(Config, FixtureConfigs) {
  CodecConfig tiny = CodecConfig::load(fixture("tiny") / "config.json");
  EXPECT_EQ(windows(tiny.encoder), (std::vector<int>{12, 6}));
  EXPECT_EQ(windows(tiny.decoder), (std::vector<int>{6, 12}));
  CodecConfig stereo = CodecConfig::load(fixture("stereo-48k-v2") / "config.json");
  EXPECT_TRUE(stereo.v2_style);
  EXPECT_TRUE(stereo.interleaved());
  EXPECT_EQ(stereo.channels(), 2);
  EXPECT_EQ(windows(stereo.encoder), (std::vector<int>{24, 6}));
  EXPECT_EQ(windows(stereo.decoder), (std::vector<int>{6, 24}));
  CodecConfig variants = CodecConfig::load(fixture("variants") / "config.json");
  EXPECT_EQ(variants.quantizer.kind, QuantizerKind::Rvq);  // quantizer_kwargs wins over the top level
  EXPECT_EQ(variants.encoder[1].transformer.gating, Activation::Silu);
  EXPECT_EQ(variants.encoder[3].transformer.norm, NormKind::RmsNormF32);
  EXPECT_EQ(variants.encoder[3].transformer.positional, PositionalKind::SinRope);
  EXPECT_FALSE(variants.decoder[2].transformer.layer_scale.has_value());
  EXPECT_EQ(variants.encoder[1].transformer.ffn_hidden(), 21);  // dim_feedforward == 4 D
  EXPECT_EQ(variants.decoder[0].transformer.ffn_hidden(), 16);  // 2 * 24 / 3
}

TEST(Config, WindowRoundingV1TruncatesV2RoundsHalfToEven) {
  json j = load_json(fixture("tiny") / "config.json");
  // Encoder transformer 1 runs at 12 frames/s; 13.5 frames: v1 13, v2 14; 12.5: 12 under both.
  j["causal_transformer_context_duration"] = 13.5 / 12.0;
  EXPECT_EQ(CodecConfig::parse(j.dump()).encoder[1].transformer.context, 13);
  j["number_channels"] = 1;
  EXPECT_EQ(CodecConfig::parse(j.dump()).encoder[1].transformer.context, 14);
  j["causal_transformer_context_duration"] = 12.5 / 12.0;
  EXPECT_EQ(CodecConfig::parse(j.dump()).encoder[1].transformer.context, 12);
  j.erase("number_channels");
  EXPECT_EQ(CodecConfig::parse(j.dump()).encoder[1].transformer.context, 12);
  // A per-module context_duration makes the config v2-style and overrides the global one.
  j["encoder_kwargs"][1]["context_duration"] = 0.5;
  CodecConfig c = CodecConfig::parse(j.dump());
  EXPECT_TRUE(c.v2_style);
  EXPECT_EQ(c.encoder[1].transformer.context, 6);
}

TEST(Config, ExtraKeysAndAliasesAccepted) {
  json j = load_json(fixture("tiny") / "config.json");
  j.erase("sampling_rate");
  j["sample_rate"] = 24;
  j["model_type"] = "moss_audio_tokenizer";
  j["something_new"] = {{"x", 1}};
  EXPECT_EQ(CodecConfig::parse(j.dump()).sampling_rate, 24);
}

struct BadConfig {
  std::string name;
  std::function<void(json&)> edit;
  std::string needle;
};

TEST(Config, InvalidConfigsNameTheField) {
  std::vector<BadConfig> cases = {
      {"unknown_module", [](json& j) { j["encoder_kwargs"][0]["module_type"] = "Conv"; }, "encoder_kwargs[0].module_type: unknown module type 'Conv'"},
      {"unknown_norm", [](json& j) { j["encoder_kwargs"][1]["norm"] = "batch_norm"; }, "encoder_kwargs[1].norm: unknown value 'batch_norm'"},
      {"unknown_gating", [](json& j) { j["decoder_kwargs"][0]["gating"] = "swish"; }, "decoder_kwargs[0].gating: unknown value 'swish'"},
      {"unknown_position", [](json& j) { j["decoder_kwargs"][0]["positional_embedding"] = "alibi"; }, "positional_embedding: unknown value 'alibi'"},
      {"unknown_quantizer", [](json& j) { j["quantizer_kwargs"]["quantizer_type"] = "fsq"; }, "quantizer_type: unknown value 'fsq'"},
      {"missing_d_model", [](json& j) { j["encoder_kwargs"][1].erase("d_model"); }, "encoder_kwargs[1].d_model: missing required field"},
      {"missing_downsample", [](json& j) { j.erase("downsample_rate"); }, "downsample_rate: missing required field"},
      {"missing_rate", [](json& j) { j.erase("sampling_rate"); j.erase("sample_rate"); }, "sampling_rate: missing"},
      {"missing_quantizer", [](json& j) { j.erase("quantizer_kwargs"); }, "quantizer_kwargs"},
      {"missing_codebooks", [](json& j) { j["quantizer_kwargs"].erase("num_quantizers"); }, "quantizer_kwargs.num_quantizers: missing"},
      {"heads", [](json& j) { j["encoder_kwargs"][1]["num_heads"] = 3; }, "not divisible by num_heads 3"},
      {"odd_rope", [](json& j) { j["encoder_kwargs"][1]["num_heads"] = 8; }, "RoPE needs an even head size"},
      {"patch_product", [](json& j) { j["encoder_kwargs"][0]["patch_size"] = 4; }, "encoder_kwargs: patch sizes multiply to 8, expected 4"},
      {"decoder_patch_product", [](json& j) { j["decoder_kwargs"][3]["patch_size"] = 1; }, "decoder_kwargs: patch sizes multiply to 2"},
      {"zero_size", [](json& j) { j["encoder_kwargs"][1]["d_model"] = 0; }, "d_model: must be > 0"},
      {"negative_size", [](json& j) { j["quantizer_kwargs"]["codebook_size"] = -4; }, "codebook_size: must be > 0"},
      {"huge_size", [](json& j) { j["quantizer_kwargs"]["codebook_size"] = 1LL << 40; }, "implausibly large"},
      {"string_size", [](json& j) { j["encoder_kwargs"][1]["d_model"] = "eight"; }, "expected an integer"},
      {"width_chain", [](json& j) { j["encoder_kwargs"][3]["input_dimension"] = 12; }, "encoder_kwargs[3].input_dimension: is 12 but the previous module gives 16"},
      {"quantizer_width", [](json& j) { j["quantizer_kwargs"]["input_dim"] = 11; }, "quantizer_kwargs.input_dim"},
      {"context", [](json& j) { j["causal_transformer_context_duration"] = 0; }, "causal_transformer_context_duration: must be > 0"},
      {"tiny_window", [](json& j) { j["causal_transformer_context_duration"] = 0.01; }, "attention window of 0 frames"},
      {"not_list", [](json& j) { j["encoder_kwargs"] = 3; }, "encoder_kwargs: missing or not a list"},
  };
  const json base = load_json(fixture("tiny") / "config.json");
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    json j = base;
    c.edit(j);
    expect_error([&] { CodecConfig::parse(j.dump(), "cfg.json"); }, c.needle);
  }
  expect_error([] { CodecConfig::parse("{not json", "cfg.json"); }, "cfg.json: not valid JSON");
  // Interleaved stereo: patch products must equal downsample_rate x channels.
  json s = load_json(fixture("stereo-48k-v2") / "config.json");
  s["number_channels"] = 1;
  expect_error([&] { CodecConfig::parse(s.dump()); }, "expected 4 (downsample_rate)");
}

}  // namespace moss::test
