#include <cstring>
#include <string>

#include "kernels/transpose.h"
#include "streaming/stream_impl.h"

namespace moss {

DecoderStream::Impl::Impl(const Codec::Impl& m, std::optional<int> n) : model(m), nq(n), states(m.new_decoder_states()) {}

void DecoderStream::Impl::reset() {
  for (auto& s : states) s.reset();
  frames = 0;
}

int DecoderStream::Impl::check_push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride,
                                    const std::string& who) const {
  if (n < 1) throw Error(who + "needs at least one new frame, got " + std::to_string(n));
  const int use = model.resolve_num_quantizers(nq, nq_in);
  model.check_codes(codes, use, n, stride);
  return use;
}

void DecoderStream::Impl::push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride, std::vector<float>& audio) {
  const int use = check_push(codes, nq_in, n, stride, "DecoderStream::push: ");
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

namespace {
// A push's codes must be (num_quantizers, frames); `who` starts the message.
void check_codes_shape(const CodeTensor& codes, const std::string& who) {
  if (codes.rank() != 2 || int64_t(codes.data.size()) != codes.numel())
    throw Error(who + "codes have shape " + shape_to_string(codes.shape) + "; expected (num_quantizers, frames)");
}
}  // namespace

Tensor DecoderStream::push(const CodeTensor& codes) {
  check_codes_shape(codes, "DecoderStream::push: ");
  std::vector<float> interleaved;
  impl_->push(codes.data.data(), codes.dim(0), codes.dim(1), codes.dim(1), interleaved);
  const int64_t C = impl_->model.config.channels(), N = int64_t(interleaved.size()) / C;
  Tensor out({C, N});
  transpose(interleaved.data(), N, C, C, out.data.data(), N);
  return out;
}

std::vector<Tensor> DecoderStream::push_batch(const std::vector<DecoderStream*>& streams,
                                              const std::vector<CodeTensor>& codes) {
  const std::string who = "DecoderStream::push_batch: ";
  check_batch(streams, [](const DecoderStream* s) { return s->impl_.get(); }, codes.size(), who, "code tensors");
  Impl& first = *streams[0]->impl_;
  const Codec::Impl& model = first.model;
  const int count = int(streams.size());
  std::vector<int64_t> frames(static_cast<size_t>(count));
  std::vector<int> use(static_cast<size_t>(count));
  int64_t total = 0;
  for (int i = 0; i < count; ++i) {
    const Impl& s = *streams[size_t(i)]->impl_;
    const CodeTensor& c = codes[size_t(i)];
    const std::string which = who + "stream " + std::to_string(i) + ": ";
    check_codes_shape(c, which);
    try {
      use[size_t(i)] = s.check_push(c.data.data(), c.dim(0), c.dim(1), c.dim(1), "");
      model.check_limits(1, c.dim(1) * model.config.downsample_rate);
    } catch (const Error& e) {
      throw Error(which + e.what());
    }
    frames[size_t(i)] = c.dim(1);
    total += c.dim(1);
  }

  // Each stream's quantizer output, one after another, then the decoder once.
  const CodecConfig& cfg = model.config;
  const int64_t width = cfg.quantizer.output_dim;
  Codec::Impl::RowScratch& scratch = first.scratch;
  scratch.a.resize(size_t(total * width));
  std::vector<std::vector<TransformerState>*> states(static_cast<size_t>(count));
  int64_t r0 = 0;
  for (int i = 0; i < count; ++i) {
    const int64_t n = frames[size_t(i)];
    model.quantizer->decode(codes[size_t(i)].data.data(), n, n, use[size_t(i)], scratch.a.data() + r0 * width, scratch.q);
    states[size_t(i)] = &streams[size_t(i)]->impl_->states;
    r0 += n;
  }
  model.run_decoder_streams(frames.data(), states.data(), count, scratch);

  const int64_t C = cfg.channels(), ds = cfg.downsample_rate;
  std::vector<Tensor> out;
  out.reserve(size_t(count));
  int64_t offset = 0;  // in samples per channel
  for (int i = 0; i < count; ++i) {
    const int64_t N = frames[size_t(i)] * ds;
    Tensor audio({C, N});
    transpose(scratch.a.data() + offset * C, N, C, C, audio.data.data(), N);
    out.push_back(std::move(audio));
    offset += N;
    streams[size_t(i)]->impl_->frames += frames[size_t(i)];
  }
  return out;
}

void DecoderStream::reset() { impl_->reset(); }

StreamStats DecoderStream::stats() const { return transformer_stats(impl_->states, impl_->frames); }

}  // namespace moss
