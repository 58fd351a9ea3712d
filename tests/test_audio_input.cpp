// Long recordings are read piece by piece (ModelInputReader): every piece
// size, rate pair and channel mapping must give exactly the samples of the
// whole-file path, to_model_input(read_audio()), and the same errors.
#include <cmath>

#include "io/resampler.h"
#include "moss_codec/audio.h"
#include "moss_codec/config.h"
#include "test_util.h"

namespace moss::test {

// (C, n) noise plus a tone, so resampling has real content to get wrong.
static Tensor test_signal(int64_t C, int64_t n, int rate, uint32_t seed) {
  Tensor t({C, n}, random_floats(size_t(C * n), seed, 0.2f));
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < n; ++i) t.data[size_t(c * n + i)] += float(0.5 * std::sin(2 * M_PI * 440.0 * double(i) / rate + double(c)));
  return t;
}

// Everything a ModelInputReader yields in pieces of `piece`, as (C, total).
static Tensor read_in_pieces(const fs::path& file, const CodecConfig& cfg, int64_t piece) {
  ModelInputReader reader(file, cfg);
  std::vector<Tensor> pieces;
  int64_t total = 0;
  for (;;) {
    Tensor p = reader.read(piece);
    EXPECT_EQ(p.dim(0), cfg.channels());
    if (p.dim(1) == 0) break;
    if (!pieces.empty()) EXPECT_EQ(pieces.back().dim(1), piece) << "only the last piece may be short";
    EXPECT_LE(p.dim(1), piece);
    total += p.dim(1);
    pieces.push_back(std::move(p));
  }
  EXPECT_EQ(reader.read(piece).dim(1), 0) << "the end stays the end";
  EXPECT_EQ(reader.frames_read(), total);
  const int64_t C = cfg.channels();
  Tensor all({C, total});
  int64_t at = 0;
  for (const Tensor& p : pieces) {
    for (int64_t c = 0; c < C; ++c)
      std::copy(p.data.begin() + c * p.dim(1), p.data.begin() + (c + 1) * p.dim(1), all.data.begin() + c * total + at);
    at += p.dim(1);
  }
  return all;
}

TEST(ModelInputReader, PiecesEqualTheWholeFileForEveryRateChannelsAndPieceSize) {
  TempDir dir;
  const CodecConfig mono = CodecConfig::load(fixture("small-24k") / "config.json");
  const CodecConfig stereo = CodecConfig::load(fixture("stereo-48k-v2") / "config.json");
  struct Case {
    int rate, channels;
    int64_t frames;
    const CodecConfig* cfg;
  };
  // Odd lengths, down- and up-sampling, equal rates, channel averaging,
  // duplication and dropping; one file shorter than soxr's filter delay; one
  // with enough channels that file blocks are shorter than a second.
  const std::vector<Case> cases = {{44100, 1, 2 * 44100 + 17, &mono}, {16000, 2, 3 * 16000 + 5, &mono},
                                   {24000, 1, 24000 + 1, &mono},      {48000, 3, 48000 + 333, &mono},
                                   {22050, 1, 22050 + 9, &stereo},    {48000, 3, 48000 + 1, &stereo},
                                   {8000, 2, 40, &mono},              {96000, 12, 96000 + 3, &stereo}};
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.rate) + " Hz, " + std::to_string(c.channels) + " ch -> " +
                 std::to_string(c.cfg->sampling_rate) + " Hz, " + std::to_string(c.cfg->channels()) + " ch");
    const fs::path file = dir / ("in" + std::to_string(n++) + ".wav");
    write_audio(file, test_signal(c.channels, c.frames, c.rate, uint32_t(n)), c.rate, SampleFormat::Float32);
    const Tensor whole = to_model_input(read_audio(file), *c.cfg);
    ASSERT_GT(whole.dim(2), 0);
    for (int64_t piece : {int64_t(1), int64_t(7), int64_t(1920), int64_t(24000), int64_t(1) << 40}) {
      SCOPED_TRACE("pieces of " + std::to_string(piece));
      const Tensor got = read_in_pieces(file, *c.cfg, piece);
      ASSERT_EQ(got.dim(1), whole.dim(2));
      EXPECT_TRUE(same_bits(got.data, whole.data));
    }
    EXPECT_EQ(ModelInputReader(file, *c.cfg).expected_frames(), whole.dim(2));
  }
}

TEST(StreamResampler, AnySplitOfTheInputGivesResamplesSamples) {
  const std::vector<std::pair<int, int>> rates = {{44100, 24000}, {24000, 48000}, {48000, 24}, {1000, 768000}, {16000, 16000}};
  for (auto [from, to] : rates) {
    for (int channels : {1, 2}) {
      SCOPED_TRACE(std::to_string(from) + " -> " + std::to_string(to) + " Hz, " + std::to_string(channels) + " ch");
      const int64_t frames = from / 3 + 11;
      const Audio in{from, channels, random_floats(size_t(frames * channels), uint32_t(from + channels), 0.5f)};
      const Audio whole = resample(in, to);
      // Irregular splits, including empty pushes and one frame at a time.
      for (int64_t step : {int64_t(1), int64_t(5), int64_t(333), frames}) {
        SCOPED_TRACE("steps of " + std::to_string(step));
        StreamResampler r(from, to, channels);
        std::vector<float> out;
        for (int64_t at = 0, k = 0; at < frames; ++k) {
          const int64_t n = std::min(frames - at, k % 3 == 2 ? 0 : step);
          r.process(in.samples.data() + at * channels, n, out);
          at += n;
        }
        r.finish(out);
        ASSERT_EQ(out.size(), whole.samples.size());
        EXPECT_TRUE(same_bits(out, whole.samples));
      }
    }
  }
  StreamResampler r(48000, 24000, 1);
  std::vector<float> out;
  r.finish(out);
  EXPECT_TRUE(out.empty());
  expect_error([&] { r.process(out.data(), 1, out); }, "after the end");
  expect_error([] { StreamResampler(0, 24000, 1); }, "sample rate 0 Hz is outside");
}

TEST(ModelInputReader, BadFilesNameTheFileAndTheSample) {
  TempDir dir;
  const CodecConfig cfg = CodecConfig::load(fixture("small-24k") / "config.json");
  expect_error([&] { ModelInputReader(dir / "missing.wav", cfg); }, "missing.wav: no such audio file");
  write_bytes(dir / "junk.wav", "RIFF not really a wave file");
  expect_error([&] { ModelInputReader(dir / "junk.wav", cfg); }, "junk.wav: cannot read audio");
  const fs::path crash = fs::path(MOSS_SOURCE_DIR) / "fuzz/regressions/audio/crash-a8c4da342570c9ab84ab3a554a95f13dcf3b47b1";
  expect_error([&] { ModelInputReader(crash, cfg); }, "1077805087 Hz");
  write_audio(dir / "empty.wav", Tensor({1, 0}), 24000, SampleFormat::Float32);
  expect_error([&] { ModelInputReader(dir / "empty.wav", cfg).read(10); }, "empty.wav: the audio file holds no samples");
  expect_error([&] { read_audio(dir / "empty.wav"); }, "empty.wav: the audio file holds no samples");
  // A NaN deep inside a long file is found when its piece is read, by index.
  Tensor x = test_signal(2, 100000, 44100, 5);
  x.data[size_t(100000 + 77777)] = NAN;  // channel 1, frame 77777
  write_audio(dir / "nan.wav", x, 44100, SampleFormat::Float32);
  ModelInputReader reader(dir / "nan.wav", cfg);
  EXPECT_EQ(reader.read(1920).dim(1), 1920);  // the start is fine
  expect_error([&] {
    while (reader.read(1920).dim(1) > 0) {
    }
  }, "nan.wav: sample 77777 is not finite");
  expect_error([&] { read_audio(dir / "nan.wav"); }, "nan.wav: sample 77777 is not finite");
  // The raw reader: blocks as asked, a request for everything capped, 0 at the end.
  write_audio(dir / "raw.wav", test_signal(2, 5000, 8000, 6), 8000, SampleFormat::Float32);
  AudioReader raw(dir / "raw.wav");
  EXPECT_EQ(raw.sample_rate(), 8000);
  EXPECT_EQ(raw.channels(), 2);
  EXPECT_EQ(raw.declared_frames(), 5000);
  std::vector<float> got;
  EXPECT_EQ(raw.read(got, 1000), 1000);
  EXPECT_EQ(raw.read(got, int64_t(1) << 50), 4000);
  EXPECT_EQ(raw.read(got, 10), 0);
  EXPECT_EQ(got, read_audio(dir / "raw.wav").samples);
}

}  // namespace moss::test
