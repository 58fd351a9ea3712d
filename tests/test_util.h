#pragma once
// Helpers shared by the tests: temporary folders, raw safetensors writing and
// the location of the reference fixtures.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "io/page_residency.h"
#include "kernels/few_row_gemm.h"
#include "moss_codec/codec.h"
#include "moss_codec/error.h"
#include "moss_codec/safetensors.h"

namespace moss::test {

namespace fs = std::filesystem;

inline fs::path fixtures_dir() { return fs::path(MOSS_FIXTURES_DIR); }
inline fs::path fixture(const std::string& name) { return fixtures_dir() / name; }

// A fresh folder removed when the test ends.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("moss-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + "-" +
             std::to_string(std::random_device{}()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// A whole file's bytes.
inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A safetensors file from a literal JSON header and raw data bytes.
inline std::string raw_safetensors(const std::string& header, const std::string& data) {
  std::string s(8, '\0');
  uint64_t n = header.size();
  std::memcpy(s.data(), &n, 8);
  return s + header + data;
}

inline TensorToWrite f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& values) {
  TensorToWrite t{name, DType::F32, std::move(shape), {}};
  t.bytes.resize(values.size() * 4);
  std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

// The bundled small config with every transformer d_model wide, hidden
// d_ff, one layer: wide enough for oneDNN's matmul (and so for packing and
// the widened products of 16-bit weights), small enough for a unit test.
inline std::string wide_small_config(int d_model = 256, int d_ff = 1024) {
  nlohmann::json cfg = nlohmann::json::parse(slurp(fs::path(MOSS_SOURCE_DIR) / "configs/moss-audio-tokenizer-24k-small.json"));
  for (const char* part : {"encoder_kwargs", "decoder_kwargs"})
    for (auto& m : cfg[part])
      if (m["module_type"] == "Transformer") {
        m["d_model"] = d_model;
        m["dim_feedforward"] = d_ff;
        m["num_layers"] = 1;
      }
  return cfg.dump();
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Largest |a - b| (infinite when the sizes differ).
inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float d = a.size() == b.size() ? 0.0f : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

// Two loadings of one checkpoint that must agree bit for bit offline: the
// same codes and hidden states for `audio`, and the same audio decoded from
// those codes (with their lengths). Returns a's encoding.
inline EncodeResult expect_same_offline(const Codec& a, const Codec& b, const Tensor& audio, const EncodeOptions& eo = {}) {
  EncodeResult ea = a.encode(audio, eo);
  const EncodeResult eb = b.encode(audio, eo);
  EXPECT_EQ(ea.codes.data, eb.codes.data);
  EXPECT_TRUE(same_bits(ea.hidden_states.data, eb.hidden_states.data))
      << "max difference " << max_abs_diff(ea.hidden_states.data, eb.hidden_states.data);
  const DecodeOptions dopt{.lengths = ea.code_lengths};
  const DecodeResult da = a.decode(ea.codes, dopt), db = b.decode(ea.codes, dopt);
  EXPECT_TRUE(same_bits(da.audio.data, db.audio.data)) << "max difference " << max_abs_diff(da.audio.data, db.audio.data);
  return ea;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// One case of a few-row product test: the kernel set, the shape, padded row
// strides, and whether the product is scaled and accumulated onto y.
struct FewRowCase {
  FewRowIsa isa;
  int64_t m, n, k, ldx, ldw, ldy;
  float alpha;
  bool accumulate;
};

// Calls fn(case) for every kernel set this CPU runs, 1..kFewRowsMax rows, the
// given (n, k) shapes, plain and padded/scaled/accumulated. Returns how many
// cases ran (0 where no kernel set runs).
template <typename Fn>
int for_each_few_row_case(const std::vector<std::pair<int64_t, int64_t>>& shapes, Fn&& fn) {
  int ran = 0;
  for (FewRowIsa isa : {FewRowIsa::Avx512, FewRowIsa::Avx2}) {
    if (!few_row_gemm_available(isa)) continue;
    for (int64_t m = 1; m <= kFewRowsMax; ++m)
      for (auto [n, k] : shapes)
        for (int variant = 0; variant < 2; ++variant) {
          fn(FewRowCase{isa, m, n, k, k + 3 * variant, k + 5 * variant, n + 2 * variant, variant ? 0.5f : 1.0f,
                        variant == 1});
          ++ran;
        }
  }
  return ran;
}

// Whether mlock really locks in this process: sanitizer runtimes (ASan)
// intercept it as a no-op that reports success. Asked of one anonymous page,
// through smaps as weight_residency() reads it.
inline bool mlock_locks() {
#if defined(__linux__)
  static const bool works = [] {
    void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const bool locked = mlock(p, 4096) == 0 && moss::page_residency(p, 4096).locked_bytes > 0;
    munlock(p, 4096);
    munmap(p, 4096);
    return locked;
  }();
  return works;
#else
  return false;
#endif
}

// Expects `fn` to throw moss::Error whose message contains `needle`.
template <typename Fn>
void expect_error(Fn&& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "expected an error containing '" << needle << "'";
  } catch (const moss::Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

}  // namespace moss::test
