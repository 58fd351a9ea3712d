#pragma once
// Incremental, exact streaming. A stream object serves one stream on a shared,
// immutable Codec: it owns the per-layer attention windows (the last
// context - 1 keys of every layer) and its scratch buffers, so any number of
// streams may run at once from different threads. For every partition of the
// input into pushes, the concatenated outputs equal the offline encode/decode
// of the whole input.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "moss_codec/codec.h"

namespace moss {

struct StreamStats {
  int64_t frames = 0;            // frames produced (encoder) or consumed (decoder) so far
  int64_t max_cached_keys = 0;   // largest number of keys any layer holds right now
  int64_t cache_bytes = 0;       // memory held by all attention windows
};

struct EncodedChunk {
  CodeTensor codes;     // (nq, k): codes of the k frames completed by this push
  Tensor hidden_states; // (D, k): encoder output of those frames
};

class EncoderStream {
 public:
  // num_quantizers: 1..configured, default all.
  explicit EncoderStream(std::shared_ptr<const Codec> codec, std::optional<int> num_quantizers = {});
  ~EncoderStream();
  EncoderStream(EncoderStream&&) noexcept;
  EncoderStream& operator=(EncoderStream&&) noexcept;

  // samples: (C, n) (or (n) for single-channel checkpoints), any n >= 0.
  // Returns the codes of every frame completed so far; the rest is buffered.
  EncodedChunk push(const Tensor& samples);
  // Pushes samples[i] into *streams[i] for every i, encoding the frames
  // they complete in one pass over the encoder weights; returns each
  // stream's chunk as its own push would (equal within float32 rounding).
  // The rules of DecoderStream::push_batch apply: distinct streams of one
  // Codec, at most limits.max_batch of them, everything checked first.
  static std::vector<EncodedChunk> push_batch(const std::vector<EncoderStream*>& streams,
                                              const std::vector<Tensor>& samples);
  // Zero-pads buffered samples (if any) to one last frame and returns its codes,
  // as offline encode of the zero-padded input computes it. Ends the stream
  // until reset().
  EncodedChunk flush();
  void reset();
  // Samples per channel waiting for a whole frame.
  int64_t buffered_samples() const;
  StreamStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

class DecoderStream {
 public:
  // num_quantizers: decode with the first num_quantizers codebooks of every
  // push; default: all codebooks each push carries.
  explicit DecoderStream(std::shared_ptr<const Codec> codec, std::optional<int> num_quantizers = {});
  ~DecoderStream();
  DecoderStream(DecoderStream&&) noexcept;
  DecoderStream& operator=(DecoderStream&&) noexcept;

  // codes: (nq, n) with n >= 1 new frames. Returns their audio (C, n * downsample_rate).
  Tensor push(const CodeTensor& codes);
  // Pushes codes[i] into *streams[i] for every i in one pass over the decoder
  // weights, and returns each stream's audio as its own push would (equal
  // within float32 rounding: a product of more rows may take another kernel).
  // A streaming step reads every decoder weight whatever the number of rows,
  // so a server decoding many streams at once pays about one step's reads
  // for all of them instead of one each. The streams must be distinct and
  // share one Codec; each may be at its own position, and push its own
  // number of frames and codebooks. Everything is checked before any stream
  // changes; the first stream's buffers are used for the batch.
  static std::vector<Tensor> push_batch(const std::vector<DecoderStream*>& streams,
                                        const std::vector<CodeTensor>& codes);
  void reset();
  StreamStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace moss
