// moss-codec roundtrip IN -o OUT: audio -> codes -> audio, with timings.
#include <iostream>

#include "commands.h"
#include "moss_codec/audio.h"

namespace moss::cli {

int64_t decode_to_output(const std::shared_ptr<const Codec>& codec, const CodeTensor& canon, const std::string& output,
                         const std::vector<std::filesystem::path>& inputs, bool pcm16, int64_t chunk, const Common& common);

Runner add_roundtrip(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("roundtrip", "Encode an audio file and decode it again");
  struct Args {
    std::string input, output;
    std::optional<int> nq;
    bool pcm16 = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("input", a->input, "Audio file")->required();
  cmd->add_option("-o,--output", a->output, "Audio file to write")->required();
  cmd->add_option("-n,--num-quantizers", a->nq, "Codebooks to use (default all)");
  cmd->add_flag("--pcm16", a->pcm16, "16-bit PCM output");
  cmd->footer("Example:\n  moss-codec roundtrip assets/speech-24k.wav -o out/speech-roundtrip.wav --model out/default-model");
  return [a, &common]() {
    auto t0 = std::chrono::steady_clock::now();
    auto codec = load_model(common);
    const double load_s = seconds_since(t0);
    const CodecConfig& cfg = codec->config();
    std::unique_ptr<ModelInputReader> input;
    try {
      input = std::make_unique<ModelInputReader>(a->input, cfg);
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    // Fail on an unusable output before spending time on the model.
    { OutputFile probe(a->output, {a->input}, common.force); }
    t0 = std::chrono::steady_clock::now();
    CodeTensor codes;
    try {
      codes = encode_audio(codec, *input, a->nq, default_push_samples(cfg), common);
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    const double enc_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    CodeTensor canon({codes.dim(0), 1, codes.dim(1)}, codes.data);
    const int64_t n = decode_to_output(codec, canon, a->output, {a->input}, a->pcm16, 250, common);
    const double dec_s = seconds_since(t0), audio_s = double(input->frames_read()) / cfg.sampling_rate;
    if (common.json)
      print_json({{"command", "roundtrip"}, {"input", a->input}, {"output", a->output}, {"codes_shape", codes.shape},
                  {"audio_seconds", audio_s}, {"load_seconds", load_s}, {"encode_seconds", enc_s}, {"decode_seconds", dec_s}});
    else if (!common.quiet)
      std::cout << "input    " << a->input << " (" << audio_s << " s, resampled to " << cfg.sampling_rate << " Hz)\n"
                << "codes    " << shape_to_string(codes.shape) << " (num_quantizers, frames) at " << cfg.frame_rate()
                << " frames/s\n"
                << "timings  load " << load_s * 1e3 << " ms, encode " << enc_s * 1e3 << " ms, decode " << dec_s * 1e3
                << " ms\n"
                << "output   " << a->output << " (" << n << " samples per channel)\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
