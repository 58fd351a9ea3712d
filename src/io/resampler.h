#pragma once
// soxr as a stream: the same filter as resample() (SOXR_HQ, float32
// interleaved) fed in pieces, so long recordings are resampled without being
// held in memory. The concatenated output equals resample() of the whole
// input sample for sample, and its length is the same llround(frames * ratio).
#include <cmath>
#include <cstdint>
#include <vector>

namespace moss {

// Frames resample() makes of `frames` input frames: llround(frames * ratio).
// The streaming resampler ends on the same length.
inline int64_t resampled_frames(int64_t frames, int input_rate, int output_rate) {
  return std::llround(double(frames) * (double(output_rate) / double(input_rate)));
}

class StreamResampler {
 public:
  // Rates in 1..kMaxSampleRate; equal rates pass samples through untouched.
  StreamResampler(int input_rate, int output_rate, int channels);
  ~StreamResampler();
  StreamResampler(const StreamResampler&) = delete;
  StreamResampler& operator=(const StreamResampler&) = delete;

  // Appends to `out` the output frames that `frames` more interleaved input
  // frames make final.
  void process(const float* in, int64_t frames, std::vector<float>& out);
  // End of input: appends the remaining frames. process() may not follow.
  void finish(std::vector<float>& out);

 private:
  // Frames that may be emitted now without passing the final length.
  int64_t emit_limit() const;
  void drain(const float* in, int64_t frames, std::vector<float>& out);

  void* soxr_ = nullptr;  // soxr_t; null when the rates agree
  int input_rate_, output_rate_, channels_;
  int64_t frames_in_ = 0, frames_out_ = 0;
  bool finished_ = false;
  std::vector<float> scratch_;
};

}  // namespace moss
