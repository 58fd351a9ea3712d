// Streaming is exact: for any partition of the input into pushes, the streamed
// output equals the offline pass; memory stays bounded on long streams.
#include <cmath>
#include <thread>

#include "moss_codec/random_checkpoint.h"
#include "moss_codec/streaming.h"
#include "test_util.h"

namespace moss::test {

namespace {

Tensor random_audio(int64_t C, int64_t n, uint32_t seed) { return Tensor({1, C, n}, random_floats(size_t(C * n), seed, 0.3f)); }

// Pushes `audio` (1, C, N) in random sizes of 0..max_push samples.
EncodedChunk stream_encode(EncoderStream& s, const Tensor& audio, int64_t max_push, uint32_t seed, bool flush) {
  const int64_t C = audio.dim(1), N = audio.dim(2);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(0, max_push);
  std::vector<std::vector<int32_t>> codes;
  std::vector<std::vector<float>> hidden;
  int64_t D = 0;
  auto take = [&](EncodedChunk&& c) {
    const int64_t k = c.codes.dim(1);
    D = c.hidden_states.dim(0);
    if (codes.empty()) codes.resize(size_t(c.codes.dim(0))), hidden.resize(size_t(D));
    for (size_t i = 0; i < codes.size(); ++i)
      codes[i].insert(codes[i].end(), c.codes.data.begin() + int64_t(i) * k, c.codes.data.begin() + int64_t(i + 1) * k);
    for (int64_t d = 0; d < D; ++d)
      hidden[size_t(d)].insert(hidden[size_t(d)].end(), c.hidden_states.data.begin() + d * k,
                               c.hidden_states.data.begin() + (d + 1) * k);
  };
  for (int64_t at = 0; at < N;) {
    const int64_t n = std::min(size(rng), N - at);
    Tensor piece({C, n});
    for (int64_t c = 0; c < C; ++c)
      std::copy(audio.data.begin() + c * N + at, audio.data.begin() + c * N + at + n, piece.data.begin() + c * n);
    take(s.push(piece));
    at += n;
  }
  if (flush) take(s.flush());
  EncodedChunk out;
  const int64_t nq = int64_t(codes.size()), k = nq ? int64_t(codes[0].size()) : 0;
  out.codes = CodeTensor({nq, k});
  for (int64_t i = 0; i < nq; ++i) std::copy(codes[size_t(i)].begin(), codes[size_t(i)].end(), out.codes.data.begin() + i * k);
  out.hidden_states = Tensor({D, k});
  for (int64_t d = 0; d < D; ++d)
    std::copy(hidden[size_t(d)].begin(), hidden[size_t(d)].end(), out.hidden_states.data.begin() + d * k);
  return out;
}

Tensor stream_decode(DecoderStream& s, const CodeTensor& codes /* (nq, 1, T) */, int64_t max_push, uint32_t seed) {
  const int64_t nq = codes.dim(0), T = codes.dim(2);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(1, max_push);
  std::vector<Tensor> parts;
  int64_t total = 0;
  for (int64_t at = 0; at < T;) {
    const int64_t n = std::min(size(rng), T - at);
    CodeTensor piece({nq, n});
    for (int64_t i = 0; i < nq; ++i)
      std::copy(codes.data.begin() + i * T + at, codes.data.begin() + i * T + at + n, piece.data.begin() + i * n);
    parts.push_back(s.push(piece));
    total += parts.back().dim(1);
    at += n;
  }
  const int64_t C = parts.empty() ? 1 : parts[0].dim(0);
  Tensor out({1, C, total});
  int64_t at = 0;
  for (auto& p : parts) {
    const int64_t n = p.dim(1);
    for (int64_t c = 0; c < C; ++c)
      std::copy(p.data.begin() + c * n, p.data.begin() + (c + 1) * n, out.data.begin() + c * total + at);
    at += n;
  }
  return out;
}

// Streamed (nq, k) / (D, k) against offline (nq, 1, T') / (1, D, T') over k frames.
void expect_encode_equal(const EncodedChunk& s, const EncodeResult& off, int64_t k) {
  ASSERT_EQ(s.codes.dim(1), k);
  const int64_t nq = s.codes.dim(0), Tc = off.codes.dim(2), D = s.hidden_states.dim(0);
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t t = 0; t < k; ++t)
      ASSERT_EQ(s.codes.data[size_t(i * k + t)], off.codes.data[size_t(i * Tc + t)]) << "codebook " << i << " frame " << t;
  for (int64_t d = 0; d < D; ++d)
    for (int64_t t = 0; t < k; ++t)
      ASSERT_NEAR(s.hidden_states.data[size_t(d * k + t)], off.hidden_states.data[size_t(d * Tc + t)], 1e-5);
}

void expect_audio_near(const Tensor& a, const Tensor& b, int64_t n) {
  const int64_t C = a.dim(1), Na = a.dim(2), Nb = b.dim(2);
  ASSERT_GE(Na, n);
  ASSERT_GE(Nb, n);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < n; ++t) ASSERT_NEAR(a.data[size_t(c * Na + t)], b.data[size_t(c * Nb + t)], 1e-5) << t;
}


// Several streams decoded together by DecoderStream::push_batch: each round
// pushes 1..max_push frames of every stream still running, a stream starting
// only in round `start[i]` and sitting out rounds where `skip(i, round)`, so
// a batch holds streams at different positions with different push sizes.
// Returns each stream's audio (1, C, N).
std::vector<Tensor> batch_decode_streams(std::shared_ptr<const Codec> codec, const std::vector<CodeTensor>& codes,
                                         const std::vector<int>& start, int64_t max_push, uint32_t seed) {
  const size_t K = codes.size();
  std::vector<DecoderStream> streams;
  for (size_t i = 0; i < K; ++i) streams.emplace_back(codec);
  std::vector<int64_t> at(K, 0);
  std::vector<std::vector<std::vector<float>>> audio(K);  // [stream][channel]
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(1, max_push);
  for (int round = 0;; ++round) {
    std::vector<DecoderStream*> batch;
    std::vector<CodeTensor> pieces;
    std::vector<size_t> who;
    for (size_t i = 0; i < K; ++i) {
      const int64_t nq = codes[i].dim(0), T = codes[i].dim(2);
      if (round < start[i] || at[i] >= T || (round + int(i)) % 4 == 3) continue;  // not started, done, or sitting out
      const int64_t n = std::min(size(rng), T - at[i]);
      CodeTensor piece({nq, n});
      for (int64_t q = 0; q < nq; ++q)
        std::copy(codes[i].data.begin() + q * T + at[i], codes[i].data.begin() + q * T + at[i] + n,
                  piece.data.begin() + q * n);
      batch.push_back(&streams[i]);
      pieces.push_back(std::move(piece));
      who.push_back(i);
      at[i] += n;
    }
    bool done = true;
    for (size_t i = 0; i < K; ++i) done = done && at[i] >= codes[i].dim(2);
    if (batch.empty() && done) break;
    if (batch.empty()) continue;
    std::vector<Tensor> out = DecoderStream::push_batch(batch, pieces);
    EXPECT_EQ(out.size(), batch.size());
    for (size_t b = 0; b < out.size(); ++b) {
      auto& dst = audio[who[b]];
      const int64_t C = out[b].dim(0), N = out[b].dim(1);
      EXPECT_EQ(N, pieces[b].dim(1) * codec->config().downsample_rate);
      dst.resize(size_t(C));
      for (int64_t c = 0; c < C; ++c) dst[size_t(c)].insert(dst[size_t(c)].end(), out[b].data.begin() + c * N, out[b].data.begin() + (c + 1) * N);
    }
  }
  std::vector<Tensor> result;
  for (size_t i = 0; i < K; ++i) {
    EXPECT_EQ(streams[i].stats().frames, codes[i].dim(2));
    const int64_t C = int64_t(audio[i].size()), N = int64_t(audio[i][0].size());
    Tensor t({1, C, N});
    for (int64_t c = 0; c < C; ++c) std::copy(audio[i][size_t(c)].begin(), audio[i][size_t(c)].end(), t.data.begin() + c * N);
    result.push_back(std::move(t));
  }
  return result;
}

// Three streams' codes of 2-4 windows at the coarsest rate, decoded together
// and each against its own offline decode.
void expect_batched_streams_equal_offline(std::shared_ptr<const Codec> codec, int64_t max_push) {
  const CodecConfig& cfg = codec->config();
  int window = 1;
  for (auto& m : cfg.decoder) window = std::max(window, m.transformer.context);
  const int64_t nq = cfg.quantizer.num_quantizers, K = cfg.quantizer.codebook_size;
  std::vector<CodeTensor> codes;
  for (int i = 0; i < 3; ++i) {
    const int64_t T = (2 + i) * window + 3 * i + 1;
    CodeTensor c({nq, 1, T});
    std::mt19937 rng(40 + i);
    for (auto& v : c.data) v = int32_t(rng() % uint32_t(K));
    codes.push_back(std::move(c));
  }
  const std::vector<Tensor> batched = batch_decode_streams(codec, codes, {0, 0, 3}, max_push, 5);
  for (size_t i = 0; i < codes.size(); ++i) {
    SCOPED_TRACE("stream " + std::to_string(i));
    const Tensor whole = codec->decode(codes[i]).audio;
    ASSERT_EQ(batched[i].dim(2), codes[i].dim(2) * cfg.downsample_rate);
    expect_audio_near(batched[i], whole, batched[i].dim(2));
  }
}

// The encoder's counterpart of batch_decode_streams: each round pushes
// 0..max_push samples of every running stream through EncoderStream::push_batch,
// then every stream is flushed alone. Returns each stream's chunks joined.
std::vector<EncodedChunk> batch_encode_streams(std::shared_ptr<const Codec> codec, const std::vector<Tensor>& audio,
                                               const std::vector<int>& start, int64_t max_push, uint32_t seed) {
  const size_t K = audio.size();
  std::vector<EncoderStream> streams;
  for (size_t i = 0; i < K; ++i) streams.emplace_back(codec);
  std::vector<int64_t> at(K, 0);
  std::vector<std::vector<EncodedChunk>> parts(K);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> size(0, max_push);
  for (int round = 0;; ++round) {
    std::vector<EncoderStream*> batch;
    std::vector<Tensor> pieces;
    std::vector<size_t> who;
    bool done = true;
    for (size_t i = 0; i < K; ++i) {
      const int64_t C = audio[i].dim(1), N = audio[i].dim(2);
      done = done && at[i] >= N;
      if (round < start[i] || at[i] >= N || (round + int(i)) % 4 == 3) continue;
      const int64_t n = std::min(size(rng), N - at[i]);
      Tensor piece({C, n});
      for (int64_t c = 0; c < C; ++c)
        std::copy(audio[i].data.begin() + c * N + at[i], audio[i].data.begin() + c * N + at[i] + n, piece.data.begin() + c * n);
      batch.push_back(&streams[i]);
      pieces.push_back(std::move(piece));
      who.push_back(i);
      at[i] += n;
    }
    if (done) break;
    if (batch.empty()) continue;
    std::vector<EncodedChunk> out = EncoderStream::push_batch(batch, pieces);
    EXPECT_EQ(out.size(), batch.size());
    for (size_t b = 0; b < out.size(); ++b) parts[who[b]].push_back(std::move(out[b]));
  }
  std::vector<EncodedChunk> result;
  for (size_t i = 0; i < K; ++i) {
    parts[i].push_back(streams[i].flush());
    const int64_t nq = parts[i][0].codes.dim(0), D = parts[i][0].hidden_states.dim(0);
    int64_t k = 0;
    for (auto& p : parts[i]) k += p.codes.dim(1);
    EncodedChunk joined;
    joined.codes = CodeTensor({nq, k});
    joined.hidden_states = Tensor({D, k});
    int64_t t0 = 0;
    for (auto& p : parts[i]) {
      const int64_t n = p.codes.dim(1);
      for (int64_t q = 0; q < nq; ++q)
        std::copy(p.codes.data.begin() + q * n, p.codes.data.begin() + (q + 1) * n, joined.codes.data.begin() + q * k + t0);
      for (int64_t d = 0; d < D; ++d)
        std::copy(p.hidden_states.data.begin() + d * n, p.hidden_states.data.begin() + (d + 1) * n,
                  joined.hidden_states.data.begin() + d * k + t0);
      t0 += n;
    }
    result.push_back(std::move(joined));
  }
  return result;
}

// Three streams' audio (2-4 windows, a partial frame at the end) encoded
// together and each against its own offline encode.
void expect_batched_encoder_streams_equal_offline(std::shared_ptr<const Codec> codec, int64_t max_push) {
  const CodecConfig& cfg = codec->config();
  int window = 1;
  for (auto& m : cfg.encoder) window = std::max(window, m.transformer.context);
  const int64_t C = cfg.channels(), ds = cfg.downsample_rate;
  std::vector<Tensor> audio;
  std::vector<int64_t> frames;
  for (int i = 0; i < 3; ++i) {
    frames.push_back((2 + i) * window + 3 * i + 1);
    audio.push_back(random_audio(C, frames.back() * ds + ds / 2, uint32_t(60 + i)));
  }
  const std::vector<EncodedChunk> batched = batch_encode_streams(codec, audio, {0, 0, 3}, max_push, 6);
  for (size_t i = 0; i < audio.size(); ++i) {
    SCOPED_TRACE("stream " + std::to_string(i));
    const EncodeResult off = codec->encode(audio[i]);
    expect_encode_equal(batched[i], off, frames[i] + 1);  // the flushed partial frame included
  }
}

}  // namespace

class StreamingFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(StreamingFixture, RandomPartitionsEqualOffline) {
  auto codec = Codec::load(fixture(GetParam()));
  const CodecConfig& cfg = codec->config();
  const int64_t C = cfg.channels(), ds = cfg.downsample_rate;
  int max_window = 0;
  for (auto& m : cfg.encoder) max_window = std::max(max_window, m.transformer.context);
  // Several windows long at the finest rate, plus a partial frame.
  const int64_t frames = 5 * max_window + 3, N = frames * ds + ds / 2;
  Tensor audio = random_audio(C, N, 11);
  EncodeResult off = codec->encode(audio);
  ASSERT_EQ(off.code_lengths[0], frames);
  for (int64_t max_push : {int64_t(1), ds - 1, ds + 1, 3 * ds + 2, 17 * ds}) {
    for (uint32_t seed : {1u, 2u}) {
      SCOPED_TRACE("max_push " + std::to_string(max_push) + " seed " + std::to_string(seed));
      EncoderStream s(codec);
      EncodedChunk st = stream_encode(s, audio, max_push, seed, /*flush=*/true);
      // The flushed partial frame equals the offline pass over the zero-padded input.
      expect_encode_equal(st, off, frames + 1);
      EXPECT_EQ(s.stats().frames, frames + 1);
    }
  }
  // Decoding: random frame partitions of the offline codes.
  CodeTensor codes({off.codes.dim(0), 1, frames});
  for (int64_t i = 0; i < codes.dim(0); ++i)
    std::copy(off.codes.data.begin() + i * off.codes.dim(2), off.codes.data.begin() + i * off.codes.dim(2) + frames,
              codes.data.begin() + i * frames);
  DecodeResult dec = codec->decode(codes);
  for (int64_t max_push : {1, 2, 5, 13}) {
    SCOPED_TRACE("decode max_push " + std::to_string(max_push));
    DecoderStream s(codec);
    expect_audio_near(stream_decode(s, codes, max_push, 3), dec.audio, frames * ds);
  }
}

// Streams decoded together equal each stream decoded alone (offline).
TEST_P(StreamingFixture, BatchedStreamsEqualOffline) {
  auto codec = Codec::load(fixture(GetParam()));
  for (int64_t max_push : {1, 3}) {
    SCOPED_TRACE("max_push " + std::to_string(max_push));
    expect_batched_streams_equal_offline(codec, max_push);
  }
}

// Streams encoded together equal each stream encoded alone (offline).
TEST_P(StreamingFixture, BatchedEncoderStreamsEqualOffline) {
  auto codec = Codec::load(fixture(GetParam()));
  const int64_t ds = codec->config().downsample_rate;
  for (int64_t max_push : {ds - 1, 3 * ds + 2}) {
    SCOPED_TRACE("max_push " + std::to_string(max_push));
    expect_batched_encoder_streams_equal_offline(codec, max_push);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, StreamingFixture, ::testing::Values("tiny", "variants", "stereo-48k-v2"));

// A model wide enough that a streaming step's products are shared out over
// two threads in pieces, each piece finished by its own thread (RoPE and GELU
// run per piece, OutputHook): pushes of 1-3 frames decode and encode as the
// offline pass does. The fixtures' models are too narrow for more than one
// piece. (Named outside sanitize.sh's '*Thread*' TSan filter: it runs OpenMP
// teams.)
TEST(Streaming, WideModelWithProductsInPiecesEqualsOffline) {
  TempDir dir;
  write_random_checkpoint(dir / "m", wide_small_config(), 5, WeightDType::F32);
  auto codec = Codec::load(dir / "m");
  struct TwoThreads {
    TwoThreads() { set_num_threads(2); }
    ~TwoThreads() { set_num_threads(0); }
  } two_threads;
  const int64_t hop = codec->config().downsample_rate, frames = 12;
  Tensor audio({1, 1, frames * hop}, random_floats(size_t(frames * hop), 6, 0.3f));
  const EncodeResult off = codec->encode(audio);
  ASSERT_EQ(off.code_lengths[0], frames);
  EncoderStream es(codec);
  EncodedChunk streamed_codes = stream_encode(es, audio, 3 * hop, 7, /*flush=*/false);
  expect_encode_equal(streamed_codes, off, frames);

  const Tensor whole = codec->decode(off.codes).audio;
  DecoderStream ds(codec);
  expect_audio_near(stream_decode(ds, off.codes, 3, 8), whole, frames * hop);
  // Batches of streams: 1-9 rows a product, RoPE on pieces holding rows of
  // streams at different positions.
  expect_batched_streams_equal_offline(codec, 3);
  expect_batched_encoder_streams_equal_offline(codec, 3 * hop);
}

TEST(Streaming, TwentyMinutesOnTinyStayBoundedAndExact) {
  auto codec = Codec::load(fixture("tiny"));
  const CodecConfig& cfg = codec->config();
  const int64_t seconds = 20 * 60, N = seconds * cfg.sampling_rate, frames = N / cfg.downsample_rate;
  Tensor audio = random_audio(1, N, 21);
  EncodeResult off = codec->encode(audio);
  int max_context = 0;
  for (auto* chain : {&cfg.encoder, &cfg.decoder})
    for (auto& m : *chain) max_context = std::max(max_context, m.transformer.context);
  const int64_t max_push = 3 * cfg.downsample_rate;

  EncoderStream enc(codec);
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> size(1, max_push);
  std::vector<int32_t> codes0;  // first codebook of every frame
  int64_t bytes_after_warmup = -1;
  for (int64_t at = 0; at < N;) {
    const int64_t n = std::min(size(rng), N - at);
    EncodedChunk c = enc.push(Tensor({1, n}, std::vector<float>(audio.data.begin() + at, audio.data.begin() + at + n)));
    codes0.insert(codes0.end(), c.codes.data.begin(), c.codes.data.begin() + c.codes.dim(1));
    at += n;
    const StreamStats st = enc.stats();
    ASSERT_LE(st.max_cached_keys, max_context - 1);
    if (st.frames > 10 * max_context && bytes_after_warmup < 0) bytes_after_warmup = st.cache_bytes;
  }
  EXPECT_EQ(enc.stats().cache_bytes, bytes_after_warmup) << "the stream's memory grew";
  ASSERT_EQ(int64_t(codes0.size()), frames);
  for (int64_t t = 0; t < frames; ++t) ASSERT_EQ(codes0[size_t(t)], off.codes.data[size_t(t)]) << t;

  DecoderStream dec(codec);
  std::uniform_int_distribution<int64_t> fsize(1, 4);
  DecodeResult full = codec->decode(off.codes, {.lengths = off.code_lengths});
  const int64_t Tc = off.codes.dim(2), nq = off.codes.dim(0);
  int64_t sample = 0, bytes = -1;
  for (int64_t at = 0; at < frames;) {
    const int64_t n = std::min(fsize(rng), frames - at);
    CodeTensor piece({nq, n});
    for (int64_t i = 0; i < nq; ++i)
      std::copy(off.codes.data.begin() + i * Tc + at, off.codes.data.begin() + i * Tc + at + n, piece.data.begin() + i * n);
    Tensor a = dec.push(piece);
    for (int64_t j = 0; j < a.dim(1); ++j) ASSERT_NEAR(a.data[size_t(j)], full.audio.data[size_t(sample + j)], 1e-5);
    sample += a.dim(1);
    at += n;
    ASSERT_LE(dec.stats().max_cached_keys, max_context - 1);
    if (at > 10 * max_context && bytes < 0) bytes = dec.stats().cache_bytes;
  }
  EXPECT_EQ(dec.stats().cache_bytes, bytes);
}

TEST(Streaming, ResetStartsOverAndFlushEndsTheStream) {
  auto codec = Codec::load(fixture("tiny"));
  Tensor audio = random_audio(1, 50, 31);
  EncoderStream s(codec, 2);
  EncodedChunk a = stream_encode(s, audio, 7, 1, true);
  EXPECT_EQ(a.codes.dim(0), 2);
  EXPECT_EQ(a.codes.dim(1), 13);  // 12 whole frames + the flushed partial one
  expect_error([&] { s.push(Tensor({1, 4})); }, "push after flush");
  s.reset();
  EXPECT_EQ(s.buffered_samples(), 0);
  EncodedChunk b = stream_encode(s, audio, 3, 2, true);
  EXPECT_EQ(a.codes.data, b.codes.data);
  // Flush with nothing buffered returns no frame.
  EncoderStream exact(codec);
  EXPECT_EQ(exact.push(Tensor({1, 8}, random_floats(8, 3))).codes.dim(1), 2);
  EXPECT_EQ(exact.flush().codes.dim(1), 0);
}

TEST(Streaming, ManyStreamsOnOneModelFromManyThreads) {
  auto codec = Codec::load(fixture("small-24k"));
  const int64_t N = 24000 * 3;
  std::vector<Tensor> inputs;
  std::vector<EncodedChunk> serial;
  for (int i = 0; i < 4; ++i) {
    inputs.push_back(random_audio(1, N, 100 + i));
    EncoderStream s(codec);
    serial.push_back(stream_encode(s, inputs.back(), 1920 * 2 + 7, 9, false));
  }
  std::vector<EncodedChunk> parallel(4);
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      EncoderStream s(codec);
      parallel[size_t(i)] = stream_encode(s, inputs[size_t(i)], 1920 * 2 + 7, 9, false);
    });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(parallel[size_t(i)].codes.data, serial[size_t(i)].codes.data);
    EXPECT_EQ(parallel[size_t(i)].hidden_states.data, serial[size_t(i)].hidden_states.data);
  }
}

// Batches of distinct streams from several threads share only the model:
// each batch, decoder and encoder, equals the same batch run alone (TSan
// runs this: '*Thread*').
TEST(Streaming, BatchesOfStreamsFromManyThreads) {
  auto codec = Codec::load(fixture("small-24k"));
  const int64_t nq = codec->config().quantizer.num_quantizers, K = codec->config().quantizer.codebook_size;
  auto run = [&](int who) {
    std::vector<DecoderStream> streams;
    streams.emplace_back(codec);
    streams.emplace_back(codec);
    std::mt19937 rng(uint32_t(200 + who));
    std::vector<float> audio;
    for (int round = 0; round < 6; ++round) {
      std::vector<CodeTensor> codes;
      for (int i = 0; i < 2; ++i) {
        CodeTensor c({nq, 1 + (round + i) % 2});
        for (auto& v : c.data) v = int32_t(rng() % uint32_t(K));
        codes.push_back(std::move(c));
      }
      for (Tensor& t : DecoderStream::push_batch({&streams[0], &streams[1]}, codes))
        audio.insert(audio.end(), t.data.begin(), t.data.end());
    }
    // And the encoder's batches: the decoded audio back through two encoder streams.
    EncoderStream e0(codec), e1(codec);
    const int64_t half = int64_t(audio.size()) / 2;
    const std::vector<EncodedChunk> chunks = EncoderStream::push_batch(
        {&e0, &e1}, {Tensor({1, half}, std::vector<float>(audio.begin(), audio.begin() + half)),
                     Tensor({1, half}, std::vector<float>(audio.begin() + half, audio.begin() + 2 * half))});
    for (const EncodedChunk& c : chunks) {
      for (int32_t v : c.codes.data) audio.push_back(float(v));
      audio.insert(audio.end(), c.hidden_states.data.begin(), c.hidden_states.data.end());
    }
    return audio;
  };
  std::vector<std::vector<float>> serial, parallel(4);
  for (int i = 0; i < 4; ++i) serial.push_back(run(i));
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) threads.emplace_back([&, i] { parallel[size_t(i)] = run(i); });
  for (auto& t : threads) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(parallel[size_t(i)], serial[size_t(i)]) << "thread " << i;
}

TEST(Streaming, ArgumentErrors) {
  auto codec = Codec::load(fixture("tiny"));
  DecoderStream d(codec);
  expect_error([&] { d.push(CodeTensor({4, 0})); }, "at least one new frame");
  expect_error([&] { d.push(CodeTensor({4, 1}, {0, 1, 2, 16})); }, "code 16 at [codebook 3, frame 0] is outside the codebook");
  expect_error([&] { d.push(CodeTensor({4, 1, 1})); }, "expected (num_quantizers, frames)");
  expect_error([&] { DecoderStream(codec, 5); }, "num_quantizers = 5 is outside 1..4");
  DecoderStream three(codec, 3);
  expect_error([&] { three.push(CodeTensor({2, 1})); }, "exceeds the 2 codebooks");
  EncoderStream e(codec);
  expect_error([&] { e.push(Tensor({2, 4})); }, "expected (1, n) or (n)");
  expect_error([&] { e.push(Tensor({1, 2}, {0.0f, NAN})); }, "is NaN");
  expect_error([&] { codec->streaming_decode(CodeTensor({4, 1, 3}), 0, [](Tensor&&) {}); }, "chunk_tokens must be > 0");
  expect_error([&] { codec->streaming_decode(CodeTensor({4, 2, 3}), 1, [](Tensor&&) {}); }, "batch size 1");
  // streaming_decode hands over chunks as they are computed.
  std::vector<int64_t> sizes;
  codec->streaming_decode(CodeTensor({4, 1, 7}), 3, [&](Tensor&& a) { sizes.push_back(a.dim(2)); });
  EXPECT_EQ(sizes, (std::vector<int64_t>{12, 12, 4}));
}

TEST(Streaming, BatchArgumentErrorsChangeNoStream) {
  auto codec = Codec::load(fixture("tiny"));
  auto other = Codec::load(fixture("tiny"));
  DecoderStream a(codec), b(codec), c(other);
  DecoderStream three(codec, 3);
  const CodeTensor ok({4, 1}, {0, 1, 2, 3});
  expect_error([&] { DecoderStream::push_batch({}, {}); }, "no streams");
  expect_error([&] { DecoderStream::push_batch({&a, &b}, {ok}); }, "2 streams but 1 code tensors");
  expect_error([&] { DecoderStream::push_batch({&a, nullptr}, {ok, ok}); }, "stream 1 is null");
  expect_error([&] { DecoderStream::push_batch({&a, &b, &a}, {ok, ok, ok}); }, "stream 2 is stream 0 again");
  expect_error([&] { DecoderStream::push_batch({&a, &c}, {ok, ok}); }, "stream 1: runs on another Codec than stream 0");
  expect_error([&] { DecoderStream::push_batch({&a, &b}, {ok, CodeTensor({4, 0})}); }, "stream 1: needs at least one new frame");
  expect_error([&] { DecoderStream::push_batch({&a, &b}, {ok, CodeTensor({4, 1, 1})}); },
               "stream 1: codes have shape (4, 1, 1)");
  expect_error([&] { DecoderStream::push_batch({&a, &b}, {ok, CodeTensor({4, 1}, {0, 1, 2, 16})}); },
               "stream 1: code 16 at [codebook 3, frame 0] is outside the codebook");
  expect_error([&] { DecoderStream::push_batch({&a, &three}, {ok, CodeTensor({2, 1})}); },
               "stream 1: num_quantizers = 3 exceeds the 2 codebooks");
  {
    LoadOptions small;
    small.limits.max_batch = 2;
    auto limited = Codec::load(fixture("tiny"), small);
    DecoderStream x(limited), y(limited), z(limited);
    expect_error([&] { DecoderStream::push_batch({&x, &y, &z}, {ok, ok, ok}); },
                 "batch of 3 rows exceeds the limit of 2 (LoadOptions::limits.max_batch)");
    EXPECT_EQ(DecoderStream::push_batch({&x, &y}, {ok, ok}).size(), 2u);
  }
  EXPECT_EQ(a.stats().frames, 0);
  EXPECT_EQ(b.stats().frames, 0);
  EXPECT_EQ(a.stats().max_cached_keys, 0);
  // Each stream keeps its own number of codebooks: stream `three` decodes its
  // first 3 of 4, as its own push would.
  DecoderStream alone(codec, 3);
  const CodeTensor four({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const std::vector<Tensor> out = DecoderStream::push_batch({&a, &three}, {four, four});
  auto expect_near = [](const Tensor& x, const Tensor& y) {
    ASSERT_EQ(x.shape, y.shape);
    for (size_t i = 0; i < x.data.size(); ++i) ASSERT_NEAR(x.data[i], y.data[i], 1e-5) << i;
  };
  expect_near(out[0], DecoderStream(codec).push(four));
  expect_near(out[1], alone.push(four));
  const Tensor with_all = DecoderStream(codec).push(four);
  double differs = 0;  // the stream with 3 codebooks is not the one with 4
  for (size_t i = 0; i < out[1].data.size(); ++i) differs = std::max(differs, double(std::fabs(out[1].data[i] - with_all.data[i])));
  EXPECT_GT(differs, 1e-4);
  EXPECT_EQ(a.stats().frames, 2);
}

TEST(Streaming, EncoderBatchArgumentErrorsChangeNoStream) {
  auto codec = Codec::load(fixture("tiny"));
  auto other = Codec::load(fixture("tiny"));
  EncoderStream a(codec), b(codec), c(other), done(codec);
  done.flush();
  const Tensor ok({1, 6}, random_floats(6, 4));  // one frame of 4 samples, 2 left over
  expect_error([&] { EncoderStream::push_batch({}, {}); }, "no streams");
  expect_error([&] { EncoderStream::push_batch({&a, &b}, {ok}); }, "2 streams but 1 sample tensors");
  expect_error([&] { EncoderStream::push_batch({&a, nullptr}, {ok, ok}); }, "stream 1 is null");
  expect_error([&] { EncoderStream::push_batch({&a, &a}, {ok, ok}); }, "stream 1 is stream 0 again");
  expect_error([&] { EncoderStream::push_batch({&a, &c}, {ok, ok}); }, "stream 1: runs on another Codec than stream 0");
  expect_error([&] { EncoderStream::push_batch({&a, &b}, {ok, Tensor({2, 3})}); }, "stream 1: samples have shape (2, 3)");
  expect_error([&] { EncoderStream::push_batch({&a, &b}, {ok, Tensor({1, 2}, {0.0f, NAN})}); },
               "stream 1: EncoderStream: sample [0, 1] of this push is NaN");
  expect_error([&] { EncoderStream::push_batch({&a, &done}, {ok, ok}); }, "stream 1: EncoderStream: push after flush()");
  EXPECT_EQ(a.buffered_samples(), 0);
  EXPECT_EQ(a.stats().frames, 0);
  // A stream with too few samples for a frame returns an empty chunk and keeps them.
  const std::vector<EncodedChunk> out = EncoderStream::push_batch({&a, &b}, {ok, Tensor({1, 3}, random_floats(3, 5))});
  EXPECT_EQ(out[0].codes.dim(1), 1);
  EXPECT_EQ(out[1].codes.dim(1), 0);
  EXPECT_EQ(out[1].codes.dim(0), 4);
  EXPECT_EQ(a.buffered_samples(), 2);
  EXPECT_EQ(b.buffered_samples(), 3);
  EncoderStream alone(codec);
  EXPECT_EQ(alone.push(ok).codes.data, out[0].codes.data);
}

}  // namespace moss::test

namespace moss::test {

TEST(LongAudio, WindowedOfflinePathEqualsTheWholePass) {
  auto codec = Codec::load(fixture("tiny"));
  const int64_t frames = 613, N = frames * 4 + 3;  // > 2 windows of 250 frames, plus a partial frame
  Tensor audio({1, 1, N}, random_floats(size_t(N), 77, 0.3f));
  EncodeResult windowed = codec->encode(audio);
  EncodeResult whole = codec->encode(audio, {.return_module_outputs = true});  // module outputs force one pass
  ASSERT_EQ(windowed.code_lengths, whole.code_lengths);
  EXPECT_EQ(windowed.codes.data, whole.codes.data);  // the partial frame's column included
  for (size_t i = 0; i < whole.hidden_states.data.size(); ++i)
    ASSERT_NEAR(windowed.hidden_states.data[i], whole.hidden_states.data[i], 1e-5) << i;
  DecodeResult dec = codec->decode(windowed.codes, {.lengths = windowed.code_lengths});
  std::vector<float> streamed;
  CodeTensor valid({4, frames});
  for (int64_t i = 0; i < 4; ++i)
    std::copy(windowed.codes.data.begin() + i * (frames + 1), windowed.codes.data.begin() + i * (frames + 1) + frames,
              valid.data.begin() + i * frames);
  codec->streaming_decode(valid, 13, [&](Tensor&& a) { streamed.insert(streamed.end(), a.data.begin(), a.data.end()); });
  ASSERT_EQ(int64_t(streamed.size()), frames * 4);
  for (int64_t n = 0; n < frames * 4; ++n) ASSERT_NEAR(dec.audio.data[size_t(n)], streamed[size_t(n)], 1e-5) << n;
}

}  // namespace moss::test
