#include "check_fixtures.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "moss_codec/codec.h"
#include "moss_codec/safetensors.h"

namespace moss::tools {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct CaseResult {
  double max_err = 0;       // worst continuous error over all compared outputs
  double tolerance_ratio = 0;  // max over outputs of err / tolerance
  std::optional<double> agreement;
  bool pass = true;
  std::vector<std::string> notes;
  void fail(const std::string& why) {
    pass = false;
    notes.push_back(why);
  }
};

class CaseTensors {
 public:
  explicit CaseTensors(const fs::path& path) : file_(SafetensorsFile::open(path)) {}
  const TensorView& at(const std::string& name) const { return file_.at(name); }
  Tensor floats(const std::string& name) const {
    const TensorView& v = at(name);
    return Tensor(v.shape, v.to_float());
  }
  std::vector<int64_t> ints(const std::string& name) const { return at(name).to_int64(); }
  CodeTensor codes(const std::string& name) const {
    const TensorView& v = at(name);
    std::vector<int64_t> raw = v.to_int64();
    std::vector<int32_t> data(raw.size());
    for (size_t i = 0; i < raw.size(); ++i) {
      // Out-of-range values stay out of range so that the codec rejects them.
      data[i] = raw[i] > INT32_MAX ? INT32_MAX : raw[i] < INT32_MIN ? INT32_MIN : int32_t(raw[i]);
    }
    return CodeTensor(v.shape, std::move(data));
  }
  BasicTensor<int64_t> mask(const std::string& name) const {
    const TensorView& v = at(name);
    return BasicTensor<int64_t>(v.shape, v.to_int64());
  }

 private:
  SafetensorsFile file_;
};

// Continuous outputs (B, D, L): compare positions t < valid[b] (scaled by `per_frame`).
void compare_continuous(const std::string& what, const Tensor& got, const Tensor& exp, const std::vector<int64_t>& valid,
                        int64_t per_frame, CaseResult& r) {
  if (got.rank() != 3 || exp.rank() != 3 || got.dim(0) != exp.dim(0) || got.dim(1) != exp.dim(1)) {
    r.fail(what + ": shape " + shape_to_string(got.shape) + " vs expected " + shape_to_string(exp.shape));
    return;
  }
  const int64_t B = exp.dim(0), D = exp.dim(1), Lg = got.dim(2), Le = exp.dim(2);
  double err = 0, peak = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = valid[size_t(b)] * per_frame;
    if (n > Lg || n > Le) {
      r.fail(what + ": valid length " + std::to_string(n) + " exceeds the array width");
      return;
    }
    for (int64_t d = 0; d < D; ++d)
      for (int64_t t = 0; t < n; ++t) {
        const double e = exp.data[size_t((b * D + d) * Le + t)], g = got.data[size_t((b * D + d) * Lg + t)];
        peak = std::max(peak, std::fabs(e));
        const double diff = std::fabs(g - e);
        if (!(diff <= err)) err = std::isnan(diff) ? INFINITY : std::max(err, diff);
      }
  }
  const double tol = 1e-4 * std::max(1.0, peak);
  r.max_err = std::max(r.max_err, err);
  r.tolerance_ratio = std::max(r.tolerance_ratio, err / tol);
  if (!(err <= tol)) {
    std::ostringstream os;
    os << what << ": max abs error " << err << " > tolerance " << tol;
    r.fail(os.str());
  }
}

// Codes may differ only where the reference's best/second-best gap was < 1e-4;
// after such a difference the rest of that frame may differ too.
void compare_codes(const CodeTensor& got, const std::vector<int64_t>& exp, const std::vector<int64_t>& exp_shape,
                   const Tensor& margins, const std::vector<int64_t>& lengths, CaseResult& r) {
  if (got.rank() != 3 || exp_shape.size() != 3 || got.dim(0) != exp_shape[0] || got.dim(1) != exp_shape[1]) {
    r.fail("audio_codes: shape " + shape_to_string(got.shape) + " vs expected " + shape_to_string(exp_shape));
    return;
  }
  const int64_t NQ = exp_shape[0], B = exp_shape[1], Te = exp_shape[2], Tg = got.dim(2);
  int64_t total = 0, equal = 0, bad = 0;
  std::string first_bad;
  for (int64_t b = 0; b < B; ++b) {
    if (lengths[size_t(b)] > Tg || lengths[size_t(b)] > Te) {
      r.fail("audio_codes: code length exceeds the array width");
      return;
    }
    for (int64_t t = 0; t < lengths[size_t(b)]; ++t) {
      bool diverged = false;
      for (int64_t i = 0; i < NQ; ++i) {
        const int64_t e = exp[size_t((i * B + b) * Te + t)], g = got.data[size_t((i * B + b) * Tg + t)];
        ++total;
        if (e == g) {
          ++equal;
          continue;
        }
        if (diverged) continue;
        if (margins.data[size_t((i * B + b) * Te + t)] < 1e-4) {
          diverged = true;
          continue;
        }
        ++bad;
        if (first_bad.empty())
          first_bad = "code [" + std::to_string(i) + "," + std::to_string(b) + "," + std::to_string(t) + "] = " +
                      std::to_string(g) + ", expected " + std::to_string(e);
        break;
      }
    }
  }
  r.agreement = total ? double(equal) / double(total) : 1.0;
  if (bad) r.fail(std::to_string(bad) + " code mismatches with margin >= 1e-4, first " + first_bad);
}

void compare_lengths(const std::string& what, const std::vector<int64_t>& got, const std::vector<int64_t>& exp,
                     CaseResult& r) {
  if (got != exp) {
    std::ostringstream os;
    os << what << " differ: got [";
    for (size_t i = 0; i < got.size(); ++i) os << (i ? "," : "") << got[i];
    os << "], expected [";
    for (size_t i = 0; i < exp.size(); ++i) os << (i ? "," : "") << exp[i];
    os << "]";
    r.fail(os.str());
  }
}

std::optional<int> opt_int(const json& args, const char* key) {
  if (args.contains(key) && !args[key].is_null()) return args[key].get<int>();
  return std::nullopt;
}
std::optional<double> opt_double(const json& args, const char* key) {
  if (args.contains(key) && !args[key].is_null()) return args[key].get<double>();
  return std::nullopt;
}

void check_encode_outputs(const Codec& codec, const EncodeResult& got, const json& outputs, const CaseTensors& t,
                          CaseResult& r) {
  const std::vector<int64_t> lengths = t.ints(outputs["audio_codes_lengths"]);
  compare_lengths("audio_codes_lengths", got.code_lengths, lengths, r);
  if (!r.pass) return;
  const TensorView& codes = t.at(outputs["audio_codes"]);
  compare_codes(got.codes, codes.to_int64(), codes.shape, t.floats(outputs["code_margins"]), lengths, r);
  compare_continuous("encoder_hidden_states", got.hidden_states, t.floats(outputs["encoder_hidden_states"]), lengths, 1, r);
  if (outputs.contains("encoder_module_outputs")) {
    const auto ups = codec.encoder_module_upsampling();
    size_t m = 0;
    for (auto& name : outputs["encoder_module_outputs"]) {
      if (m >= got.module_outputs.size()) {
        r.fail("more encoder_module_outputs expected than the encoder has modules");
        break;
      }
      compare_continuous("encoder." + std::to_string(m), got.module_outputs[m], t.floats(name), lengths, ups[m], r);
      ++m;
    }
  }
}

void check_decode_outputs(const DecodeResult& got, const json& outputs, const CaseTensors& t, CaseResult& r) {
  const std::vector<int64_t> lengths = t.ints(outputs["audio_lengths"]);
  compare_lengths("audio_lengths", got.audio_lengths, lengths, r);
  if (!r.pass) return;
  compare_continuous("audio", got.audio, t.floats(outputs["audio"]), lengths, 1, r);
}

void run_case(const Codec& codec, const json& c, const CaseTensors& t, CaseResult& r) {
  const std::string op = c.value("op", "");
  const json args = c.value("args", json::object());
  const json& in = c["inputs"];
  const json& out = c["outputs"];
  for (auto& [key, v] : args.items())
    if (key != "num_quantizers" && key != "chunk_duration" && key != "chunk_tokens")
      throw Error("unsupported argument '" + key + "'");
  if (op == "encode") {
    EncodeOptions opt;
    opt.num_quantizers = opt_int(args, "num_quantizers");
    opt.chunk_duration = opt_double(args, "chunk_duration");
    opt.return_module_outputs = out.contains("encoder_module_outputs");
    if (in.contains("padding_mask")) opt.padding_mask = t.mask(in["padding_mask"]);
    if (opt.chunk_duration) r.notes.push_back("chunked: streaming path");
    check_encode_outputs(codec, codec.encode(t.floats(in["input_values"]), opt), out, t, r);
  } else if (op == "batch_encode") {
    std::vector<Tensor> wavs;
    for (auto& name : in["wav_list"]) wavs.push_back(t.floats(name));
    check_encode_outputs(codec, codec.batch_encode(wavs, opt_int(args, "num_quantizers")), out, t, r);
  } else if (op == "decode") {
    DecodeOptions opt;
    opt.num_quantizers = opt_int(args, "num_quantizers");
    opt.chunk_duration = opt_double(args, "chunk_duration");
    if (in.contains("padding_mask")) opt.padding_mask = t.mask(in["padding_mask"]);
    if (opt.chunk_duration) r.notes.push_back("chunked: streaming path");
    CodeTensor codes = t.codes(in["audio_codes"]);
    if (auto tokens = opt_int(args, "chunk_tokens")) {
      // streaming_decode with the chunks concatenated (batch 1).
      if (opt.padding_mask || opt.chunk_duration) throw Error("chunk_tokens combined with padding_mask/chunk_duration");
      std::vector<Tensor> chunks;
      codec.streaming_decode(codes, *tokens, [&](Tensor&& a) { chunks.push_back(std::move(a)); }, opt.num_quantizers);
      const int64_t C = codec.config().channels();
      int64_t N = 0;
      for (auto& ch : chunks) N += ch.dim(2);
      DecodeResult joined;
      joined.audio = Tensor({1, C, N});
      joined.audio_lengths = {N};
      int64_t at = 0;
      for (auto& ch : chunks) {
        const int64_t n = ch.dim(2);
        for (int64_t c = 0; c < C; ++c)
          std::copy(ch.data.begin() + c * n, ch.data.begin() + (c + 1) * n, joined.audio.data.begin() + c * N + at);
        at += n;
      }
      r.notes.push_back("streaming_decode: " + std::to_string(chunks.size()) + " chunks");
      check_decode_outputs(joined, out, t, r);
      return;
    }
    check_decode_outputs(codec.decode(codes, opt), out, t, r);
  } else if (op == "batch_decode") {
    std::vector<CodeTensor> list;
    for (auto& name : in["codes_list"]) list.push_back(t.codes(name));
    check_decode_outputs(codec.batch_decode(list, opt_int(args, "num_quantizers")), out, t, r);
  } else {
    throw Error("unknown op '" + op + "'");
  }
}

}  // namespace

FixtureTotals check_fixtures(const std::vector<std::string>& dirs, std::ostream& out) {
  FixtureTotals totals;
  for (const std::string& dir_arg : dirs) {
    const fs::path dir(dir_arg);
    const std::string folder = dir.filename().empty() ? dir.parent_path().filename().string() : dir.filename().string();
    std::shared_ptr<const Codec> codec;
    json cases;
    std::unique_ptr<CaseTensors> tensors;
    try {
      codec = Codec::load(dir);
      std::ifstream f(dir / "cases.json");
      if (!f) throw Error((dir / "cases.json").string() + ": cannot open");
      cases = json::parse(f);
      tensors = std::make_unique<CaseTensors>(dir / cases.value("tensors", std::string("cases.safetensors")));
    } catch (const std::exception& e) {
      out << folder << "  load  FAIL  " << e.what() << "\n";
      ++totals.failed;
      continue;
    }
    for (const json& c : cases["cases"]) {
      CaseResult r;
      const std::string name = c.value("name", "?"), op = c.value("op", "?");
      try {
        run_case(*codec, c, *tensors, r);
      } catch (const std::exception& e) {
        r.fail(std::string("error: ") + e.what());
      }
      std::ostringstream line;
      line << folder << "/" << name << "  " << op << "  max_abs_err=" << std::scientific << std::setprecision(2)
           << r.max_err;
      if (r.agreement) line << "  codes=" << std::fixed << std::setprecision(2) << 100.0 * *r.agreement << "%";
      line << "  " << (r.pass ? "PASS" : "FAIL");
      for (auto& n : r.notes) line << "  [" << n << "]";
      out << line.str() << "\n";
      (r.pass ? totals.passed : totals.failed)++;
    }
  }
  out << totals.passed << " passed, " << totals.failed << " failed\n";
  return totals;
}

}  // namespace moss::tools
