// moss-codec command-line tool. Uses only the public API.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <iostream>

#include "check_fixtures.h"
#include "moss_codec/codec.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_demo(const std::string& model, double seconds) {
  auto t0 = std::chrono::steady_clock::now();
  auto codec = moss::Codec::load(model);
  const double load_s = seconds_since(t0);
  const auto& cfg = codec->config();
  const int64_t C = cfg.channels(), N = std::max<int64_t>(1, std::llround(seconds * cfg.sampling_rate));
  moss::Tensor audio({1, C, N});
  for (int64_t c = 0; c < C; ++c)
    for (int64_t n = 0; n < N; ++n) {
      const double t = double(n) / cfg.sampling_rate;  // a chirp sweeping up to a quarter of the rate
      audio.data[size_t(c * N + n)] = float(0.5 * std::sin(2 * M_PI * (0.05 + 0.2 * t / seconds) * cfg.sampling_rate * t / 2));
    }
  t0 = std::chrono::steady_clock::now();
  moss::EncodeResult enc = codec->encode(audio);
  const double enc_s = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  moss::DecodeResult dec = codec->decode(enc.codes, {.lengths = enc.code_lengths});
  const double dec_s = seconds_since(t0);
  std::cout << "model     " << model << " (" << cfg.sampling_rate << " Hz, " << C << " channel(s), "
            << cfg.quantizer.num_quantizers << " x " << cfg.quantizer.codebook_size << " codebooks)\n"
            << "input     " << N << " samples per channel (" << seconds << " s)\n"
            << "codes     " << moss::shape_to_string(enc.codes.shape) << ", " << enc.code_lengths[0] << " valid frames\n"
            << "audio     " << moss::shape_to_string(dec.audio.shape) << ", " << dec.audio_lengths[0] << " valid samples\n"
            << "timings   load " << load_s * 1e3 << " ms, encode " << enc_s * 1e3 << " ms, decode " << dec_s * 1e3
            << " ms\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"moss-codec: MOSS Audio Tokenizer inference engine"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Threads for matrix products and attention (default: all cores)");

  auto* check = app.add_subcommand("check-fixtures", "Run reference fixture folders through the public API and compare");
  std::vector<std::string> dirs;
  check->add_option("dirs", dirs, "Fixture folders (checkpoint + cases.json + cases.safetensors)")->required();
  check->footer("Example:\n  moss-codec check-fixtures ../shared/fixtures/*/");

  auto* demo = app.add_subcommand("demo", "Round-trip a synthetic 1 s chirp through a checkpoint and report timings");
  std::string demo_model;
  double demo_seconds = 1.0;
  demo->add_option("--model", demo_model, "Checkpoint folder")->required();
  demo->add_option("--seconds", demo_seconds, "Length of the test signal")->check(CLI::Range(0.01, 3600.0));
  demo->footer("Example:\n  moss-codec demo --model ../shared/fixtures/tiny");

  CLI11_PARSE(app, argc, argv);
  moss::set_num_threads(threads);
  try {
    if (check->parsed()) {
      moss::tools::FixtureTotals t = moss::tools::check_fixtures(dirs, std::cout);
      return t.failed == 0 && t.passed > 0 ? 0 : 1;
    }
    if (demo->parsed()) return run_demo(demo_model, demo_seconds);
  } catch (const std::exception& e) {
    std::cerr << "moss-codec: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
