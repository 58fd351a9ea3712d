// Micro-benchmarks of the hot kernels (Google Benchmark). Not tests: run
//   ./build/bench/moss_kernels_bench
// FLOP rates are reported as items per second (1 item = 1 FLOP).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <memory>
#include <random>
#include <vector>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/few_row_gemm.h"
#include "kernels/finite_scan.h"
#include "kernels/gemm.h"
#include "kernels/half.h"
#include "kernels/large_buffer.h"
#include "kernels/onednn_matmul.h"
#include "kernels/positional.h"
#include "machine_probe.h"

namespace {

std::vector<float> randoms(size_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> d(0.0f, 0.1f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Linear layer shapes of the v1 model: rows x (out, in).
void BM_Sgemm(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  auto x = randoms(size_t(m * k)), w = randoms(size_t(n * k));
  std::vector<float> y(size_t(m * n));
  for (auto _ : st) moss::linear_forward(x.data(), m, k, w.data(), n, y.data());
  st.SetItemsProcessed(st.iterations() * 2 * m * n * k);
}

// pack: the weights first copied into oneDNN's blocked layout
// (LoadOptions::pack_weights). Weights stay warm here, in both.
void matmul_bench(benchmark::State& st, bool pack) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  auto x = randoms(size_t(m * k)), w = randoms(size_t(n * k));
  std::vector<float> y(size_t(m * n));
  moss::OnednnMatmul mm(w.data(), n, k);
  if (pack) mm.pack();
  if (pack && !mm.packed()) {
    st.SkipWithError("no blocked oneDNN kernel on this CPU");
    return;
  }
  for (auto _ : st) mm.forward(x.data(), m, y.data());
  st.SetItemsProcessed(st.iterations() * 2 * m * n * k);
}
void BM_Matmul(benchmark::State& st) { matmul_bench(st, false); }
void BM_MatmulPacked(benchmark::State& st) { matmul_bench(st, true); }

// The same with cold weights, as in a model's pass (every matrix read once,
// then not again until the next call): a pool of distinct matrices of 1 GiB
// in all, used in turn.
void matmul_cold_bench(benchmark::State& st, bool pack) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  const int64_t pool = std::max<int64_t>(2, (int64_t(1) << 28) / (n * k));
  auto x = randoms(size_t(m * k));
  moss::LargeVector<float> w(size_t(pool * n * k), 0.01f);
  std::vector<float> y(size_t(m * n));
  std::vector<std::unique_ptr<moss::OnednnMatmul>> mms;
  for (int64_t i = 0; i < pool; ++i) {
    mms.push_back(std::make_unique<moss::OnednnMatmul>(w.data() + i * n * k, n, k));
    if (pack) mms.back()->pack();
  }
  int64_t i = 0;
  for (auto _ : st) mms[size_t(i++ % pool)]->forward(x.data(), m, y.data());
  st.SetItemsProcessed(st.iterations() * 2 * m * n * k);
}
void BM_MatmulCold(benchmark::State& st) { matmul_cold_bench(st, false); }
void BM_MatmulPackedCold(benchmark::State& st) { matmul_cold_bench(st, true); }
#define COLD_SHAPES Args({125, 5120, 1280})->Args({125, 1280, 5120})->Args({1000, 3072, 768})
BENCHMARK(BM_MatmulCold)->COLD_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulPackedCold)->COLD_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();

#define LINEAR_SHAPES                                                                                           \
  Args({1000, 2304, 768})->Args({1000, 3072, 768})->Args({1000, 768, 3072})->Args({125, 3840, 1280})         \
      ->Args({125, 5120, 1280})->Args({125, 1280, 5120})->Args({1, 3840, 1280})->Args({8, 2304, 768})
BENCHMARK(BM_Sgemm)->LINEAR_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Matmul)->LINEAR_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MatmulPacked)->LINEAR_SHAPES->Unit(benchmark::kMillisecond)->UseRealTime();

// A streaming step: a few rows against weights that are not in any cache (a
// pool of distinct matrices, 1 GiB in all, used in turn), as in the decoder's
// per-frame pass. Reported as weight bytes read per second. The pools of
// cold weights are on 2 MiB pages (LargeVector), as mapped checkpoints are
// and as the read-bandwidth probe is.
void BM_WeightStream(benchmark::State& st) {
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  const int64_t pool = std::max<int64_t>(2, (int64_t(1) << 28) / (n * k));
  moss::LargeVector<float> w(size_t(pool * n * k), 0.01f);
  auto x = randoms(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  int64_t i = 0;
  for (auto _ : st) moss::linear_forward(x.data(), m, k, w.data() + (i++ % pool) * n * k, n, y.data());
  st.SetBytesProcessed(st.iterations() * n * k * int64_t(sizeof(float)));
}
// The v1 decoder's per-frame products: 1 row on the 1280-wide stage, then 2,
// 4 and 8 rows on the 768-wide ones (in_proj, out_proj, ffn in, ffn out).
BENCHMARK(BM_WeightStream)
    ->ArgsProduct({{1}, {3840}, {1280}})
    ->Args({1, 1280, 1280})
    ->Args({1, 5120, 1280})
    ->Args({1, 1280, 5120})
    ->Args({2, 2304, 768})
    ->Args({2, 3072, 768})
    ->Args({2, 768, 3072})
    ->Args({4, 2304, 768})
    ->Args({4, 3072, 768})
    ->Args({4, 768, 3072})
    ->Args({8, 2304, 768})
    ->Args({8, 3072, 768})
    ->Args({8, 768, 3072})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// Few-row products against weights not in any cache, stored as `stored`
// values of T per matrix (a pool of them, 1 GiB in all, used in turn), which
// set(p, w) hands to the product. Reported as the bytes of T read per second.
template <class T, class Set>
void few_row_stream(benchmark::State& st, int64_t stored, T fill, Set set) {
  if (!moss::few_row_gemm_available()) {
    st.SkipWithError("no few-row kernels for this CPU");
    return;
  }
  const int64_t m = st.range(0), n = st.range(1), k = st.range(2);
  const int64_t pool = std::max<int64_t>(2, (int64_t(1) << 30) / (stored * int64_t(sizeof(T))));
  moss::LargeVector<T> w(size_t(pool * stored), fill);
  auto x = randoms(size_t(m * k));
  std::vector<float> y(size_t(m * n));
  int64_t i = 0;
  for (auto _ : st) {
    moss::FewRowProduct p{x.data(), k, m, k, nullptr, k, n, y.data(), n};
    set(p, w.data() + (i++ % pool) * stored);
    moss::few_row_gemm(p);
  }
  st.SetBytesProcessed(st.iterations() * n * k * int64_t(sizeof(T)));
}

// The same products over weights in oneDNN's blocked layout (a packed
// checkpoint), which the few-row kernel reads as sums of outer products.
void BM_WeightStreamBlocked(benchmark::State& st) {
  const int64_t n = st.range(1), k = st.range(2);
  const int64_t strips = (n + moss::kBlockedStrip - 1) / moss::kBlockedStrip;
  few_row_stream(st, strips * moss::kBlockedStrip * moss::blocked_depth(k), 0.01f,
                 [](moss::FewRowProduct& p, const float* w) { p.w_blocked = w; });
}
BENCHMARK(BM_WeightStreamBlocked)
    ->Args({1, 3840, 1280})
    ->Args({1, 1280, 5120})
    ->Args({2, 3072, 768})
    ->Args({4, 3072, 768})
    ->Args({8, 2304, 768})
    ->Args({8, 3072, 768})
    ->Args({8, 768, 3072})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The few-row kernel with its weights in cache (BM_Sgemm's products on
// matrices small enough for the two cores' L2): its FMA rate, the bound of the
// 8-row stage where every weight byte needs 4 FLOPs. Items = FLOPs; each call
// (~20 us) includes starting the thread team (~0.7 us here).
BENCHMARK(BM_Sgemm)
    ->Name("BM_FewRowInCache")
    ->Args({8, 256, 768})
    ->Args({8, 64, 3072})
    ->Args({4, 256, 768})
    ->Args({1, 128, 1280})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The same over bf16 weights kept in place (a bf16 checkpoint): widened in
// registers, half the bytes. Reported as bf16 bytes read per second, so time
// per product is half BM_WeightStream's at equal GB/s.
void BM_WeightStreamBf16(benchmark::State& st) {
  few_row_stream(st, st.range(1) * st.range(2), moss::float_to_bf16(0.01f),
                 [](moss::FewRowProduct& p, const uint16_t* w) { p.w16 = w; });
}
BENCHMARK(BM_WeightStreamBf16)
    ->Args({1, 3840, 1280})
    ->Args({1, 1280, 5120})
    ->Args({2, 3072, 768})
    ->Args({4, 3072, 768})
    ->Args({8, 3072, 768})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The machine's read bandwidth as the bench command measures it: the floor
// that BM_WeightStream is compared with (run them together: it drifts).
void BM_ReadBandwidth(benchmark::State& st) {
  double gbs = 0;
  for (auto _ : st) gbs = moss::cli::measure_read_bandwidth_gbs();
  st.counters["GB/s"] = gbs;
}
BENCHMARK(BM_ReadBandwidth)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// The load-time NaN/Inf scan over 256 MiB of weights (out of cache): compare
// its GB/s with BM_ReadBandwidth's.
void BM_FiniteScan(benchmark::State& st) {
  std::vector<float> w = randoms(size_t(64) << 20);
  int64_t first = 0;
  for (auto _ : st) benchmark::DoNotOptimize(first = moss::first_non_finite(w.data(), int64_t(w.size())));
  st.counters["GB"] = benchmark::Counter(double(st.iterations()) * double(w.size() * sizeof(float)) / 1e9,
                                           benchmark::Counter::kIsRate);
}
BENCHMARK(BM_FiniteScan)->Unit(benchmark::kMillisecond)->UseRealTime();

// Windowed causal attention: (frames, window, heads) of the v1 stages.
void BM_Attention(benchmark::State& st) {
  const int64_t n = st.range(0), ctx = st.range(1);
  const int heads = int(st.range(2)), dh = 64, D = heads * dh;
  auto qkv = randoms(size_t(n * 3 * D));
  std::vector<float> out(size_t(n * D));
  moss::AttentionShape s{n, n, heads, dh, ctx, true};
  for (auto _ : st) moss::windowed_attention(s, qkv.data(), 3 * D, qkv.data() + D, qkv.data() + 2 * D, 3 * D, out.data(), D);
  const double keys = ctx >= n ? double(n) * (n + 1) / 2 : double(ctx) * (ctx + 1) / 2 + double(n - ctx) * ctx;
  st.SetItemsProcessed(int64_t(double(st.iterations()) * 4.0 * D * keys));
}
BENCHMARK(BM_Attention)->Args({1000, 1000, 12})->Args({2000, 1000, 12})->Args({125, 125, 20})->Args({8, 1000, 12})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Gelu(benchmark::State& st) {
  // Fresh inputs every pass: GELU applied to its own output drives the
  // negative half towards denormals, which are slow on some CPUs (a Xeon read
  // 0.44 G values/s that way) and never occur in a model.
  const auto source = randoms(size_t(st.range(0)));
  auto x = source;
  for (auto _ : st) {
    st.PauseTiming();
    std::copy(source.begin(), source.end(), x.begin());
    st.ResumeTiming();
    moss::activate_inplace(moss::Activation::Gelu, x.data(), int64_t(x.size()));
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}
BENCHMARK(BM_Gelu)->Arg(1000 * 3072)->UseRealTime();

void BM_LayerNorm(benchmark::State& st) {
  const int64_t rows = st.range(0), d = st.range(1);
  auto x = randoms(size_t(rows * d)), w = randoms(size_t(d)), b = randoms(size_t(d));
  std::vector<float> y(x.size());
  for (auto _ : st) moss::layer_norm(x.data(), rows, d, w.data(), b.data(), 1e-5f, y.data());
  st.SetItemsProcessed(st.iterations() * rows * d);
}
BENCHMARK(BM_LayerNorm)->Args({1000, 768})->Args({125, 1280})->UseRealTime();

void BM_Rope(benchmark::State& st) {
  const int64_t n = st.range(0);
  const int heads = 12, dh = 64;
  auto x = randoms(size_t(n * heads * dh));
  moss::RopeTable t;
  t.build(0, n, dh, 10000.0);
  for (auto _ : st) moss::apply_rope(x.data(), n, heads * dh, heads, dh, t);
  st.SetItemsProcessed(st.iterations() * n * heads * dh);
}
BENCHMARK(BM_Rope)->Arg(1000)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
