// moss-codec info: what a checkpoint is and what it costs.
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.h"

namespace moss::cli {

static std::string transformer_summary(const TransformerConfig& t) {
  std::ostringstream os;
  os << "Transformer " << t.input_dimension << "->" << t.output_dimension << ", d_model " << t.d_model << ", "
     << t.num_layers << " layers x " << t.num_heads << " heads, ffn " << t.ffn_hidden()
     << (t.gating ? std::string(" (") + to_string(*t.gating) + " gating)" : std::string("")) << ", " << to_string(t.norm)
     << ", " << to_string(t.positional) << ", window " << t.context << " frames at " << t.frame_rate << " Hz";
  return os.str();
}

Runner add_info(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("info", "Describe a checkpoint: config, parameters, rates, memory");
  cmd->footer("Example:\n  moss-codec info --model ./moss-audio-tokenizer --json");
  return [&common]() {
    auto codec = load_model(common);
    const CodecConfig& c = codec->config();
    const Codec::WeightInfo w = codec->weight_info();
    const int64_t params = w.encoder_parameters + w.quantizer_parameters + w.decoder_parameters;
    const int64_t memory = w.encoder_bytes + w.quantizer_bytes + w.decoder_bytes;
    const Codec::WeightResidency residency = codec->weight_residency();  // after load's scan touched every weight
    const double bits_per_code = std::log2(double(c.quantizer.codebook_size));
    nlohmann::json bitrates = nlohmann::json::object();
    for (int nq = 1; nq <= c.quantizer.num_quantizers; ++nq)
      bitrates[std::to_string(nq)] = double(nq) * bits_per_code * c.frame_rate();
    if (common.json) {
      print_json({{"model", codec->checkpoint_dir().string()},
                  {"sampling_rate", c.sampling_rate},
                  {"channels", c.channels()},
                  {"frame_rate", c.frame_rate()},
                  {"num_quantizers", c.quantizer.num_quantizers},
                  {"codebook_size", c.quantizer.codebook_size},
                  {"quantizer", to_string(c.quantizer.kind)},
                  {"parameters", {{"encoder", w.encoder_parameters}, {"quantizer", w.quantizer_parameters},
                                  {"decoder", w.decoder_parameters}, {"total", params}}},
                  {"weight_dtype", w.dtypes},
                  {"file_bytes", w.file_bytes},
                  {"memory_bytes_float32", params * 4},
                  {"memory_bytes", memory},
                  {"packed_bytes", w.packed_bytes},
                  {"packed_in_file_bytes", w.packed_in_file_bytes},
                  {"in_place_bytes", w.in_place_bytes},
                  {"weight_residency", residency_json(residency)},
                  {"bitrate_bps", bitrates}});
      return int(kOk);
    }
    std::cout << std::fixed << std::setprecision(1);
    std::cout << "model       " << codec->checkpoint_dir().string() << "\n"
              << "audio       " << c.sampling_rate << " Hz, " << c.channels() << " channel(s)"
              << (c.interleaved() ? " (interleaved)" : "") << "\n"
              << "frames      " << c.frame_rate() << " frames/s (" << c.downsample_rate << " samples per frame)\n"
              << "quantizer   " << to_string(c.quantizer.kind) << ", " << c.quantizer.num_quantizers << " x "
              << c.quantizer.codebook_size << " codebooks of dim " << c.quantizer.codebook_dim << ", rvq_dim "
              << c.quantizer.rvq_dim << "\n";
    for (const char* part : {"encoder", "decoder"}) {
      const auto& chain = std::string(part) == "encoder" ? c.encoder : c.decoder;
      for (size_t i = 0; i < chain.size(); ++i)
        std::cout << "  " << part << "." << i << "  "
                  << (chain[i].kind == ModuleConfig::Kind::Patch ? "Patch " + std::to_string(chain[i].patch_size)
                                                                 : transformer_summary(chain[i].transformer))
                  << "\n";
    }
    std::cout << std::setprecision(2) << "parameters  encoder " << w.encoder_parameters / 1e6 << " M, quantizer "
              << w.quantizer_parameters / 1e6 << " M, decoder " << w.decoder_parameters / 1e6 << " M, total "
              << params / 1e6 << " M\n"
              << "weights     " << w.dtypes << ", " << w.file_bytes / 1e6 << " MB on disk; " << memory / 1e6
              << (w.packed_bytes ? " MB in memory (" + std::to_string(w.packed_bytes / 1000000) +
                                         (w.packed_in_file_bytes
                                              ? " MB of matrices in oneDNN's blocked layout, mapped from the packed checkpoint)\n"
                                              : " MB of matrices packed for oneDNN, --pack-weights)\n")
                                 : std::string(" MB in memory (F32 files are mapped, not copied; bf16/f16 matrices are used in place)\n"))
              << "mapping     " << residency_line(residency) << "\n"
              << std::setprecision(0) << "bitrate    ";
    for (int nq = 1; nq <= c.quantizer.num_quantizers; nq *= 2)
      std::cout << " " << nq << ":" << double(nq) * bits_per_code * c.frame_rate() << " bps";
    if ((c.quantizer.num_quantizers & (c.quantizer.num_quantizers - 1)) != 0)
      std::cout << " " << c.quantizer.num_quantizers << ":" << c.quantizer.num_quantizers * bits_per_code * c.frame_rate()
                << " bps";
    std::cout << "\n";
    if (const std::string note = residency_warning(residency); !note.empty()) std::cerr << note << "\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
