#pragma once
// The state behind EncoderStream and DecoderStream. The cores reference the
// immutable model; the public wrappers also keep it alive. Codec's chunked
// encode/decode run through the same cores, so there is one streaming path.
#include <memory>
#include <string>
#include <vector>

#include "model/codec_impl.h"
#include "moss_codec/streaming.h"

namespace moss {

StreamStats transformer_stats(const std::vector<TransformerState>& states, int64_t frames);

// What every push_batch checks of its streams before their inputs: streams[i]
// is the i-th stream (for repeats) and models[i] its model (null: no stream).
// The list must be non-empty, as long as the `inputs` (their name: `what`),
// with no null or repeated stream, all on models[0], and at most
// limits.max_batch long. Each message starts with `who`.
void check_batch(const std::vector<const void*>& streams, const std::vector<const Codec::Impl*>& models, size_t inputs,
                 const std::string& who, const char* what);
// The same for a list of streams; impl_of(stream) gives its Impl (or null).
template <typename Stream, typename ImplOf>
void check_batch(const std::vector<Stream*>& streams, ImplOf impl_of, size_t inputs, const std::string& who,
                 const char* what) {
  std::vector<const void*> ids;
  std::vector<const Codec::Impl*> models;
  for (Stream* s : streams) {
    ids.push_back(s);
    const auto* impl = s ? impl_of(s) : nullptr;
    models.push_back(impl ? &impl->model : nullptr);
  }
  check_batch(ids, models, inputs, who, what);
}

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

  // Checks one push's samples (as push() would) without changing anything.
  void check_push(const float* samples, int64_t n, int64_t stride) const;
  // The encoder's input for k frames of `pending`: rows of this width (the
  // channels, or 1 where they are interleaved into one sequence).
  int64_t input_width() const { return model.config.interleaved() ? 1 : model.config.channels(); }
  int64_t input_rows(int64_t k) const {
    return k * model.config.downsample_rate * model.config.channels() / input_width();
  }
  // Appends the samples to `pending`; returns the whole frames now waiting.
  int64_t buffer(const float* samples, int64_t n, int64_t stride);
  // Codes and hidden states of k frames whose encoder output (k x D rows) is
  // at `out`; drops their samples from `pending`.
  void take_frames(const float* out, int64_t k, std::vector<std::vector<int32_t>>& codes, std::vector<float>& hidden);

 private:
  void encode_frames(const float* x, int64_t k, std::vector<std::vector<int32_t>>& codes, std::vector<float>& hidden);
};

struct DecoderStream::Impl {
  Impl(const Codec::Impl& model, std::optional<int> nq);

  // codes[i * stride + t] for i < nq_in, t < n; appends n * downsample_rate
  // samples per channel, time-major (interleaved), to `audio`.
  void push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride, std::vector<float>& audio);
  // Checks one push's codes (as push() would) without changing anything and
  // returns the codebooks it decodes with; `who` starts the message of a push
  // without frames.
  int check_push(const int32_t* codes, int64_t nq_in, int64_t n, int64_t stride, const std::string& who) const;
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
