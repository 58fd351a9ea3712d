#pragma once
// Audio files in and out (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 where
// the library has it), high-quality resampling (soxr) and the channel mapping
// that turns any recording into model input.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "moss_codec/config.h"
#include "moss_codec/tensor.h"

namespace moss {

struct Audio {
  int sample_rate = 0;
  int channels = 0;
  std::vector<float> samples;  // interleaved: frame-major, channels per frame
  int64_t frames() const { return channels ? int64_t(samples.size()) / channels : 0; }
};

// Sample rates accepted from audio files (resample() takes 1..kMaxSampleRate).
inline constexpr int kMinSampleRate = 1000;
inline constexpr int kMaxSampleRate = 768000;

// Reads any format libsndfile reads. Throws moss::Error naming the file.
Audio read_audio(const std::filesystem::path& path);

// soxr at high quality; returns `in` unchanged when the rates agree.
Audio resample(const Audio& in, int target_rate);

// Mono models average the channels; multi-channel models duplicate mono and
// keep the first `channels` of more. Returns (1, C, T) at the model rate.
Tensor to_model_input(const Audio& audio, const CodecConfig& config);

enum class SampleFormat { Float32, Pcm16 };

// Writes by extension: .wav (float32 or 16-bit PCM), .flac (16-bit), .ogg
// (Vorbis), .opus, .mp3 where available; .raw/.pcm for headerless samples.
// samples: (C, N) channel-major.
void write_audio(const std::filesystem::path& path, const Tensor& samples, int sample_rate, SampleFormat format);

// Incremental writer for streamed output (the same formats).
class AudioWriter {
 public:
  AudioWriter(const std::filesystem::path& path, int sample_rate, int channels, SampleFormat format);
  ~AudioWriter();
  AudioWriter(const AudioWriter&) = delete;
  AudioWriter& operator=(const AudioWriter&) = delete;
  // samples: (C, n) channel-major.
  void write(const Tensor& samples);
  void close();

 private:
  void* handle_ = nullptr;  // SNDFILE*
  std::filesystem::path path_;
  int channels_;
  std::vector<float> interleaved_;
};

}  // namespace moss
