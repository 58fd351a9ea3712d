#include <sndfile.h>
#include <soxr.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "moss_codec/audio.h"
#include "moss_codec/error.h"

namespace moss {

namespace fs = std::filesystem;

Audio read_audio(const fs::path& path) {
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
  Audio a;
  a.sample_rate = info.samplerate;
  a.channels = info.channels;
  // Read in blocks: some formats (MP3, Ogg) report no exact frame count.
  std::vector<float> block(size_t(4096 * info.channels));
  for (;;) {
    sf_count_t got = sf_readf_float(f, block.data(), 4096);
    if (got <= 0) break;
    a.samples.insert(a.samples.end(), block.begin(), block.begin() + got * info.channels);
  }
  const int err = sf_error(f);
  sf_close(f);
  if (err != SF_ERR_NO_ERROR) throw Error(path.string() + ": error while reading audio: " + sf_error_number(err));
  if (a.samples.empty()) throw Error(path.string() + ": the audio file holds no samples");
  for (size_t i = 0; i < a.samples.size(); ++i)
    if (!std::isfinite(a.samples[i]))
      throw Error(path.string() + ": sample " + std::to_string(i / size_t(a.channels)) + " is not finite");
  return a;
}

Audio resample(const Audio& in, int target_rate) {
  if (in.sample_rate == target_rate) return in;
  // Model rates may be tiny (test checkpoints run at 24 Hz); files are held
  // to kMinSampleRate by read_audio. Neither may exceed kMaxSampleRate.
  for (int rate : {in.sample_rate, target_rate})
    if (rate < 1 || rate > kMaxSampleRate)
      throw Error("resample: sample rate " + std::to_string(rate) + " Hz is outside 1.." + std::to_string(kMaxSampleRate) +
                  " Hz");
  Audio out;
  out.sample_rate = target_rate;
  out.channels = in.channels;
  const double ratio = double(target_rate) / in.sample_rate;
  const size_t out_frames = size_t(std::llround(double(in.frames()) * ratio));
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

Tensor to_model_input(const Audio& audio, const CodecConfig& config) {
  const Audio a = resample(audio, config.sampling_rate);
  const int64_t C = config.channels(), N = a.frames(), inC = a.channels;
  Tensor t({1, C, N});
  for (int64_t n = 0; n < N; ++n) {
    const float* frame = a.samples.data() + n * inC;
    if (C == 1) {
      double sum = 0;
      for (int64_t c = 0; c < inC; ++c) sum += frame[c];
      t.data[size_t(n)] = float(sum / double(inC));
    } else {
      for (int64_t c = 0; c < C; ++c) t.data[size_t(c * N + n)] = inC == 1 ? frame[0] : frame[std::min(c, inC - 1)];
    }
  }
  return t;
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
