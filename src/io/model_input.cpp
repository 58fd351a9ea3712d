// Recordings as model input: resampled to the model rate, channels mapped to
// the model's, whole (to_model_input) or piece by piece (ModelInputReader).
#include <algorithm>

#include "io/resampler.h"
#include "moss_codec/audio.h"
#include "moss_codec/error.h"

namespace moss {

namespace {

// n interleaved `frames` (inC per frame) into the channel-major (C, n) `dst`.
// Mono models average in double; multi-channel models duplicate mono and keep
// the first C of more.
void map_channels(const float* frames, int64_t n, int64_t inC, int64_t C, float* dst) {
  for (int64_t i = 0; i < n; ++i) {
    const float* frame = frames + i * inC;
    if (C == 1) {
      double sum = 0;
      for (int64_t c = 0; c < inC; ++c) sum += frame[c];
      dst[i] = float(sum / double(inC));
    } else {
      for (int64_t c = 0; c < C; ++c) dst[c * n + i] = inC == 1 ? frame[0] : frame[std::min(c, inC - 1)];
    }
  }
}

}  // namespace

Tensor to_model_input(const Audio& audio, const CodecConfig& config) {
  const Audio a = resample(audio, config.sampling_rate);
  const int64_t C = config.channels(), N = a.frames();
  Tensor t({1, C, N});
  map_channels(a.samples.data(), N, a.channels, C, t.data.data());
  return t;
}

ModelInputReader::ModelInputReader(const std::filesystem::path& path, const CodecConfig& config)
    : file_(path), channels_(config.channels()) {
  resampler_ = std::make_unique<StreamResampler>(file_.sample_rate(), config.sampling_rate, file_.channels());
  expected_ = resampled_frames(file_.declared_frames(), file_.sample_rate(), config.sampling_rate);
}

ModelInputReader::~ModelInputReader() = default;

Tensor ModelInputReader::read(int64_t max_frames) {
  const int64_t inC = file_.channels();
  // File blocks of about a second keep soxr's per-call cost negligible; at
  // most 4 MB of samples, however many channels the file has.
  const int64_t block = std::max<int64_t>(std::min<int64_t>(file_.sample_rate(), (int64_t(1) << 20) / inC), 4096);
  while (!file_done_ && int64_t(pending_.size()) / inC < max_frames) {
    block_.clear();
    if (file_.read(block_, block) > 0) {
      resampler_->process(block_.data(), int64_t(block_.size()) / inC, pending_);
    } else {
      resampler_->finish(pending_);
      file_done_ = true;
    }
  }
  const int64_t n = std::min<int64_t>(int64_t(pending_.size()) / inC, std::max<int64_t>(max_frames, 0));
  Tensor piece({channels_, n});
  map_channels(pending_.data(), n, inC, channels_, piece.data.data());
  pending_.erase(pending_.begin(), pending_.begin() + n * inC);
  frames_read_ += n;
  return piece;
}

}  // namespace moss
