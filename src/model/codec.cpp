// moss::Codec: argument checking, batching and the offline encode/decode paths.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <cstring>
#include <omp.h>
#include <sstream>

#include "model/codec_impl.h"
#include "kernels/transpose.h"
#include "model/patch.h"
#include "moss_codec/code_layout.h"
#include "streaming/stream_impl.h"

namespace moss {

namespace fs = std::filesystem;

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "(";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) os << ",";
  os << ")";
  return os.str();
}

// SPEC section 8: chunked paths take a positive duration no longer than the
// context, whose sample count is a whole number of frames.
int64_t chunk_samples(const CodecConfig& c, double chunk) {
  if (!(chunk > 0) || !std::isfinite(chunk)) throw Error("chunk_duration must be > 0, got " + std::to_string(chunk));
  if (chunk > c.context_duration)
    throw Error("chunk_duration (" + std::to_string(chunk) + " s) must be <= causal_transformer_context_duration (" +
                std::to_string(c.context_duration) + " s)");
  const int64_t samples = std::llround(chunk * c.sampling_rate);
  if (samples <= 0) throw Error("chunk_duration " + std::to_string(chunk) + " s is too small: it rounds to 0 samples");
  if (samples % c.downsample_rate != 0)
    throw Error("chunk_duration x sampling_rate = " + std::to_string(samples) +
                " samples must be divisible by downsample_rate " + std::to_string(c.downsample_rate));
  return samples;
}

void set_num_threads(int threads) {
  if (threads < 0) throw Error("threads must be >= 0 (0: the default), got " + std::to_string(threads));
  if (threads > 0) omp_set_num_threads(threads);
}

Codec::Codec(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Codec::~Codec() = default;

const CodecConfig& Codec::config() const { return impl_->config; }
const Limits& Codec::limits() const { return impl_->limits; }
bool Codec::has_encoder() const { return impl_->has_encoder; }
bool Codec::has_decoder() const { return impl_->has_decoder; }

void Codec::Impl::require_encoder() const {
  if (!has_encoder) throw Error("this codec was loaded without its encoder (LoadOptions::parts = Decoder); cannot encode");
}
void Codec::Impl::require_decoder() const {
  if (!has_decoder) throw Error("this codec was loaded without its decoder (LoadOptions::parts = Encoder); cannot decode");
}

void Codec::Impl::check_limits(int64_t batch, int64_t samples) const {
  if (batch > limits.max_batch)
    throw Error("batch of " + std::to_string(batch) + " rows exceeds the limit of " + std::to_string(limits.max_batch) +
                " (LoadOptions::limits.max_batch)");
  const double seconds = double(samples) / config.sampling_rate;
  if (seconds > limits.max_audio_seconds)
    throw Error(std::to_string(seconds) + " s of audio per row exceeds the limit of " +
                std::to_string(limits.max_audio_seconds) + " s (LoadOptions::limits.max_audio_seconds)");
}

namespace {

// Rows longer than this many frames (20 s at 12.5 frames/s) are computed in
// windows of it, so memory stays bounded however long the audio is.
constexpr int64_t kWindowFrames = 250;

std::vector<ChainModule> build_chain(const std::vector<ModuleConfig>& modules, WeightStore& store, const std::string& name) {
  std::vector<ChainModule> chain;
  for (size_t i = 0; i < modules.size(); ++i) {
    ChainModule m;
    m.kind = modules[i].kind;
    m.patch_size = modules[i].patch_size;
    if (m.kind == ModuleConfig::Kind::Transformer)
      m.transformer = std::make_unique<ProjectedTransformer>(modules[i].transformer, store,
                                                             name + "." + std::to_string(i) + ".");
    chain.push_back(std::move(m));
  }
  return chain;
}

}  // namespace

std::shared_ptr<const Codec> Codec::load(const std::string& path_or_id, const LoadOptions& options) {
  // Limits that refuse every input, or none (NaN), are configuration mistakes.
  if (options.limits.max_batch < 1)
    throw Error("LoadOptions::limits.max_batch must be >= 1, got " + std::to_string(options.limits.max_batch));
  if (!(options.limits.max_audio_seconds > 0))
    throw Error("LoadOptions::limits.max_audio_seconds must be > 0, got " +
                std::to_string(options.limits.max_audio_seconds));
  set_num_threads(options.threads);
  const fs::path dir = resolve_checkpoint(path_or_id);
  auto impl = std::make_unique<Impl>();
  impl->config = CodecConfig::load(dir / "config.json");
  impl->limits = options.limits;
  impl->weights = WeightStore::open(dir);
  impl->weights->set_check_finite(options.check_finite);
  impl->weights->set_keep_half(!options.upcast_half_weights && !options.pack_weights);
  impl->weights->set_pack_matrices(options.pack_weights);
  WeightStore& store = *impl->weights;
  impl->has_encoder = options.parts != Parts::Decoder;
  impl->has_decoder = options.parts != Parts::Encoder;
  store.set_validate_only(!impl->has_encoder);
  impl->encoder = build_chain(impl->config.encoder, store, "encoder");
  store.set_validate_only(false);
  impl->quantizer = std::make_unique<ResidualQuantizer>(impl->config.quantizer, store);
  store.set_validate_only(!impl->has_decoder);
  impl->decoder = build_chain(impl->config.decoder, store, "decoder");
  store.set_validate_only(false);
  if (!impl->has_encoder) impl->encoder.clear();
  if (!impl->has_decoder) impl->decoder.clear();
  std::vector<std::string> extra = store.untaken();
  if (!extra.empty()) {
    std::string list;
    for (size_t i = 0; i < extra.size() && i < 20; ++i) list += (i ? ", " : "") + extra[i];
    if (extra.size() > 20) list += ", ... (" + std::to_string(extra.size()) + " in all)";
    throw Error(dir.string() + ": unexpected tensors not used by this config: " + list);
  }
  if (options.lock_weights) store.lock_in_place();
  return std::shared_ptr<const Codec>(new Codec(std::move(impl)));
}

const fs::path& Codec::checkpoint_dir() const { return impl_->weights->dir(); }

Codec::WeightInfo Codec::weight_info() const {
  WeightInfo w;
  // Adds n to the encoder, quantizer or decoder total, by the tensor's name.
  const auto by_part = [](const std::string& name, int64_t n, int64_t& encoder, int64_t& quantizer, int64_t& decoder) {
    (name.rfind("encoder.", 0) == 0 ? encoder : name.rfind("quantizer.", 0) == 0 ? quantizer : decoder) += n;
  };
  for (auto& [name, n] : impl_->weights->element_counts())
    by_part(name, n, w.encoder_parameters, w.quantizer_parameters, w.decoder_parameters);
  for (auto& [name, n] : impl_->weights->held_bytes())
    by_part(name, n, w.encoder_bytes, w.quantizer_bytes, w.decoder_bytes);
  w.file_bytes = impl_->weights->total_bytes();
  w.dtypes = impl_->weights->dtype_summary();
  w.in_place_bytes = impl_->weights->in_place_bytes();
  for (auto& [name, p] : impl_->weights->packed()) {
    w.packed_bytes += p.bytes;
    if (p.in_file) w.packed_in_file_bytes += p.bytes;
  }
  return w;
}

Codec::WeightResidency Codec::weight_residency() const {
  const PageResidency r = impl_->weights->residency();
  return {r.known, r.mapped_bytes, r.resident_bytes, r.huge_page_bytes, r.locked_bytes};
}

void Codec::save_config(const fs::path& path, bool overwrite) const {
  std::error_code ec;
  if (fs::exists(path, ec) && !overwrite) throw Error(path.string() + ": already exists (pass overwrite to replace it)");
  const std::string text = impl_->config.to_json();
  // Write beside the target and rename, so a failure never leaves a torn file.
  const fs::path tmp = path.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text;
    if (!out.flush()) {
      fs::remove(tmp, ec);
      throw Error(path.string() + ": cannot write config");
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(path.string() + ": cannot write config: " + ec.message());
  }
}

std::vector<int64_t> Codec::encoder_module_upsampling() const {
  // Module m's output rate over the code rate = product of later patch sizes.
  const auto& enc = impl_->config.encoder;
  std::vector<int64_t> out(enc.size(), 1);
  int64_t p = 1;
  for (size_t i = enc.size(); i-- > 0;) {
    out[i] = p;
    if (enc[i].kind == ModuleConfig::Kind::Patch) p *= enc[i].patch_size;
  }
  return out;
}

std::vector<TransformerState> Codec::Impl::new_states(const std::vector<ChainModule>& chain) {
  std::vector<TransformerState> states(chain.size());
  for (size_t i = 0; i < chain.size(); ++i)
    if (chain[i].transformer) states[i] = chain[i].transformer->new_state();
  return states;
}

void Codec::Impl::run_encoder(const float* x, int64_t len, int64_t dim, RowScratch& s,
                              std::vector<std::vector<float>>* module_outputs,
                              std::vector<TransformerState>* states) const {
  run_chain(encoder, x, &len, dim, &states, 1, s, module_outputs);
}

void Codec::Impl::run_encoder_streams(const float* x, const int64_t* lens, int64_t dim,
                                      std::vector<TransformerState>* const* states, int count, RowScratch& s) const {
  run_chain(encoder, x, lens, dim, states, count, s, nullptr);
}

void Codec::Impl::run_chain(const std::vector<ChainModule>& chain, const float* x, const int64_t* lens, int64_t dim,
                            std::vector<TransformerState>* const* states, int count, RowScratch& s,
                            std::vector<std::vector<float>>* module_outputs) const {
  std::vector<int64_t> rows(lens, lens + count);
  std::vector<TransformerState*> module_states(static_cast<size_t>(count));
  int64_t len = 0;
  for (int64_t r : rows) len += r;
  if (x) s.a.assign(x, x + len * dim);
  for (size_t i = 0; i < chain.size(); ++i) {
    const ChainModule& m = chain[i];
    if (m.kind == ModuleConfig::Kind::Patch) {
      // Rows are grouped (encoder) or split (decoder) patch_size at a time,
      // within each stream as its rows are whole frames: streams stay in order.
      s.b.resize(size_t(len * dim));
      if (&chain == &encoder) {
        patch_time_major(s.a.data(), len, dim, m.patch_size, s.b.data());
        len /= m.patch_size;
        dim *= m.patch_size;
        for (int64_t& r : rows) r /= m.patch_size;
      } else {
        unpatch_time_major(s.a.data(), len, dim / m.patch_size, m.patch_size, s.b.data());
        len *= m.patch_size;
        dim /= m.patch_size;
        for (int64_t& r : rows) r *= m.patch_size;
      }
    } else {
      for (int k = 0; k < count; ++k) module_states[size_t(k)] = states[k] ? &(*states[k])[i] : nullptr;
      s.b.resize(size_t(len * m.transformer->output_dim()));
      if (count == 1) m.transformer->forward(s.a.data(), len, s.b.data(), module_states[0], s.tf);  // offline too
      else m.transformer->forward_streams(s.a.data(), rows.data(), module_states.data(), count, s.b.data(), s.tf);
      dim = m.transformer->output_dim();
    }
    std::swap(s.a, s.b);
    if (module_outputs) module_outputs->emplace_back(s.a.begin(), s.a.begin() + len * dim);
  }
}

int Codec::Impl::resolve_num_quantizers(std::optional<int> nq, int64_t available) const {
  const int configured = config.quantizer.num_quantizers;
  if (!nq) return int(available);
  if (*nq < 1 || *nq > configured)
    throw Error("num_quantizers = " + std::to_string(*nq) + " is outside 1.." + std::to_string(configured));
  if (*nq > available)
    throw Error("num_quantizers = " + std::to_string(*nq) + " exceeds the " + std::to_string(available) +
                " codebooks present in the codes");
  return *nq;
}

void Codec::Impl::check_codes(const int32_t* codes, int64_t nq, int64_t frames, int64_t stride) const {
  const int64_t K = config.quantizer.codebook_size;
  for (int64_t i = 0; i < nq; ++i)
    for (int64_t t = 0; t < frames; ++t) {
      const int32_t v = codes[i * stride + t];
      if (v < 0 || v >= K)
        throw Error("code " + std::to_string(v) + " at [codebook " + std::to_string(i) + ", frame " + std::to_string(t) +
                    "] is outside the codebook [0, " + std::to_string(K) + ")");
    }
}

void Codec::Impl::run_decoder(int64_t len, RowScratch& s, std::vector<TransformerState>* states) const {
  run_chain(decoder, nullptr, &len, config.quantizer.output_dim, &states, 1, s, nullptr);
}

void Codec::Impl::run_decoder_streams(const int64_t* frames, std::vector<TransformerState>* const* states, int count,
                                      RowScratch& s) const {
  run_chain(decoder, nullptr, frames, config.quantizer.output_dim, states, count, s, nullptr);
}

namespace {

std::vector<int64_t> resolve_lengths(const std::optional<std::vector<int64_t>>& lengths,
                                     const std::optional<BasicTensor<int64_t>>& mask, int64_t B, int64_t T,
                                     const char* unit) {
  if (lengths && mask) throw Error("pass either lengths or padding_mask, not both");
  std::vector<int64_t> out(size_t(B), T);
  if (mask) {
    if (mask->shape != std::vector<int64_t>{B, T})
      throw Error("padding_mask has shape " + shape_to_string(mask->shape) + ", expected (batch, " + unit + ") = " +
                  shape_to_string({B, T}));
    for (int64_t b = 0; b < B; ++b) {
      int64_t sum = 0;
      for (int64_t t = 0; t < T; ++t) {
        int64_t v = mask->data[size_t(b * T + t)];
        if (v != 0 && v != 1)
          throw Error("padding_mask[" + std::to_string(b) + ", " + std::to_string(t) + "] is " + std::to_string(v) +
                      "; a padding mask holds only 0 and 1");
        sum += v;
      }
      out[size_t(b)] = sum;
    }
  }
  if (lengths) {
    if (int64_t(lengths->size()) != B)
      throw Error("lengths has " + std::to_string(lengths->size()) + " entries for a batch of " + std::to_string(B));
    for (int64_t b = 0; b < B; ++b) {
      int64_t v = (*lengths)[size_t(b)];
      if (v < 0 || v > T)
        throw Error("lengths[" + std::to_string(b) + "] = " + std::to_string(v) + " is outside 0.." + std::to_string(T) +
                    " (" + unit + " in the tensor)");
    }
    out = *lengths;
  }
  return out;
}

void check_chunk_duration(const CodecConfig& c, double chunk, int64_t batch) {
  chunk_samples(c, chunk);
  if (batch != 1) throw Error("chunked encode/decode takes batch size 1, got " + std::to_string(batch));
}

}  // namespace

namespace {

// Encodes batch row b, whose channels start at `row` with stride T, through
// an EncoderStream in pushes of `push` samples, writing codes and hidden states
// into `res`; with `flush`, the zero-padded partial frame too. Returns the
// frames written.
int64_t encode_row_streamed(const Codec::Impl& impl, int nq, const float* row, int64_t T, int64_t b, int64_t L,
                            int64_t push, bool flush, EncodeResult& res) {
  const int64_t B = res.codes.dim(1), Tc = res.codes.dim(2), Dz = res.hidden_states.dim(1);
  EncoderStream::Impl stream(impl, nq);
  std::vector<std::vector<int32_t>> codes(static_cast<size_t>(nq));
  std::vector<float> hidden;
  for (int64_t at = 0; at < L; at += push) stream.push(row + at, std::min(push, L - at), T, codes, hidden);
  if (flush) stream.flush(codes, hidden);
  const int64_t frames = int64_t(codes[0].size());
  for (int i = 0; i < nq; ++i) std::copy(codes[size_t(i)].begin(), codes[size_t(i)].end(), res.codes.data.begin() + (i * B + b) * Tc);
  transpose(hidden.data(), frames, Dz, Dz, res.hidden_states.data.data() + b * Dz * Tc, Tc);
  return frames;
}

// Decodes the first `frames` frames of row b of canonical codes (nq, B, T)
// through a DecoderStream in pushes of `push` frames into res.audio (B, C, N).
void decode_row_streamed(const Codec::Impl& impl, int nq, const CodeTensor& codes, int64_t b, int64_t frames, int64_t push,
                         DecodeResult& res) {
  const int64_t B = codes.dim(1), T = codes.dim(2), C = res.audio.dim(1), N = res.audio.dim(2);
  DecoderStream::Impl stream(impl, nq);
  std::vector<float> interleaved;
  for (int64_t at = 0; at < frames; at += push)
    stream.push(codes.data.data() + b * T + at, nq, std::min(push, frames - at), B * T, interleaved);
  transpose(interleaved.data(), int64_t(interleaved.size()) / C, C, C, res.audio.data.data() + b * C * N, N);
}

}  // namespace

EncodeResult Codec::encode(const Tensor& audio, const EncodeOptions& opt) const {
  impl_->require_encoder();
  const CodecConfig& c = impl_->config;
  const int64_t C = c.channels();
  // Accept (B, C, T); single-channel checkpoints also take (B, T) and (T).
  int64_t B, Cin, T;
  if (audio.rank() == 3) {
    B = audio.dim(0), Cin = audio.dim(1), T = audio.dim(2);
  } else if (audio.rank() == 2 && C == 1) {
    B = audio.dim(0), Cin = 1, T = audio.dim(1);
  } else if (audio.rank() == 1 && C == 1) {
    B = 1, Cin = 1, T = audio.dim(0);
  } else {
    throw Error("audio has shape " + shape_to_string(audio.shape) + "; expected (batch, " + std::to_string(C) +
                ", samples)" + (C == 1 ? ", (batch, samples) or (samples)" : ""));
  }
  if (int64_t(audio.data.size()) != B * Cin * T)
    throw Error("audio holds " + std::to_string(audio.data.size()) + " values but its shape " +
                shape_to_string(audio.shape) + " needs " + std::to_string(B * Cin * T));
  if (B < 1) throw Error("audio batch is empty");
  if (Cin != C)
    throw Error("audio has " + std::to_string(Cin) + " channels; this checkpoint takes " + std::to_string(C));
  impl_->check_limits(B, T);
  const int nq = impl_->resolve_num_quantizers(opt.num_quantizers, c.quantizer.num_quantizers);
  std::vector<int64_t> lengths = resolve_lengths(opt.lengths, opt.padding_mask, B, T, "samples");
  if (opt.chunk_duration) check_chunk_duration(c, *opt.chunk_duration, B);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t ch = 0; ch < C; ++ch) {
      const float* row = audio.data.data() + (b * C + ch) * T;
      for (int64_t n = 0; n < lengths[size_t(b)]; ++n)
        if (!std::isfinite(row[n]))
          throw Error("audio[" + std::to_string(b) + ", " + std::to_string(ch) + ", " + std::to_string(n) + "] is " +
                      (std::isnan(row[n]) ? "NaN" : "infinite") + "; audio must be finite");
    }

  const int64_t ds = c.downsample_rate;
  const int64_t Tc = (T + ds - 1) / ds;  // code columns, as the reference pads to whole frames
  const int64_t Dz = c.quantizer.input_dim;
  EncodeResult res;
  res.codes = CodeTensor({int64_t(nq), B, Tc});
  res.code_lengths.resize(size_t(B));
  res.hidden_states = Tensor({B, Dz, Tc});
  const std::vector<int64_t> ups = encoder_module_upsampling();
  std::vector<int64_t> module_widths;
  if (opt.return_module_outputs) {
    int64_t width = c.interleaved() ? 1 : C;
    for (size_t m = 0; m < c.encoder.size(); ++m) {
      if (c.encoder[m].kind == ModuleConfig::Kind::Patch) width *= c.encoder[m].patch_size;
      else width = c.encoder[m].transformer.output_dimension;
      module_widths.push_back(width);
      res.module_outputs.emplace_back(std::vector<int64_t>{B, width, Tc * ups[m]});
    }
  }

  if (opt.chunk_duration) {
    // Chunked encode goes through the streaming path; it keeps the whole frames
    // of each chunk, which concatenated are exactly the offline frames.
    if (opt.return_module_outputs) throw Error("return_module_outputs is not available with chunk_duration");
    const int64_t chunk = std::llround(*opt.chunk_duration * c.sampling_rate);
    res.code_lengths[0] = encode_row_streamed(*impl_, nq, audio.data.data(), T, 0, lengths[0], chunk, /*flush=*/false, res);
    return res;
  }

  Impl::RowScratch s;
  std::vector<float> x;
  std::vector<int32_t> codes;
  for (int64_t b = 0; b < B; ++b) {
    // Only whole frames count (SPEC section 3), but like the reference the
    // trailing partial frame is computed on zero padding; it lands past the
    // row's code length (and equals what EncoderStream::flush returns).
    const int64_t L = lengths[size_t(b)], valid = L / ds, frames = (L + ds - 1) / ds;
    res.code_lengths[size_t(b)] = valid;
    if (frames == 0) continue;
    if (frames > kWindowFrames && !opt.return_module_outputs) {
      // Long rows go through the streaming path in exact windows: the same
      // result, with activations bounded by the window instead of the row.
      encode_row_streamed(*impl_, nq, audio.data.data() + b * C * T, T, b, L, kWindowFrames * ds, /*flush=*/true, res);
      continue;
    }
    const int64_t samples = frames * ds;
    // Time-major input: interleaved L0 R0 L1 R1 ... (width 1), or C channels wide.
    x.assign(size_t(samples * C), 0.0f);
    transpose(audio.data.data() + b * C * T, C, L, T, x.data(), C);
    std::vector<std::vector<float>> mods;
    impl_->run_encoder(x.data(), c.interleaved() ? samples * C : samples, c.interleaved() ? 1 : C, s,
                       opt.return_module_outputs ? &mods : nullptr);
    // Hidden states (B, D, T'), channel-first.
    transpose(s.a.data(), frames, Dz, Dz, res.hidden_states.data.data() + b * Dz * Tc, Tc);
    for (size_t m = 0; m < mods.size(); ++m) {
      const int64_t W = module_widths[m], Lm = Tc * ups[m];
      transpose(mods[m].data(), frames * ups[m], W, W, res.module_outputs[m].data.data() + b * W * Lm, Lm);
    }
    codes.resize(size_t(nq * frames));
    impl_->quantizer->encode(s.a.data(), frames, nq, codes.data(), frames, s.q);
    for (int i = 0; i < nq; ++i)
      std::memcpy(res.codes.data.data() + (i * B + b) * Tc, codes.data() + i * frames, sizeof(int32_t) * size_t(frames));
  }
  return res;
}

// Resolves the layout of `in` and returns the canonical (R, B, T) codes: `in`
// itself when already canonical with exactly R codebooks, else a copy in `copy`.
static const CodeTensor& canonical_codes(const CodeTensor& in, int Q, std::optional<int> requested, CodeTensor& copy,
                                         CodeLayout* layout_out = nullptr) {
  const CodeLayout l = resolve_code_layout(in.shape, Q, requested);
  if (layout_out) *layout_out = l;
  const int64_t R = requested.value_or(Q);
  if (l.nq_first && l.nq == R && in.rank() == 3 && int64_t(in.data.size()) == in.numel()) return in;
  copy = to_canonical(in, l, R);
  return copy;
}

DecodeResult Codec::decode(const CodeTensor& input, const DecodeOptions& opt) const {
  impl_->require_decoder();
  const CodecConfig& c = impl_->config;
  CodeTensor copy;
  const CodeTensor& codes = canonical_codes(input, c.quantizer.num_quantizers, opt.num_quantizers, copy);
  const int64_t B = codes.dim(1), T = codes.dim(2);
  const int nq = int(codes.dim(0));
  if (B < 1) throw Error("codes batch is empty");
  impl_->check_limits(B, T * c.downsample_rate);
  std::vector<int64_t> lengths = resolve_lengths(opt.lengths, opt.padding_mask, B, T, "frames");
  if (opt.chunk_duration) check_chunk_duration(c, *opt.chunk_duration, B);
  for (int64_t b = 0; b < B; ++b) {
    try {
      impl_->check_codes(codes.data.data() + b * T, nq, lengths[size_t(b)], B * T);
    } catch (const Error& e) {
      throw Error(std::string(e.what()) + " (batch row " + std::to_string(b) + ")");
    }
  }

  const int64_t C = c.channels(), ds = c.downsample_rate, N = T * ds;
  DecodeResult res;
  res.audio = Tensor({B, C, N});
  res.audio_lengths.resize(size_t(B));
  if (opt.chunk_duration) {
    const int64_t chunk = std::llround(*opt.chunk_duration * c.sampling_rate) / ds;
    res.audio_lengths[0] = lengths[0] * ds;
    decode_row_streamed(*impl_, nq, codes, 0, lengths[0], chunk, res);
    return res;
  }
  Impl::RowScratch s;
  std::vector<int32_t> row_codes;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t frames = lengths[size_t(b)];
    res.audio_lengths[size_t(b)] = frames * ds;
    if (frames == 0) continue;
    if (frames > kWindowFrames) {  // exact windows through the streaming path, as in encode
      decode_row_streamed(*impl_, nq, codes, b, frames, kWindowFrames, res);
      continue;
    }
    row_codes.resize(size_t(nq * frames));
    for (int i = 0; i < nq; ++i)
      std::memcpy(row_codes.data() + i * frames, codes.data.data() + (i * B + b) * T, sizeof(int32_t) * size_t(frames));
    s.a.resize(size_t(frames * c.quantizer.output_dim));
    impl_->quantizer->decode(row_codes.data(), frames, frames, nq, s.a.data(), s.q);
    impl_->run_decoder(frames, s);
    // Time-major samples (interleaved when stereo) -> (C, N) channel-first.
    transpose(s.a.data(), frames * ds, C, C, res.audio.data.data() + b * C * N, N);
  }
  return res;
}

void Codec::streaming_decode(const CodeTensor& codes, int64_t chunk_tokens, const std::function<void(Tensor&&)>& on_chunk,
                             std::optional<int> num_quantizers) const {
  impl_->require_decoder();
  if (chunk_tokens <= 0) throw Error("streaming_decode: chunk_tokens must be > 0, got " + std::to_string(chunk_tokens));
  const CodecConfig& c = impl_->config;
  CodeTensor copy;
  CodeLayout layout;
  const CodeTensor& canon = canonical_codes(codes, c.quantizer.num_quantizers, num_quantizers, copy, &layout);
  if (layout.batch != 1)
    throw Error("streaming_decode takes batch size 1; codes of shape " + shape_to_string(codes.shape) +
                " resolve to batch size " + std::to_string(layout.batch));
  const int nq = int(canon.dim(0));
  const int64_t T = layout.frames;
  impl_->check_limits(1, T * c.downsample_rate);
  DecoderStream::Impl stream(*impl_, nq);
  const int64_t C = c.channels();
  std::vector<float> interleaved;
  for (int64_t start = 0; start < T; start += chunk_tokens) {
    interleaved.clear();
    stream.push(canon.data.data() + start, nq, std::min(chunk_tokens, T - start), T, interleaved);
    const int64_t n = int64_t(interleaved.size()) / C;
    Tensor chunk({1, C, n});
    transpose(interleaved.data(), n, C, C, chunk.data.data(), n);
    on_chunk(std::move(chunk));
  }
}

EncodeResult Codec::batch_encode(const std::vector<Tensor>& wavs, std::optional<int> num_quantizers) const {
  if (wavs.empty()) throw Error("batch_encode: the list of waveforms is empty");
  const int64_t C = impl_->config.channels();
  int64_t T = 0;
  for (size_t i = 0; i < wavs.size(); ++i) {
    const Tensor& w = wavs[i];
    const bool ok = (w.rank() == 1 && C == 1) || (w.rank() == 2 && w.dim(0) == C);
    if (!ok || int64_t(w.data.size()) != w.numel())
      throw Error("batch_encode: waveform " + std::to_string(i) + " has shape " + shape_to_string(w.shape) +
                  "; expected " + (C == 1 ? "(samples) or (1, samples)" : "(" + std::to_string(C) + ", samples)"));
    T = std::max(T, w.shape.back());
  }
  const int64_t B = int64_t(wavs.size());
  Tensor batch({B, C, T});
  EncodeOptions opt;
  opt.lengths = std::vector<int64_t>(size_t(B));
  opt.num_quantizers = num_quantizers;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t L = wavs[size_t(b)].shape.back();
    (*opt.lengths)[size_t(b)] = L;
    for (int64_t ch = 0; ch < C; ++ch)
      std::memcpy(batch.data.data() + (b * C + ch) * T, wavs[size_t(b)].data.data() + ch * L, sizeof(float) * size_t(L));
  }
  return encode(batch, opt);
}

DecodeResult Codec::batch_decode(const std::vector<CodeTensor>& list, std::optional<int> num_quantizers) const {
  if (list.empty()) throw Error("batch_decode: the list of codes is empty");
  const int Q = impl_->config.quantizer.num_quantizers;
  const int nq = num_quantizers.value_or(Q);
  std::vector<CodeTensor> entries;
  int64_t T = 0;
  for (size_t i = 0; i < list.size(); ++i) {
    CodeLayout layout;
    CodeTensor copy;
    try {
      const CodeTensor& canon = canonical_codes(list[i], Q, num_quantizers, copy, &layout);
      if (layout.batch != 1)
        throw Error("resolves to batch size " + std::to_string(layout.batch) +
                    "; each batch_decode entry must be one sequence (batch size 1)");
      entries.push_back(CodeTensor({nq, layout.frames}, &canon == &copy ? std::move(copy.data) : canon.data));
    } catch (const Error& e) {
      throw Error("batch_decode: entry " + std::to_string(i) + " (shape " + shape_to_string(list[i].shape) + "): " + e.what());
    }
    T = std::max(T, layout.frames);
  }
  const int64_t B = int64_t(list.size());
  CodeTensor codes({int64_t(nq), B, T});
  DecodeOptions opt;
  opt.num_quantizers = nq;  // canonical (nq, B, T) with R = nq always resolves NQ-first
  opt.lengths = std::vector<int64_t>(size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    const CodeTensor& e = entries[size_t(b)];
    const int64_t L = e.dim(1);
    (*opt.lengths)[size_t(b)] = L;
    for (int i = 0; i < nq; ++i)
      std::memcpy(codes.data.data() + (i * B + b) * T, e.data.data() + i * L, sizeof(int32_t) * size_t(L));
  }
  return decode(codes, opt);
}

}  // namespace moss
