#include <cmath>
#include <cstring>
#include <string>

#include "kernels/transpose.h"
#include "streaming/stream_impl.h"

namespace moss {

StreamStats transformer_stats(const std::vector<TransformerState>& states, int64_t frames) {
  StreamStats st;
  st.frames = frames;
  for (auto& s : states)
    for (auto& kv : s.layers) {
      st.max_cached_keys = std::max(st.max_cached_keys, kv.rows());
      st.cache_bytes += kv.bytes();
    }
  return st;
}

void check_batch(const std::vector<const void*>& streams, const std::vector<const Codec::Impl*>& models, size_t inputs,
                 const std::string& who, const char* what) {
  if (streams.empty()) throw Error(who + "no streams");
  if (inputs != streams.size())
    throw Error(who + std::to_string(streams.size()) + " streams but " + std::to_string(inputs) + " " + what);
  for (size_t i = 0; i < streams.size(); ++i)
    if (!models[i]) throw Error(who + "stream " + std::to_string(i) + " is null");
  try {
    models[0]->check_limits(int64_t(streams.size()), 0);  // a batch's rows, as offline calls count them
  } catch (const Error& e) {
    throw Error(who + e.what());
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (streams[j] == streams[i])
        throw Error(who + "stream " + std::to_string(i) + " is stream " + std::to_string(j) + " again");
    if (models[i] != models[0]) throw Error(who + "stream " + std::to_string(i) + ": runs on another Codec than stream 0");
  }
}

EncoderStream::Impl::Impl(const Codec::Impl& m, int n) : model(m), nq(n), states(m.new_encoder_states()) {}

void EncoderStream::Impl::reset() {
  for (auto& s : states) s.reset();
  pending.clear();
  frames = 0;
  flushed = false;
}

void EncoderStream::Impl::encode_frames(const float* x, int64_t k, std::vector<std::vector<int32_t>>& codes,
                                        std::vector<float>& hidden) {
  model.run_encoder(x, input_rows(k), input_width(), scratch, nullptr, &states);
  take_frames(scratch.a.data(), k, codes, hidden);
}

void EncoderStream::Impl::take_frames(const float* out, int64_t k, std::vector<std::vector<int32_t>>& codes,
                                      std::vector<float>& hidden) {
  const CodecConfig& c = model.config;
  const int64_t D = c.quantizer.input_dim;
  hidden.insert(hidden.end(), out, out + k * D);
  frame_codes.resize(size_t(nq * k));
  model.quantizer->encode(out, k, nq, frame_codes.data(), k, scratch.q);
  for (int i = 0; i < nq; ++i)
    codes[size_t(i)].insert(codes[size_t(i)].end(), frame_codes.begin() + i * k, frame_codes.begin() + (i + 1) * k);
  frames += k;
  // Only whole frames of `pending` are ever encoded; flush() clears it itself.
  const size_t used = std::min(pending.size(), size_t(k * c.downsample_rate * c.channels()));
  pending.erase(pending.begin(), pending.begin() + int64_t(used));
}

void EncoderStream::Impl::check_push(const float* samples, int64_t n, int64_t stride) const {
  if (flushed) throw Error("EncoderStream: push after flush(); call reset() to start a new stream");
  const int64_t C = model.config.channels();
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t t = 0; t < n; ++t)
      if (!std::isfinite(samples[ch * stride + t]))
        throw Error("EncoderStream: sample [" + std::to_string(ch) + ", " + std::to_string(t) + "] of this push is " +
                    (std::isnan(samples[ch * stride + t]) ? "NaN" : "infinite") + "; audio must be finite");
}

int64_t EncoderStream::Impl::buffer(const float* samples, int64_t n, int64_t stride) {
  const int64_t C = model.config.channels();
  const size_t old = pending.size();
  pending.resize(old + size_t(n * C));
  transpose(samples, C, n, stride, pending.data() + old, C);
  return int64_t(pending.size()) / (C * model.config.downsample_rate);
}

void EncoderStream::Impl::push(const float* samples, int64_t n, int64_t stride, std::vector<std::vector<int32_t>>& codes,
                               std::vector<float>& hidden) {
  check_push(samples, n, stride);
  const int64_t k = buffer(samples, n, stride);
  if (k > 0) encode_frames(pending.data(), k, codes, hidden);
}

void EncoderStream::Impl::flush(std::vector<std::vector<int32_t>>& codes, std::vector<float>& hidden) {
  if (flushed) throw Error("EncoderStream: flush() called twice; call reset() to start a new stream");
  flushed = true;
  if (pending.empty()) return;
  const CodecConfig& c = model.config;
  pending.resize(size_t(c.downsample_rate * c.channels()), 0.0f);
  encode_frames(pending.data(), 1, codes, hidden);
  pending.clear();
}

// ---- public wrapper ----

EncoderStream::EncoderStream(std::shared_ptr<const Codec> codec, std::optional<int> num_quantizers) {
  if (!codec) throw Error("EncoderStream: no codec");
  codec->impl().require_encoder();
  const int nq = codec->impl().resolve_num_quantizers(num_quantizers, codec->config().quantizer.num_quantizers);
  impl_ = std::make_unique<Impl>(codec->impl(), nq);
  impl_->keepalive = std::move(codec);
}
EncoderStream::~EncoderStream() = default;
EncoderStream::EncoderStream(EncoderStream&&) noexcept = default;
EncoderStream& EncoderStream::operator=(EncoderStream&&) noexcept = default;

static EncodedChunk to_chunk(const Codec::Impl& model, int nq, std::vector<std::vector<int32_t>>& codes,
                             std::vector<float>& hidden) {
  const int64_t k = int64_t(codes[0].size()), D = model.config.quantizer.input_dim;
  EncodedChunk out;
  out.codes = CodeTensor({int64_t(nq), k});
  for (int i = 0; i < nq; ++i) std::copy(codes[size_t(i)].begin(), codes[size_t(i)].end(), out.codes.data.begin() + i * k);
  out.hidden_states = Tensor({D, k});
  transpose(hidden.data(), k, D, D, out.hidden_states.data.data(), k);
  return out;
}

namespace {
// The samples' count per channel, or an error naming `who`.
int64_t samples_per_channel(const Tensor& samples, int64_t C, const std::string& who) {
  int64_t n;
  if (samples.rank() == 2 && samples.dim(0) == C) n = samples.dim(1);
  else if (samples.rank() == 1 && C == 1) n = samples.dim(0);
  else
    throw Error(who + "samples have shape " + shape_to_string(samples.shape) + "; expected (" + std::to_string(C) +
                ", n)" + (C == 1 ? " or (n)" : ""));
  if (int64_t(samples.data.size()) != C * n)
    throw Error(who + "samples hold " + std::to_string(samples.data.size()) + " values, shape needs " +
                std::to_string(C * n));
  return n;
}
}  // namespace

std::vector<EncodedChunk> EncoderStream::push_batch(const std::vector<EncoderStream*>& streams,
                                                    const std::vector<Tensor>& samples) {
  const std::string who = "EncoderStream::push_batch: ";
  check_batch(streams, [](const EncoderStream* s) { return s->impl_.get(); }, samples.size(), who, "sample tensors");
  Impl& first = *streams[0]->impl_;
  const Codec::Impl& model = first.model;
  const int count = int(streams.size());
  const CodecConfig& c = model.config;
  const int64_t C = c.channels(), ds = c.downsample_rate;
  std::vector<int64_t> n(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) {
    const Impl& s = *streams[size_t(i)]->impl_;
    const std::string which = who + "stream " + std::to_string(i) + ": ";
    n[size_t(i)] = samples_per_channel(samples[size_t(i)], C, which);
    try {
      s.check_push(samples[size_t(i)].data.data(), n[size_t(i)], n[size_t(i)]);
      model.check_limits(1, n[size_t(i)]);
    } catch (const Error& e) {
      throw Error(which + e.what());
    }
  }

  // Each stream's whole frames, one after another in the first stream's
  // scratch, through the encoder once.
  std::vector<int64_t> frames(static_cast<size_t>(count)), lens;
  std::vector<std::vector<TransformerState>*> states;
  LargeVector<float>& x = first.scratch.a;
  x.clear();
  for (int i = 0; i < count; ++i) {
    Impl& s = *streams[size_t(i)]->impl_;
    frames[size_t(i)] = s.buffer(samples[size_t(i)].data.data(), n[size_t(i)], n[size_t(i)]);
    if (frames[size_t(i)] == 0) continue;
    x.insert(x.end(), s.pending.begin(), s.pending.begin() + frames[size_t(i)] * ds * C);
    lens.push_back(first.input_rows(frames[size_t(i)]));
    states.push_back(&s.states);
  }
  if (!lens.empty())
    model.run_encoder_streams(nullptr, lens.data(), first.input_width(), states.data(), int(lens.size()), first.scratch);
  std::vector<EncodedChunk> out;
  out.reserve(size_t(count));
  int64_t row = 0;  // in encoder output rows (frames)
  const float* encoded = first.scratch.a.data();  // each stream's frames x input_dim, in order
  for (int i = 0; i < count; ++i) {
    Impl& s = *streams[size_t(i)]->impl_;
    std::vector<std::vector<int32_t>> codes(static_cast<size_t>(s.nq));
    std::vector<float> hidden;
    if (frames[size_t(i)] > 0) s.take_frames(encoded + row * c.quantizer.input_dim, frames[size_t(i)], codes, hidden);
    row += frames[size_t(i)];
    out.push_back(to_chunk(model, s.nq, codes, hidden));
  }
  return out;
}

EncodedChunk EncoderStream::push(const Tensor& samples) {
  const int64_t n = samples_per_channel(samples, impl_->model.config.channels(), "EncoderStream::push: ");
  std::vector<std::vector<int32_t>> codes(static_cast<size_t>(impl_->nq));
  std::vector<float> hidden;
  impl_->push(samples.data.data(), n, n, codes, hidden);
  return to_chunk(impl_->model, impl_->nq, codes, hidden);
}

EncodedChunk EncoderStream::flush() {
  std::vector<std::vector<int32_t>> codes(static_cast<size_t>(impl_->nq));
  std::vector<float> hidden;
  impl_->flush(codes, hidden);
  return to_chunk(impl_->model, impl_->nq, codes, hidden);
}

void EncoderStream::reset() { impl_->reset(); }

int64_t EncoderStream::buffered_samples() const {
  return int64_t(impl_->pending.size()) / impl_->model.config.channels();
}

StreamStats EncoderStream::stats() const { return transformer_stats(impl_->states, impl_->frames); }

}  // namespace moss
