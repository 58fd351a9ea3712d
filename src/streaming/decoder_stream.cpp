#include <cstring>

#include "kernels/transpose.h"
#include "streaming/stream_impl.h"

namespace moss {

DecoderStream::Impl::Impl(const Codec::Impl& m, std::optional<int> n) : model(m), nq(n), states(m.new_decoder_states()) {}

void DecoderStream::Impl::reset() {
  for (auto& s : states) s.reset();
  frames = 0;
}

void DecoderStream::Impl::push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride, std::vector<float>& audio) {
  if (n < 1) throw Error("DecoderStream::push: needs at least one new frame, got " + std::to_string(n));
  const int use = model.resolve_num_quantizers(nq, nq_in);
  model.check_codes(codes, use, n, stride);
  frame_codes.resize(size_t(use * n));
  for (int i = 0; i < use; ++i) std::memcpy(frame_codes.data() + i * n, codes + i * stride, sizeof(int32_t) * size_t(n));
  const CodecConfig& c = model.config;
  scratch.a.resize(size_t(n * c.quantizer.output_dim));
  model.quantizer->decode(frame_codes.data(), n, n, use, scratch.a.data(), scratch.q);
  model.run_decoder(n, scratch, &states);
  const int64_t samples = n * c.downsample_rate * c.channels();
  audio.insert(audio.end(), scratch.a.begin(), scratch.a.begin() + samples);
  frames += n;
}

DecoderStream::DecoderStream(std::shared_ptr<const Codec> codec, std::optional<int> num_quantizers) {
  if (!codec) throw Error("DecoderStream: no codec");
  codec->impl().require_decoder();
  const int Q = codec->config().quantizer.num_quantizers;
  if (num_quantizers) codec->impl().resolve_num_quantizers(num_quantizers, Q);
  impl_ = std::make_unique<Impl>(codec->impl(), num_quantizers);
  impl_->keepalive = std::move(codec);
}
DecoderStream::~DecoderStream() = default;
DecoderStream::DecoderStream(DecoderStream&&) noexcept = default;
DecoderStream& DecoderStream::operator=(DecoderStream&&) noexcept = default;

Tensor DecoderStream::push(const CodeTensor& codes) {
  if (codes.rank() != 2 || int64_t(codes.data.size()) != codes.numel())
    throw Error("DecoderStream::push: codes have shape " + shape_to_string(codes.shape) + "; expected (num_quantizers, frames)");
  std::vector<float> interleaved;
  impl_->push(codes.data.data(), codes.dim(0), codes.dim(1), codes.dim(1), interleaved);
  const int64_t C = impl_->model.config.channels(), N = int64_t(interleaved.size()) / C;
  Tensor out({C, N});
  transpose(interleaved.data(), N, C, C, out.data.data(), N);
  return out;
}

void DecoderStream::reset() { impl_->reset(); }

StreamStats DecoderStream::stats() const { return transformer_stats(impl_->states, impl_->frames); }

}  // namespace moss
