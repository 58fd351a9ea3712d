#pragma once
// The loaded model behind moss::Codec: config, weights and the module chain.
// Immutable after construction; all per-call state lives in the callers.
#include <memory>
#include <vector>

#include "io/weight_store.h"
#include "model/quantizer.h"
#include "model/transformer.h"
#include "moss_codec/codec.h"

namespace moss {

struct ChainModule {
  ModuleConfig::Kind kind;
  int patch_size = 1;
  std::unique_ptr<ProjectedTransformer> transformer;
};

struct Codec::Impl {
  CodecConfig config;
  Limits limits;
  bool has_encoder = true, has_decoder = true;
  void require_encoder() const;
  void require_decoder() const;
  std::shared_ptr<WeightStore> weights;  // owns the mappings borrowed weights point into
  std::vector<ChainModule> encoder, decoder;
  std::unique_ptr<ResidualQuantizer> quantizer;

  // Buffers for one row's pass through the chain: a and b alternate as module
  // input and output; reused across rows and calls of one caller.
  struct RowScratch {
    LargeVector<float> a, b;
    TransformerScratch tf;
    QuantizerScratch q;
  };
  // Runs the encoder chain on x (len rows of width `dim`), returning the encoder
  // output (frames x quantizer input_dim) in scratch.a; module outputs appended
  // to `module_outputs` (time-major) when non-null. With `states` (one per
  // module, from new_encoder_states) the rows continue a stream.
  void run_encoder(const float* x, int64_t len, int64_t dim, RowScratch& s,
                   std::vector<std::vector<float>>* module_outputs,
                   std::vector<TransformerState>* states = nullptr) const;
  // The same for `count` streams at once (no module outputs): stream i's
  // lens[i] rows follow one another in x (null: already in s.a), continuing the encoder states
  // *states[i]; each a whole number of frames, so every patch stays within
  // its stream. The encoder output of each stream follows likewise.
  void run_encoder_streams(const float* x, const int64_t* lens, int64_t dim, std::vector<TransformerState>* const* states,
                           int count, RowScratch& s) const;
  // Runs the decoder chain on the quantizer output (frames x output_dim) in
  // scratch.a, leaving samples there (time-major, width 1 when interleaved).
  void run_decoder(int64_t frames, RowScratch& s, std::vector<TransformerState>* states = nullptr) const;
  // The same for `count` streams at once: stream i's frames[i] rows follow
  // one another in scratch.a, continuing the decoder states *states[i] (null
  // only for count 1: an offline pass); its samples follow likewise. Every module reads its weights once
  // for all the streams (ProjectedTransformer::forward_streams).
  void run_decoder_streams(const int64_t* frames, std::vector<TransformerState>* const* states, int count,
                           RowScratch& s) const;

  // Both chains: x (null: the input is already in s.a) as `count` streams'
  // rows, lens[i] each, of width dim.
  void run_chain(const std::vector<ChainModule>& chain, const float* x, const int64_t* lens, int64_t dim,
                 std::vector<TransformerState>* const* states, int count, RowScratch& s,
                 std::vector<std::vector<float>>* module_outputs) const;

  std::vector<TransformerState> new_encoder_states() const { return new_states(encoder); }
  std::vector<TransformerState> new_decoder_states() const { return new_states(decoder); }
  static std::vector<TransformerState> new_states(const std::vector<ChainModule>& chain);

  // Argument rules shared by the offline, chunked and streaming paths.
  int resolve_num_quantizers(std::optional<int> requested, int64_t available) const;
  void check_codes(const int32_t* codes, int64_t nq, int64_t frames, int64_t stride) const;
  // Refuses a call of `batch` rows of `samples` per channel beyond the limits.
  void check_limits(int64_t batch, int64_t samples) const;
};

}  // namespace moss
