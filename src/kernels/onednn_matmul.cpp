#include "kernels/onednn_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <utility>
#include <mutex>
#include <string>

#include "kernels/large_buffer.h"
#include "moss_codec/error.h"

namespace moss {

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// W^T, a (k x n) matrix, in the file format's blocked layout.
dnnl::memory::desc blocked_desc(int64_t n, int64_t k) { return dnnl::memory::desc({k, n}, dt::f32, tag::BA16a64b); }

// The weights layout matmul picks for (n x k) weights, asked with format any
// for one row count, and whether that is brgemm: on AVX-512 it is BA16a64b
// for every row count (checked for 1-4000 rows on every v1 shape), so
// primitives for other row counts take the same copy and stay brgemm.
std::pair<dnnl::memory::desc, bool> preferred_weights(int64_t n, int64_t k) {
  const dnnl::memory::desc src_md({256, k}, dt::f32, tag::ab), dst_md({256, n}, dt::f32, tag::ab);
  const dnnl::memory::desc any_md({k, n}, dt::f32, tag::any);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_md, dst_md), cpu_engine());
  return {pd.weights_desc(), std::string(pd.impl_info_str()).rfind("brg", 0) == 0};
}

std::string shape_text(int64_t n, int64_t k) { return std::to_string(n) + "x" + std::to_string(k); }

}  // namespace

struct OnednnMatmul::State {
  int64_t n, k;
  dnnl::memory weights;  // W^T as a (k x n) matrix in column-major ("ba") order is W itself
  LargeVector<float> packed;  // filled by pack(): weights holds this, in the blocked layout
  bool is_packed = false;     // weights is blocked (packed, or adopted from a packed checkpoint)
  std::mutex mu;
  struct Primitive {
    dnnl::matmul matmul;
    dnnl::memory::desc scratchpad;  // what it needs of the caller's scratch buffer
  };
  std::map<int64_t, Primitive> by_rows;
};

OnednnMatmul::OnednnMatmul(const float* w, int64_t n, int64_t k) : s_(std::make_unique<State>()) {
  s_->n = n;
  s_->k = k;
  s_->weights = dnnl::memory(dnnl::memory::desc({k, n}, dt::f32, tag::ba), cpu_engine(), const_cast<float*>(w));
}

OnednnMatmul::~OnednnMatmul() = default;

void OnednnMatmul::pack() {
  if (packed()) return;
  if (!s_->weights.get_data_handle()) throw Error("OnednnMatmul::pack: no weights to pack (they are passed per call)");
  try {
    const auto [blocked, brgemm] = preferred_weights(s_->n, s_->k);
    // Only brgemm (AVX-512 and up in oneDNN 2.6) has a blocked layout that
    // saves work; elsewhere the plain weights stay in use.
    if (!brgemm || blocked == s_->weights.get_desc()) return;
    LargeVector<float> buf((blocked.get_size() + sizeof(float) - 1) / sizeof(float));
    dnnl::memory dst(blocked, cpu_engine(), buf.data());
    dnnl::stream st(cpu_engine());
    dnnl::reorder(s_->weights, dst).execute(st, s_->weights, dst);
    st.wait();
    s_->packed = std::move(buf);
    s_->weights = dnnl::memory(blocked, cpu_engine(), s_->packed.data());
    s_->is_packed = true;
    s_->by_rows.clear();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN: packing a " + shape_text(s_->n, s_->k) + " weight matrix failed: " + e.what());
  }
}

bool OnednnMatmul::packed() const { return s_->is_packed; }

int64_t OnednnMatmul::packed_bytes() const { return packed() ? int64_t(s_->weights.get_desc().get_size()) : 0; }

const float* OnednnMatmul::packed_data() const {
  return packed() ? static_cast<const float*>(s_->weights.get_data_handle()) : nullptr;
}

int64_t OnednnMatmul::blocked_bytes(int64_t n, int64_t k) { return int64_t(blocked_desc(n, k).get_size()); }

bool OnednnMatmul::blocked_is_native(int64_t n, int64_t k) {
  try {
    const auto [preferred, brgemm] = preferred_weights(n, k);
    return brgemm && preferred == blocked_desc(n, k);
  } catch (const dnnl::error&) {
    return false;
  }
}

void OnednnMatmul::adopt_blocked(const float* blocked) {
  if (!blocked_is_native(s_->n, s_->k))
    throw Error("OnednnMatmul: this CPU's matmul does not read " + shape_text(s_->n, s_->k) + " weights in the " +
                kBlockedLayout + " layout");
  if (reinterpret_cast<uintptr_t>(blocked) % 64 != 0) throw Error("OnednnMatmul: blocked weights must be 64-byte aligned");
  s_->packed = {};
  s_->weights = dnnl::memory(blocked_desc(s_->n, s_->k), cpu_engine(), const_cast<float*>(blocked));
  s_->is_packed = true;
  s_->by_rows.clear();
}

void OnednnMatmul::unpack_blocked(const float* blocked, int64_t n, int64_t k, float* plain) {
  try {
    dnnl::memory src(blocked_desc(n, k), cpu_engine(), const_cast<float*>(blocked));
    dnnl::memory dst(dnnl::memory::desc({k, n}, dt::f32, tag::ba), cpu_engine(), plain);
    dnnl::stream st(cpu_engine());
    dnnl::reorder(src, dst).execute(st, src, dst);
    st.wait();
  } catch (const dnnl::error& e) {
    throw Error("oneDNN: unpacking a " + shape_text(n, k) + " weight matrix from " + kBlockedLayout +
                " failed: " + e.what());
  }
}

void OnednnMatmul::forward(const float* x, int64_t m, float* y, const float* w) const {
  if (m <= 0) return;
  try {
    const dnnl::memory::desc src_md({m, s_->k}, dt::f32, tag::ab), dst_md({m, s_->n}, dt::f32, tag::ab);
    State::Primitive prim;
    {
      std::lock_guard<std::mutex> lock(s_->mu);
      auto it = s_->by_rows.find(m);
      if (it == s_->by_rows.end()) {
        if (s_->by_rows.size() >= 64) s_->by_rows.clear();  // row counts of a long-running server vary
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, s_->weights.get_desc(), dst_md), attr, cpu_engine());
        it = s_->by_rows.emplace(m, State::Primitive{dnnl::matmul(pd), pd.scratchpad_desc()}).first;
      }
      prim = it->second;
    }
    dnnl::memory src(src_md, cpu_engine(), const_cast<float*>(x)), dst(dst_md, cpu_engine(), y);
    dnnl::stream st(cpu_engine());
    if (w && packed()) throw Error("OnednnMatmul: weights passed to a packed matrix");
    const dnnl::memory weights =
        w ? dnnl::memory(s_->weights.get_desc(), cpu_engine(), const_cast<float*>(w)) : s_->weights;
    // One scratch buffer per calling thread for every primitive: oneDNN's
    // default gives each of the ~600 primitives its own, so the first call
    // faulted in ~40 MB of fresh heap and every product packed its weights
    // into memory that was cold in cache.
    thread_local LargeVector<uint8_t> scratch;
    if (scratch.size() < prim.scratchpad.get_size()) scratch.resize(prim.scratchpad.get_size());
    const dnnl::memory scratchpad(prim.scratchpad, cpu_engine(), scratch.data());
    prim.matmul.execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}});
    st.wait();
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul (") + std::to_string(m) + "x" + std::to_string(s_->k) + " by " +
                std::to_string(s_->k) + "x" + std::to_string(s_->n) + ") failed: " + e.what());
  }
}

}  // namespace moss
