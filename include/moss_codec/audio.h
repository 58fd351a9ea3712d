#pragma once
// Audio files in and out (libsndfile: WAV, FLAC, OGG/Vorbis, Opus, MP3 where
// the library has it), high-quality resampling (soxr) and the channel mapping
// that turns any recording into model input.
#include <cstdint>
#include <filesystem>
#include <memory>
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

// An audio file read block by block, with read_audio's checks, for
// recordings too long to hold in memory. Throws moss::Error naming the file.
class AudioReader {
 public:
  explicit AudioReader(const std::filesystem::path& path);
  ~AudioReader();
  AudioReader(const AudioReader&) = delete;
  AudioReader& operator=(const AudioReader&) = delete;
  int sample_rate() const { return rate_; }
  int channels() const { return channels_; }
  // The frame count the header declares (approximate for some formats).
  int64_t declared_frames() const { return declared_; }
  // Appends up to max_frames (at most 2^20 per call) interleaved frames to
  // `samples` and returns how many; 0 only at the end. Throws on a read
  // error, a sample that is not finite, or a file that holds no samples.
  int64_t read(std::vector<float>& samples, int64_t max_frames);

 private:
  void* handle_ = nullptr;  // SNDFILE*
  std::filesystem::path path_;
  int rate_ = 0, channels_ = 0;
  int64_t declared_ = 0, frames_read_ = 0;
};

class StreamResampler;

// to_model_input(read_audio(path), config) one piece at a time: the same
// samples bit for bit, with memory bounded by the piece instead of the file.
class ModelInputReader {
 public:
  ModelInputReader(const std::filesystem::path& path, const CodecConfig& config);
  ~ModelInputReader();
  ModelInputReader(const ModelInputReader&) = delete;
  ModelInputReader& operator=(const ModelInputReader&) = delete;
  // The next (C, n) piece at the model rate: n == max_frames until the last
  // piece, n == 0 once the file is exhausted.
  Tensor read(int64_t max_frames);
  // Model-rate frames returned so far, and the total the header promises.
  int64_t frames_read() const { return frames_read_; }
  int64_t expected_frames() const { return expected_; }

 private:
  AudioReader file_;
  std::unique_ptr<StreamResampler> resampler_;
  int64_t channels_;
  std::vector<float> block_, pending_;  // file frames; resampled frames not yet returned
  bool file_done_ = false;
  int64_t frames_read_ = 0, expected_ = 0;
};

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
