// The command-line tool, driven as a user would: every command, the audio
// formats, resampling, channels, layouts, and errors with their exit codes.
#include <sys/wait.h>

#include <cmath>
#include <complex>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "moss_codec/audio.h"
#include "moss_codec/codec.h"
#include "moss_codec/npy.h"
#include "moss_codec/random_checkpoint.h"
#include "test_util.h"

namespace moss::test {

struct CliRun {
  int code;
  std::string out, err;
};


// Runs the CLI with `args` (shell words) in `dir`; env assignments may prefix.
static CliRun cli(const std::string& args, const TempDir& dir, const std::string& env = "") {
  const std::string cmd = "cd '" + dir.path().string() + "' && " + env + " '" MOSS_CLI_PATH "' " + args + " > out.txt 2> err.txt";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir / "out.txt"), slurp(dir / "err.txt")};
}

static Tensor sine(int64_t C, int64_t n, int rate, double hz) {
  Tensor t({C, n});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t i = 0; i < n; ++i) t.data[size_t(c * n + i)] = float(0.5 * std::sin(2 * M_PI * hz * double(i) / rate + c));
  return t;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = (dir_ / "model").string();
    ASSERT_EQ(cli("init-random --config '" + (fs::path(MOSS_SOURCE_DIR) / "configs/moss-audio-tokenizer-24k-small.json").string() +
                      "' -o model --seed 3",
                  dir_)
                  .code,
              0);
    write_audio(dir_ / "speech.wav", sine(1, 24000, 24000, 220.0), 24000, SampleFormat::Pcm16);
  }
  std::string m() const { return " --model '" + model_ + "' "; }
  TempDir dir_;
  std::string model_;
};

TEST_F(Cli, EncodeDecodeRoundtripAndLayouts) {
  CliRun r = cli("encode speech.wav -o codes.npy" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("codes (32, 12)"), std::string::npos) << r.out;
  CodeTensor codes = read_npy_codes(dir_ / "codes.npy");
  EXPECT_EQ(codes.shape, (std::vector<int64_t>{32, 12}));
  // The CLI's codes equal the library's offline encode.
  auto codec = Codec::load(model_);
  EncodeResult lib = codec->encode(to_model_input(read_audio(dir_ / "speech.wav"), codec->config()));
  EXPECT_EQ(std::vector<int32_t>(lib.codes.data.begin(), lib.codes.data.begin() + 12),
            std::vector<int32_t>(codes.data.begin(), codes.data.begin() + 12));
  r = cli("decode codes.npy -o back.wav" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  Audio back = read_audio(dir_ / "back.wav");
  EXPECT_EQ(back.sample_rate, 24000);
  EXPECT_EQ(back.frames(), 12 * 1920);
  // (frames, num_quantizers) decodes to the same audio.
  CodeTensor tq({12, 32});
  for (int64_t i = 0; i < 32; ++i)
    for (int64_t t = 0; t < 12; ++t) tq.data[size_t(t * 32 + i)] = codes.data[size_t(i * 12 + t)];
  write_npy_codes(dir_ / "tq.npy", tq);
  ASSERT_EQ(cli("decode tq.npy -o back2.wav" + m(), dir_).code, 0);
  EXPECT_EQ(read_audio(dir_ / "back2.wav").samples, back.samples);
  // Prefix decode and JSON codes.
  ASSERT_EQ(cli("encode speech.wav -o codes.json --format json -n 4" + m(), dir_).code, 0);
  nlohmann::json j = nlohmann::json::parse(slurp(dir_ / "codes.json"));
  EXPECT_EQ(j["shape"], nlohmann::json({4, 12}));
  ASSERT_EQ(cli("decode codes.json -o four.wav -n 4" + m(), dir_).code, 0);
  r = cli("roundtrip speech.wav -o rt.wav --pcm16" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("codes    (32, 12)"), std::string::npos);
  EXPECT_NE(r.out.find("rt.wav"), std::string::npos);
}

TEST_F(Cli, EncodeReadsLongFilesPieceByPieceWithTheSameCodes) {
  // 44.1 kHz stereo: the CLI reads, resamples and downmixes as it encodes;
  // every push size gives the library's offline codes of the whole file.
  write_audio(dir_ / "long.wav", sine(2, 44100 * 3 + 101, 44100, 300.0), 44100, SampleFormat::Float32);
  auto codec = Codec::load(model_);
  EncodeResult lib = codec->encode(to_model_input(read_audio(dir_ / "long.wav"), codec->config()));
  const int64_t T = 37;  // whole 80 ms frames in 3.0023 s; the CLI drops the partial one
  ASSERT_GE(lib.codes.dim(2), T);
  for (const char* chunk : {"", " --chunk-duration 0.08", " --chunk-duration 0.24"}) {
    SCOPED_TRACE(chunk);
    CliRun r = cli(std::string("encode long.wav -o long.npy --force") + chunk + m(), dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("codes (32, 37)"), std::string::npos) << r.out;
    CodeTensor codes = read_npy_codes(dir_ / "long.npy");
    ASSERT_EQ(codes.shape, (std::vector<int64_t>{32, T}));
    for (int64_t q = 0; q < 32; ++q)
      ASSERT_EQ(std::vector<int32_t>(codes.data.begin() + q * T, codes.data.begin() + (q + 1) * T),
                std::vector<int32_t>(lib.codes.data.begin() + q * lib.codes.dim(2),
                                     lib.codes.data.begin() + q * lib.codes.dim(2) + T))
          << "codebook " << q;
  }
  // A bad sample late in the file fails the command and leaves no output.
  Tensor x = sine(1, 24000 * 3, 24000, 300.0);
  x.data[24000 * 2 + 5] = NAN;
  write_audio(dir_ / "late-nan.wav", x, 24000, SampleFormat::Float32);
  CliRun r = cli("encode late-nan.wav -o late.npy" + m(), dir_);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("late-nan.wav: sample 48005 is not finite"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "late.npy"));
}

TEST_F(Cli, StreamedDecodeToStdoutAndFile) {
  ASSERT_EQ(cli("encode speech.wav -o codes.npy" + m(), dir_).code, 0);
  CliRun r = cli("decode codes.npy -o - --stream --chunk-frames 2" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.size(), size_t(12 * 1920 * 4));  // float32 samples
  r = cli("decode codes.npy -o - --stream --pcm16" + m(), dir_);
  EXPECT_EQ(r.out.size(), size_t(12 * 1920 * 2));
  ASSERT_EQ(cli("decode codes.npy -o streamed.wav --stream" + m(), dir_).code, 0);
  ASSERT_EQ(cli("decode codes.npy -o offline.wav" + m(), dir_).code, 0);
  Audio a = read_audio(dir_ / "streamed.wav"), b = read_audio(dir_ / "offline.wav");
  ASSERT_EQ(a.samples.size(), b.samples.size());
  for (size_t i = 0; i < a.samples.size(); ++i) ASSERT_NEAR(a.samples[i], b.samples[i], 1e-5);
}

TEST_F(Cli, EveryFormatReadsAndWrites) {
  // Inputs in every format libsndfile writes here; each encodes to the same frame count.
  for (const char* ext : {".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff"}) {
    SCOPED_TRACE(ext);
    const std::string name = std::string("in") + ext;
    try {
      write_audio(dir_ / name, sine(1, 48000, 48000, 440.0), 48000, SampleFormat::Float32);
    } catch (const Error& e) {
      std::cout << "  [" << ext << " not available in this libsndfile: " << e.what() << "]\n";
      continue;
    }
    CliRun r = cli("encode " + name + " -o c" + std::string(ext) + ".npy --json" + m(), dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    const int64_t frames = j["codes_shape"][1];
    EXPECT_GE(frames, 11);  // 1 s; lossy codecs may pad or trim a little
    EXPECT_LE(frames, 13);
    CliRun d = cli("decode c" + std::string(ext) + ".npy -o out" + std::string(ext) + m(), dir_);
    ASSERT_EQ(d.code, 0) << d.err;
    EXPECT_GT(read_audio(dir_ / ("out" + std::string(ext))).frames(), 0);
  }
}

// Magnitude of the DFT of x at `hz`.
static double tone(const std::vector<float>& x, int rate, double hz) {
  std::complex<double> acc = 0;
  for (size_t i = 0; i < x.size(); ++i) acc += double(x[i]) * std::polar(1.0, -2 * M_PI * hz * double(i) / rate);
  return std::abs(acc) / double(x.size());
}

TEST(Audio, ResamplingKeepsFrequencyAndChannelsMap) {
  TempDir dir;
  write_audio(dir / "a.wav", sine(1, 44100, 44100, 1000.0), 44100, SampleFormat::Float32);
  CodecConfig cfg = CodecConfig::load(fixture("small-24k") / "config.json");
  Tensor x = to_model_input(read_audio(dir / "a.wav"), cfg);
  EXPECT_NEAR(double(x.dim(2)), 24000, 1);
  const double at = tone(x.data, 24000, 1000.0);
  EXPECT_NEAR(at, 0.25, 0.01);  // amplitude 0.5 -> DFT magnitude 0.25
  EXPECT_LT(tone(x.data, 24000, 1000.0 * 44100 / 24000), 0.01);  // not left at the old rate
  EXPECT_LT(tone(x.data, 24000, 1100.0), 0.01);
  // Mono models average channels.
  Tensor st({2, 100});
  for (int i = 0; i < 100; ++i) st.data[size_t(i)] = 1.0f, st.data[size_t(100 + i)] = 0.0f;
  write_audio(dir / "st.wav", st, 24000, SampleFormat::Float32);
  Tensor mono = to_model_input(read_audio(dir / "st.wav"), cfg);
  EXPECT_EQ(mono.shape, (std::vector<int64_t>{1, 1, 100}));
  EXPECT_FLOAT_EQ(mono.data[7], 0.5f);
  // Stereo models duplicate mono and keep the first two of more.
  CodecConfig stereo = CodecConfig::load(fixture("stereo-48k-v2") / "config.json");
  Audio m{48, 1, {0.1f, 0.2f}};
  Tensor dup = to_model_input(m, stereo);
  EXPECT_EQ(dup.data, (std::vector<float>{0.1f, 0.2f, 0.1f, 0.2f}));
  Audio three{48, 3, {1, 2, 3, 4, 5, 6}};
  Tensor first2 = to_model_input(three, stereo);
  EXPECT_EQ(first2.data, (std::vector<float>{1, 4, 2, 5}));
}

TEST_F(Cli, ErrorsAndExitCodes) {
  EXPECT_EQ(cli("encode missing.wav -o x.npy" + m(), dir_).code, 2);
  std::ofstream(dir_ / "corrupt.wav") << "RIFF....WAVEfmt garbage";
  CliRun r = cli("encode corrupt.wav -o x.npy" + m(), dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("corrupt.wav"), std::string::npos) << r.err;
  r = cli("encode speech.wav -o x.npy --model nowhere/none", dir_, "HF_HOME='" + dir_.path().string() + "'");
  EXPECT_EQ(r.code, 3) << r.err;
  fs::create_directories(dir_ / "broken");
  std::ofstream(dir_ / "broken" / "config.json") << "{\"encoder_kwargs\": [], \"decoder_kwargs\": []}";
  std::ofstream(dir_ / "broken" / "model.safetensors") << "not safetensors";
  EXPECT_EQ(cli("encode speech.wav -o x.npy --model broken", dir_).code, 3);
  EXPECT_EQ(cli("encode speech.wav -o x.npy", dir_).code, 1);  // no model
  EXPECT_EQ(cli("encode speech.wav -o x.npy --bogus" + m(), dir_).code, 1);
  EXPECT_EQ(cli("frobnicate", dir_).code, 1);
  // Codes out of range.
  write_npy_codes(dir_ / "bad.npy", CodeTensor({32, 2}, std::vector<int32_t>(64, 1024)));
  r = cli("decode bad.npy -o bad.wav" + m(), dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("outside the codebook"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "bad.wav"));
  std::ofstream(dir_ / "junk.npy") << "\x93NUMPY junk";
  EXPECT_EQ(cli("decode junk.npy -o j.wav" + m(), dir_).code, 2);
  // Existing outputs are kept without --force; an input is never an output.
  std::ofstream(dir_ / "keep.npy") << "precious";
  r = cli("encode speech.wav -o keep.npy" + m(), dir_);
  EXPECT_EQ(r.code, 4);
  EXPECT_EQ(slurp(dir_ / "keep.npy"), "precious");
  EXPECT_EQ(cli("encode speech.wav -o keep.npy --force" + m(), dir_).code, 0);
  EXPECT_EQ(read_npy_codes(dir_ / "keep.npy").dim(0), 32);
  const std::string before = slurp(dir_ / "speech.wav");
  EXPECT_EQ(cli("roundtrip speech.wav -o speech.wav --force" + m(), dir_).code, 4);
  EXPECT_EQ(slurp(dir_ / "speech.wav"), before);
  EXPECT_EQ(cli("init-random --config nope.json -o m2", dir_).code, 2);
  EXPECT_EQ(cli("init-random --config '" + (fixture("tiny") / "config.json").string() + "' -o model", dir_).code, 4);
  // No temporary files are left behind.
  for (auto& e : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
}

TEST_F(Cli, ConventionsHelpJsonQuietEnvInfo) {
  for (const char* cmd : {"encode", "decode", "roundtrip", "info", "init-random", "check-fixtures"}) {
    CliRun r = cli(std::string(cmd) + " --help", dir_);
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find("Example"), std::string::npos) << cmd;
  }
  CliRun v = cli("--version", dir_);
  EXPECT_EQ(v.code, 0);
  EXPECT_EQ(v.out.rfind("moss-codec 0.", 0), 0u) << v.out;
  CliRun r = cli("encode speech.wav -o q.npy -q", dir_, "MOSS_CODEC_MODEL='" + model_ + "'");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  r = cli("info --json" + m(), dir_);
  ASSERT_EQ(r.code, 0);
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["num_quantizers"], 32);
  EXPECT_EQ(j["frame_rate"], 12.5);
  EXPECT_EQ(j["bitrate_bps"]["32"], 4000.0);
  EXPECT_GT(j["weight_residency"]["mapped_bytes"].get<int64_t>(), 0);
  EXPECT_TRUE(j["weight_residency"].contains("known"));
  EXPECT_EQ(j["parameters"]["total"].get<int64_t>(),
            j["parameters"]["encoder"].get<int64_t>() + j["parameters"]["quantizer"].get<int64_t>() +
                j["parameters"]["decoder"].get<int64_t>());
  if (j["weight_residency"]["known"] && mlock_locks()) {  // not under a sanitizer's no-op mlock
    // --lock-weights locks what the model reads in place, and says so.
    EXPECT_EQ(j["weight_residency"]["locked_bytes"], 0);
    const auto locked = nlohmann::json::parse(cli("info --json --lock-weights" + m(), dir_).out);
    EXPECT_GE(locked["weight_residency"]["locked_bytes"].get<int64_t>(), locked["in_place_bytes"].get<int64_t>());
    EXPECT_GT(locked["in_place_bytes"].get<int64_t>(), 0);
    EXPECT_NE(cli("info --lock-weights" + m(), dir_).out.find("MB locked"), std::string::npos);
  }
  r = cli("info" + m(), dir_);
  EXPECT_NE(r.out.find("bitrate"), std::string::npos);
  EXPECT_NE(r.out.find("parameters"), std::string::npos);
  EXPECT_NE(r.out.find("MB mapped"), std::string::npos);
}

// bench on a small checkpoint: every figure is there and consistent with its
// floor (no speed is asserted: timings are not tests). Each probed streaming
// push counts once, and only pushes whose bracketing probes agreed (or all,
// if none did) make the ratio.
TEST_F(Cli, HalfPrecisionModelsAreWrittenAndHeldIn16Bits) {
  const std::string cfg = "--config '" + (fs::path(MOSS_SOURCE_DIR) / "configs/moss-audio-tokenizer-24k-small.json").string() + "'";
  for (const char* dtype : {"bf16", "f16"}) {
    SCOPED_TRACE(dtype);
    const std::string folder = std::string("model-") + dtype;
    ASSERT_EQ(cli("init-random " + cfg + " -o " + folder + " --dtype " + dtype, dir_).code, 0);
    CliRun r = cli("info --json --model " + folder, dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    const auto info = nlohmann::json::parse(r.out);
    EXPECT_EQ(info["weight_dtype"], std::string(dtype == std::string("bf16") ? "BF16" : "F16") + "+F32");
    // The matrices at 2 bytes a value, everything else at 4.
    EXPECT_LT(info["memory_bytes"].get<int64_t>(), info["memory_bytes_float32"].get<int64_t>());
    r = cli("roundtrip speech.wav -o back-" + std::string(dtype) + ".wav -q --model " + folder, dir_);
    EXPECT_EQ(r.code, 0) << r.err;
  }
  EXPECT_EQ(cli("init-random " + cfg + " -o model-f8 --dtype f8", dir_).code, 1);
}

// Where nothing gets packed (a CPU without oneDNN's blocked kernel), the flag
// says so on stderr instead of changing nothing silently; -q keeps it quiet.
TEST_F(Cli, PackWeightsSaysWhenNothingWasPacked) {
  { std::ofstream(dir_ / "wide.json") << wide_small_config(); }
  ASSERT_EQ(cli("init-random --config wide.json -o wide --seed 5", dir_).code, 0);
  CliRun r = cli("info --json --pack-weights --model wide", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const bool packed = nlohmann::json::parse(r.out)["packed_bytes"].get<int64_t>() > 0;
  EXPECT_EQ(r.err.find("--pack-weights packed no matrix") == std::string::npos, packed) << r.err;
  r = cli("info -q --pack-weights --model wide", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err.find("--pack-weights packed no matrix"), std::string::npos) << r.err;
  r = cli("info --model wide", dir_);
  EXPECT_EQ(r.err.find("--pack-weights"), std::string::npos) << r.err;
  if (!packed) {  // and pack itself fails with its own reason, once
    r = cli("pack --model wide -o wide-packed", dir_);
    EXPECT_NE(r.code, 0);
    EXPECT_EQ(r.err.find("--pack-weights packed no matrix"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("no matrix is packed"), std::string::npos) << r.err;
  }
}

TEST_F(Cli, PackWeightsGivesTheSameCodesAndAudio) {
  // Transformers wide enough for oneDNN's matmul, so there is something to pack.
  { std::ofstream(dir_ / "wide.json") << wide_small_config(); }
  ASSERT_EQ(cli("init-random --config wide.json -o wide --seed 5", dir_).code, 0);
  CliRun r = cli("info --json --pack-weights --model wide", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  if (nlohmann::json::parse(r.out)["packed_bytes"].get<int64_t>() == 0) GTEST_SKIP() << "no blocked oneDNN kernel";
  EXPECT_EQ(nlohmann::json::parse(cli("info --json --model wide", dir_).out)["packed_bytes"].get<int64_t>(), 0);
  // 3 s: every product has 17 or more rows, as offline products of the plain
  // weights do when they go through the same oneDNN kernels.
  write_audio(dir_ / "long.wav", sine(1, 72000, 24000, 330.0), 24000, SampleFormat::Pcm16);
  for (const char* flag : {"", "--pack-weights"}) {
    const std::string name = *flag ? "packed" : "plain";
    r = cli("roundtrip long.wav -q -o " + name + ".wav " + flag + " --model wide", dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    r = cli("encode long.wav -q -o " + name + ".npy " + flag + " --model wide", dir_);
    ASSERT_EQ(r.code, 0) << r.err;
  }
  EXPECT_EQ(slurp(dir_ / "plain.npy"), slurp(dir_ / "packed.npy"));
  // The samples (the files' PEAK chunks carry the time they were written).
  EXPECT_EQ(read_audio(dir_ / "plain.wav").samples, read_audio(dir_ / "packed.wav").samples);
  r = cli("bench --seconds 0.5 --repeat 1 --stream-frames 5 --skip-probe --json --pack-weights --model wide", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["pack_weights"].get<bool>());
  EXPECT_GT(j["packed_bytes"].get<int64_t>(), 0);

  // A packed checkpoint: mapped in place at load, the same codes and audio.
  r = cli("pack --model wide -o wide-packed", dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("wrote packed checkpoint wide-packed"), std::string::npos) << r.out;
  const nlohmann::json info = nlohmann::json::parse(cli("info --json --model wide-packed", dir_).out);
  EXPECT_GT(info["packed_in_file_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(info["packed_in_file_bytes"], info["packed_bytes"]);
  ASSERT_EQ(cli("encode long.wav -q -o from-packed.npy --model wide-packed", dir_).code, 0);
  EXPECT_EQ(slurp(dir_ / "plain.npy"), slurp(dir_ / "from-packed.npy"));
  ASSERT_EQ(cli("roundtrip long.wav -q -o from-packed.wav --model wide-packed", dir_).code, 0);
  EXPECT_EQ(read_audio(dir_ / "plain.wav").samples, read_audio(dir_ / "from-packed.wav").samples);
  // Existing output needs --force; the model's own folder (or one holding it) never.
  r = cli("pack --model wide -o wide-packed", dir_);
  EXPECT_EQ(r.code, 4);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  for (const char* target : {"wide", "."}) {
    r = cli(std::string("pack --force --model wide -o ") + target, dir_);
    EXPECT_EQ(r.code, 4) << target;
    EXPECT_TRUE(fs::exists(dir_ / "wide" / "model.safetensors")) << target;
  }
  ASSERT_EQ(cli("pack --force --model wide -o wide-packed", dir_).code, 0);
}

TEST_F(Cli, BenchReportsEveryFigureAgainstItsFloor) {
  CliRun r = cli("bench --seconds 0.5 --repeat 1 --stream-frames 5 --json" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["machine"]["fma_peak_gflops"].get<double>(), 0);
  EXPECT_GT(j["machine"]["read_bandwidth_gbs"].get<double>(), 0);
  for (const char* part : {"encode", "decode"}) {
    const auto& p = j[part];
    EXPECT_GT(p["gflop"].get<double>(), 0) << part;
    EXPECT_NEAR(p["x_floor"].get<double>(), p["seconds"].get<double>() / p["floor_seconds"].get<double>(), 1e-6) << part;
  }
  const auto& d = j["streaming_decode_80ms"];
  EXPECT_EQ(d["probed_pushes"].get<int>(), 5);
  EXPECT_GE(d["stable_probe_pushes"].get<int>(), 0);
  EXPECT_LE(d["stable_probe_pushes"].get<int>(), 5);
  EXPECT_GT(d["floor_ms"].get<double>(), 0);
  EXPECT_GT(d["x_floor"].get<double>(), 0);
  EXPECT_LE(d["median_ms"].get<double>(), d["p95_ms"].get<double>());
  EXPECT_GT(j["streaming_encode_80ms"]["median_ms"].get<double>(), 0);
  const auto& batched = j["streaming_decode_80ms_batched"];  // 4 streams by default
  EXPECT_EQ(batched["streams"].get<int>(), 4);
  EXPECT_GT(batched["median_ms"].get<double>(), 0);
  EXPECT_LE(batched["median_ms"].get<double>(), batched["p95_ms"].get<double>());
  EXPECT_GT(batched["x_one_push"].get<double>(), 0);
  const auto& enc_batched = j["streaming_encode_80ms_batched"];
  EXPECT_EQ(enc_batched["streams"].get<int>(), 4);
  EXPECT_GT(enc_batched["median_ms"].get<double>(), 0);
  EXPECT_LE(enc_batched["median_ms"].get<double>(), enc_batched["p95_ms"].get<double>());
  EXPECT_GT(enc_batched["x_one_push"].get<double>(), 0);
  const auto& w = j["weight_residency"];
  EXPECT_GT(w["mapped_bytes"].get<int64_t>(), 0);
  if (w["known"].get<bool>()) EXPECT_LE(w["huge_page_bytes"].get<int64_t>(), w["resident_bytes"].get<int64_t>());
  r = cli("bench --seconds 0.5 --repeat 1 --stream-frames 5 --skip-probe --json" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["streaming_decode_80ms"]["probed_pushes"].get<int>(), 0);
  r = cli("bench --seconds 0.5 --repeat 0 --stream-frames 5 --skip-probe --streams 1 --json" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["streaming_decode_80ms_batched"]["streams"].get<int>(), 0);  // skipped
  EXPECT_EQ(nlohmann::json::parse(r.out)["streaming_encode_80ms_batched"]["streams"].get<int>(), 0);
  EXPECT_EQ(cli("bench --streams 0 --skip-probe" + m(), dir_).code, 1);
  // --repeat 0: the first call is the figure (an hour of audio timed once, not twice).
  r = cli("bench --seconds 0.5 --repeat 0 --stream-frames 5 --skip-probe --json" + m(), dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json once = nlohmann::json::parse(r.out);
  for (const char* part : {"encode", "decode"})
    EXPECT_EQ(once[part]["seconds"].get<double>(), once[part]["first_seconds"].get<double>()) << part;
  EXPECT_EQ(cli("bench --repeat -1 --skip-probe" + m(), dir_).code, 1);
}

TEST(RandomCheckpoint, LoadsStrictlyForEveryConfigAndIsDeterministic) {
  for (const char* name : {"tiny", "small-24k", "variants", "stereo-48k-v2"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    const std::string cfg = slurp(fixture(name) / "config.json");
    write_random_checkpoint(dir / "a", cfg, 7, WeightDType::F32);
    write_random_checkpoint(dir / "b", cfg, 7, WeightDType::F32);
    write_random_checkpoint(dir / "c", cfg, 8, WeightDType::BF16);
    EXPECT_EQ(slurp(dir / "a" / "model.safetensors"), slurp(dir / "b" / "model.safetensors"));
    EXPECT_NE(slurp(dir / "a" / "model.safetensors"), slurp(dir / "c" / "model.safetensors"));
    auto a = Codec::load(dir / "a");
    auto c = Codec::load(dir / "c");
    EXPECT_EQ(a->weight_info().dtypes, "F32");
    EXPECT_EQ(c->weight_info().dtypes, "BF16+F32");
    // Codebooks stay float32 in a bf16 checkpoint.
    SafetensorsFile f = SafetensorsFile::open(dir / "c" / "model.safetensors");
    EXPECT_EQ(f.at("quantizer.quantizers.0.codebook.weight").dtype, DType::F32);
    const int64_t C = a->config().channels(), N = 6 * a->config().downsample_rate;
    EncodeResult e = a->encode(Tensor({1, C, N}, random_floats(size_t(C * N), 2, 0.3f)));
    DecodeResult d = a->decode(e.codes);
    for (float v : d.audio.data) ASSERT_TRUE(std::isfinite(v));
  }
  // The published v1 config's tensor list has the published parameter count.
  const CodecConfig v1 = CodecConfig::load(fs::path(MOSS_SHARED_DIR) / "configs/moss-audio-tokenizer-24k.config.json");
  int64_t params = 0;
  for (auto& t : checkpoint_tensors(v1)) params += BasicTensor<float>::count(t.shape);
  EXPECT_EQ(params, 1774566400);
}

}  // namespace moss::test

namespace moss::test {

TEST(Audio, ImplausibleRatesAreRefused) {
  // Found by fuzzing: a WAV header claiming 1,077,805,087 Hz crashed soxr.
  const fs::path crash = fs::path(MOSS_SOURCE_DIR) / "fuzz/regressions/audio/crash-a8c4da342570c9ab84ab3a554a95f13dcf3b47b1";
  expect_error([&] { read_audio(crash); }, "1077805087 Hz");
  expect_error([] { resample(Audio{0, 1, {0.0f}}, 24000); }, "sample rate 0 Hz is outside 1..768000");
  expect_error([] { resample(Audio{24000, 1, {0.0f}}, 800000); }, "sample rate 800000 Hz is outside");
  EXPECT_EQ(resample(Audio{48000, 1, {0.5f}}, 24000).samples.size(), 1u);  // rounds to one frame
  EXPECT_EQ(resample(Audio{48000, 1, {0.5f}}, 24).samples.size(), 0u);     // rounds to nothing: no soxr call
  // Extreme but legal ratios work both ways.
  Audio loud{768000, 1, std::vector<float>(7680, 0.25f)};
  EXPECT_EQ(resample(loud, 24).samples.size(), 0u);
  EXPECT_NEAR(double(resample(loud, 1000).samples.size()), 10.0, 1.0);
  Audio slow{1000, 2, std::vector<float>(200, 0.25f)};
  EXPECT_NEAR(double(resample(slow, 768000).frames()), 76800.0, 1.0);
}

}  // namespace moss::test
