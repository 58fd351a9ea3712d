// The Python module `moss_codec`: the C++ API with NumPy arrays in and out.
//
// Inputs are copied into the library's tensors (after their dtypes are
// checked: audio must be floating point, codes integers that fit the
// codebook), outputs are handed to NumPy without a copy, and every call that
// computes releases the GIL, so Python threads can share one Codec the way
// C++ threads do. moss::Error becomes moss_codec.Error (a ValueError).
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "moss_codec/audio.h"
#include "moss_codec/codec.h"
#include "moss_codec/error.h"
#include "moss_codec/streaming.h"

namespace py = pybind11;
using moss::CodeTensor;
using moss::Error;
using moss::Tensor;

namespace {

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

std::string dtype_name(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string repr_of(const py::object& o) { return py::repr(o).cast<std::string>(); }

// Audio: any floating-point array, converted to float32. Integer PCM is
// refused rather than silently read as samples of +-32767.
Tensor to_audio(const py::handle& obj, const char* what) {
  py::array a = py::array::ensure(obj);
  if (!a) throw Error(std::string(what) + ": expected a NumPy array of floats");
  const char kind = a.dtype().kind();
  if (kind != 'f')
    throw Error(std::string(what) + ": expected floating-point samples, got dtype " + dtype_name(a) +
                (kind == 'i' || kind == 'u' ? " (scale integer PCM to [-1, 1] first)" : ""));
  auto f = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  Tensor t(shape_of(f));
  std::copy(f.data(), f.data() + f.size(), t.data.begin());
  return t;
}

// Integers of any width. Values that do not fit int32 are reported here, as
// the library reports codes outside the codebook, instead of wrapping into it.
std::vector<int64_t> to_int64(const py::array& a, const char* what, std::vector<int64_t>* shape) {
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u')
    throw Error(std::string(what) + ": expected an integer array, got dtype " + dtype_name(a));
  if (kind == 'u' && a.dtype().itemsize() == 8) {
    auto u = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>::ensure(a);
    for (py::ssize_t i = 0; i < u.size(); ++i)
      if (u.data()[i] > uint64_t(std::numeric_limits<int64_t>::max()))
        throw Error(std::string(what) + ": value " + std::to_string(u.data()[i]) + " at flat index " +
                    std::to_string(i) + " is out of range");
  }
  auto v = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(a);
  *shape = shape_of(v);
  return std::vector<int64_t>(v.data(), v.data() + v.size());
}

CodeTensor to_codes(const py::handle& obj, const char* what) {
  py::array a = py::array::ensure(obj);
  if (!a) throw Error(std::string(what) + ": expected a NumPy array of integers");
  std::vector<int64_t> shape;
  std::vector<int64_t> values = to_int64(a, what, &shape);
  CodeTensor codes(shape);
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i] < std::numeric_limits<int32_t>::min() || values[i] > std::numeric_limits<int32_t>::max())
      throw Error(std::string(what) + ": value " + std::to_string(values[i]) + " at flat index " + std::to_string(i) +
                  " is outside any codebook");
    codes.data[i] = int32_t(values[i]);
  }
  return codes;
}

// Masks come as bool, integer or float arrays (as from torch); the library
// checks that they hold only 0 and 1, so floats must be exactly 0.0 or 1.0.
std::optional<moss::BasicTensor<int64_t>> to_mask(const std::optional<py::array>& mask) {
  if (!mask) return std::nullopt;
  const char kind = mask->dtype().kind();
  if (kind == 'b' || kind == 'f') {
    auto d = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(*mask);
    std::vector<int64_t> values(size_t(d.size()));
    for (size_t i = 0; i < values.size(); ++i) {
      const double v = d.data()[i];
      if (v != 0.0 && v != 1.0)
        throw Error("padding_mask: value " + std::to_string(v) + " at flat index " + std::to_string(i) +
                    " is not 0 or 1");
      values[i] = int64_t(v);
    }
    return moss::BasicTensor<int64_t>(shape_of(d), std::move(values));
  }
  std::vector<int64_t> shape;
  std::vector<int64_t> values = to_int64(*mask, "padding_mask", &shape);
  return moss::BasicTensor<int64_t>(shape, std::move(values));
}

// Hands a vector to NumPy without copying: the array owns it through a capsule.
template <typename T>
py::array_t<T> to_numpy(std::vector<T>&& data, const std::vector<int64_t>& shape) {
  auto* owned = new std::vector<T>(std::move(data));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()), owned->data(), free_when_done);
}

py::array_t<float> to_numpy(Tensor&& t) { return to_numpy(std::move(t.data), t.shape); }

// Codes leave as int64, the dtype PyTorch and the reference use for indices.
py::array_t<int64_t> to_numpy(const CodeTensor& c) {
  return to_numpy(std::vector<int64_t>(c.data.begin(), c.data.end()), c.shape);
}

py::array_t<int64_t> to_numpy(const std::vector<int64_t>& v) {
  return to_numpy(std::vector<int64_t>(v), {int64_t(v.size())});
}

moss::Parts parse_parts(const std::string& parts) {
  if (parts == "all") return moss::Parts::All;
  if (parts == "encoder") return moss::Parts::Encoder;
  if (parts == "decoder") return moss::Parts::Decoder;
  throw Error("parts: expected 'all', 'encoder' or 'decoder', got '" + parts + "'");
}

py::dict stats_dict(const moss::StreamStats& s) {
  py::dict d;
  d["frames"] = s.frames;
  d["max_cached_keys"] = s.max_cached_keys;
  d["cache_bytes"] = s.cache_bytes;
  return d;
}

// Results as plain objects whose fields are NumPy arrays.
struct PyEncodeResult {
  py::array codes, code_lengths, hidden_states;
  py::list module_outputs;
};

PyEncodeResult to_python(moss::EncodeResult&& r) {
  PyEncodeResult out{to_numpy(r.codes), to_numpy(r.code_lengths), to_numpy(std::move(r.hidden_states)), py::list()};
  for (Tensor& m : r.module_outputs) out.module_outputs.append(to_numpy(std::move(m)));
  return out;
}

struct PyDecodeResult {
  py::array audio, audio_lengths;
};

PyDecodeResult to_python(moss::DecodeResult&& r) {
  return {to_numpy(std::move(r.audio)), to_numpy(r.audio_lengths)};
}

// Runs f with the GIL released (the library never touches Python objects), so
// other Python threads run meanwhile.
template <typename F>
auto without_gil(F&& f) {
  py::gil_scoped_release unlocked;
  return f();
}

// A stream is one conversation's state. The lock makes a stream shared by
// Python threads safe (its calls run one at a time); separate streams on one
// Codec run in parallel.
template <typename Stream>
struct LockedStream {
  Stream stream;
  std::mutex lock;
};
using PyEncoderStream = LockedStream<moss::EncoderStream>;
using PyDecoderStream = LockedStream<moss::DecoderStream>;

// A stream's call, one at a time per stream, with the GIL released (also
// while waiting for another thread's call on the same stream).
template <typename Stream, typename F>
auto locked_without_gil(LockedStream<Stream>& s, F&& f) {
  py::gil_scoped_release unlocked;
  std::lock_guard<std::mutex> guard(s.lock);
  return f(s.stream);
}

// Several streams' call at once: every distinct stream's lock is held, taken
// in address order so that two batches sharing streams cannot wait on each
// other (a stream named twice is locked once and refused by the library),
// with the GIL released.
template <typename Stream, typename F>
auto locked_batch_without_gil(const std::vector<LockedStream<Stream>*>& streams, F&& f) {
  std::vector<Stream*> batch;
  for (LockedStream<Stream>* s : streams) batch.push_back(s ? &s->stream : nullptr);
  std::vector<LockedStream<Stream>*> order(streams);
  std::sort(order.begin(), order.end());
  order.erase(std::unique(order.begin(), order.end()), order.end());
  py::gil_scoped_release unlocked;
  std::vector<std::unique_lock<std::mutex>> held;
  for (LockedStream<Stream>* s : order)
    if (s) held.emplace_back(s->lock);
  return f(batch);
}

// list[i] converted by `convert`, errors naming `what[i]`.
template <typename Convert>
auto convert_list(const py::list& list, const std::string& what, Convert convert) {
  std::vector<decltype(convert(list[0], ""))> out;
  for (size_t i = 0; i < list.size(); ++i)
    out.push_back(convert(list[i], (what + "[" + std::to_string(i) + "]").c_str()));
  return out;
}

struct PyCodec {
  std::shared_ptr<const moss::Codec> codec;
};

// A file read as model input piece by piece (ModelInputReader), one call at a
// time: iterating from several threads takes turns.
struct PyAudioPieces {
  moss::ModelInputReader reader;
  int64_t piece;
  std::mutex lock;
};

py::tuple chunk_to_python(moss::EncodedChunk&& c) {
  return py::make_tuple(to_numpy(c.codes), to_numpy(std::move(c.hidden_states)));
}

// reset() and stats, the same for both stream kinds.
template <typename Stream>
void add_reset_and_stats(py::class_<LockedStream<Stream>>& cls) {
  cls.def(
         "reset", [](LockedStream<Stream>& s) { locked_without_gil(s, [](Stream& st) { st.reset(); }); },
         "Starts a new stream on the same codec.")
      .def_property_readonly("stats", [](LockedStream<Stream>& s) {
        return stats_dict(locked_without_gil(s, [](Stream& st) { return st.stats(); }));
      });
}

}  // namespace

PYBIND11_MODULE(moss_codec, m) {
  m.doc() = "MOSS Audio Tokenizer inference (moss-codec): audio <-> residual-quantized codes, exact to the reference.";
  m.attr("__version__") = MOSS_VERSION;
  py::register_exception<Error>(m, "Error", PyExc_ValueError);

  m.def("set_num_threads", &moss::set_num_threads, py::arg("threads"),
        "Threads used by matrix products and attention in every codec (0: hardware default).");
  m.def(
      "resolve_checkpoint",
      [](const std::filesystem::path& p) { return moss::resolve_checkpoint(p.string()).string(); },
      py::arg("path_or_id"),
      "The checkpoint folder that Codec.load would use for a folder, a TTS checkpoint or a Hugging Face repo id.");

  m.def(
      "read_audio",
      [](const std::filesystem::path& path) {
        moss::Audio a = without_gil([&] { return moss::read_audio(path); });
        // Interleaved frames -> (C, N) channel-major.
        const int64_t c = a.channels, n = a.frames();
        std::vector<float> planar(a.samples.size());
        for (int64_t f = 0; f < n; ++f)
          for (int64_t ch = 0; ch < c; ++ch) planar[size_t(ch * n + f)] = a.samples[size_t(f * c + ch)];
        return py::make_tuple(to_numpy(std::move(planar), {c, n}), a.sample_rate);
      },
      py::arg("path"), "Reads any audio file libsndfile reads. Returns (samples (C, N) float32, sample_rate).");

  m.def(
      "write_audio",
      [](const std::filesystem::path& path, const py::handle& samples, int sample_rate, bool pcm16, bool overwrite) {
        Tensor t = to_audio(samples, "samples");
        if (t.rank() == 1) t.shape = {1, t.shape[0]};
        if (t.rank() != 2) throw Error("samples: expected (C, N) or (N), got " + moss::shape_to_string(t.shape));
        std::error_code ec;
        if (!overwrite && std::filesystem::exists(path, ec))
          throw Error(path.string() + ": already exists (pass overwrite=True to replace it)");
        without_gil([&] {
          moss::write_audio(path, t, sample_rate, pcm16 ? moss::SampleFormat::Pcm16 : moss::SampleFormat::Float32);
        });
      },
      py::arg("path"), py::arg("samples"), py::arg("sample_rate"), py::kw_only(), py::arg("pcm16") = false,
      py::arg("overwrite") = false,
      "Writes (C, N) or (N) float samples by extension (.wav, .flac, .ogg, .opus, .mp3, .raw). "
      "An existing file is replaced only with overwrite=True.");

  py::class_<PyEncodeResult>(m, "EncodeResult", "Output of Codec.encode / batch_encode.")
      .def_readonly("codes", &PyEncodeResult::codes, "(nq, B, T') int64 code indices")
      .def_readonly("code_lengths", &PyEncodeResult::code_lengths, "(B,) valid frames per row")
      .def_readonly("hidden_states", &PyEncodeResult::hidden_states, "(B, D, T') encoder output before the quantizer")
      .def_readonly("module_outputs", &PyEncodeResult::module_outputs,
                    "per encoder module (B, D_m, L_m), when return_module_outputs=True")
      // The reference's field names, so code written against it reads unchanged.
      .def_property_readonly("audio_codes", [](const PyEncodeResult& r) { return r.codes; })
      .def_property_readonly("audio_codes_lengths", [](const PyEncodeResult& r) { return r.code_lengths; })
      .def_property_readonly("encoder_hidden_states", [](const PyEncodeResult& r) { return r.hidden_states; })
      .def("__repr__", [](const PyEncodeResult& r) -> std::string {
        return "EncodeResult(codes shape " + repr_of(r.codes.attr("shape")) + ", code_lengths " +
               repr_of(r.code_lengths.attr("tolist")()) + ")";
      });

  py::class_<PyDecodeResult>(m, "DecodeResult", "Output of Codec.decode / batch_decode.")
      .def_readonly("audio", &PyDecodeResult::audio, "(B, C, N) float32 samples")
      .def_readonly("audio_lengths", &PyDecodeResult::audio_lengths, "(B,) valid samples per row")
      .def("__repr__", [](const PyDecodeResult& r) -> std::string {
        return "DecodeResult(audio shape " + repr_of(r.audio.attr("shape")) + ", audio_lengths " +
               repr_of(r.audio_lengths.attr("tolist")()) + ")";
      });

  py::class_<PyCodec>(m, "Codec",
                      "A loaded checkpoint: immutable, shared by any number of threads and streams.")
      .def_static(
          "load",
          [](const std::filesystem::path& path, const std::string& parts, int threads, bool check_finite,
             int64_t max_batch, double max_audio_seconds, bool upcast_half_weights, bool pack_weights,
             bool lock_weights) {
            moss::LoadOptions o;
            o.parts = parse_parts(parts);
            o.threads = threads;
            o.check_finite = check_finite;
            o.upcast_half_weights = upcast_half_weights;
            o.pack_weights = pack_weights;
            o.lock_weights = lock_weights;
            o.limits.max_batch = max_batch;
            o.limits.max_audio_seconds = max_audio_seconds;
            return without_gil([&] { return PyCodec{moss::Codec::load(path.string(), o)}; });
          },
          py::arg("path_or_id"), py::kw_only(), py::arg("parts") = "all", py::arg("threads") = 0,
          py::arg("check_finite") = true, py::arg("max_batch") = moss::Limits{}.max_batch,
          py::arg("max_audio_seconds") = moss::Limits{}.max_audio_seconds, py::arg("upcast_half_weights") = false,
          py::arg("pack_weights") = false, py::arg("lock_weights") = false,
          "Loads a checkpoint folder (config.json + safetensors), a TTS checkpoint holding one, or a Hugging "
          "Face repo id from the local cache. parts: 'all', 'encoder' or 'decoder'. bf16/f16 matrices are used "
          "in place (same results, half the memory) unless upcast_half_weights. pack_weights: copy the matrices "
          "into oneDNN's blocked layout at load (offline work 7-10% faster, same results; slower load). "
          "lock_weights: mlock the mapped weights for the codec's lifetime, so memory reclaim cannot drop or "
          "split them while it sits idle (needs a locked-memory limit of their size).")
      .def_property_readonly("sampling_rate", [](const PyCodec& c) { return c.codec->config().sampling_rate; })
      .def_property_readonly("downsample_rate", [](const PyCodec& c) { return c.codec->config().downsample_rate; })
      .def_property_readonly("frame_rate", [](const PyCodec& c) { return c.codec->config().frame_rate(); })
      .def_property_readonly("channels", [](const PyCodec& c) { return c.codec->config().channels(); })
      .def_property_readonly("num_quantizers", [](const PyCodec& c) { return c.codec->config().quantizer.num_quantizers; })
      .def_property_readonly("codebook_size", [](const PyCodec& c) { return c.codec->config().quantizer.codebook_size; })
      .def_property_readonly("context_duration", [](const PyCodec& c) { return c.codec->config().context_duration; })
      .def_property_readonly("has_encoder", [](const PyCodec& c) { return c.codec->has_encoder(); })
      .def_property_readonly("has_decoder", [](const PyCodec& c) { return c.codec->has_decoder(); })
      .def_property_readonly("checkpoint_dir", [](const PyCodec& c) { return c.codec->checkpoint_dir().string(); })
      .def_property_readonly("config_json", [](const PyCodec& c) { return c.codec->config().to_json(); },
                             "The config as canonical JSON.")
      .def(
          "weight_info",
          [](const PyCodec& c) {
            const moss::Codec::WeightInfo w = c.codec->weight_info();
            py::dict d;
            d["parameters"] = w.encoder_parameters + w.quantizer_parameters + w.decoder_parameters;
            d["file_bytes"] = w.file_bytes;
            d["memory_bytes"] = w.encoder_bytes + w.quantizer_bytes + w.decoder_bytes;
            d["dtypes"] = w.dtypes;
            d["packed_bytes"] = w.packed_bytes;
            d["packed_in_file_bytes"] = w.packed_in_file_bytes;
            d["in_place_bytes"] = w.in_place_bytes;
            return d;
          },
          "The loaded weights: parameters, file_bytes, memory_bytes (as held), dtypes, packed_bytes (matrices\n"
          "in oneDNN's blocked layout), packed_in_file_bytes (of those, mapped from a packed checkpoint) and\n"
          "in_place_bytes (of the files, read as stored: what lock_weights locks).")
      .def(
          "save_packed",
          [](const PyCodec& c, const std::filesystem::path& dir, bool overwrite) {
            without_gil([&] { c.codec->save_packed(dir, overwrite); });
          },
          py::arg("dir"), py::kw_only(), py::arg("overwrite") = false,
          "Writes a packed checkpoint to folder dir: the transformer matrices in oneDNN's blocked layout, which\n"
          "later loads map in place (pack_weights speed without its copy at load). Needs a codec loaded whole\n"
          "with pack_weights=True on an AVX-512 CPU; other CPUs can still load the result (unpacked at load).")
      .def(
          "weight_residency",
          [](const PyCodec& c) {
            const moss::Codec::WeightResidency r = c.codec->weight_residency();
            py::dict d;
            d["known"] = r.known;
            d["mapped_bytes"] = r.mapped_bytes;
            d["resident_bytes"] = r.resident_bytes;
            d["huge_page_bytes"] = r.huge_page_bytes;
            d["locked_bytes"] = r.locked_bytes;
            return d;
          },
          "How the mapped checkpoint sits in memory now: mapped_bytes, resident_bytes, huge_page_bytes\n"
          "(resident in 2 MiB pages) and locked_bytes (lock_weights); known is False where the system does not\n"
          "report it.")
      .def(
          "encode",
          [](const PyCodec& c, const py::handle& audio, std::optional<std::vector<int64_t>> lengths,
             std::optional<py::array> padding_mask, std::optional<int> num_quantizers,
             std::optional<double> chunk_duration, bool return_module_outputs) {
            moss::EncodeOptions o;
            o.lengths = std::move(lengths);
            o.padding_mask = to_mask(padding_mask);
            o.num_quantizers = num_quantizers;
            o.chunk_duration = chunk_duration;
            o.return_module_outputs = return_module_outputs;
            Tensor a = to_audio(audio, "audio");
            return to_python(without_gil([&] { return c.codec->encode(a, o); }));
          },
          py::arg("audio"), py::kw_only(), py::arg("lengths") = py::none(), py::arg("padding_mask") = py::none(),
          py::arg("num_quantizers") = py::none(), py::arg("chunk_duration") = py::none(),
          py::arg("return_module_outputs") = false,
          "audio (B, C, T), or (B, T) / (T) for mono checkpoints. lengths or a (B, T) 0/1 padding_mask give "
          "each row's valid samples. Returns EncodeResult.")
      .def(
          "decode",
          [](const PyCodec& c, const py::handle& codes, std::optional<std::vector<int64_t>> lengths,
             std::optional<py::array> padding_mask, std::optional<int> num_quantizers,
             std::optional<double> chunk_duration) {
            moss::DecodeOptions o;
            o.lengths = std::move(lengths);
            o.padding_mask = to_mask(padding_mask);
            o.num_quantizers = num_quantizers;
            o.chunk_duration = chunk_duration;
            CodeTensor k = to_codes(codes, "codes");
            return to_python(without_gil([&] { return c.codec->decode(k, o); }));
          },
          py::arg("codes"), py::kw_only(), py::arg("lengths") = py::none(), py::arg("padding_mask") = py::none(),
          py::arg("num_quantizers") = py::none(), py::arg("chunk_duration") = py::none(),
          "codes in any layout of the README's 'Code layouts' ((nq, B, T), (nq, T), (T, nq), (B, T, nq)). "
          "num_quantizers=k decodes with the first k codebooks. Returns DecodeResult.")
      .def(
          "batch_encode",
          [](const PyCodec& c, const py::list& waveforms, std::optional<int> num_quantizers) {
            std::vector<Tensor> w = convert_list(waveforms, "waveforms", to_audio);
            return to_python(without_gil([&] { return c.codec->batch_encode(w, num_quantizers); }));
          },
          py::arg("waveforms"), py::kw_only(), py::arg("num_quantizers") = py::none(),
          "A list of (T_i) or (C, T_i) waveforms, right-padded into one batch.")
      .def(
          "batch_decode",
          [](const PyCodec& c, const py::list& codes, std::optional<int> num_quantizers) {
            std::vector<CodeTensor> k = convert_list(codes, "codes", to_codes);
            return to_python(without_gil([&] { return c.codec->batch_decode(k, num_quantizers); }));
          },
          py::arg("codes"), py::kw_only(), py::arg("num_quantizers") = py::none(),
          "A list of (nq_i, T_i) code arrays.")
      .def(
          "streaming_decode",
          [](const PyCodec& c, const py::handle& codes, int64_t chunk_tokens, const py::function& on_chunk,
             std::optional<int> num_quantizers) {
            CodeTensor k = to_codes(codes, "codes");
            py::gil_scoped_release unlocked;
            c.codec->streaming_decode(
                k, chunk_tokens,
                [&](Tensor&& chunk) {
                  py::gil_scoped_acquire locked;
                  on_chunk(to_numpy(std::move(chunk)));
                },
                num_quantizers);
          },
          py::arg("codes"), py::arg("chunk_tokens"), py::arg("on_chunk"), py::kw_only(),
          py::arg("num_quantizers") = py::none(),
          "Decodes batch-1 codes chunk_tokens frames at a time, calling on_chunk with each chunk's audio "
          "(1, C, n) as soon as it is computed. The chunks concatenate to decode(codes).")
      .def(
          "read_audio",
          [](const PyCodec& c, const std::filesystem::path& path) {
            return to_numpy(without_gil([&] { return moss::to_model_input(moss::read_audio(path), c.codec->config()); }));
          },
          py::arg("path"),
          "Reads an audio file as this model's input (1, C, T): resampled to sampling_rate, channels mapped.")
      .def(
          "read_audio_pieces",
          [](const PyCodec& c, const std::filesystem::path& path, double seconds) {
            const auto& cfg = c.codec->config();
            const int64_t piece = std::llround(seconds * cfg.sampling_rate);
            if (!(seconds > 0) || !std::isfinite(seconds) || piece < 1)
              throw Error("seconds must be > 0 and at least one sample, got " + std::to_string(seconds));
            return without_gil([&] { return new PyAudioPieces{moss::ModelInputReader(path, cfg), piece, {}}; });
          },
          py::arg("path"), py::arg("seconds") = 10.0,
          "Reads an audio file as this model's input piece by piece: an iterator of (C, n) float32 arrays "
          "of `seconds` each (the last may be shorter), for recordings too long to hold. Memory stays one "
          "piece; the pieces concatenate to read_audio(path)[0] exactly. Feed them to an EncoderStream.")
      .def("__repr__", [](const PyCodec& c) {
        const auto& cfg = c.codec->config();
        return "Codec('" + c.codec->checkpoint_dir().string() + "', sampling_rate=" + std::to_string(cfg.sampling_rate) +
               ", channels=" + std::to_string(cfg.channels()) +
               ", num_quantizers=" + std::to_string(cfg.quantizer.num_quantizers) + ")";
      });

  py::class_<PyAudioPieces>(m, "AudioPieces",
                            "An audio file as model input, (C, n) float32 pieces of `seconds` (the last may be "
                            "shorter); they concatenate to Codec.read_audio(path)[0] exactly. From Codec.read_audio_pieces.")
      .def("__iter__", [](PyAudioPieces& p) -> PyAudioPieces& { return p; })
      .def("__next__",
           [](PyAudioPieces& p) {
             Tensor piece = without_gil([&] {
               std::lock_guard<std::mutex> guard(p.lock);
               return p.reader.read(p.piece);
             });
             if (piece.dim(1) == 0) throw py::stop_iteration();
             return to_numpy(std::move(piece));
           })
      .def_property_readonly("frames_read", [](PyAudioPieces& p) { return p.reader.frames_read(); },
                             "Model-rate samples per channel returned so far.")
      .def_property_readonly("expected_frames", [](PyAudioPieces& p) { return p.reader.expected_frames(); },
                             "The total the file's header promises (approximate for some formats).");

  py::class_<PyEncoderStream> encoder_stream(m, "EncoderStream",
                              "Exact incremental encoding: the pushes' codes concatenate to the offline codes.");
  encoder_stream
      .def(py::init([](const PyCodec& c, std::optional<int> num_quantizers) {
             return new PyEncoderStream{moss::EncoderStream(c.codec, num_quantizers), {}};
           }),
           py::arg("codec"), py::kw_only(), py::arg("num_quantizers") = py::none())
      .def(
          "push",
          [](PyEncoderStream& s, const py::handle& samples) {
            Tensor t = to_audio(samples, "samples");
            return chunk_to_python(locked_without_gil(s, [&](moss::EncoderStream& e) { return e.push(t); }));
          },
          py::arg("samples"),
          "samples (C, n) or (n). Returns (codes (nq, k), hidden_states (D, k)) of the k frames completed.")
      .def_static(
          "push_batch",
          [](const std::vector<PyEncoderStream*>& streams, const py::list& samples) {
            std::vector<Tensor> t = convert_list(samples, "samples", [](const py::handle& h, const char* what) { return to_audio(h, what); });
            std::vector<moss::EncodedChunk> chunks = locked_batch_without_gil(
                streams, [&](const std::vector<moss::EncoderStream*>& b) { return moss::EncoderStream::push_batch(b, t); });
            py::list out;
            for (moss::EncodedChunk& c : chunks) out.append(chunk_to_python(std::move(c)));
            return out;
          },
          py::arg("streams"), py::arg("samples"),
          "Pushes samples[i] into streams[i] for every i, encoding the frames they complete in one pass over the "
          "encoder weights; returns each stream's (codes, hidden_states), as its own push would.")
      .def(
          "flush",
          [](PyEncoderStream& s) {
            return chunk_to_python(locked_without_gil(s, [](moss::EncoderStream& e) { return e.flush(); }));
          },
          "Zero-pads buffered samples to a last frame and returns its codes; ends the stream until reset().")
      .def_property_readonly("buffered_samples", [](PyEncoderStream& s) {
        return locked_without_gil(s, [](moss::EncoderStream& e) { return e.buffered_samples(); });
      });
  add_reset_and_stats(encoder_stream);

  py::class_<PyDecoderStream> decoder_stream(m, "DecoderStream",
                              "Exact incremental decoding: the pushes' audio concatenates to the offline audio.");
  decoder_stream
      .def(py::init([](const PyCodec& c, std::optional<int> num_quantizers) {
             return new PyDecoderStream{moss::DecoderStream(c.codec, num_quantizers), {}};
           }),
           py::arg("codec"), py::kw_only(), py::arg("num_quantizers") = py::none())
      .def(
          "push",
          [](PyDecoderStream& s, const py::handle& codes) {
            CodeTensor k = to_codes(codes, "codes");
            return to_numpy(locked_without_gil(s, [&](moss::DecoderStream& d) { return d.push(k); }));
          },
          py::arg("codes"), "codes (nq, n), n >= 1 new frames. Returns their audio (C, n * downsample_rate).")
      .def_static(
          "push_batch",
          [](const std::vector<PyDecoderStream*>& streams, const py::list& codes) {
            std::vector<CodeTensor> k = convert_list(codes, "codes", [](const py::handle& h, const char* what) { return to_codes(h, what); });
            std::vector<moss::Tensor> audio = locked_batch_without_gil(
                streams, [&](const std::vector<moss::DecoderStream*>& b) { return moss::DecoderStream::push_batch(b, k); });
            py::list out;
            for (moss::Tensor& a : audio) out.append(to_numpy(std::move(a)));
            return out;
          },
          py::arg("streams"), py::arg("codes"),
          "Pushes codes[i] (nq, n) into streams[i] for every i in one pass over the decoder weights; returns each "
          "stream's audio, as its own push would. The streams must be distinct and share one Codec.");
  add_reset_and_stats(decoder_stream);
}
