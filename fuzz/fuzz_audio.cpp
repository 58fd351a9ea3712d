// Fuzz target: the audio-file path (libsndfile read, finiteness check, soxr
// resampling and the channel mapping into a stereo and a mono model), whole
// and piece by piece; the two must agree bit for bit.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "moss_codec/audio.h"
#include "moss_codec/error.h"
#include "scratch_path.h"

namespace fs = std::filesystem;

static moss::CodecConfig config(int channels) {
  const std::string stereo = channels == 2 ? R"("number_channels": 2, )" : "";
  const int patch = channels == 2 ? 8 : 4;
  return moss::CodecConfig::parse(
      "{\"sampling_rate\": 16000, \"downsample_rate\": 4, " + stereo +
      "\"causal_transformer_context_duration\": 1.0, \"encoder_kwargs\": [{\"module_type\": \"PatchedPretransform\", "
      "\"patch_size\": " + std::to_string(patch) + "}], \"decoder_kwargs\": [{\"module_type\": \"PatchedPretransform\", "
      "\"patch_size\": " + std::to_string(patch) + "}], \"quantizer_kwargs\": {\"input_dim\": " + std::to_string(patch) +
      ", \"num_quantizers\": 1, \"codebook_size\": 2, \"codebook_dim\": 2}}");
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ScratchPath scratch("moss-fuzz-audio-", ".wav");
  const fs::path& file = scratch.path;
  static const moss::CodecConfig mono = config(1), stereo = config(2);
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    moss::Audio a = moss::read_audio(file);
    if (a.frames() > 1 << 20) return 0;  // keep each run fast
    moss::to_model_input(a, mono);
    const moss::Tensor whole = moss::to_model_input(a, stereo);
    // The streaming reader (what the CLI's encode uses) on the same file.
    moss::ModelInputReader reader(file, stereo);
    size_t at = 0;
    const size_t N = size_t(whole.dim(2));
    for (;;) {
      const moss::Tensor piece = reader.read(777);
      const size_t n = size_t(piece.dim(1));
      if (n == 0) break;
      if (at + n > N) std::abort();
      for (size_t c = 0; c < 2; ++c)
        if (std::memcmp(piece.data.data() + c * n, whole.data.data() + c * N + at, n * sizeof(float)) != 0) std::abort();
      at += n;
    }
    if (at != N) std::abort();
  } catch (const moss::Error&) {
  }
  return 0;
}
