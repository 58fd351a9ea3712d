// Where a streaming decode step's time goes: one-frame pushes of a
// DecoderStream, with every few-row matrix product and every attention call
// timed (this binary wraps the library's moss::few_row_gemm and
// moss::windowed_attention at link time, -Wl,--wrap: the library itself
// carries no timers). After each push the products it made are replayed back
// to back on the same weights, with nothing in between, so their in-step
// rate can be told apart from what the interleaved work (attention, norms,
// thread wake-ups) costs them. Each push is bracketed by two 256 MiB read
// probes, as in `moss-codec bench`, since this host's bandwidth drifts.
//
//   moss_step_parts MODEL [PUSHES]   (default 60; medians over pushes 4..)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <vector>

#include "kernels/attention.h"
#include "bench_common.h"
#include "kernels/few_row_gemm.h"
#include "machine_probe.h"
#include "moss_codec/codec.h"
#include "moss_codec/streaming.h"

using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Product {
  moss::FewRowProduct p;
  double seconds;
};
bool recording = false;
std::vector<Product> products;
std::map<int64_t, double> attention_s;  // by queries per call (the stage)
std::map<int64_t, int> attention_calls;
}  // namespace

// The mangled names of the two functions (a signature change fails the link
// with an undefined __real_ symbol, not silently).
#define FEW_ROW_GEMM _ZN4moss12few_row_gemmERKNS_13FewRowProductENS_9FewRowIsaE
#define ATTENTION _ZN4moss18windowed_attentionERKNS_14AttentionShapeEPKflRKNS_11HeadMajorKvEPflNS_10BeforeHeadE
#define CAT(a, b) a##b
#define WRAP(f) CAT(__wrap_, f)
#define REAL(f) CAT(__real_, f)

extern "C" void REAL(FEW_ROW_GEMM)(const moss::FewRowProduct&, moss::FewRowIsa);
extern "C" void WRAP(FEW_ROW_GEMM)(const moss::FewRowProduct& p, moss::FewRowIsa isa) {
  if (!recording || omp_in_parallel()) return REAL(FEW_ROW_GEMM)(p, isa);
  const auto t0 = Clock::now();
  REAL(FEW_ROW_GEMM)(p, isa);
  products.push_back({p, since(t0)});
  products.back().p.after = {};  // its context is gone after the step; a replay times the product alone
}

extern "C" void REAL(ATTENTION)(const moss::AttentionShape&, const float*, int64_t, const moss::HeadMajorKv&, float*,
                                int64_t, moss::BeforeHead);
extern "C" void WRAP(ATTENTION)(const moss::AttentionShape& s, const float* q, int64_t ldq, const moss::HeadMajorKv& kv,
                                float* out, int64_t ldo, moss::BeforeHead before) {
  const auto t0 = Clock::now();
  REAL(ATTENTION)(s, q, ldq, kv, out, ldo, before);
  if (recording && !omp_in_parallel()) {
    attention_s[s.n_queries] += since(t0);
    ++attention_calls[s.n_queries];
  }
}

namespace {
int64_t weight_bytes(const moss::FewRowProduct& p) { return p.n * p.k * (p.w16 ? 2 : 4); }

struct PushParts {
  double step = 0, products = 0, replay = 0, probe = 0, rest = 0;
  std::map<int64_t, double> rows_s, rows_replay_s, rows_bytes;  // by input rows
  std::map<int64_t, double> attention;
};
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL [PUSHES]\n", argv[0]);
    return 2;
  }
  const int pushes = argc > 2 ? std::atoi(argv[2]) : 60, skip = 3;
  if (pushes <= skip) {
    std::fprintf(stderr, "%s: PUSHES must be more than %d\n", argv[0], skip);
    return 2;
  }
  try {
    moss::LoadOptions options;
    options.parts = moss::Parts::Decoder;
    std::shared_ptr<const moss::Codec> codec = moss::Codec::load(argv[1], options);
    const moss::CodecConfig& cfg = codec->config();
    // The first push fills every attention window, as `bench` does.
    const int64_t history = moss::cli::window_filling_frames(cfg);
    const int nq = cfg.quantizer.num_quantizers, codebook = cfg.quantizer.codebook_size;
    auto codes = [&](int64_t n, int64_t seed) {
      moss::CodeTensor c({nq, n});
      for (size_t i = 0; i < c.data.size(); ++i) c.data[i] = int32_t((int64_t(i) * 7919 + seed) % codebook);
      return c;
    };
    moss::DecoderStream stream(codec);
    stream.push(codes(history, 1));
    const moss::cli::ReadBandwidthProbe probe(256);
    std::vector<float> x, y;  // the replay's inputs and outputs
    std::vector<PushParts> parts;
    for (int t = 0; t < pushes; ++t) {
      products.clear();
      attention_s.clear();
      attention_calls.clear();
      const double before = probe.measure(1);
      recording = true;
      const auto t0 = Clock::now();
      stream.push(codes(1, t));
      PushParts pp;
      pp.step = since(t0);
      recording = false;
      pp.probe = (before + probe.measure(1)) / 2;
      for (const Product& c : products) {
        pp.products += c.seconds;
        pp.rows_s[c.p.m] += c.seconds;
        pp.rows_bytes[c.p.m] += double(weight_bytes(c.p));
      }
      const auto r0 = Clock::now();
      for (const Product& c : products) {
        moss::FewRowProduct q = c.p;
        x.resize(std::max(x.size(), size_t(q.m * q.k)), 0.5f);
        y.resize(std::max(y.size(), size_t(q.m * q.n)));
        q.x = x.data();
        q.ldx = q.k;
        q.y = y.data();
        q.ldy = q.n;
        q.accumulate = false;
        const auto a = Clock::now();
        moss::few_row_gemm(q);
        pp.rows_replay_s[q.m] += since(a);
      }
      pp.replay = since(r0);
      pp.attention = attention_s;
      pp.rest = pp.step - pp.products;
      for (const auto& [q, seconds] : attention_s) pp.rest -= seconds;
      if (t >= skip) parts.push_back(pp);
    }
    auto med = [&](auto f) {
      std::vector<double> v;
      for (const PushParts& p : parts) v.push_back(f(p));
      return moss::cli::median(v);
    };
    const double step = med([](const PushParts& p) { return p.step; }) * 1e3;
    const double prod = med([](const PushParts& p) { return p.products; }) * 1e3;
    std::printf("%zu one-frame pushes after a %lld-frame first push (medians; read probe %.1f GB/s)\n", parts.size(),
                static_cast<long long>(history), med([](const PushParts& p) { return p.probe; }));
    std::printf("step                %7.2f ms\n", step);
    std::printf("few-row products    %7.2f ms (%zu calls); the same calls replayed back to back %.2f ms\n", prod,
                products.size(), med([](const PushParts& p) { return p.replay; }) * 1e3);
    for (const auto& [m, bytes] : parts.front().rows_bytes) {
      const double s = med([m = m](const PushParts& p) { return p.rows_s.at(m); });
      const double r = med([m = m](const PushParts& p) { return p.rows_replay_s.at(m); });
      std::printf("  %lld input row%s  %7.2f ms, %7.1f MB of weights: %5.1f GB/s in the step, %5.1f replayed\n",
                  static_cast<long long>(m), m == 1 ? " " : "s", s * 1e3, bytes / 1e6, bytes / s / 1e9,
                  bytes / r / 1e9);
    }
    for (const auto& [q, calls] : attention_calls) {
      const double s = med([q = q](const PushParts& p) { return p.attention.at(q); }) * 1e3;
      std::printf("attention, %lld quer%s %7.2f ms (%d layers, with their key/value appends)\n", static_cast<long long>(q),
                  q == 1 ? "y  " : "ies", s, calls);
    }
    std::printf("everything else     %7.2f ms (norms, residual adds, patching; GELU and RoPE run in the products)\n",
                med([](const PushParts& p) { return p.rest; }) * 1e3);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
  return 0;
}
