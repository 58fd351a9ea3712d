// Code layout normalization (issue: published API contracts).
#include <fstream>
#include <nlohmann/json.hpp>

#include "moss_codec/code_layout.h"
#include "moss_codec/codec.h"
#include "test_util.h"

namespace moss::test {

struct LayoutRow {
  std::vector<int64_t> shape;
  std::optional<int> R;
  bool nq_first;
  int64_t batch, frames;
};

// The table every Q = 2 checkpoint must honour.
const std::vector<LayoutRow> kTable = {
    {{2, 5, 2}, std::nullopt, true, 5, 2}, {{2, 3, 2}, 2, true, 3, 2}, {{2, 2}, 2, true, 1, 2},
    {{2, 1, 2}, 2, true, 1, 2},           {{2, 1}, 1, false, 1, 2},   {{2, 1, 1}, 1, false, 2, 1},
    {{1, 3, 1}, 1, true, 3, 1},
};

TEST(CodeLayout, ResolverFollowsTheTable) {
  for (auto& row : kTable) {
    SCOPED_TRACE(shape_to_string(row.shape));
    CodeLayout l = resolve_code_layout(row.shape, 2, row.R);
    EXPECT_EQ(l.nq_first, row.nq_first);
    EXPECT_EQ(l.batch, row.batch);
    EXPECT_EQ(l.frames, row.frames);
  }
}

TEST(CodeLayout, OtherRulesAndErrors) {
  // Only one reading fits: (T, NQ) from a TTS processor, (T', 32) from ONNX.
  CodeLayout tts = resolve_code_layout({100, 32}, 32, std::nullopt);
  EXPECT_FALSE(tts.nq_first);
  EXPECT_EQ(tts.frames, 100);
  CodeLayout btq = resolve_code_layout({3, 7, 32}, 32, std::nullopt);
  EXPECT_FALSE(btq.nq_first);
  EXPECT_EQ(btq.batch, 3);
  // A reading with NQ == R wins over one with NQ == Q when R != Q and it is alone.
  EXPECT_TRUE(resolve_code_layout({8, 32}, 32, 8).nq_first);
  // Several NQ == R readings, no tie pattern: NQ-last is preferred.
  EXPECT_FALSE(resolve_code_layout({3, 1, 1}, 2, 1).nq_first);
  // (R, R) square tie in 2D: NQ-first.
  EXPECT_TRUE(resolve_code_layout({1, 1}, 2, 1).nq_first);
  expect_error([] { resolve_code_layout({3, 5}, 2, std::nullopt); }, "with NQ = 2; pass num_quantizers");
  expect_error([] { resolve_code_layout({3, 5}, 4, 2); }, "NQ = 4 (configured) or 2 (num_quantizers)");
  expect_error([] { resolve_code_layout({5}, 4, std::nullopt); }, "accepted layouts");
  expect_error([] { resolve_code_layout({4, 5}, 4, 9); }, "num_quantizers = 9 is outside 1..4");
  // to_canonical transposes NQ-last codes and keeps a prefix.
  CodeTensor tq({3, 2}, {1, 2, 3, 4, 5, 6});  // (T = 3, NQ = 2)
  CodeLayout l = resolve_code_layout(tq.shape, 2, std::nullopt);
  CodeTensor c = to_canonical(tq, l, 2);
  EXPECT_EQ(c.shape, (std::vector<int64_t>{2, 1, 3}));
  EXPECT_EQ(c.data, (std::vector<int32_t>{1, 3, 5, 2, 4, 6}));
  EXPECT_EQ(to_canonical(tq, l, 1).data, (std::vector<int32_t>{1, 3, 5}));
}

// The tiny fixture's config with num_quantizers 2, and its weights less the
// codebooks that are no longer configured.
class TwoCodebooks : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ifstream in(fixture("tiny") / "config.json");
    nlohmann::json cfg = nlohmann::json::parse(in);
    cfg["quantizer_kwargs"]["num_quantizers"] = 2;
    std::ofstream(dir_ / "config.json") << cfg.dump(2);
    SafetensorsFile src = SafetensorsFile::open(fixture("tiny") / "model.safetensors");
    std::vector<TensorToWrite> tensors;
    for (auto& [name, v] : src.tensors())
      if (name.rfind("quantizer.quantizers.2.", 0) != 0 && name.rfind("quantizer.quantizers.3.", 0) != 0)
        tensors.push_back({name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
    write_safetensors(dir_ / "model.safetensors", tensors);
    codec_ = Codec::load(dir_.path());
  }
  TempDir dir_;
  std::shared_ptr<const Codec> codec_;
};

TEST_F(TwoCodebooks, DecodeHonoursTheTable) {
  ASSERT_EQ(codec_->config().quantizer.num_quantizers, 2);
  const int64_t ds = codec_->config().downsample_rate;
  for (auto& row : kTable) {
    SCOPED_TRACE(shape_to_string(row.shape));
    CodeTensor codes(row.shape);
    for (size_t i = 0; i < codes.data.size(); ++i) codes.data[i] = int32_t((i * 7) % 16);
    DecodeResult d = codec_->decode(codes, {.num_quantizers = row.R});
    EXPECT_EQ(d.audio.shape, (std::vector<int64_t>{row.batch, 1, row.frames * ds}));
    // The same codes written canonically decode to the same audio.
    CodeLayout l = resolve_code_layout(row.shape, 2, row.R);
    CodeTensor canon = to_canonical(codes, l, row.R.value_or(2));
    EXPECT_EQ(codec_->decode(canon, {.num_quantizers = row.R.value_or(2)}).audio.data, d.audio.data);
  }
}

TEST_F(TwoCodebooks, EncodeOutputDecodesUnchangedEvenWhenFramesEqualQ) {
  for (int64_t frames : {1, 2, 3}) {
    SCOPED_TRACE(frames);
    const int64_t N = frames * codec_->config().downsample_rate;
    for (int64_t B : {1, 2, 3}) {
      EncodeResult e = codec_->encode(Tensor({B, 1, N}, random_floats(size_t(B * N), 4)));
      DecodeResult d = codec_->decode(e.codes);
      EXPECT_EQ(d.audio.shape, (std::vector<int64_t>{B, 1, N}));
      // (B, T, NQ) of the same codes gives the same audio, where that shape is
      // not also a canonical reading (B == Q reads NQ-first by the rules).
      CodeTensor btq({B, frames, 2});
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t b = 0; b < B; ++b)
          for (int64_t t = 0; t < frames; ++t)
            btq.data[size_t((b * frames + t) * 2 + i)] = e.codes.data[size_t((i * B + b) * frames + t)];
      if (B != 2) EXPECT_EQ(codec_->decode(btq).audio.data, d.audio.data);
    }
  }
}

TEST_F(TwoCodebooks, StreamingDecodeAndBatchDecodeUseLayouts) {
  CodeTensor tq({5, 2});  // (T, NQ)
  for (size_t i = 0; i < tq.data.size(); ++i) tq.data[i] = int32_t(i % 16);
  DecodeResult full = codec_->decode(tq);
  std::vector<float> streamed;
  codec_->streaming_decode(tq, 2, [&](Tensor&& a) { streamed.insert(streamed.end(), a.data.begin(), a.data.end()); });
  ASSERT_EQ(streamed.size(), full.audio.data.size());
  for (size_t i = 0; i < streamed.size(); ++i) EXPECT_NEAR(streamed[i], full.audio.data[i], 1e-5);
  EXPECT_EQ(codec_->batch_decode({tq}).audio.data, full.audio.data);
  expect_error([&] { codec_->streaming_decode(CodeTensor({2, 3, 4}), 1, [](Tensor&&) {}); },
               "streaming_decode takes batch size 1");
  expect_error([&] { codec_->batch_decode({CodeTensor({2, 3, 4})}); }, "must be one sequence (batch size 1)");
}

}  // namespace moss::test
