#include <cmath>
#include <cstring>

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

EncoderStream::Impl::Impl(const Codec::Impl& m, int n) : model(m), nq(n), states(m.new_encoder_states()) {}

void EncoderStream::Impl::reset() {
  for (auto& s : states) s.reset();
  pending.clear();
  frames = 0;
  flushed = false;
}

void EncoderStream::Impl::encode_frames(const float* x, int64_t k, std::vector<std::vector<int32_t>>& codes,
                                        std::vector<float>& hidden) {
  const CodecConfig& c = model.config;
  const int64_t C = c.channels(), ds = c.downsample_rate;
  model.run_encoder(x, c.interleaved() ? k * ds * C : k * ds, c.interleaved() ? 1 : C, scratch, nullptr, &states);
  const int64_t D = c.quantizer.input_dim;
  hidden.insert(hidden.end(), scratch.a.begin(), scratch.a.begin() + k * D);
  frame_codes.resize(size_t(nq * k));
  model.quantizer->encode(scratch.a.data(), k, nq, frame_codes.data(), k, scratch.q);
  for (int i = 0; i < nq; ++i)
    codes[size_t(i)].insert(codes[size_t(i)].end(), frame_codes.begin() + i * k, frame_codes.begin() + (i + 1) * k);
  frames += k;
}

void EncoderStream::Impl::push(const float* samples, int64_t n, int64_t stride, std::vector<std::vector<int32_t>>& codes,
                               std::vector<float>& hidden) {
  if (flushed) throw Error("EncoderStream: push after flush(); call reset() to start a new stream");
  const CodecConfig& c = model.config;
  const int64_t C = c.channels(), ds = c.downsample_rate;
  for (int64_t ch = 0; ch < C; ++ch)
    for (int64_t t = 0; t < n; ++t)
      if (!std::isfinite(samples[ch * stride + t]))
        throw Error("EncoderStream: sample [" + std::to_string(ch) + ", " + std::to_string(t) + "] of this push is " +
                    (std::isnan(samples[ch * stride + t]) ? "NaN" : "infinite") + "; audio must be finite");
  const size_t old = pending.size();
  pending.resize(old + size_t(n * C));
  transpose(samples, C, n, stride, pending.data() + old, C);
  const int64_t k = int64_t(pending.size()) / (C * ds);
  if (k == 0) return;
  encode_frames(pending.data(), k, codes, hidden);
  pending.erase(pending.begin(), pending.begin() + k * ds * C);
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

EncodedChunk EncoderStream::push(const Tensor& samples) {
  const int64_t C = impl_->model.config.channels();
  int64_t n;
  if (samples.rank() == 2 && samples.dim(0) == C) n = samples.dim(1);
  else if (samples.rank() == 1 && C == 1) n = samples.dim(0);
  else
    throw Error("EncoderStream::push: samples have shape " + shape_to_string(samples.shape) + "; expected (" +
                std::to_string(C) + ", n)" + (C == 1 ? " or (n)" : ""));
  if (int64_t(samples.data.size()) != C * n)
    throw Error("EncoderStream::push: samples hold " + std::to_string(samples.data.size()) + " values, shape needs " +
                std::to_string(C * n));
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
