#pragma once
// moss-codec public API: load a MOSS Audio Tokenizer checkpoint once, then
// encode audio to codes and decode codes to audio from any number of threads.
//
//   auto codec = moss::Codec::load("path/to/checkpoint");
//   moss::EncodeResult enc = codec->encode(audio);        // audio (B, C, T)
//   moss::DecodeResult dec = codec->decode(enc.codes);    // codes (nq, B, T')
//
// A Codec is immutable after load; every call keeps its state on its own stack,
// so one loaded model serves many threads.
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "moss_codec/config.h"
#include "moss_codec/error.h"
#include "moss_codec/tensor.h"

namespace moss {

// Per-call resource limits: a call beyond them is an error before anything is
// allocated, not an out-of-memory kill.
struct Limits {
  int64_t max_batch = 64;             // rows per encode/decode call
  double max_audio_seconds = 4 * 3600;  // per row, at the model's sampling rate
};

enum class Parts { All, Encoder, Decoder };

struct LoadOptions {
  // Encoder-only or decoder-only loading: the other half's tensors are still
  // checked (present, right shapes) from the file headers, but never read, so
  // they cost neither load time nor memory. The quantizer is always loaded.
  Parts parts = Parts::All;
  // Threads used by matrix products and attention (0: library default).
  int threads = 0;
  Limits limits;
  // Scan every weight for NaN/Inf at load (one pass over the weights).
  bool check_finite = true;
  // The transformers' matrices of a bf16/f16 checkpoint are used in place,
  // widened to float32 as they are read: results equal those of upcast
  // weights, in half the memory, and streaming steps read half the bytes;
  // offline products widen each matrix first (a few % slower). True upcasts
  // them to float32 at load instead (twice the memory).
  bool upcast_half_weights = false;
  // Offline throughput mode: the transformers' matrices are copied at load
  // into oneDNN's blocked layout (16-bit ones upcast first), so no product
  // repacks weight blocks as it runs: v1 offline encode/decode 7-10% faster
  // here, results identical wherever the plain weights also go through
  // oneDNN's matmul (17+ rows a product). Streaming steps read the blocked
  // copy with the few-row kernels, as whole strips (on Zen 4 a v1 decode step
  // 70-71 ms against 71-75 for the plain weights at a 53-57 GB/s read probe;
  // results within float32 rounding of theirs). The cost is the load: every matrix is
  // copied into fresh memory (6-23 s for the 7 GB v1 checkpoint in this VM,
  // where first touch of new memory is slow; the copy itself runs at ~9
  // GB/s). The mapped plain pages are dropped, so memory stays about the
  // float32 weights. Without AVX-512 (no blocked oneDNN kernel) it changes
  // nothing. save_packed() writes the copy to disk: loading that checkpoint
  // maps it instead (no copy, no option needed).
  bool pack_weights = false;
  // Lock the mapped weights that the model reads in place in memory
  // (mlock(2), in 2 MiB-aligned extents so that the mapping's 2 MiB pages
  // stay whole) for the codec's lifetime, so that reclaim under memory
  // pressure cannot drop them from the page cache or split their pages while
  // the codec sits idle (the next call would read them from disk, and
  // streaming through 4 KiB pages ran up to 2x slower here). With the file
  // cached it costs nothing measurable (v1, 7.1 GB: load 0.43-0.49 s against
  // 0.42 s). Needs a locked-memory limit of the weights' size (ulimit -l,
  // LimitMEMLOCK=, or CAP_IPC_LOCK), else load throws naming the file and
  // the limit. Copies made at load (upcasts, packing, weight-norm merges)
  // are process memory and are not locked. See README, Page cache.
  bool lock_weights = false;
};

struct EncodeOptions {
  // Valid samples per row (per channel); or a (B, T) 0/1 padding mask whose row
  // sums are the lengths. Neither: every row is fully valid.
  std::optional<std::vector<int64_t>> lengths;
  std::optional<BasicTensor<int64_t>> padding_mask;
  // 1..configured codebooks; default all.
  std::optional<int> num_quantizers;
  // Chunked (streaming) encode of `chunk_duration` seconds per chunk; batch 1.
  std::optional<double> chunk_duration;
  // Also return the output of every encoder module (costs memory).
  bool return_module_outputs = false;
};

struct EncodeResult {
  CodeTensor codes;                   // (nq, B, T'), T' = ceil(T / downsample_rate)
  std::vector<int64_t> code_lengths;  // (B): floor(length / downsample_rate)
  Tensor hidden_states;               // (B, D, T'): encoder output before the quantizer
  std::vector<Tensor> module_outputs; // (B, D_m, L_m) per encoder module, if requested
};

struct DecodeOptions {
  // Valid frames per row, or a (B, T) 0/1 padding mask. Neither: all frames valid.
  std::optional<std::vector<int64_t>> lengths;
  std::optional<BasicTensor<int64_t>> padding_mask;
  // Decode with the first num_quantizers codebooks (prefix decode).
  std::optional<int> num_quantizers;
  // Chunked decode of `chunk_duration` seconds per chunk; batch 1.
  std::optional<double> chunk_duration;
};

struct DecodeResult {
  Tensor audio;                        // (B, C, N), N = T * downsample_rate
  std::vector<int64_t> audio_lengths;  // (B): code length * downsample_rate
};

// Finds the codec checkpoint folder for `path_or_id`: a checkpoint folder; a
// TTS checkpoint folder whose codec sits in audio_tokenizer/,
// moss_audio_tokenizer/ or codec/ (first that holds a config with encoder and
// decoder module lists, and weights); or a repo id owner/name in the local
// Hugging Face cache ($HF_HOME/hub, default ~/.cache/huggingface/hub, snapshot
// named by refs/main). The error says everywhere it looked.
std::filesystem::path resolve_checkpoint(const std::string& path_or_id);

class Codec {
 public:
  // Loads the checkpoint resolve_checkpoint(path_or_id) finds (config.json +
  // safetensors: single file, sharded index, or every *.safetensors in the
  // folder). Throws moss::Error naming what is wrong.
  static std::shared_ptr<const Codec> load(const std::string& path_or_id, const LoadOptions& options = {});
  static std::shared_ptr<const Codec> load(const std::filesystem::path& dir, const LoadOptions& options = {}) {
    return load(dir.string(), options);
  }
  static std::shared_ptr<const Codec> load(const char* path_or_id, const LoadOptions& options = {}) {
    return load(std::string(path_or_id), options);
  }

  // The folder the weights were loaded from.
  const std::filesystem::path& checkpoint_dir() const;

  struct WeightInfo {
    int64_t encoder_parameters = 0, quantizer_parameters = 0, decoder_parameters = 0;
    int64_t file_bytes = 0;    // bytes of tensor data in the checkpoint files
    // Bytes of the loaded parts' weights as held in memory: float32, or 16-bit
    // matrices used in place. decoder_bytes is what a streaming decode step reads.
    int64_t encoder_bytes = 0, quantizer_bytes = 0, decoder_bytes = 0;
    std::string dtypes;        // e.g. "F32" or "BF16+F32"
    // Bytes of matrices held in oneDNN's blocked layout (LoadOptions::pack_weights,
    // or a packed checkpoint; 0 without either, or where this CPU has no
    // blocked kernel).
    int64_t packed_bytes = 0;
    // Of those, the bytes used in place from a packed checkpoint's mapping.
    int64_t packed_in_file_bytes = 0;
    // Bytes of the mapped files that the model reads as stored (float32 in
    // place, 16-bit matrices kept in place, blocked matrices of a packed
    // checkpoint): what LoadOptions::lock_weights locks. The rest was copied
    // or converted at load (weight-norm merges, codebooks, upcasts, packing).
    int64_t in_place_bytes = 0;
  };
  WeightInfo weight_info() const;

  // How the checkpoint files' mappings sit in memory right now, from the
  // kernel (Linux /proc/self/smaps; known = false elsewhere). Streaming reads
  // every decoder weight per step, and with 4 KiB pages instead of 2 MiB
  // ones it was 1.5-2.2x slower here: a low huge_page_bytes share explains
  // slow figures (see README, Page cache).
  struct WeightResidency {
    bool known = false;
    int64_t mapped_bytes = 0, resident_bytes = 0, huge_page_bytes = 0;
    int64_t locked_bytes = 0;  // locked in memory (LoadOptions::lock_weights)
  };
  WeightResidency weight_residency() const;

  // Writes the config as canonical JSON (model_type moss_audio_tokenizer, sorted
  // keys, only meaningful fields) that loads back to an identical model. An
  // existing file is replaced only with overwrite = true.
  void save_config(const std::filesystem::path& path, bool overwrite = false) const;

  // Writes a packed checkpoint to folder `dir` (created if needed): its
  // config.json, and a model.safetensors holding every tensor of this
  // checkpoint as stored, except that each transformer matrix is stored in
  // oneDNN's blocked layout (1-D float32 tensors named <matrix> +
  // ".onednn_BA16a64b", page-aligned). Loading it maps those in place on
  // CPUs whose matmul reads that layout (AVX-512), which gives
  // LoadOptions::pack_weights' speed with the load time of a mapped
  // checkpoint; other CPUs unpack it to the plain weights at load (exact
  // values). Other readers (PyTorch) do not know the blocked tensors. Needs
  // a codec loaded whole (Parts::All) with pack_weights on a CPU that packs
  // into that layout; refuses to write into the folder it was loaded from,
  // and replaces existing files only with overwrite = true.
  void save_packed(const std::filesystem::path& dir, bool overwrite = false) const;

  ~Codec();
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  const CodecConfig& config() const;
  const Limits& limits() const;
  bool has_encoder() const;
  bool has_decoder() const;

  // audio: (B, C, T), or (B, T) / (T) for single-channel checkpoints.
  EncodeResult encode(const Tensor& audio, const EncodeOptions& options = {}) const;
  // codes: (nq, B, T) or (nq, T).
  DecodeResult decode(const CodeTensor& codes, const DecodeOptions& options = {}) const;

  // Each waveform is (T_i) or (C, T_i); they are right-padded into one batch.
  EncodeResult batch_encode(const std::vector<Tensor>& waveforms, std::optional<int> num_quantizers = {}) const;
  // Each entry is (nq_i, T_i). Without num_quantizers all nq_i must be equal;
  // with it, every nq_i must be at least num_quantizers.
  DecodeResult batch_decode(const std::vector<CodeTensor>& codes, std::optional<int> num_quantizers = {}) const;

  // Decodes batch-1 codes (nq, T) or (nq, 1, T) chunk_tokens frames at a time
  // through a DecoderStream, handing each chunk's audio (1, C, n) to on_chunk as
  // soon as it is computed. The concatenation equals decode(codes).
  void streaming_decode(const CodeTensor& codes, int64_t chunk_tokens, const std::function<void(Tensor&&)>& on_chunk,
                        std::optional<int> num_quantizers = {}) const;

  // Encoder modules' frame-rate multiple of the code rate (for module outputs).
  std::vector<int64_t> encoder_module_upsampling() const;

  struct Impl;
  const Impl& impl() const { return *impl_; }

 private:
  explicit Codec(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Samples per channel in one chunk of `chunk_duration` seconds, checked by the
// published rules: > 0, <= causal_transformer_context_duration, and a whole
// number of frames (round(chunk_duration x sampling_rate) % downsample_rate == 0).
int64_t chunk_samples(const CodecConfig& config, double chunk_duration);

// Sets the number of threads used by all codecs (0: hardware default).
void set_num_threads(int threads);

}  // namespace moss
