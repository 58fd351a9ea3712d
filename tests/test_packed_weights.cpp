// LoadOptions::pack_weights: matrices copied into oneDNN's blocked layout at
// load. Every offline result must equal, bit for bit, the result of the plain
// (mapped) weights; streaming must stay exact against offline; the mapped
// plain pages must be let go. Where oneDNN has no blocked float32 kernel
// (before AVX-512) packing does nothing and these tests are skipped.
#include <cmath>

#include "kernels/few_row_gemm.h"
#include "kernels/onednn_matmul.h"
#include "model/linear.h"
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

// The few-row kernel reads oneDNN's own packed copy as the layout it
// documents (FewRowProduct::w_blocked): a streaming step's products on it
// agree with oneDNN's matmul on the same copy, padding included.
TEST(PackedWeights, FewRowKernelReadsOneDnnsBlockedCopy) {
  if (!few_row_gemm_available()) GTEST_SKIP() << "no few-row kernels on this CPU";
  for (auto [n, k] : {std::pair<int64_t, int64_t>{256, 768}, {240, 200}, {1030, 77}}) {
    const std::vector<float> w = random_floats(size_t(n * k), 7);
    OnednnMatmul packed(w.data(), n, k);
    packed.pack();
    if (!packed.packed()) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
    for (int64_t m = 1; m <= kFewRowsMax; ++m) {
      SCOPED_TRACE(std::to_string(m) + " x " + std::to_string(k) + " by " + std::to_string(n));
      const std::vector<float> x = random_floats(size_t(m * k), 8);
      std::vector<float> a(size_t(m * n)), b(size_t(m * n), NAN);
      packed.forward(x.data(), m, a.data());
      FewRowProduct p{x.data(), k, m, k, nullptr, 0, n, b.data(), n};
      p.w_blocked = packed.packed_data();
      few_row_gemm(p);
      // Each output within float32 rounding of a sum of k products (the two
      // may add them in different orders); a misread layout is off by O(1).
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = 0; j < n; ++j) {
          double mag = 0;
          for (int64_t t = 0; t < k; ++t) mag += std::fabs(double(x[size_t(r * k + t)]) * w[size_t(j * k + t)]);
          ASSERT_NEAR(b[size_t(r * n + j)], a[size_t(r * n + j)], 1e-6 * (1 + mag)) << "row " << r << " output " << j;
        }
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


// ---- Packed checkpoints (Codec::save_packed, `moss-codec pack`) ----

namespace {

// The streamed decode of the first `frames` frames of row 0 of `codes` (nq, 2, 25)
// in pushes of 1, 3, 2, ... frames.
std::vector<float> stream_decode(const std::shared_ptr<const Codec>& codec, const CodeTensor& codes, int64_t frames) {
  DecoderStream ds(codec);
  const int64_t nq = codes.dim(0), T = codes.dim(2);
  std::vector<float> out;
  const int64_t pushes[] = {1, 3, 2};
  for (int64_t t = 0, i = 0; t < frames; t += pushes[i++ % 3]) {
    const int64_t n = std::min(pushes[i % 3], frames - t);
    CodeTensor chunk({nq, n});
    for (int64_t q = 0; q < nq; ++q)
      for (int64_t f = 0; f < n; ++f) chunk.data[size_t(q * n + f)] = codes.data[size_t(q * codes.dim(1) * T + t + f)];
    const Tensor a = ds.push(chunk);
    out.insert(out.end(), a.data.begin(), a.data.end());
  }
  return out;
}

// A copy of checkpoint `from` into `to` whose tensors are edited by `edit`
// (given the sources, pointing into the mapped file, to change or extend).
template <typename Edit>
void rewrite_checkpoint(const fs::path& from, const fs::path& to, Edit&& edit) {
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json", fs::copy_options::overwrite_existing);
  const SafetensorsFile f = SafetensorsFile::open(from / "model.safetensors");
  std::vector<TensorSource> tensors;
  for (auto& [name, v] : f.tensors()) tensors.push_back({name, v.dtype, v.shape, v.data, v.nbytes});
  std::vector<std::vector<uint8_t>> keep;  // storage for edited bytes
  edit(tensors, keep);
  write_safetensors(to / "model.safetensors", tensors, {}, 4096);
}

}  // namespace

TEST(PackedCheckpoint, LoadsMappedInPlaceAndEqualsThePlainCheckpoint) {
  TempDir dir;
  write_random_checkpoint(dir / "m", wide_small_config(), 7, WeightDType::F32);
  auto plain = Codec::load(dir / "m");
  auto packing = Codec::load(dir / "m", {.pack_weights = true});
  if (packing->weight_info().packed_bytes == 0) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
  packing->save_packed(dir / "p");
  EXPECT_TRUE(fs::exists(dir / "p" / "config.json"));

  auto packed = Codec::load(dir / "p");
  const Codec::WeightInfo wi = packed->weight_info(), wk = packing->weight_info();
  EXPECT_EQ(wi.packed_bytes, wk.packed_bytes);
  EXPECT_EQ(wi.packed_in_file_bytes, wi.packed_bytes) << "every blocked matrix is used where it lies";
  EXPECT_EQ(wk.packed_in_file_bytes, 0);
  EXPECT_EQ(wi.encoder_parameters + wi.decoder_parameters + wi.quantizer_parameters,
            wk.encoder_parameters + wk.decoder_parameters + wk.quantizer_parameters);

  const int64_t hop = plain->config().downsample_rate, T = 25 * hop;
  Tensor audio({2, 1, T}, random_floats(size_t(2 * T), 8, 0.3f));
  const EncodeOptions eo{.lengths = std::vector<int64_t>{T, 17 * hop}};
  const EncodeResult ea = expect_same_offline(*plain, *packed, audio, eo);
  // Streaming reads the blocked matrices through oneDNN as pack_weights does:
  // the same arithmetic, so the same bits.
  EXPECT_TRUE(same_bits(stream_decode(packing, ea.codes, 9), stream_decode(packed, ea.codes, 9)));

  // One half only, and pack_weights on a packed checkpoint (nothing to copy).
  auto encoder = Codec::load(dir / "p", {.parts = Parts::Encoder});
  EXPECT_EQ(encoder->encode(audio, eo).codes.data, ea.codes.data);
  auto again = Codec::load(dir / "p", {.pack_weights = true});
  EXPECT_EQ(again->weight_info().packed_in_file_bytes, wi.packed_bytes);
  // A packed checkpoint packs again to the same bytes.
  again->save_packed(dir / "p2");
  EXPECT_EQ(slurp(dir / "p" / "model.safetensors"), slurp(dir / "p2" / "model.safetensors"));
}

TEST(PackedCheckpoint, UnpacksToTheExactPlainWeightsWhereNotUsedInPlace) {
  // 240 x 200: padded tiles. Offsets 0 (unpacked on request), 4 (not 64-byte
  // aligned: unpacked) and 1 (not even float-aligned: copied, then unpacked).
  const int64_t n = 240, k = 200;
  const std::vector<float> w = random_floats(size_t(n * k), 11);
  OnednnMatmul m(w.data(), n, k);
  m.pack();
  if (!m.packed() || !OnednnMatmul::blocked_is_native(n, k)) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
  ASSERT_EQ(m.packed_bytes(), OnednnMatmul::blocked_bytes(n, k));
  const Linear reference(FloatWeight::borrowed(w.data(), {n, k}));
  for (size_t offset : {0, 4, 1}) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    std::vector<uint8_t> bytes(size_t(m.packed_bytes()) + 128);
    uint8_t* base = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64 + offset;
    std::memcpy(base, m.packed_data(), size_t(m.packed_bytes()));
    TensorView v{"x.onednn_BA16a64b", DType::F32, {m.packed_bytes() / 4}, base, size_t(m.packed_bytes()), "test"};
    const Linear l = Linear::from_blocked(v, n, k, /*in_place=*/offset != 0);
    EXPECT_FALSE(l.packed());
    for (int64_t rows : {1, 5, 16, 40}) {
      const std::vector<float> x = random_floats(size_t(rows * k), 12);
      std::vector<float> a(size_t(rows * n)), b(size_t(rows * n), NAN);
      reference.forward(x.data(), rows, a.data());
      l.forward(x.data(), rows, b.data());
      EXPECT_TRUE(same_bits(a, b)) << rows << " rows";
    }
  }
  // In place where 64-byte aligned.
  std::vector<uint8_t> bytes(size_t(m.packed_bytes()) + 64);
  uint8_t* aligned = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
  std::memcpy(aligned, m.packed_data(), size_t(m.packed_bytes()));
  TensorView v{"x.onednn_BA16a64b", DType::F32, {m.packed_bytes() / 4}, aligned, size_t(m.packed_bytes()), "test"};
  const Linear l = Linear::from_blocked(v, n, k);
  EXPECT_TRUE(l.packed());
  EXPECT_TRUE(l.in_file());
  EXPECT_EQ(static_cast<const void*>(l.packed_data()), static_cast<const void*>(aligned));
  const std::vector<float> x = random_floats(size_t(40 * k), 13);
  std::vector<float> a(size_t(40 * n)), b(size_t(40 * n), NAN);
  m.forward(x.data(), 40, a.data());
  l.forward(x.data(), 40, b.data());
  EXPECT_TRUE(same_bits(a, b));
}

TEST(PackedCheckpoint, RefusesBrokenPackedTensorsAndUnsafeWrites) {
  TempDir dir;
  write_random_checkpoint(dir / "m", wide_small_config(), 9, WeightDType::F32);
  auto plain = Codec::load(dir / "m");
  expect_error([&] { plain->save_packed(dir / "x"); }, "no matrix is packed");
  auto packing = Codec::load(dir / "m", {.pack_weights = true});
  if (packing->weight_info().packed_bytes == 0) GTEST_SKIP() << "no blocked oneDNN kernel on this CPU";
  expect_error([&] { packing->save_packed(dir / "m"); }, "is the folder this codec was loaded from");
  expect_error([&] { Codec::load(dir / "m", {.parts = Parts::Decoder, .pack_weights = true})->save_packed(dir / "x"); },
               "loaded whole");
  packing->save_packed(dir / "p");
  expect_error([&] { packing->save_packed(dir / "p"); }, "already exists");
  packing->save_packed(dir / "p", /*overwrite=*/true);

  const std::string victim = "decoder.0.transformer.layers.0.linear1.weight";
  const std::string stored = victim + ".onednn_BA16a64b";
  const auto find = [&](std::vector<TensorSource>& t) -> TensorSource& {
    for (auto& s : t)
      if (s.name == stored) return s;
    throw std::runtime_error("no " + stored);
  };
  // One tile short.
  rewrite_checkpoint(dir / "p", dir / "short", [&](auto& t, auto&) {
    TensorSource& s = find(t);
    s.nbytes -= 4096;
    s.shape = {int64_t(s.nbytes / 4)};
  });
  expect_error([&] { Codec::load(dir / "short"); }, "'" + stored + "' holds");
  // Not float32.
  rewrite_checkpoint(dir / "p", dir / "ints", [&](auto& t, auto&) { find(t).dtype = DType::I32; });
  expect_error([&] { Codec::load(dir / "ints"); }, "must be 1-D F32");
  // A NaN among the blocked values.
  rewrite_checkpoint(dir / "p", dir / "nan", [&](auto& t, auto& keep) {
    TensorSource& s = find(t);
    keep.emplace_back(static_cast<const uint8_t*>(s.data), static_cast<const uint8_t*>(s.data) + s.nbytes);
    const float nan = NAN;
    std::memcpy(keep.back().data() + 400, &nan, 4);
    s.data = keep.back().data();
  });
  expect_error([&] { Codec::load(dir / "nan"); }, "holds NaN at element 100");
  // The matrix stored both ways.
  rewrite_checkpoint(dir / "p", dir / "twice", [&](auto& t, auto& keep) {
    keep.emplace_back(size_t(1024 * 256 * 4));
    t.push_back({victim, DType::F32, {1024, 256}, keep.back().data(), keep.back().size()});
  });
  expect_error([&] { Codec::load(dir / "twice"); }, "is stored twice");
  // The unchanged copy loads (the edits above are what broke the others).
  EXPECT_NO_THROW(Codec::load(dir / "p"));
}

}  // namespace moss::test
