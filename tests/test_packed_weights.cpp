// LoadOptions::pack_weights: matrices copied into oneDNN's blocked layout at
// load. Every offline result must equal, bit for bit, the result of the plain
// (mapped) weights; streaming must stay exact against offline; the mapped
// plain pages must be let go. Where oneDNN has no blocked float32 kernel
// (before AVX-512) packing does nothing and these tests are skipped.
#include "kernels/onednn_matmul.h"
#include "moss_codec/codec.h"
#include "moss_codec/random_checkpoint.h"
#include "moss_codec/streaming.h"
#include "test_util.h"

namespace moss::test {

TEST(PackedWeights, MatmulEqualsPlainForEveryRowCount) {
  // n = 240 and k = 200 are not multiples of the 64 x 16 tiles: padding.
  for (auto [n, k] : {std::pair<int64_t, int64_t>{256, 768}, {240, 200}, {1024, 256}}) {
    const std::vector<float> w = random_floats(size_t(n * k), 5);
    OnednnMatmul plain(w.data(), n, k), packed(w.data(), n, k);
    packed.pack();
    if (!packed.packed()) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
    EXPECT_GE(packed.packed_bytes(), n * k * int64_t(sizeof(float)));
    for (int64_t m : {1, 2, 3, 8, 16, 17, 64, 130}) {
      SCOPED_TRACE(std::to_string(m) + " x " + std::to_string(k) + " by " + std::to_string(n));
      const std::vector<float> x = random_floats(size_t(m * k), 6);
      std::vector<float> a(size_t(m * n)), b(size_t(m * n), NAN);
      plain.forward(x.data(), m, a.data());
      packed.forward(x.data(), m, b.data());
      EXPECT_TRUE(same_bits(a, b)) << "max difference " << max_abs_diff(a, b);
    }
  }
}

TEST(PackedWeights, CodecEqualsPlainAndReleasesTheMapping) {
  TempDir dir;
  write_random_checkpoint(dir / "m", wide_small_config(), 3, WeightDType::F32);
  auto plain = Codec::load(dir / "m");
  auto packed = Codec::load(dir / "m", {.pack_weights = true});
  const Codec::WeightInfo wp = plain->weight_info(), wk = packed->weight_info();
  EXPECT_EQ(wp.packed_bytes, 0);
  if (wk.packed_bytes == 0) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
  // Every transformer matrix (8 transformers of 1 layer: 3 + 1 + 4 + 4 times
  // 256 x 256 floats, and their 256-wide projections) is packed.
  EXPECT_GE(wk.packed_bytes, 8 * 12 * 256 * 256 * 4);
  // The packed matrices' plain pages are no longer this process's.
  const Codec::WeightResidency r = packed->weight_residency();
  if (r.known) EXPECT_LT(r.resident_bytes, r.mapped_bytes / 2) << r.resident_bytes << " of " << r.mapped_bytes;

  // Offline, batch 2 with padding: identical.
  const int64_t hop = plain->config().downsample_rate, T = 25 * hop;
  Tensor audio({2, 1, T}, random_floats(size_t(2 * T), 4, 0.3f));
  const EncodeOptions eo{.lengths = std::vector<int64_t>{T, 19 * hop}};
  const EncodeResult ea = expect_same_offline(*plain, *packed, audio, eo);

  // Streaming reads the packed copy too (pushes of 1, 3 and 2 frames: 1-8,
  // 9-16 and 17+ rows per stage) and stays exact against offline.
  DecoderStream ds(packed);
  const int64_t nq = packed->config().quantizer.num_quantizers, frames = 10;
  std::vector<float> streamed;
  int64_t t = 0;
  for (int64_t n : {1, 3, 2, 1, 3}) {
    CodeTensor chunk({nq, n});
    for (int64_t q = 0; q < nq; ++q)
      for (int64_t f = 0; f < n; ++f) chunk.data[size_t(q * n + f)] = ea.codes.data[size_t(q * 2 * 25 + t + f)];
    const Tensor a = ds.push(chunk);
    streamed.insert(streamed.end(), a.data.begin(), a.data.end());
    t += n;
  }
  ASSERT_EQ(t, frames);
  CodeTensor first({nq, 1, frames});
  for (int64_t q = 0; q < nq; ++q)
    for (int64_t f = 0; f < frames; ++f) first.data[size_t(q * frames + f)] = ea.codes.data[size_t(q * 2 * 25 + f)];
  const Tensor offline = packed->decode(first).audio;
  ASSERT_EQ(offline.data.size(), streamed.size());
  EXPECT_LE(max_abs_diff(offline.data, streamed), 1e-5f);
  EncoderStream es(packed);
  const EncodedChunk c = es.push(Tensor({1, 12 * hop}, std::vector<float>(audio.data.begin(), audio.data.begin() + 12 * hop)));
  ASSERT_EQ(c.codes.dim(1), 12);
  for (int64_t q = 0; q < nq; ++q)
    for (int64_t f = 0; f < 12; ++f)
      EXPECT_EQ(c.codes.data[size_t(q * 12 + f)], ea.codes.data[size_t(q * 2 * 25 + f)]) << "codebook " << q << " frame " << f;
}

TEST(PackedWeights, HalfCheckpointsArePackedFromTheirUpcast) {
  TempDir dir;
  write_random_checkpoint(dir / "m", wide_small_config(), 4, WeightDType::BF16);
  auto upcast = Codec::load(dir / "m", {.upcast_half_weights = true});
  auto packed = Codec::load(dir / "m", {.pack_weights = true});
  if (packed->weight_info().packed_bytes == 0) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
  // 25 frames: every product has 17 or more rows, where the plain weights go
  // through oneDNN's matmul too (fewer take the few-row kernels, whose sums
  // round differently).
  const int64_t hop = upcast->config().downsample_rate, T = 25 * hop;
  Tensor audio({1, 1, T}, random_floats(size_t(T), 9, 0.3f));
  expect_same_offline(*upcast, *packed, audio);
}

}  // namespace moss::test
