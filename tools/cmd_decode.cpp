// moss-codec decode CODES -o OUT: codes (.npy or .json, either layout) -> audio.
#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "moss_codec/audio.h"
#include "moss_codec/code_layout.h"
#include "moss_codec/npy.h"
#include "moss_codec/streaming.h"

namespace moss::cli {

namespace fs = std::filesystem;

CodeTensor read_codes(const fs::path& path) {
  try {
    std::string ext = path.extension().string();
    if (ext == ".json") {
      std::ifstream in(path);
      if (!in) throw Error(path.string() + ": cannot open");
      nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
      const nlohmann::json& rows = j.is_object() && j.contains("codes") ? j["codes"] : j;
      if (!rows.is_array() || rows.empty() || !rows[0].is_array())
        throw Error(path.string() + ": expected {\"codes\": [[...], ...]} or a 2D array of integers");
      const int64_t R = int64_t(rows.size()), T = int64_t(rows[0].size());
      CodeTensor codes({R, T});
      for (int64_t i = 0; i < R; ++i) {
        if (!rows[size_t(i)].is_array() || int64_t(rows[size_t(i)].size()) != T)
          throw Error(path.string() + ": row " + std::to_string(i) + " has a different length");
        for (int64_t t = 0; t < T; ++t) {
          const auto& v = rows[size_t(i)][size_t(t)];
          if (!v.is_number_integer()) throw Error(path.string() + ": codes must be integers");
          const int64_t x = v.get<int64_t>();
          codes.data[size_t(i * T + t)] = int32_t(std::clamp<int64_t>(x, INT32_MIN, INT32_MAX));
        }
      }
      return codes;
    }
    return read_npy_codes(path);
  } catch (const Error& e) {
    throw CliError{kBadInput, e.what()};
  }
}

namespace {

struct DecodeArgs {
  std::string input, output;
  std::optional<int> nq;
  bool stream = false, pcm16 = false;
  int64_t chunk_frames = 1;
};

// Decodes canonical (R, 1, T) codes through a DecoderStream, handing each
// chunk's audio (C, n) to `sink`.
void decode_chunks(const std::shared_ptr<const Codec>& codec, const CodeTensor& canon, int64_t chunk,
                   const std::function<void(const Tensor&)>& sink, const Common& common) {
  const int64_t R = canon.dim(0), T = canon.dim(2);
  DecoderStream stream(codec, int(R));
  Progress progress("decode", !common.quiet);
  for (int64_t at = 0; at < T; at += chunk) {
    const int64_t n = std::min(chunk, T - at);
    Tensor audio;
    try {
      audio = stream.push(columns(canon.data, R, T, at, n));
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    sink(audio);
    progress.update(double(at + n) / double(T));
  }
  progress.done();
}

void write_raw(const Tensor& a, bool pcm16) {
  const int64_t C = a.dim(0), n = a.dim(1);
  if (pcm16) {
    std::vector<int16_t> buf(size_t(C * n));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < C; ++c)
        buf[size_t(t * C + c)] = int16_t(std::lround(std::clamp(a.data[size_t(c * n + t)], -1.0f, 1.0f) * 32767.0f));
    std::fwrite(buf.data(), sizeof(int16_t), buf.size(), stdout);
  } else {
    std::vector<float> buf(size_t(C * n));
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c = 0; c < C; ++c) buf[size_t(t * C + c)] = a.data[size_t(c * n + t)];
    std::fwrite(buf.data(), sizeof(float), buf.size(), stdout);
  }
  if (std::fflush(stdout) != 0) throw CliError{kOutputError, "stdout: write failed"};
}

}  // namespace

// Writes audio from canonical codes to `output` ("-": raw PCM on stdout).
// Returns the number of samples per channel written.
int64_t decode_to_output(const std::shared_ptr<const Codec>& codec, const CodeTensor& canon, const std::string& output,
                         const std::vector<fs::path>& inputs, bool pcm16, int64_t chunk, const Common& common) {
  const CodecConfig& cfg = codec->config();
  int64_t written = 0;
  if (output == "-") {
    decode_chunks(codec, canon, chunk, [&](const Tensor& a) { write_raw(a, pcm16); written += a.dim(1); }, common);
    return written;
  }
  OutputFile out(output, inputs, common.force);
  // Invalid codes are bad input (decode_chunks); whatever the writer says is an output error.
  auto output_error = [&](const Error& e) { return CliError{kOutputError, output + ": " + e.what()}; };
  std::unique_ptr<AudioWriter> writer;
  try {
    writer = std::make_unique<AudioWriter>(out.temp(), cfg.sampling_rate, cfg.channels(),
                                           pcm16 ? SampleFormat::Pcm16 : SampleFormat::Float32);
  } catch (const Error& e) {
    throw output_error(e);
  }
  decode_chunks(
      codec, canon, chunk,
      [&](const Tensor& a) {
        try {
          writer->write(a);
        } catch (const Error& e) {
          throw output_error(e);
        }
        written += a.dim(1);
      },
      common);
  try {
    writer->close();
  } catch (const Error& e) {
    throw output_error(e);
  }
  out.commit();
  return written;
}

// Resolves the layout of codes read from a file into canonical (R, 1, T).
CodeTensor canonical_single(const CodeTensor& codes, const CodecConfig& cfg, std::optional<int> nq) {
  try {
    const CodeLayout l = resolve_code_layout(codes.shape, cfg.quantizer.num_quantizers, nq);
    if (l.batch != 1)
      throw Error("codes of shape " + shape_to_string(codes.shape) + " hold a batch of " + std::to_string(l.batch) +
                  "; decode one sequence per file");
    return to_canonical(codes, l, nq.value_or(cfg.quantizer.num_quantizers));
  } catch (const Error& e) {
    throw CliError{kBadInput, e.what()};
  }
}

Runner add_decode(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("decode", "Decode codes to an audio file");
  auto a = std::make_shared<DecodeArgs>();
  cmd->add_option("input", a->input, "Codes: .npy (any integer dtype) or .json; (num_quantizers, frames) or (frames, num_quantizers)")
      ->required();
  cmd->add_option("-o,--output", a->output, "Audio file (.wav, .flac, .ogg, .opus, .mp3, .raw), or - for raw PCM on stdout")
      ->required();
  cmd->add_option("-n,--num-quantizers", a->nq, "Decode with the first N codebooks");
  cmd->add_flag("--stream", a->stream, "Decode through a stream object and write each chunk as soon as it is ready");
  cmd->add_option("--chunk-frames", a->chunk_frames, "Frames per streamed chunk (with --stream; default 1 = 80 ms)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  cmd->add_flag("--pcm16", a->pcm16, "16-bit PCM instead of float32 (WAV and raw output)");
  cmd->footer(
      "Examples:\n  moss-codec decode speech.npy -o speech.wav --model ./moss-audio-tokenizer\n"
      "  moss-codec decode speech.npy -o - --stream --pcm16 | aplay -f S16_LE -r 24000");
  return [a, &common]() {
    auto t0 = std::chrono::steady_clock::now();
    CodeTensor codes = read_codes(a->input);
    auto codec = load_model(common, Parts::Decoder);
    const CodeTensor canon = canonical_single(codes, codec->config(), a->nq);
    const int64_t chunk = a->stream ? a->chunk_frames : 250;  // offline: 20 s pieces bound memory
    const int64_t n = decode_to_output(codec, canon, a->output, {a->input}, a->pcm16, chunk, common);
    const double secs = seconds_since(t0), audio_s = double(n) / codec->config().sampling_rate;
    if (common.json)
      print_json({{"command", "decode"}, {"input", a->input}, {"output", a->output}, {"codes_shape", canon.shape},
                  {"audio_seconds", audio_s}, {"seconds", secs}},
                 a->output == "-");
    else if (!common.quiet && a->output != "-")
      std::cout << "audio " << codec->config().channels() << " x " << n << " samples (" << audio_s << " s) -> "
                << a->output << "  [" << secs * 1e3 << " ms]\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
