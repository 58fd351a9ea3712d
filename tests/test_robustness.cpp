// One model shared by many threads, resource limits, and hostile inputs that
// are not covered by the per-part tests.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "moss_codec/codec.h"
#include "moss_codec/streaming.h"
#include "test_util.h"

namespace moss::test {

namespace {

struct Job {
  int kind;  // 0 encode, 1 decode, 2 encoder stream, 3 decoder stream
  Tensor audio;
  CodeTensor codes;
};

// What one job produces, flattened to compare bit for bit.
std::vector<float> run_job(const std::shared_ptr<const Codec>& codec, const Job& j) {
  std::vector<float> out;
  switch (j.kind) {
    case 0: {
      EncodeResult r = codec->encode(j.audio);
      out.assign(r.hidden_states.data.begin(), r.hidden_states.data.end());
      for (int32_t c : r.codes.data) out.push_back(float(c));
      break;
    }
    case 1:
      out = codec->decode(j.codes).audio.data;
      break;
    case 2: {
      EncoderStream s(codec);
      const int64_t N = j.audio.dim(2), step = 1920 + 333;
      for (int64_t at = 0; at < N; at += step) {
        const int64_t n = std::min(step, N - at);
        EncodedChunk c = s.push(Tensor({1, n}, std::vector<float>(j.audio.data.begin() + at, j.audio.data.begin() + at + n)));
        for (int32_t v : c.codes.data) out.push_back(float(v));
      }
      break;
    }
    case 3: {
      DecoderStream s(codec);
      const int64_t nq = j.codes.dim(0), T = j.codes.dim(2);
      for (int64_t t = 0; t < T; ++t) {
        CodeTensor one({nq, 1});
        for (int64_t i = 0; i < nq; ++i) one.data[size_t(i)] = j.codes.data[size_t(i * T + t)];
        Tensor a = s.push(one);
        out.insert(out.end(), a.data.begin(), a.data.end());
      }
      break;
    }
  }
  return out;
}

}  // namespace

TEST(Concurrency, EightThreadsOnOneModelMatchSerialRuns) {
  auto codec = Codec::load(fixture("small-24k"));
  std::vector<Job> jobs;
  for (int i = 0; i < 16; ++i) {
    Job j;
    j.kind = i % 4;
    const int64_t N = 1920 * (6 + i);
    j.audio = Tensor({1, 1, N}, random_floats(size_t(N), 50 + i, 0.2f));
    j.codes = codec->encode(j.audio).codes;
    jobs.push_back(std::move(j));
  }
  std::vector<std::vector<float>> serial;
  for (auto& j : jobs) serial.push_back(run_job(codec, j));
  std::vector<std::vector<float>> parallel(jobs.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = size_t(t); i < jobs.size(); i += 8) parallel[i] = run_job(codec, jobs[i]);
    });
  for (auto& th : threads) th.join();
  for (size_t i = 0; i < jobs.size(); ++i) EXPECT_EQ(parallel[i], serial[i]) << "job " << i << " kind " << jobs[i].kind;
}

TEST(Limits, ImpossibleLoadOptionsAreRefused) {
  LoadOptions opt;
  opt.threads = -3;
  expect_error([&] { Codec::load(fixture("tiny"), opt); }, "threads must be >= 0 (0: the default), got -3");
  expect_error([] { set_num_threads(-1); }, "threads must be >= 0");
  opt = {};
  opt.limits.max_batch = 0;
  expect_error([&] { Codec::load(fixture("tiny"), opt); }, "LoadOptions::limits.max_batch must be >= 1, got 0");
  for (double seconds : {0.0, -1.0, double(NAN)}) {
    opt = {};
    opt.limits.max_audio_seconds = seconds;
    expect_error([&] { Codec::load(fixture("tiny"), opt); }, "LoadOptions::limits.max_audio_seconds must be > 0");
  }
}

TEST(Limits, BatchAndLengthAreRefusedBeforeWork) {
  LoadOptions opt;
  opt.limits.max_batch = 2;
  opt.limits.max_audio_seconds = 2.0;  // tiny: 24 Hz -> 48 samples, 12 frames
  auto codec = Codec::load(fixture("tiny"), opt);
  expect_error([&] { codec->encode(Tensor({3, 1, 8})); }, "batch of 3 rows exceeds the limit of 2");
  expect_error([&] { codec->encode(Tensor({1, 1, 49})); }, "exceeds the limit of 2.000000 s");
  EXPECT_NO_THROW(codec->encode(Tensor({2, 1, 48})));
  expect_error([&] { codec->decode(CodeTensor({4, 1, 13})); }, "exceeds the limit");
  expect_error([&] { codec->batch_decode({CodeTensor({4, 1}), CodeTensor({4, 1}), CodeTensor({4, 1})}); }, "batch of 3 rows");
  expect_error([&] { codec->streaming_decode(CodeTensor({4, 13}), 1, [](Tensor&&) {}); }, "exceeds the limit");
  EXPECT_EQ(codec->limits().max_batch, 2);
}

TEST(HostileCheckpoints, NonFiniteWeightsAreRefusedAtLoad) {
  SafetensorsFile src = SafetensorsFile::open(fixture("tiny") / "model.safetensors");
  for (const char* victim : {"decoder.0.transformer.layers.1.linear1.weight", "quantizer.quantizers.2.codebook.weight",
                             "quantizer.input_proj.parametrizations.weight.original1"}) {
    SCOPED_TRACE(victim);
    TempDir dir;
    fs::copy(fixture("tiny") / "config.json", dir / "config.json");
    std::vector<TensorToWrite> tensors;
    for (auto& [name, v] : src.tensors()) {
      tensors.push_back({name, v.dtype, v.shape, std::vector<uint8_t>(v.data, v.data + v.nbytes)});
      if (name == victim) {
        const float nan = NAN;
        std::memcpy(tensors.back().bytes.data() + 4, &nan, 4);
      }
    }
    write_safetensors(dir / "model.safetensors", tensors);
    expect_error([&] { Codec::load(dir.path()); }, std::string("tensor '") + victim + "' holds NaN at element 1");
    EXPECT_NO_THROW(Codec::load(dir.path(), {.check_finite = false}));
  }
}

TEST(HostileCheckpoints, NonUtf8NamesAndExplodingConfigs) {
  TempDir dir;
  write_bytes(dir / "bad.safetensors",
              raw_safetensors(std::string("{\"\xff\xfe\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}"), "1234"));
  expect_error([&] { SafetensorsFile::open(dir / "bad.safetensors"); }, "not valid JSON");
  // A config whose sizes would need terabytes is refused before anything is allocated.
  std::ifstream in(fixture("tiny") / "config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  j["decoder_kwargs"][0]["d_model"] = 1 << 20;
  j["decoder_kwargs"][0]["dim_feedforward"] = 1 << 22;
  j["decoder_kwargs"][0]["num_layers"] = 64;
  expect_error([&] { CodecConfig::parse(j.dump(), "huge.json"); }, "beyond the limit of 8589934592");
  j = nlohmann::json::parse(std::ifstream(fixture("tiny") / "config.json"));
  j["quantizer_kwargs"]["num_quantizers"] = 1 << 30;
  j["quantizer_kwargs"]["codebook_size"] = 1 << 30;
  expect_error([&] { CodecConfig::parse(j.dump(), "huge.json"); }, "parameters, beyond the limit");
  const CodecConfig v1 = CodecConfig::load(fs::path(MOSS_SHARED_DIR) / "configs/moss-audio-tokenizer-24k.config.json");
  EXPECT_EQ(v1.parameter_count(), 1774566400);
}

}  // namespace moss::test
