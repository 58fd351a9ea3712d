#pragma once
// The state behind EncoderStream and DecoderStream. The cores reference the
// immutable model; the public wrappers also keep it alive. Codec's chunked
// encode/decode run through the same cores, so there is one streaming path.
#include <memory>
#include <vector>

#include "model/codec_impl.h"
#include "moss_codec/streaming.h"

namespace moss {

StreamStats transformer_stats(const std::vector<TransformerState>& states, int64_t frames);

struct EncoderStream::Impl {
  Impl(const Codec::Impl& model, int nq);

  // n samples per channel, channel-major (C x n) with row stride `stride`.
  // Appends the codes of completed frames to codes[i] and their encoder output
  // (time-major) to hidden.
  void push(const float* samples, int64_t n, int64_t stride, std::vector<std::vector<int32_t>>& codes,
            std::vector<float>& hidden);
  void flush(std::vector<std::vector<int32_t>>& codes, std::vector<float>& hidden);
  void reset();

  std::shared_ptr<const Codec> keepalive;
  const Codec::Impl& model;
  int nq;
  std::vector<TransformerState> states;
  Codec::Impl::RowScratch scratch;
  std::vector<float> pending;  // time-major (interleaved) samples not yet a whole frame
  std::vector<int32_t> frame_codes;
  int64_t frames = 0;
  bool flushed = false;

 private:
  void encode_frames(const float* x, int64_t k, std::vector<std::vector<int32_t>>& codes, std::vector<float>& hidden);
};

struct DecoderStream::Impl {
  Impl(const Codec::Impl& model, std::optional<int> nq);

  // codes[i * stride + t] for i < nq_in, t < n; appends n * downsample_rate
  // samples per channel, time-major (interleaved), to `audio`.
  void push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride, std::vector<float>& audio);
  void reset();

  std::shared_ptr<const Codec> keepalive;
  const Codec::Impl& model;
  std::optional<int> nq;
  std::vector<TransformerState> states;
  Codec::Impl::RowScratch scratch;
  std::vector<int32_t> frame_codes;
  int64_t frames = 0;
};

}  // namespace moss
