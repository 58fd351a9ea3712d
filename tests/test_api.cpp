// The public API's contracts on the `tiny` fixture: argument rules, bad input,
// batch independence and prefix decode.
#include <cmath>

#include "moss_codec/codec.h"
#include "test_util.h"

namespace moss::test {

class TinyCodec : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { codec_ = Codec::load(fixture("tiny")); }
  static void TearDownTestSuite() { codec_.reset(); }
  static Tensor audio(int64_t B, int64_t T, uint32_t seed) {
    return Tensor({B, 1, T}, random_floats(size_t(B * T), seed, 0.3f));
  }
  static std::shared_ptr<const Codec> codec_;
};
std::shared_ptr<const Codec> TinyCodec::codec_;

TEST_F(TinyCodec, ShapesAndLengths) {
  EncodeResult r = codec_->encode(audio(1, 41, 1));  // 10 whole frames + 1 sample
  EXPECT_EQ(r.codes.shape, (std::vector<int64_t>{4, 1, 11}));
  EXPECT_EQ(r.code_lengths, (std::vector<int64_t>{10}));
  EXPECT_EQ(r.hidden_states.shape, (std::vector<int64_t>{1, 12, 11}));
  DecodeResult d = codec_->decode(r.codes, {.lengths = r.code_lengths});
  EXPECT_EQ(d.audio.shape, (std::vector<int64_t>{1, 1, 44}));
  EXPECT_EQ(d.audio_lengths, (std::vector<int64_t>{40}));
  // (T) and (B, T) inputs are accepted for mono checkpoints and mean the same.
  Tensor flat = audio(1, 40, 2);
  Tensor one_d({40}, flat.data);
  EXPECT_EQ(codec_->encode(one_d).codes.data, codec_->encode(flat).codes.data);
  // (nq, T) codes mean batch 1.
  CodeTensor two_d({4, 10}, codec_->encode(flat).codes.data);
  EXPECT_EQ(codec_->decode(two_d).audio.data, codec_->decode(codec_->encode(flat).codes).audio.data);
}

TEST_F(TinyCodec, EncodeDoesNotDependOnTheRestOfTheBatch) {
  const int64_t T = 80;
  Tensor a = audio(1, T, 3);
  Tensor batch = audio(3, T, 4);
  std::copy(a.data.begin(), a.data.end(), batch.data.begin() + T);  // row 1 = a
  EncodeOptions opt;
  opt.lengths = std::vector<int64_t>{T, T, 50};
  EncodeResult alone = codec_->encode(a), together = codec_->encode(batch, opt);
  for (int i = 0; i < 4; ++i)
    for (int t = 0; t < 20; ++t) EXPECT_EQ(together.codes.data[(i * 3 + 1) * 20 + t], alone.codes.data[i * 20 + t]);
  for (int d = 0; d < 12; ++d)
    for (int t = 0; t < 20; ++t)
      EXPECT_EQ(together.hidden_states.data[(1 * 12 + d) * 20 + t], alone.hidden_states.data[d * 20 + t]);
  EXPECT_EQ(together.code_lengths, (std::vector<int64_t>{20, 20, 12}));
}

TEST_F(TinyCodec, PaddingMaskEqualsLengths) {
  Tensor a = audio(2, 40, 5);
  BasicTensor<int64_t> mask({2, 40});
  for (int t = 0; t < 40; ++t) mask.data[t] = 1;
  for (int t = 0; t < 27; ++t) mask.data[40 + t] = 1;
  EncodeResult m = codec_->encode(a, {.padding_mask = mask});
  EncodeResult l = codec_->encode(a, {.lengths = std::vector<int64_t>{40, 27}});
  EXPECT_EQ(m.code_lengths, (std::vector<int64_t>{10, 6}));
  EXPECT_EQ(m.codes.data, l.codes.data);
}

TEST_F(TinyCodec, PrefixDecodeEqualsDecodingSlicedCodes) {
  EncodeResult r = codec_->encode(audio(1, 64, 6));
  CodeTensor sliced({2, 1, 16}, std::vector<int32_t>(r.codes.data.begin(), r.codes.data.begin() + 32));
  DecodeResult prefix = codec_->decode(r.codes, {.num_quantizers = 2});
  DecodeResult direct = codec_->decode(sliced, {.num_quantizers = 2});
  EXPECT_EQ(prefix.audio.data, direct.audio.data);
  // Encoding with a prefix gives the first codebooks of the full encode.
  EncodeResult two = codec_->encode(audio(1, 64, 6), {.num_quantizers = 2});
  EXPECT_EQ(two.codes.data, sliced.data);
}

TEST_F(TinyCodec, BatchDecodeCodebookCountRule) {
  CodeTensor a({4, 5}, std::vector<int32_t>(20, 1)), b({3, 7}, std::vector<int32_t>(21, 2));
  // Without num_quantizers every entry must carry all configured codebooks.
  expect_error([&] { codec_->batch_decode({a, b}); }, "entry 1 (shape (3, 7))");
  DecodeResult r = codec_->batch_decode({a, b}, 3);
  EXPECT_EQ(r.audio_lengths, (std::vector<int64_t>{20, 28}));
  expect_error([&] { codec_->batch_decode({a, b}, 4); }, "entry 1 (shape (3, 7))");
  CodeTensor a3({3, 5}, std::vector<int32_t>(a.data.begin(), a.data.begin() + 15));
  EXPECT_EQ(codec_->batch_decode({a3}, 3).audio.data,
            std::vector<float>(r.audio.data.begin(), r.audio.data.begin() + 20));
  expect_error([&] { codec_->batch_decode({CodeTensor({4, 2, 3})}); }, "must be one sequence (batch size 1)");
}

TEST_F(TinyCodec, BadInputGetsClearErrors) {
  CodeTensor codes({4, 1, 5}, std::vector<int32_t>(20, 3));
  codes.data[7] = 16;
  expect_error([&] { codec_->decode(codes); }, "code 16 at [codebook 1, frame 2] is outside the codebook [0, 16) (batch row 0)");
  codes.data[7] = -1;
  expect_error([&] { codec_->decode(codes); }, "outside the codebook");
  codes.data[7] = 3;
  expect_error([&] { codec_->decode(codes, {.num_quantizers = 0}); }, "num_quantizers = 0 is outside 1..4");
  expect_error([&] { codec_->decode(codes, {.num_quantizers = 5}); }, "num_quantizers = 5 is outside 1..4");
  expect_error([&] { codec_->encode(audio(1, 8, 1), {.num_quantizers = 9}); }, "outside 1..4");
  CodeTensor five({5, 1, 5}, std::vector<int32_t>(25, 0));
  expect_error([&] { codec_->decode(five); }, "accepted layouts are (NQ, T), (T, NQ), (NQ, B, T) and (B, T, NQ) with NQ = 4");
  expect_error([&] { codec_->decode(codes, {.lengths = std::vector<int64_t>{6}}); }, "lengths[0] = 6 is outside 0..5");
  expect_error([&] { codec_->decode(codes, {.lengths = std::vector<int64_t>{-1}}); }, "lengths[0] = -1");
  expect_error([&] { codec_->decode(codes, {.lengths = std::vector<int64_t>{1, 2}}); }, "2 entries for a batch of 1");
  BasicTensor<int64_t> bad_mask({1, 5}, {1, 1, 2, 0, 0});
  expect_error([&] { codec_->decode(codes, {.padding_mask = bad_mask}); }, "holds only 0 and 1");
  expect_error([&] { codec_->decode(codes, {.padding_mask = BasicTensor<int64_t>({1, 4})}); }, "padding_mask has shape (1, 4)");
  expect_error([&] { codec_->decode(CodeTensor({4, 0, 5})); }, "batch is empty");
  expect_error([&] { codec_->decode(CodeTensor({4})); }, "accepted layouts");
  expect_error([&] { codec_->encode(Tensor({0, 1, 8})); }, "batch is empty");
  expect_error([&] { codec_->encode(Tensor({1, 2, 8})); }, "2 channels; this checkpoint takes 1");
  expect_error([&] { codec_->encode(Tensor({1, 1, 1, 8})); }, "expected (batch, 1, samples)");
  Tensor wrong_size({1, 1, 8}, std::vector<float>(3));
  expect_error([&] { codec_->encode(wrong_size); }, "holds 3 values");
  Tensor nan = audio(1, 16, 7);
  nan.data[9] = NAN;
  expect_error([&] { codec_->encode(nan); }, "audio[0, 0, 9] is NaN");
  nan.data[9] = INFINITY;
  expect_error([&] { codec_->encode(nan); }, "infinite");
  // Non-finite values in the padding beyond a row's length are not looked at.
  EXPECT_NO_THROW(codec_->encode(nan, {.lengths = std::vector<int64_t>{8}}));
  expect_error([&] { codec_->batch_encode({}); }, "list of waveforms is empty");
  expect_error([&] { codec_->batch_decode({}); }, "list of codes is empty");
  expect_error([&] { codec_->batch_encode({Tensor({2, 8})}); }, "waveform 0 has shape (2, 8)");
}

TEST_F(TinyCodec, ChunkDurationArgumentRules) {
  Tensor a = audio(1, 48, 8);
  expect_error([&] { codec_->encode(a, {.chunk_duration = 0.0}); }, "chunk_duration must be > 0");
  expect_error([&] { codec_->encode(a, {.chunk_duration = 1.5}); }, "must be <= causal_transformer_context_duration");
  expect_error([&] { codec_->encode(a, {.chunk_duration = 0.25}); }, "6 samples must be divisible by downsample_rate 4");
  expect_error([&] { codec_->encode(audio(2, 48, 8), {.chunk_duration = 0.5}); }, "batch size 1, got 2");
  CodeTensor codes({4, 1, 5}, std::vector<int32_t>(20, 3));
  expect_error([&] { codec_->decode(codes, {.chunk_duration = -1.0}); }, "chunk_duration must be > 0");
}

TEST(Load, ErrorsSayWhatIsWrong) {
  expect_error([] { Codec::load("/nonexistent/checkpoint"); }, "no such checkpoint folder");
  TempDir dir;
  fs::copy(fixture("tiny") / "config.json", dir / "config.json");
  expect_error([&] { Codec::load(dir.path()); }, "plus *.safetensors) found; looked in");
  // An unexpected tensor is listed; a missing one is named.
  SafetensorsFile src = SafetensorsFile::open(fixture("tiny") / "model.safetensors");
  std::vector<TensorToWrite> tensors;
  for (auto& [name, v] : src.tensors())
    tensors.push_back({name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
  tensors.push_back(f32("encoder.9.stray.weight", {1}, {0}));
  write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { Codec::load(dir.path()); }, "unexpected tensors not used by this config: encoder.9.stray.weight");
  tensors.pop_back();
  tensors.erase(std::remove_if(tensors.begin(), tensors.end(),
                               [](auto& t) { return t.name == "decoder.2.output_proj.weight"; }),
                tensors.end());
  write_safetensors(dir / "model.safetensors", tensors);
  expect_error([&] { Codec::load(dir.path()); }, "missing tensor 'decoder.2.output_proj.weight'");
}

}  // namespace moss::test
