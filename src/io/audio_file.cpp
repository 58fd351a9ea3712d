#include <sndfile.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "moss_codec/audio.h"
#include "moss_codec/error.h"

namespace moss {

namespace fs = std::filesystem;

AudioReader::AudioReader(const fs::path& path) : path_(path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path.string() + ": no such audio file");
  SF_INFO info{};
  SNDFILE* f = sf_open(path.c_str(), SFM_READ, &info);
  if (!f) throw Error(path.string() + ": cannot read audio: " + sf_strerror(nullptr));
  // Headers are data from strangers: a rate of a billion Hz asks the
  // resampler for an absurd ratio (found by fuzzing: soxr crashed on it).
  if (info.channels < 1 || info.channels > 64 || info.samplerate < kMinSampleRate ||
      info.samplerate > kMaxSampleRate || info.frames < 0) {
    sf_close(f);
    throw Error(path.string() + ": implausible audio header (" + std::to_string(info.channels) + " channels, " +
                std::to_string(info.samplerate) + " Hz; accepted: 1..64 channels, " + std::to_string(kMinSampleRate) +
                ".." + std::to_string(kMaxSampleRate) + " Hz)");
  }
  handle_ = f;
  rate_ = info.samplerate;
  channels_ = info.channels;
  declared_ = info.frames;
}

AudioReader::~AudioReader() {
  if (handle_) sf_close(static_cast<SNDFILE*>(handle_));
}

int64_t AudioReader::read(std::vector<float>& samples, int64_t max_frames) {
  if (!handle_ || max_frames <= 0) return 0;
  // Fewer than asked is allowed: the buffer is sized by the request, so a
  // request for "everything" must not allocate for it up front.
  max_frames = std::min<int64_t>(max_frames, int64_t(1) << 20);
  auto* f = static_cast<SNDFILE*>(handle_);
  const size_t at = samples.size(), C = size_t(channels_);
  samples.resize(at + size_t(max_frames) * C);
  // Some formats (MP3, Ogg) report no exact frame count: read until empty.
  const sf_count_t got = std::max<sf_count_t>(sf_readf_float(f, samples.data() + at, max_frames), 0);
  samples.resize(at + size_t(got) * C);
  if (got == 0) {
    const int err = sf_error(f);
    sf_close(f);
    handle_ = nullptr;
    if (err != SF_ERR_NO_ERROR) throw Error(path_.string() + ": error while reading audio: " + sf_error_number(err));
    if (frames_read_ == 0) throw Error(path_.string() + ": the audio file holds no samples");
    return 0;
  }
  for (size_t i = at; i < samples.size(); ++i)
    if (!std::isfinite(samples[i]))
      throw Error(path_.string() + ": sample " + std::to_string(size_t(frames_read_) + (i - at) / C) + " is not finite");
  frames_read_ += got;
  return got;
}

Audio read_audio(const fs::path& path) {
  AudioReader reader(path);
  Audio a;
  a.sample_rate = reader.sample_rate();
  a.channels = reader.channels();
  while (reader.read(a.samples, 4096) > 0) {
  }
  return a;
}

namespace {

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

int sndfile_format(const fs::path& path, SampleFormat fmt) {
  const std::string e = lower_ext(path);
  const int pcm = fmt == SampleFormat::Pcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT;
  if (e == ".wav" || e.empty()) return SF_FORMAT_WAV | pcm;
  if (e == ".flac") return SF_FORMAT_FLAC | SF_FORMAT_PCM_16;
  if (e == ".ogg" || e == ".oga") return SF_FORMAT_OGG | SF_FORMAT_VORBIS;
  if (e == ".opus") return SF_FORMAT_OGG | SF_FORMAT_OPUS;
  if (e == ".mp3") return SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III;
  if (e == ".aiff" || e == ".aif") return SF_FORMAT_AIFF | pcm;
  if (e == ".raw" || e == ".pcm") return SF_FORMAT_RAW | pcm;
  throw Error(path.string() + ": unknown audio extension '" + e + "' (use .wav, .flac, .ogg, .opus, .mp3, .aiff or .raw)");
}

}  // namespace

AudioWriter::AudioWriter(const fs::path& path, int rate, int channels, SampleFormat fmt) : path_(path), channels_(channels) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = sndfile_format(path, fmt);
  // Opus only takes 8/12/16/24/48 kHz.
  if (!sf_format_check(&info))
    throw Error(path.string() + ": this libsndfile cannot write that format at " + std::to_string(rate) + " Hz, " +
                std::to_string(channels) + " channel(s)");
  SNDFILE* f = sf_open(path.c_str(), SFM_WRITE, &info);
  if (!f) throw Error(path.string() + ": cannot write audio: " + sf_strerror(nullptr));
  if (fmt == SampleFormat::Pcm16 || (info.format & SF_FORMAT_SUBMASK) == SF_FORMAT_PCM_16)
    sf_command(f, SFC_SET_CLIPPING, nullptr, SF_TRUE);  // clip rather than wrap around
  handle_ = f;
}

AudioWriter::~AudioWriter() {
  if (handle_) sf_close(static_cast<SNDFILE*>(handle_));
}

void AudioWriter::write(const Tensor& s) {
  if (!handle_) throw Error(path_.string() + ": writer is closed");
  const int64_t n = s.dim(1);
  interleaved_.resize(size_t(n * channels_));
  for (int64_t t = 0; t < n; ++t)
    for (int c = 0; c < channels_; ++c) interleaved_[size_t(t * channels_ + c)] = s.data[size_t(c * n + t)];
  if (sf_writef_float(static_cast<SNDFILE*>(handle_), interleaved_.data(), n) != n)
    throw Error(path_.string() + ": write failed: " + sf_strerror(static_cast<SNDFILE*>(handle_)));
}

void AudioWriter::close() {
  if (!handle_) return;
  const int err = sf_close(static_cast<SNDFILE*>(handle_));
  handle_ = nullptr;
  if (err) throw Error(path_.string() + ": closing failed: " + sf_error_number(err));
}

void write_audio(const fs::path& path, const Tensor& samples, int rate, SampleFormat fmt) {
  AudioWriter w(path, rate, int(samples.dim(0)), fmt);
  w.write(samples);
  w.close();
}

}  // namespace moss
