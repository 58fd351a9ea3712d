// moss-codec encode IN -o OUT: audio file -> codes (.npy int32 (nq, T), or JSON).
#include <fstream>
#include <iostream>

#include "commands.h"
#include "moss_codec/audio.h"
#include "moss_codec/npy.h"
#include "moss_codec/streaming.h"

namespace moss::cli {

namespace fs = std::filesystem;

std::shared_ptr<const Codec> load_model(const Common& c, Parts parts) {
  if (c.model.empty()) throw CliError{kUsage, "no model: pass --model DIR (or owner/name) or set MOSS_CODEC_MODEL"};
  std::shared_ptr<const Codec> codec;
  try {
    codec = Codec::load(c.model,
                        {.parts = parts, .threads = c.threads, .pack_weights = c.pack_weights, .lock_weights = c.lock_weights});
  } catch (const Error& e) {
    throw CliError{kModelError, e.what()};
  }
  // Without AVX-512 (oneDNN 2.6 has no blocked float32 kernel below it) the
  // flag changes nothing: say so rather than let a benchmark look as if it did.
  if (c.pack_weights && !c.quiet && codec->weight_info().packed_bytes == 0)
    std::cerr << "note: --pack-weights packed no matrix: this CPU has no oneDNN blocked float32 kernel (it needs "
                 "AVX-512), or the matrices are too small for oneDNN's matmul; the weights stay as they are (the "
                 "results are the same)\n";
  return codec;
}

CodeTensor encode_audio(const std::shared_ptr<const Codec>& codec, ModelInputReader& input, std::optional<int> nq,
                        int64_t push, const Common& common) {
  EncoderStream stream(codec, nq);
  std::vector<std::vector<int32_t>> rows;
  Progress progress("encode", !common.quiet);
  for (;;) {
    const Tensor piece = input.read(push);
    if (piece.dim(1) == 0) break;
    EncodedChunk chunk = stream.push(piece);
    const int64_t k = chunk.codes.dim(1);
    rows.resize(size_t(chunk.codes.dim(0)));
    for (size_t i = 0; i < rows.size(); ++i)
      rows[i].insert(rows[i].end(), chunk.codes.data.begin() + int64_t(i) * k, chunk.codes.data.begin() + int64_t(i + 1) * k);
    if (input.expected_frames() > 0)
      progress.update(std::min(1.0, double(input.frames_read()) / double(input.expected_frames())));
  }
  progress.done();
  const int64_t nqv = int64_t(rows.size()), T = rows.empty() ? 0 : int64_t(rows[0].size());
  CodeTensor codes({nqv, T});
  for (int64_t i = 0; i < nqv; ++i) std::copy(rows[size_t(i)].begin(), rows[size_t(i)].end(), codes.data.begin() + i * T);
  return codes;
}

int64_t default_push_samples(const CodecConfig& cfg) {
  return int64_t(10 * cfg.frame_rate() + 0.5) * cfg.downsample_rate;
}

static void write_codes_json(const fs::path& path, const CodeTensor& codes, const CodecConfig& cfg) {
  nlohmann::json j;
  j["layout"] = "(num_quantizers, frames)";
  j["shape"] = codes.shape;
  j["sampling_rate"] = cfg.sampling_rate;
  j["frame_rate"] = cfg.frame_rate();
  j["codes"] = nlohmann::json::array();
  const int64_t T = codes.dim(1);
  for (int64_t i = 0; i < codes.dim(0); ++i)
    j["codes"].push_back(std::vector<int32_t>(codes.data.begin() + i * T, codes.data.begin() + (i + 1) * T));
  std::ofstream out(path);
  out << j.dump() << "\n";
  if (!out.flush()) throw CliError{kOutputError, path.string() + ": write failed"};
}

Runner add_encode(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("encode", "Encode an audio file to codes");
  struct Args {
    std::string input, output, format = "npy";
    std::optional<int> nq;
    std::optional<double> chunk;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("input", a->input, "Audio file (WAV, FLAC, OGG, Opus, MP3, ...; any rate and channel count)")->required();
  cmd->add_option("-o,--output", a->output, "Codes file to write (.npy, or .json with --format json)")->required();
  cmd->add_option("-n,--num-quantizers", a->nq, "Codebooks to use (1..configured, default all)");
  cmd->add_option("--chunk-duration", a->chunk, "Encode in chunks of this many seconds (same result; bounds memory)");
  cmd->add_option("--format", a->format, "npy (int32, shape (num_quantizers, frames)) or json")->check(CLI::IsMember({"npy", "json"}));
  cmd->footer(
      "Example:\n  moss-codec encode speech.wav -o speech.npy --model ./moss-audio-tokenizer\n"
      "Audio is resampled to the model rate (soxr, high quality); mono models average channels, stereo\n"
      "models duplicate mono and keep the first two of more. Codes cover whole frames (80 ms at 24 kHz).");
  return [a, cmd, &common]() {
    (void)cmd;
    auto t0 = std::chrono::steady_clock::now();
    auto codec = load_model(common, Parts::Encoder);
    const double load_s = seconds_since(t0);
    std::unique_ptr<ModelInputReader> input;
    int64_t push;
    try {
      // The file is read as it is encoded, so an hour costs no more memory
      // than ten seconds; a bad header still fails before anything is written.
      input = std::make_unique<ModelInputReader>(a->input, codec->config());
      push = a->chunk ? chunk_samples(codec->config(), *a->chunk) : default_push_samples(codec->config());
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    OutputFile out(a->output, {a->input}, common.force);
    t0 = std::chrono::steady_clock::now();
    CodeTensor codes;
    try {
      codes = encode_audio(codec, *input, a->nq, push, common);
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    const double enc_s = seconds_since(t0);
    try {
      if (a->format == "json") write_codes_json(out.temp(), codes, codec->config());
      else write_npy_codes(out.temp(), codes);
    } catch (const Error& e) {
      throw CliError{kOutputError, e.what()};
    }
    out.commit();
    const double seconds = double(input->frames_read()) / codec->config().sampling_rate;
    if (common.json)
      print_json({{"command", "encode"}, {"input", a->input}, {"output", a->output}, {"codes_shape", codes.shape},
                  {"audio_seconds", seconds}, {"load_seconds", load_s}, {"encode_seconds", enc_s}});
    else if (!common.quiet)
      std::cout << "codes " << shape_to_string(codes.shape) << " (" << seconds << " s of audio) -> " << a->output
                << "  [load " << load_s * 1e3 << " ms, encode " << enc_s * 1e3 << " ms]\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
