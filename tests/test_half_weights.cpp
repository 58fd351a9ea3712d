// bf16/f16 checkpoints used in place: the 16-bit matrices are widened as they
// are read, and every result must equal, bit for bit, the result of upcasting
// them to float32 at load.
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "kernels/few_row_gemm.h"
#include "kernels/finite_scan.h"
#include "kernels/half.h"
#include "moss_codec/codec.h"
#include "moss_codec/random_checkpoint.h"
#include "moss_codec/streaming.h"
#include "test_util.h"

namespace moss::test {

namespace {

// Random finite 16-bit weights of about unit scale.
std::vector<uint16_t> random_halves(size_t n, uint32_t seed, HalfFormat format) {
  std::vector<uint16_t> h(n);
  const std::vector<float> f = random_floats(n, seed);
  for (size_t i = 0; i < n; ++i) h[i] = format == HalfFormat::BF16 ? float_to_bf16(f[i]) : float_to_half(f[i]);
  return h;
}

}  // namespace

TEST(HalfConversion, F16RoundTripsEveryValueAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0) continue;  // NaN: stays NaN, payload aside
    ASSERT_EQ(float_to_half(half_to_float(uint16_t(h))), h) << "bits " << h;
  }
  EXPECT_EQ(float_to_half(NAN) & 0x7e00, 0x7e00);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);  // largest half
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);  // below the midpoint to 2^16
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // the midpoint rounds to even: Inf
  EXPECT_EQ(float_to_half(-1e6f), 0xfc00);
  EXPECT_EQ(float_to_half(1.0f + 1.0f / 2048), 0x3c00);   // tie between 1 and 1 + 2^-10: even 1
  EXPECT_EQ(float_to_half(1.0f + 3.0f / 2048), 0x3c02);   // tie: even 1 + 2^-9
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);               // tie at half the least subnormal: 0
  EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 0x0001);               // above it: the least subnormal
  EXPECT_EQ(float_to_half(std::ldexp(3.0f, -25)), 0x0002);               // tie between 1 and 2 units: even 2
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14) * (1 - 1.0f / 4096)), 0x0400);  // rounds up to the least normal
}

TEST(HalfWeights, KernelsReadBf16AndF16AsTheirFloat32Widening) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1}, {7, 16}, {13, 33}, {37, 130}, {64, 2100}, {9, 4100}};
  int checked = 0;
  for (HalfFormat format : {HalfFormat::BF16, HalfFormat::F16}) {
    // widen_half, including a length that is not a whole number of vectors.
    const auto h = random_halves(100003, 5, format);
    std::vector<float> wide(h.size());
    widen_half(h.data(), format, int64_t(h.size()), wide.data());
    for (size_t i = 0; i < h.size(); ++i) ASSERT_EQ(wide[i], widen_value(h[i], format)) << i;
    checked += for_each_few_row_case(shapes, [format](const FewRowCase& c) {
      if (::testing::Test::HasFatalFailure()) return;
      const auto x = random_floats(size_t(c.m * c.ldx), 11);
      const auto w16 = random_halves(size_t(c.n * c.ldw), 12, format);
      std::vector<float> w(w16.size());
      for (size_t i = 0; i < w.size(); ++i) w[i] = widen_value(w16[i], format);
      auto y16 = random_floats(size_t(c.m * c.ldy), 13), y32 = y16;
      few_row_gemm({x.data(), c.ldx, c.m, c.k, w.data(), c.ldw, c.n, y32.data(), c.ldy, c.alpha, c.accumulate}, c.isa);
      FewRowProduct p{x.data(), c.ldx, c.m, c.k, nullptr, c.ldw, c.n, y16.data(), c.ldy, c.alpha, c.accumulate};
      p.w16 = w16.data();
      p.w16_format = format;
      few_row_gemm(p, c.isa);
      ASSERT_TRUE(same_bits(y16, y32)) << "format " << int(format) << " isa " << int(c.isa) << " m " << c.m << " n "
                                       << c.n << " k " << c.k << " accumulate " << c.accumulate;
    });
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

TEST(HalfWeights, FiniteScanFindsTheFirstNanOrInf) {
  constexpr int64_t kBlock = 1 << 15;  // the scan's block for 16-bit values
  for (HalfFormat format : {HalfFormat::BF16, HalfFormat::F16}) {
    const bool bf16 = format == HalfFormat::BF16;
    const uint16_t finite[] = {uint16_t(bf16 ? 0x7f7f : 0x7bff), uint16_t(bf16 ? 0xff7f : 0xfbff), 0x0001, 0x8000, 0x3c00};
    const uint16_t inf = bf16 ? 0x7f80 : 0x7c00;
    const uint16_t non_finite[] = {inf, uint16_t(inf | 0x8000), uint16_t(inf | 1), 0xffff};
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(33), kBlock + 1, 20 * kBlock + 7}) {
      std::vector<uint16_t> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = finite[i % 5];
      ASSERT_EQ(first_non_finite_16(x.data(), n, format), n) << "n " << n;
      for (int64_t at : {int64_t(0), int64_t(31), int64_t(32), kBlock - 1, kBlock, 17 * kBlock + 3, n - 1}) {
        if (at < 0 || at >= n) continue;
        for (uint16_t bits : non_finite) {
          std::vector<uint16_t> y = x;
          y[size_t(at)] = bits;
          if (at + kBlock + 3 < n) y[size_t(at + kBlock + 3)] = bits;  // a later one must not hide it
          ASSERT_EQ(first_non_finite_16(y.data(), n, format), at) << "bf16 " << bf16 << " n " << n << " at " << at;
        }
      }
    }
  }
}

// The v1 topology (24 kHz, patches 240/2/2/2) with transformers wide enough
// that many-row products go through oneDNN's matmul (256 x 1024 matrices):
// every path of a 16-bit matrix is taken, few-row streaming steps (1-8 rows),
// 9-16 rows (sgemm) and matmul.
TEST(HalfWeights, InPlaceEqualsUpcastBitForBit) {
  const std::string cfg = wide_small_config();
  for (WeightDType dtype : {WeightDType::BF16, WeightDType::F16}) {
    SCOPED_TRACE(dtype == WeightDType::BF16 ? "bf16" : "f16");
    TempDir dir;
    write_random_checkpoint(dir / "m", cfg, 3, dtype);
    auto in_place = Codec::load(dir / "m");
    auto upcast = Codec::load(dir / "m", {.upcast_half_weights = true});
    // Memory: the 16-bit matrices at 2 bytes a value, the rest at 4.
    const Codec::WeightInfo a = in_place->weight_info(), b = upcast->weight_info();
    EXPECT_EQ(b.decoder_bytes, b.decoder_parameters * 4);
    EXPECT_LT(a.decoder_bytes, b.decoder_bytes * 6 / 10);
    EXPECT_LT(a.encoder_bytes, b.encoder_bytes * 6 / 10);
    EXPECT_EQ(a.quantizer_bytes, b.quantizer_bytes);

    // Offline, batch 2 with padding: 2 s and 1.5 s of audio.
    const int64_t hop = in_place->config().downsample_rate, T = 25 * hop;
    Tensor audio({2, 1, T}, random_floats(size_t(2 * T), 4, 0.3f));
    const EncodeOptions eo{.lengths = std::vector<int64_t>{T, 19 * hop}};
    const EncodeResult ea = expect_same_offline(*in_place, *upcast, audio, eo);

    // Streaming: pushes of 1, 3 and 2 frames give 1-8, 9-16 and 17+ rows per stage.
    DecoderStream da(in_place), db(upcast);
    EncoderStream sa(in_place), sb(upcast);
    const int64_t nq = in_place->config().quantizer.num_quantizers;
    int64_t t = 0;
    for (int64_t frames : {1, 3, 2, 1, 3}) {
      CodeTensor chunk({nq, frames});
      for (int64_t q = 0; q < nq; ++q)
        for (int64_t f = 0; f < frames; ++f) chunk.data[size_t(q * frames + f)] = ea.codes.data[size_t(q * 2 * 25 + t + f)];
      EXPECT_TRUE(same_bits(da.push(chunk).data, db.push(chunk).data)) << "decode push at frame " << t;
      Tensor samples({1, frames * hop}, std::vector<float>(audio.data.begin() + t * hop, audio.data.begin() + (t + frames) * hop));
      const EncodedChunk ca = sa.push(samples), cb = sb.push(samples);
      EXPECT_EQ(ca.codes.data, cb.codes.data);
      EXPECT_TRUE(same_bits(ca.hidden_states.data, cb.hidden_states.data)) << "encode push at frame " << t;
      t += frames;
    }
  }
}

TEST(HalfWeights, NonFiniteMatricesAreRefusedAtLoad) {
  for (DType dtype : {DType::BF16, DType::F16}) {
    TempDir dir;
    write_random_checkpoint(dir / "m", slurp(fixture("tiny") / "config.json"), 1,
                            dtype == DType::BF16 ? WeightDType::BF16 : WeightDType::F16);
    const std::string victim = "decoder.0.transformer.layers.1.linear1.weight";
    SafetensorsFile src = SafetensorsFile::open(dir / "m" / "model.safetensors");
    ASSERT_EQ(src.at(victim).dtype, dtype);
    for (uint16_t bits : {uint16_t(dtype == DType::BF16 ? 0x7fc0 : 0x7e00), uint16_t(dtype == DType::BF16 ? 0xff80 : 0xfc00)}) {
      TempDir bad;
      fs::copy(dir / "m" / "config.json", bad / "config.json");
      std::vector<TensorToWrite> tensors;
      for (auto& [name, v] : src.tensors()) {
        tensors.push_back({name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
        if (name == victim) std::memcpy(tensors.back().bytes.data() + 2 * 3, &bits, 2);
      }
      write_safetensors(bad / "model.safetensors", tensors);
      const bool nan = (bits & (dtype == DType::BF16 ? 0x7f : 0x3ff)) != 0;
      expect_error([&] { Codec::load(bad.path()); },
                   "tensor '" + victim + "' holds " + (nan ? "NaN" : "Inf") + " at element 3");
      // The upcast path names it the same way.
      expect_error([&] { Codec::load(bad.path(), {.upcast_half_weights = true}); }, "tensor '" + victim + "' holds");
      EXPECT_NO_THROW(Codec::load(bad.path(), {.check_finite = false}));
    }
  }
}

}  // namespace moss::test
