#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/few_row_gemm.h"
#include "kernels/finite_scan.h"
#include "kernels/large_buffer.h"
#include "kernels/positional.h"
#include "kernels/vector_math.h"
#include "model/kv_window.h"
#include "model/patch.h"
#include "test_util.h"

namespace moss::test {

TEST(Patch, EncoderIndexRuleAndInverse) {
  // x: len 6 x dim 2; patch 3 -> y: 2 x 6 with y[t][d*3+j] = x[t*3+j][d].
  std::vector<float> x(12);
  for (int i = 0; i < 12; ++i) x[i] = float(i);
  std::vector<float> y(12), back(12);
  patch_time_major(x.data(), 6, 2, 3, y.data());
  for (int t = 0; t < 2; ++t)
    for (int d = 0; d < 2; ++d)
      for (int j = 0; j < 3; ++j) EXPECT_EQ(y[t * 6 + d * 3 + j], x[(t * 3 + j) * 2 + d]);
  unpatch_time_major(y.data(), 2, 2, 3, back.data());
  EXPECT_EQ(back, x);
  // Mono: a reshape.
  std::vector<float> m(6);
  patch_time_major(x.data(), 6, 1, 3, m.data());
  EXPECT_EQ(std::vector<float>(m.begin(), m.end()), std::vector<float>(x.begin(), x.begin() + 6));
}

TEST(Rope, RotatesAdjacentPairsAtAbsolutePositions) {
  const int dh = 4;
  RopeTable table;
  table.build(5, 2, dh, 10000.0);
  std::vector<float> x = {1, 2, 3, 4, 1, 2, 3, 4};  // two rows, one head
  apply_rope(x.data(), 2, dh, 1, dh, table);
  for (int row = 0; row < 2; ++row) {
    const double p = 5 + row;
    for (int i = 0; i < 2; ++i) {
      const double angle = p * std::pow(10000.0, -2.0 * i / dh);
      const double x0 = 1 + 2 * i, x1 = 2 + 2 * i;
      EXPECT_NEAR(x[row * 4 + 2 * i], x0 * std::cos(angle) - x1 * std::sin(angle), 1e-5);
      EXPECT_NEAR(x[row * 4 + 2 * i + 1], x0 * std::sin(angle) + x1 * std::cos(angle), 1e-5);
    }
  }
  // Position 0 is the identity.
  RopeTable zero;
  zero.build(0, 1, dh, 10000.0);
  std::vector<float> y = {1, 2, 3, 4};
  apply_rope(y.data(), 1, dh, 1, dh, zero);
  EXPECT_EQ(y, (std::vector<float>{1, 2, 3, 4}));
}

// RoPE on pieces of a q|k|v row as a product finishes them (any even cut,
// mid-head included) gives apply_rope's bits on q and k and leaves v alone.
TEST(Rope, ColumnsOfAProductRowMatchWholeRows) {
  const int heads = 3, dh = 8;
  const int64_t width = heads * dh, n = 3;
  RopeTable table;
  table.build(41, n, dh, 10000.0);
  const auto qkv = random_floats(size_t(n * 3 * width), 61);
  auto whole = qkv;
  apply_rope(whole.data(), n, 3 * width, heads, dh, table);
  apply_rope(whole.data() + width, n, 3 * width, heads, dh, table);
  for (const int64_t step : std::vector<int64_t>{2, 6, 8, 14, 3 * width}) {
    auto pieces = qkv;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t c0 = 3 * width; c0 > 0; c0 -= step)  // last piece first: order must not matter
        apply_rope_columns(pieces.data() + t * 3 * width, std::max<int64_t>(0, c0 - step), c0, width, dh, table, t);
    EXPECT_EQ(0, std::memcmp(pieces.data(), whole.data(), whole.size() * sizeof(float))) << "pieces of " << step;
  }
}

TEST(SinEmbedding, CosThenSinHalves) {
  std::vector<float> x(8, 0.0f);
  add_sin_embedding(x.data(), 1, 8, 3, 10000.0);
  for (int i = 0; i < 4; ++i) {
    const double phase = 3.0 / std::pow(10000.0, i / 3.0);
    EXPECT_NEAR(x[i], std::cos(phase), 1e-6);
    EXPECT_NEAR(x[4 + i], std::sin(phase), 1e-6);
  }
}

TEST(Norms, LayerNormAndRmsNorm) {
  const std::vector<float> x = {1, 2, 3, 6};
  const std::vector<float> w = {1, 2, 1, 1}, b = {0, 0, 1, 0};
  std::vector<float> y(4);
  layer_norm(x.data(), 1, 4, w.data(), b.data(), 1e-5f, y.data());
  const double mean = 3, var = (4 + 1 + 0 + 9) / 4.0;
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], (x[i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i], 1e-6);
  rms_norm(x.data(), 1, 4, w.data(), 1e-5f, y.data());
  const double ms = (1 + 4 + 9 + 36) / 4.0;
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(y[i], x[i] * w[i] / std::sqrt(ms + 1e-5), 1e-6);
  // rms_norm_f32's eps of 1e-8 matters for tiny inputs.
  const std::vector<float> small = {1e-4f, -1e-4f}, ones = {1, 1};
  std::vector<float> a(2), c(2);
  rms_norm(small.data(), 1, 2, ones.data(), 1e-8f, a.data());
  rms_norm(small.data(), 1, 2, ones.data(), 1e-5f, c.data());
  EXPECT_NEAR(a[0], 1e-4 / std::sqrt(1e-8 + 1e-8), 1e-5);
  EXPECT_GT(std::fabs(a[0] - c[0]), 0.5);
}

TEST(Activations, ExactGeluAndTheRest) {
  EXPECT_NEAR(gelu(1.0f), 0.8413447460685429, 1e-6);  // the tanh approximation gives 0.841192
  EXPECT_NEAR(gelu(-3.0f), -0.004049694681, 1e-7);
  EXPECT_NEAR(activate(Activation::Silu, 1.0f), 0.7310585786, 1e-6);
  EXPECT_NEAR(activate(Activation::Mish, 1.0f), 0.8650983882673103, 1e-6);
  EXPECT_NEAR(activate(Activation::Mish, 30.0f), 30.0, 1e-5);
  EXPECT_NEAR(activate(Activation::LeakyRelu, -2.0f), -0.02, 1e-7);
  EXPECT_NEAR(activate(Activation::Elu, -1.0f), std::expm1(-1.0), 1e-7);
  EXPECT_NEAR(activate(Activation::Softsign, -3.0f), -0.75, 1e-7);
  EXPECT_NEAR(activate(Activation::Sigmoid, 0.0f), 0.5, 1e-7);
  EXPECT_NEAR(activate(Activation::Tanh, 0.5f), std::tanh(0.5), 1e-7);
  EXPECT_EQ(activate(Activation::Relu, -1.0f), 0.0f);
  EXPECT_EQ(activate(Activation::Identity, -1.5f), -1.5f);
}

// Naive windowed attention over a whole sequence, for comparison.
static std::vector<float> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, int n, int heads, int dh, int context,
                                          bool causal = true) {
  const int D = heads * dh;
  std::vector<float> out(size_t(n * D));
  for (int h = 0; h < heads; ++h)
    for (int i = 0; i < n; ++i) {
      std::vector<double> w;
      double mx = -1e300;
      for (int j = 0; j < n; ++j) {
        double s = -1e300;
        if (!causal || (i - j >= 0 && i - j < context)) {
          s = 0;
          for (int c = 0; c < dh; ++c) s += double(q[i * D + h * dh + c]) * k[j * D + h * dh + c];
          s /= std::sqrt(double(dh));
        }
        w.push_back(s);
        mx = std::max(mx, s);
      }
      double sum = 0;
      for (auto& s : w) sum += (s = s <= -1e299 ? 0 : std::exp(s - mx));
      for (int c = 0; c < dh; ++c) {
        double acc = 0;
        for (int j = 0; j < n; ++j) acc += w[j] / sum * v[j * D + h * dh + c];
        out[i * D + h * dh + c] = float(acc);
      }
    }
  return out;
}

// A KvWindow's per-head write hook (append_per_head), wrapped to count how
// often the attention calls it for each head.
struct CountedHeadWrites {
  BeforeHead write;
  std::vector<std::atomic<int>> per_head;
  CountedHeadWrites(BeforeHead w, int heads) : write(w), per_head(size_t(heads)) {}
  BeforeHead hook() {
    return {[](void* ctx, int h) {
              auto& c = *static_cast<CountedHeadWrites*>(ctx);
              c.write.fn(c.write.ctx, h);
              ++c.per_head[size_t(h)];
            },
            this};
  }
};

TEST(Attention, WindowedMatchesNaiveAndCachedChunksMatchWhole) {
  const int n = 70, heads = 2, dh = 4, D = heads * dh, context = 9;
  auto q = random_floats(n * D, 1), k = random_floats(n * D, 2), v = random_floats(n * D, 3);
  const auto expect = naive_attention(q, k, v, n, heads, dh, context);
  AttentionShape s{n, n, heads, dh, context, true};
  std::vector<float> out(n * D);
  windowed_attention(s, q.data(), D, k.data(), v.data(), D, out.data(), D);
  for (int i = 0; i < n * D; ++i) ASSERT_NEAR(out[i], expect[i], 1e-5) << i;
  // Queries [40, 45) against the keys a stream would hold: the previous
  // context - 1 rows plus the new ones.
  const int q0 = 40, nq = 5, first_key = q0 - (context - 1);
  AttentionShape c{nq, nq + context - 1, heads, dh, context, true};
  std::vector<float> part(nq * D);
  windowed_attention(c, q.data() + q0 * D, D, k.data() + first_key * D, v.data() + first_key * D, D, part.data(), D);
  for (int i = 0; i < nq * D; ++i) ASSERT_NEAR(part[i], expect[q0 * D + i], 1e-5) << i;
  // Non-causal: every query sees every key.
  AttentionShape full{n, n, heads, dh, 0, false};
  windowed_attention(full, q.data(), D, k.data(), v.data(), D, out.data(), D);
  const auto expect_full = naive_attention(q, k, v, n, heads, dh, 0, /*causal=*/false);
  for (int i = 0; i < n * D; ++i) ASSERT_NEAR(out[i], expect_full[i], 1e-5) << i;
}


// A stream's head-major window, filled by pushes of every size from 1 to
// past the window (so it compacts and grows), attends like the naive pass
// over the whole sequence: head_dim 16 and 64 exercise the vector paths,
// 5 the scalar tails.
TEST(Attention, HeadMajorWindowOverPushesMatchesNaive) {
  // Each push's keys and values appended before the attention, or written
  // head by head by the attention itself (BeforeHead, as a streaming step
  // does): by each head's task with one block of queries, before the tasks
  // with more (the 130-row push: two blocks of 128).
  const std::vector<std::vector<int>> push_lists = {{1, 2, 3, 8, 1, 30, 1, 1, 9, 40, 5, 2, 47}, {1, 2, 130, 17}};
  for (int dh : {5, 16, 64})
    for (const auto& pushes : push_lists)
      for (bool deferred : {false, true}) {
        const int n = 150, heads = 3, D = heads * dh, context = 23;
        auto q = random_floats(size_t(n * D), 4), k = random_floats(size_t(n * D), 5), v = random_floats(size_t(n * D), 6);
        const auto expect = naive_attention(q, k, v, n, heads, dh, context);
        KvWindow kv;
        std::vector<float> out(size_t(n * D));
        int at = 0;
        for (int len : pushes) {
          // The hook kv returns, counted per head.
          CountedHeadWrites counted({}, heads);
          BeforeHead before;
          if (deferred) {
            counted.write = kv.append_per_head(k.data() + at * D, v.data() + at * D, D, len, heads, dh, context - 1);
            before = counted.hook();
          } else {
            kv.append(k.data() + at * D, v.data() + at * D, D, len, heads, dh, context - 1);
          }
          AttentionShape s{len, kv.rows(), heads, dh, context, true};
          windowed_attention(s, q.data() + at * D, D, kv.view(), out.data() + at * D, D, before);
          if (deferred)
            for (int h = 0; h < heads; ++h) ASSERT_EQ(counted.per_head[size_t(h)], 1) << "head " << h << " push of " << len;
          kv.keep_newest(context - 1);
          ASSERT_LE(kv.rows(), context - 1);
          at += len;
        }
        ASSERT_EQ(at, n);
        for (int i = 0; i < n * D; ++i)
          ASSERT_NEAR(out[i], expect[i], 1e-5) << "head_dim " << dh << " deferred " << deferred << " at " << i;
      }
}

// The ring: one-row pushes wrap it many times without moving it (same
// buffer, same capacity: no stalls in a long stream), a larger push then
// grows it while its live rows wrap, and the answers stay those of the naive
// pass throughout.
TEST(Attention, HeadMajorRingWrapsGrowsAndMatchesNaive) {
  const int dh = 16, heads = 2, D = heads * dh, context = 40, keep = context - 1;
  std::vector<int> pushes(100, 1);
  pushes.push_back(20);
  for (int i = 0; i < 30; ++i) pushes.push_back(i % 3 == 0 ? 7 : 1);
  int n = 0;
  for (int len : pushes) n += len;
  auto q = random_floats(size_t(n * D), 7), k = random_floats(size_t(n * D), 8), v = random_floats(size_t(n * D), 9);
  const auto expect = naive_attention(q, k, v, n, heads, dh, context);
  KvWindow kv;
  std::vector<float> out(size_t(n * D));
  const float* ring = nullptr;
  int at = 0;
  for (size_t i = 0; i < pushes.size(); ++i) {
    const int len = pushes[i];
    const bool wrapped_before = kv.rows() > 0 && kv.view().first + kv.rows() > kv.capacity();
    kv.append(k.data() + at * D, v.data() + at * D, D, len, heads, dh, keep);
    if (i == 0) EXPECT_EQ(kv.capacity(), 48);  // the window plus one row, in whole tiles
    if (i > 0 && i < 100) EXPECT_EQ(kv.view().kt, ring) << "the ring moved at push " << i;
    if (i == 100) {
      EXPECT_TRUE(wrapped_before);  // so the growth moved two runs
      EXPECT_GE(kv.capacity(), keep + 20);
    }
    ring = kv.view().kt;
    AttentionShape s{len, kv.rows(), heads, dh, context, true};
    windowed_attention(s, q.data() + at * D, D, kv.view(), out.data() + at * D, D);
    kv.keep_newest(keep);
    at += len;
  }
  for (int i = 0; i < n * D; ++i) ASSERT_NEAR(out[i], expect[i], 1e-5) << "at " << i;
}

// The windows of one transformer's layers share a KvArena: their rings lie
// one after another (layer 0's keys, its values, layer 1's keys, ...) from a
// 2 MiB boundary, and when a larger push grows them they move together to a
// new block with their live rows. The v1 decoder's first-stage geometry: a
// ring of 20 heads x 64 x 128 slots is 640 KB, below LargeVector's
// huge-page size on its own.
TEST(Attention, LayerWindowsShareOneHugePageArenaAndGrowTogether) {
  static_assert(!std::is_copy_constructible_v<KvWindow>, "a copy would share the rings");
  const int heads = 20, dh = 64, D = heads * dh, layers = 3, keep = 124;
  const auto arena = std::make_shared<KvArena>(2 * layers);
  std::vector<KvWindow> kv;
  for (int l = 0; l < layers; ++l) kv.emplace_back(arena);
  const int n = keep + 20;
  std::vector<std::vector<float>> k, v;
  for (int l = 0; l < layers; ++l) {
    k.push_back(random_floats(size_t(n * D), 60 + l));
    v.push_back(random_floats(size_t(n * D), 70 + l));
  }
  const auto check = [&](const char* when, int64_t pushed) {
    const int64_t ring = D * kv[0].capacity();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(kv[0].view().kt) % kHugePageBytes, 0u) << when;
    for (int l = 0; l < layers; ++l) {
      const HeadMajorKv w = kv[size_t(l)].view();
      EXPECT_EQ(kv[size_t(l)].capacity(), kv[0].capacity()) << when;
      EXPECT_EQ(w.v, w.kt + ring) << when << ", layer " << l;
      if (l > 0) EXPECT_EQ(w.kt, kv[size_t(l - 1)].view().v + ring) << when << ", layer " << l;
      // Every live row's values are the ones pushed into this layer.
      const int64_t rows = kv[size_t(l)].rows();
      for (int64_t i = 0; i < rows; ++i)
        for (int h = 0; h < heads; ++h) {
          const int64_t slot = (w.first + i) % w.capacity, row = pushed - rows + i;
          ASSERT_EQ(0, std::memcmp(w.v + (h * w.capacity + slot) * dh, v[size_t(l)].data() + row * D + h * dh,
                                   sizeof(float) * dh))
              << when << ", layer " << l << " row " << row << " head " << h;
        }
    }
  };
  int64_t at = 0;
  for (; at < keep + 1; ++at)  // one-row pushes fill the first ring
    for (int l = 0; l < layers; ++l) {
      kv[size_t(l)].append(k[size_t(l)].data() + at * D, v[size_t(l)].data() + at * D, D, 1, heads, dh, keep);
      kv[size_t(l)].keep_newest(keep);
    }
  check("after one-row pushes", at);
  const float* first_ring = kv[0].view().kt;
  for (int l = 0; l < layers; ++l)  // a 19-row push outgrows it
    kv[size_t(l)].append(k[size_t(l)].data() + at * D, v[size_t(l)].data() + at * D, D, n - at, heads, dh, keep);
  at = n;
  EXPECT_NE(kv[0].view().kt, first_ring);
  EXPECT_GE(kv[0].capacity(), keep + 19);
  check("after growing", at);
}

}  // namespace moss::test

namespace moss::test {

TEST(LargeBuffer, LargeVectorsAreHugePageAlignedAndBehaveAsVectors) {
  // Small buffers come from the ordinary allocator; from kLargeBufferBytes on
  // they are mapped at a 2 MiB boundary, zero-initialized like any vector, and
  // keep their contents across growth and swaps.
  LargeVector<float> small(16, 1.0f);
  EXPECT_EQ(small[15], 1.0f);
  const size_t n = kLargeBufferBytes / sizeof(float) + 3;  // not a whole number of huge pages
  LargeVector<float> big(n);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % kHugePageBytes, 0u);
  EXPECT_EQ(big.front(), 0.0f);
  EXPECT_EQ(big.back(), 0.0f);
  for (size_t i = 0; i < n; ++i) big[i] = float(i % 1000);
  big.resize(3 * n);  // moves into a larger mapping
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % kHugePageBytes, 0u);
  EXPECT_EQ(big[n - 1], float((n - 1) % 1000));
  EXPECT_EQ(big[3 * n - 1], 0.0f);
  big.swap(small);
  EXPECT_EQ(small.size(), 3 * n);
  EXPECT_EQ(big.size(), 16u);
  small.clear();
  small.shrink_to_fit();  // unmaps
  EXPECT_EQ(small.capacity(), 0u);
  // Sizes whose page rounding would wrap around are refused, not mapped small.
  EXPECT_THROW(LargeBufferAllocator<float>().allocate(size_t(-1) / sizeof(float)), std::bad_alloc);
}

TEST(VectorMath, ExpAndGeluAccuracy) {
  double worst_exp = 0;
  for (float x = -80.0f; x < 80.0f; x += 0.01337f)
    worst_exp = std::max(worst_exp, std::fabs(vexp(x) - std::exp(double(x))) / std::exp(double(x)));
  EXPECT_LT(worst_exp, 3e-7);
  EXPECT_EQ(vexp(-200.0f) < 1e-37f, true);
  std::vector<float> xs;
  for (float x = -12.0f; x < 12.0f; x += 0.00731f) xs.push_back(x);
  std::vector<float> g = xs;
  activate_inplace(Activation::Gelu, g.data(), int64_t(g.size()));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double exact = 0.5 * xs[i] * (1.0 + std::erf(double(xs[i]) / std::sqrt(2.0)));
    ASSERT_NEAR(g[i], exact, 2e-7 * std::max(1.0, std::fabs(double(xs[i])))) << xs[i];
  }
}

}  // namespace moss::test

namespace moss::test {

// Every few-row kernel this CPU runs, on every row count and on shapes that
// hit each path: lengths below, at and above a vector, odd tails, rows both
// sides of the 2048 switch, output counts off the 4-row blocks, padded
// strides, alpha, accumulation, and sizes that split over the threads.
TEST(FiniteScan, FindsTheFirstNanOrInfAtEveryPosition) {
  // Largest finite magnitudes, subnormals and negative zero are finite; every
  // bit pattern with all exponent bits set is not, whatever its sign or payload.
  const float finite[] = {FLT_MAX, -FLT_MAX, FLT_MIN, -FLT_MIN, 1e-45f, -1e-45f, -0.0f, 0.0f, 1.0f};
  const uint32_t non_finite[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u, 0x7f800001u, 0xffffffffu};
  constexpr int64_t kBlock = 1 << 14;  // the scan's block; positions around its edges matter
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(15), int64_t(16), int64_t(17), kBlock - 1, kBlock + 1,
                    20 * kBlock + 7}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = finite[i % 9];
    ASSERT_EQ(first_non_finite(x.data(), n), n) << "n " << n;
    std::vector<int64_t> positions = {0, 15, 16, kBlock - 1, kBlock, 3 * kBlock + 5, 17 * kBlock, n - 1};
    for (int64_t at : positions) {
      if (at < 0 || at >= n) continue;
      for (uint32_t bits : non_finite) {
        std::vector<float> y = x;
        std::memcpy(&y[size_t(at)], &bits, 4);
        ASSERT_EQ(first_non_finite(y.data(), n), at) << "n " << n << " at " << at << " bits " << bits;
        // A later bad value must not hide the first one, wherever it sits.
        if (at + kBlock + 3 < n) {
          std::memcpy(&y[size_t(at + kBlock + 3)], &bits, 4);
          ASSERT_EQ(first_non_finite(y.data(), n), at);
        }
      }
    }
  }
}

// y (from y0) must hold case c's product of x and W (n x k, rows ldw apart)
// to float32 rounding of a sum of k terms, and keep y0's padding between rows.
void expect_product_in_double(const FewRowCase& c, const std::vector<float>& x, const std::vector<float>& w, int64_t ldw,
                              const std::vector<float>& y0, const std::vector<float>& y) {
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t j = 0; j < c.n; ++j) {
      double dot = 0, mag = 0;
      for (int64_t t = 0; t < c.k; ++t) {
        dot += double(x[size_t(r * c.ldx + t)]) * w[size_t(j * ldw + t)];
        mag += std::fabs(double(x[size_t(r * c.ldx + t)]) * w[size_t(j * ldw + t)]);
      }
      const double expect = c.alpha * dot + (c.accumulate ? y0[size_t(r * c.ldy + j)] : 0.0);
      ASSERT_NEAR(y[size_t(r * c.ldy + j)], expect, 1e-6 * (1 + mag))
          << "isa " << int(c.isa) << " m " << c.m << " n " << c.n << " k " << c.k << " accumulate " << c.accumulate;
    }
  for (int64_t r = 0; r < c.m; ++r)
    for (int64_t j = c.n; j < c.ldy; ++j) ASSERT_EQ(y[size_t(r * c.ldy + j)], y0[size_t(r * c.ldy + j)]);
}

TEST(FewRowGemm, EveryKernelMatchesDoublePrecision) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},    {3, 15},    {7, 16},    {13, 33},
                                                            {37, 130}, {64, 2100}, {9, 4100}, {45, 2100}, {1030, 80}};
  const int checked = for_each_few_row_case(shapes, [](const FewRowCase& c) {
    if (::testing::Test::HasFatalFailure()) return;
    const auto x = random_floats(size_t(c.m * c.ldx), 11), w = random_floats(size_t(c.n * c.ldw), 12);
    auto y = random_floats(size_t(c.m * c.ldy), 13);
    const auto y0 = y;
    few_row_gemm({x.data(), c.ldx, c.m, c.k, w.data(), c.ldw, c.n, y.data(), c.ldy, c.alpha, c.accumulate}, c.isa);
    expect_product_in_double(c, x, w, c.ldw, y0, y);
  });
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// Puts OpenMP's thread count back as it was, also when an assertion returns
// early: the tests that set it for each case.
struct RestoreThreads {
  int saved = omp_get_max_threads();
  ~RestoreThreads() { omp_set_num_threads(saved); }
};

// Threads share a product's rows out on demand (each its own share, then
// pieces of the others'), so which thread sums which row changes from call to
// call; every row must still be summed by the same kernel, so that results are
// the same bit for bit at every thread count, and every row is written once.
// (Named so that sanitize.sh's ThreadSanitizer filter, '*Thread*', leaves it
// out: TSan cannot see libgomp's barriers, and this test runs OpenMP teams.)
TEST(FewRowGemm, ResultsDoNotDependOnHowRowsAreShared) {
  const RestoreThreads restore;
  // Rows not a multiple of 8 (the unit shared out), rows too short to block,
  // and weight matrices large enough for many pieces per share. Every case is
  // compared with one thread's result over all of y: a row left unwritten
  // keeps its random start, one summed twice (accumulated) differs, and
  // padding between rows must stay as it was.
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1031, 300}, {4100, 80}, {2053, 1280}, {517, 5120}};
  const int checked = for_each_few_row_case(shapes, [](const FewRowCase& c) {
    if (::testing::Test::HasFatalFailure()) return;
    const auto x = random_floats(size_t(c.m * c.ldx), 21), w = random_floats(size_t(c.n * c.ldw), 22);
    const auto y0 = random_floats(size_t(c.m * c.ldy), 23);
    auto one = y0;
    FewRowProduct p{x.data(), c.ldx, c.m, c.k, w.data(), c.ldw, c.n, one.data(), c.ldy, c.alpha, c.accumulate};
    omp_set_num_threads(1);
    few_row_gemm(p, c.isa);
    for (int threads : {2, 3, 5, 16}) {
      omp_set_num_threads(threads);
      for (int round = 0; round < 3; ++round) {
        auto y = y0;
        p.y = y.data();
        few_row_gemm(p, c.isa);
        ASSERT_EQ(0, std::memcmp(y.data(), one.data(), y.size() * sizeof(float)))
            << "isa " << int(c.isa) << " m " << c.m << " n " << c.n << " k " << c.k << " accumulate " << c.accumulate
            << " threads " << threads;
      }
    }
  });
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// W (n x k, row-major) in oneDNN's BA16a64b layout as FewRowProduct::w_blocked
// reads it, written out from its definition: strip s of 64 outputs holds
// blocked_depth(k) inputs of 64 weights each. Padding is `pad`.
std::vector<float> to_blocked(const std::vector<float>& w, int64_t n, int64_t k, float pad) {
  const int64_t strips = (n + kBlockedStrip - 1) / kBlockedStrip, depth = blocked_depth(k);
  std::vector<float> b(size_t(strips * depth * kBlockedStrip), pad);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t t = 0; t < k; ++t)
      b[size_t((j / kBlockedStrip * depth + t) * kBlockedStrip + j % kBlockedStrip)] = w[size_t(j * k + t)];
  return b;
}

// Weights in the blocked layout of packed checkpoints: every kernel set, 1-8
// rows, outputs and inputs off the 64 x 16 tiles, padded strides, scaled and
// accumulated. The layout's padding is NaN, so a kernel that sums it into an
// output, or stores a padded output, fails.
TEST(FewRowGemm, BlockedWeightsMatchDoublePrecision) {
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1, 1},    {3, 15},   {64, 16}, {70, 33},
                                                            {130, 200}, {45, 2100}, {200, 768}};
  const int checked = for_each_few_row_case(shapes, [](const FewRowCase& c) {
    if (::testing::Test::HasFatalFailure()) return;
    const auto x = random_floats(size_t(c.m * c.ldx), 31), w = random_floats(size_t(c.n * c.k), 32);
    const auto blocked = to_blocked(w, c.n, c.k, NAN);
    auto y = random_floats(size_t(c.m * c.ldy), 33);
    const auto y0 = y;
    FewRowProduct p{x.data(), c.ldx, c.m, c.k, nullptr, 0, c.n, y.data(), c.ldy, c.alpha, c.accumulate};
    p.w_blocked = blocked.data();
    few_row_gemm(p, c.isa);
    expect_product_in_double(c, x, w, c.k, y0, y);
  });
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// A streaming step's attention at the v1 decoder's shapes, large enough to run
// as an OpenMP team: 1- and 2-query steps (a head's keys and values within
// 128 KB) deal each thread a run of consecutive heads, 4 and 8 queries take
// heads one at a time and score one tile of keys at a time. Every team size
// gives the bits of one thread, every head's new rows are written once by the
// hook, and the answers are the naive pass's. (No "Thread" in the name: see
// the row-sharing test above.)
TEST(Attention, HeadMajorStepsMatchNaiveAtEveryTeamSize) {
  const RestoreThreads restore;
  const int heads = 20, dh = 64, D = heads * dh, context = 125;
  std::vector<int> pushes(130, 1);  // past the window, so the ring wraps
  for (int len : {2, 2, 4, 4, 8, 8, 1}) pushes.push_back(len);
  int n = 0;
  for (int len : pushes) n += len;
  auto q = random_floats(size_t(n * D), 51), k = random_floats(size_t(n * D), 52), v = random_floats(size_t(n * D), 53);
  const auto expect = naive_attention(q, k, v, n, heads, dh, context);
  std::vector<float> one_thread;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    KvWindow kv;
    std::vector<float> out(size_t(n * D), NAN);
    int at = 0;
    for (int len : pushes) {
      CountedHeadWrites counted(kv.append_per_head(k.data() + at * D, v.data() + at * D, D, len, heads, dh, context - 1),
                                heads);
      AttentionShape s{len, kv.rows(), heads, dh, context, true};
      windowed_attention(s, q.data() + at * D, D, kv.view(), out.data() + at * D, D, counted.hook());
      for (int h = 0; h < heads; ++h)
        ASSERT_EQ(counted.per_head[size_t(h)], 1) << "head " << h << " push of " << len << ", " << threads << " threads";
      kv.keep_newest(context - 1);
      at += len;
    }
    for (int i = 0; i < n * D; ++i) ASSERT_NEAR(out[i], expect[i], 1e-5) << threads << " threads, at " << i;
    if (threads == 1) one_thread = out;
    else ASSERT_EQ(0, std::memcmp(out.data(), one_thread.data(), out.size() * sizeof(float))) << threads << " threads";
  }
}

// Blocked weights are shared out by whole strips: the same bits at every
// thread count, every output written once (named outside sanitize.sh's
// '*Thread*' TSan filter, as the test above on row sharing).
TEST(FewRowGemm, BlockedResultsDoNotDependOnHowStripsAreShared) {
  const RestoreThreads restore;
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1031, 300}, {4100, 80}, {517, 5120}};
  const int checked = for_each_few_row_case(shapes, [](const FewRowCase& c) {
    if (::testing::Test::HasFatalFailure()) return;
    const auto x = random_floats(size_t(c.m * c.ldx), 41);
    const auto blocked = to_blocked(random_floats(size_t(c.n * c.k), 42), c.n, c.k, NAN);
    const auto y0 = random_floats(size_t(c.m * c.ldy), 43);
    auto one = y0;
    FewRowProduct p{x.data(), c.ldx, c.m, c.k, nullptr, 0, c.n, one.data(), c.ldy, c.alpha, c.accumulate};
    p.w_blocked = blocked.data();
    omp_set_num_threads(1);
    few_row_gemm(p, c.isa);
    for (int threads : {2, 3, 16}) {
      omp_set_num_threads(threads);
      auto y = y0;
      p.y = y.data();
      few_row_gemm(p, c.isa);
      ASSERT_EQ(0, std::memcmp(y.data(), one.data(), y.size() * sizeof(float)))
          << "isa " << int(c.isa) << " m " << c.m << " n " << c.n << " k " << c.k << " threads " << threads;
    }
  });
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// The hook a product runs on its finished outputs (a streaming step's GELU
// and RoPE): called once for every output, for plain and blocked weights, at
// 1, 2, 3 and 16 threads, and only on final values; what it does to them is
// then the same bits as doing it after the whole product. (Named outside
// sanitize.sh's '*Thread*' TSan filter, as the sharing tests above.)
TEST(FewRowGemm, OutputHookSeesEveryFinishedOutputOnce) {
  const RestoreThreads restore;
  struct Seen {
    const FewRowCase* c;
    const std::vector<float>* final_y;  // the product without a hook
    std::vector<std::atomic<int>> calls;
    std::atomic<int> early{0}, misaligned{0};
    static void run(void* self, float* y, int64_t ldy, int64_t m, int64_t n0, int64_t n1) {
      Seen& s = *static_cast<Seen*>(self);
      if (n0 % 8 != 0 || n1 > s.c->n || m != s.c->m || ldy != s.c->ldy) ++s.misaligned;
      for (int64_t r = 0; r < m; ++r) {
        for (int64_t j = n0; j < std::min(n1, s.c->n); ++j) {
          ++s.calls[size_t(r * s.c->n + j)];
          if (std::memcmp(&y[r * ldy + j], &(*s.final_y)[size_t(r * ldy + j)], sizeof(float)) != 0) ++s.early;
        }
        gelu_span(y + r * ldy + n0, n1 - n0);
      }
    }
  };
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{1031, 300}, {517, 5120}, {70, 33}};
  const int checked = for_each_few_row_case(shapes, [](const FewRowCase& c) {
    if (::testing::Test::HasFatalFailure()) return;
    const auto x = random_floats(size_t(c.m * c.ldx), 51), w = random_floats(size_t(c.n * c.ldw), 52);
    std::vector<float> wk(size_t(c.n * c.k));  // w without its row padding, for the blocked copy
    for (int64_t j = 0; j < c.n; ++j)
      std::copy(w.begin() + j * c.ldw, w.begin() + j * c.ldw + c.k, wk.begin() + j * c.k);
    const auto blocked = to_blocked(wk, c.n, c.k, NAN);
    const auto y0 = random_floats(size_t(c.m * c.ldy), 53);
    for (bool use_blocked : {false, true}) {
      FewRowProduct p{x.data(), c.ldx, c.m, c.k, use_blocked ? nullptr : w.data(), c.ldw, c.n, nullptr, c.ldy,
                      c.alpha, c.accumulate};
      if (use_blocked) p.w_blocked = blocked.data();
      omp_set_num_threads(1);
      auto final_y = y0;
      p.y = final_y.data();
      few_row_gemm(p, c.isa);
      auto expected = final_y;  // the product, then GELU on every output
      for (int64_t r = 0; r < c.m; ++r) gelu_span(expected.data() + r * c.ldy, c.n);
      for (int threads : {1, 2, 3, 16}) {
        omp_set_num_threads(threads);
        Seen seen{&c, &final_y, std::vector<std::atomic<int>>(size_t(c.m * c.n))};
        auto y = y0;
        p.y = y.data();
        p.after = {Seen::run, &seen};
        few_row_gemm(p, c.isa);
        p.after = {};
        const std::string where = "isa " + std::to_string(int(c.isa)) + " m " + std::to_string(c.m) + " n " +
                                  std::to_string(c.n) + " k " + std::to_string(c.k) + " blocked " +
                                  std::to_string(use_blocked) + " threads " + std::to_string(threads);
        for (size_t i = 0; i < seen.calls.size(); ++i) ASSERT_EQ(seen.calls[i].load(), 1) << where << " output " << i;
        ASSERT_EQ(seen.early.load(), 0) << where;
        ASSERT_EQ(seen.misaligned.load(), 0) << where;
        ASSERT_EQ(0, std::memcmp(y.data(), expected.data(), y.size() * sizeof(float))) << where;
      }
    }
  });
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// Attention's weighted sum of values for a few rows: every kernel, value
// widths below, at and off a vector, and wide ones taken in strips of four
// vectors (96 and 128: 3 and 4 strips with AVX2, 128 in 2 with AVX-512),
// padded strides, stored or accumulated.
TEST(FewRowWeightedSum, EveryKernelMatchesDoublePrecision) {
  int checked = 0;
  for (FewRowIsa isa : {FewRowIsa::Avx512, FewRowIsa::Avx2}) {
    if (!few_row_gemm_available(isa)) continue;
    for (int64_t m = 1; m <= kFewRowsMax; ++m)
      for (int64_t span : {1, 7, 130})
        for (int64_t d : {1, 15, 16, 64, 70, 96, 128}) {
          // ldv == d (a head's values, packed) takes the narrow kernels.
          const int64_t ldp = span + 1, ldv = m % 2 ? d : d + 3, ldy = d + 2;
          auto p = random_floats(size_t(m * ldp), 21), v = random_floats(size_t(span * ldv), 22);
          auto y = random_floats(size_t(m * ldy), 23);
          const auto y0 = y;
          const bool accumulate = (m + span + d) % 2 == 1;
          few_row_weighted_sum({p.data(), ldp, m, span, v.data(), ldv, d, y.data(), ldy, accumulate}, isa);
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t c = 0; c < d; ++c) {
              double sum = accumulate ? y0[size_t(r * ldy + c)] : 0, mag = std::fabs(sum);
              for (int64_t j = 0; j < span; ++j) {
                sum += double(p[size_t(r * ldp + j)]) * v[size_t(j * ldv + c)];
                mag += std::fabs(double(p[size_t(r * ldp + j)]) * v[size_t(j * ldv + c)]);
              }
              ASSERT_NEAR(y[size_t(r * ldy + c)], sum, 1e-6 * (1 + mag))
                  << "isa " << int(isa) << " m " << m << " span " << span << " d " << d;
            }
            for (int64_t c = d; c < ldy; ++c) ASSERT_EQ(y[size_t(r * ldy + c)], y0[size_t(r * ldy + c)]);
          }
          ++checked;
        }
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// Attention's scores against tiles of transposed keys: every kernel and row
// count, tile counts off the kernels' groups of tiles, a depth off the vector
// width, tiles and rows with padding between them (never written).
TEST(FewRowTiledScores, EveryKernelMatchesDoublePrecision) {
  int checked = 0;
  for (FewRowIsa isa : {FewRowIsa::Avx512, FewRowIsa::Avx2}) {
    if (!few_row_gemm_available(isa)) continue;
    for (int64_t m = 1; m <= kFewRowsMax; ++m)
      for (int64_t tiles : {1, 3, 9})
        for (int64_t depth : {5, 64}) {
          const int64_t ldq = depth + 1, stride = depth * kKeyTile + 7, ldy = tiles * kKeyTile + 3;
          const float alpha = 0.125f;
          auto q = random_floats(size_t(m * ldq), 31), k = random_floats(size_t(tiles * stride), 32);
          auto y = random_floats(size_t(m * ldy), 33);
          const auto y0 = y;
          few_row_tiled_scores({q.data(), ldq, m, depth, k.data(), stride, tiles, y.data(), ldy, alpha}, isa);
          for (int64_t r = 0; r < m; ++r) {
            for (int64_t j = 0; j < tiles * kKeyTile; ++j) {
              double dot = 0, mag = 0;
              for (int64_t c = 0; c < depth; ++c) {
                const double term = double(q[size_t(r * ldq + c)]) *
                                    k[size_t(j / kKeyTile * stride + c * kKeyTile + j % kKeyTile)];
                dot += term;
                mag += std::fabs(term);
              }
              ASSERT_NEAR(y[size_t(r * ldy + j)], alpha * dot, 1e-6 * (1 + mag))
                  << "isa " << int(isa) << " m " << m << " tiles " << tiles << " depth " << depth;
            }
            for (int64_t j = tiles * kKeyTile; j < ldy; ++j) ASSERT_EQ(y[size_t(r * ldy + j)], y0[size_t(r * ldy + j)]);
          }
          ++checked;
        }
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) EXPECT_GT(checked, 0);
#endif
}

// read_ahead only requests lines (the next head's keys or values): with it
// pointing at NaNs, every kernel still gives the bits it gives without. A
// request that became a load would put NaN in the results.
TEST(FewRowReadAhead, RequestsLeaveTheResultsAsTheyAre) {
  for (FewRowIsa isa : {FewRowIsa::Avx512, FewRowIsa::Avx2}) {
    if (!few_row_gemm_available(isa)) continue;
    for (int64_t m : {1, 2, 8}) {
      const int64_t span = 40, d = 64, tiles = 8, depth = 64;
      // Values then as many NaNs: the read-ahead copy.
      auto v = random_floats(size_t(2 * span * d), 81);
      std::fill(v.begin() + span * d, v.end(), NAN);
      const auto p = random_floats(size_t(m * span), 82);
      std::vector<float> plain(size_t(m * d)), ahead(size_t(m * d));
      few_row_weighted_sum({p.data(), span, m, span, v.data(), d, d, plain.data(), d, false}, isa);
      few_row_weighted_sum({p.data(), span, m, span, v.data(), d, d, ahead.data(), d, false, span * d}, isa);
      EXPECT_TRUE(same_bits(plain, ahead)) << "weighted sum, m " << m;

      auto k = random_floats(size_t(2 * tiles * depth * kKeyTile), 83);
      std::fill(k.begin() + tiles * depth * kKeyTile, k.end(), NAN);
      const auto q = random_floats(size_t(m * depth), 84);
      const int64_t width = tiles * kKeyTile;
      std::vector<float> scores(size_t(m * width)), scores_ahead(size_t(m * width));
      few_row_tiled_scores({q.data(), depth, m, depth, k.data(), depth * kKeyTile, tiles, scores.data(), width, 0.125f}, isa);
      few_row_tiled_scores({q.data(), depth, m, depth, k.data(), depth * kKeyTile, tiles, scores_ahead.data(), width,
                            0.125f, tiles * depth * kKeyTile},
                           isa);
      EXPECT_TRUE(same_bits(scores, scores_ahead)) << "scores, m " << m;
    }
  }
}

}  // namespace moss::test
