#include "io/resampler.h"

#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "moss_codec/audio.h"
#include "moss_codec/error.h"

namespace moss {

namespace {

void check_rate(int rate) {
  if (rate < 1 || rate > kMaxSampleRate)
    throw Error("resample: sample rate " + std::to_string(rate) + " Hz is outside 1.." + std::to_string(kMaxSampleRate) +
                " Hz");
}

}  // namespace

StreamResampler::StreamResampler(int input_rate, int output_rate, int channels)
    : input_rate_(input_rate), output_rate_(output_rate), channels_(channels) {
  check_rate(input_rate);
  check_rate(output_rate);
  if (channels < 1) throw Error("resample: " + std::to_string(channels) + " channels");
  if (input_rate == output_rate) return;
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  soxr_error_t err = nullptr;
  soxr_ = soxr_create(input_rate, output_rate, unsigned(channels), &err, &io, &q, nullptr);
  if (err || !soxr_) throw Error(std::string("resampling failed: ") + (err ? err : "soxr_create"));
}

StreamResampler::~StreamResampler() {
  if (soxr_) soxr_delete(static_cast<soxr_t>(soxr_));
}

// The final length (resample()'s of the whole input) is at least that of the
// input seen so far, so emitting no more than this never overshoots it.
int64_t StreamResampler::emit_limit() const { return resampled_frames(frames_in_, input_rate_, output_rate_); }

void StreamResampler::drain(const float* in, int64_t frames, std::vector<float>& out) {
  auto* s = static_cast<soxr_t>(soxr_);
  const size_t C = size_t(channels_);
  // Room for what this input can produce plus the filter's backlog, capped:
  // soxr takes only the input that fits the room, so the loop goes on until
  // all is taken (a 1 kHz file to a 768 kHz model would otherwise ask for
  // 768 output frames per input frame at once).
  const size_t room =
      std::min<size_t>(size_t(resampled_frames(std::max<int64_t>(frames, 0), input_rate_, output_rate_)) + 4096, size_t(1) << 16);
  scratch_.resize(room * C);
  const bool flushing = in == nullptr;
  int64_t used = 0;
  for (;;) {
    size_t idone = 0, odone = 0;
    soxr_error_t err = soxr_process(s, flushing ? nullptr : in + used * int64_t(C), flushing ? 0 : size_t(frames - used),
                                    flushing ? nullptr : &idone, scratch_.data(), room, &odone);
    if (err) throw Error(std::string("resampling failed: ") + err);
    if (!flushing && idone == 0 && odone == 0 && used < frames) throw Error("resampling failed: soxr took no input");
    used += int64_t(idone);
    const int64_t keep = std::min<int64_t>(int64_t(odone), std::max<int64_t>(emit_limit() - frames_out_, 0));
    out.insert(out.end(), scratch_.begin(), scratch_.begin() + keep * int64_t(C));
    frames_out_ += keep;
    if (flushing ? odone == 0 : (used >= frames && odone < room)) break;
  }
}

void StreamResampler::process(const float* in, int64_t frames, std::vector<float>& out) {
  if (finished_) throw Error("resample: input after the end of the stream");
  if (frames <= 0) return;
  frames_in_ += frames;
  if (!soxr_) {
    out.insert(out.end(), in, in + frames * channels_);
    frames_out_ += frames;
    return;
  }
  drain(in, frames, out);
}

void StreamResampler::finish(std::vector<float>& out) {
  if (finished_) return;
  finished_ = true;
  if (soxr_ && frames_in_ > 0) drain(nullptr, 0, out);
}

Audio resample(const Audio& in, int target_rate) {
  if (in.sample_rate == target_rate) return in;
  // Model rates may be tiny (test checkpoints run at 24 Hz); files are held
  // to kMinSampleRate by read_audio. Neither may exceed kMaxSampleRate.
  check_rate(in.sample_rate);
  check_rate(target_rate);
  Audio out;
  out.sample_rate = target_rate;
  out.channels = in.channels;
  const size_t out_frames = size_t(resampled_frames(in.frames(), in.sample_rate, target_rate));
  out.samples.resize(out_frames * size_t(in.channels));
  if (out_frames == 0) return out;  // soxr must not be asked for nothing
  soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
  soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
  size_t done = 0;
  soxr_error_t err = soxr_oneshot(in.sample_rate, target_rate, unsigned(in.channels), in.samples.data(), size_t(in.frames()),
                                  nullptr, out.samples.data(), out_frames, &done, &io, &q, nullptr);
  if (err) throw Error(std::string("resampling failed: ") + err);
  out.samples.resize(done * size_t(in.channels));
  return out;
}

}  // namespace moss
