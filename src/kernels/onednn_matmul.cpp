#include "kernels/onednn_matmul.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <map>
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

}  // namespace

struct OnednnMatmul::State {
  int64_t n, k;
  dnnl::memory weights;  // W^T as a (k x n) matrix in column-major ("ba") order is W itself
  LargeVector<float> packed;  // non-empty after pack(): weights holds this, in the blocked layout
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
    // The layout matmul wants for these weights, asked with format any for
    // one row count: on AVX-512 it is BA16a64b for every row count (checked
    // for 1-4000 rows on every v1 shape), so primitives for other row counts
    // take the same copy and stay brgemm.
    const dnnl::memory::desc src_md({256, s_->k}, dt::f32, tag::ab), dst_md({256, s_->n}, dt::f32, tag::ab);
    const dnnl::memory::desc any_md({s_->k, s_->n}, dt::f32, tag::any);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_md, dst_md), cpu_engine());
    const dnnl::memory::desc blocked = pd.weights_desc();
    // Only brgemm (AVX-512 and up in oneDNN 2.6) has a blocked layout that
    // saves work; elsewhere the plain weights stay in use.
    if (std::string(pd.impl_info_str()).rfind("brg", 0) != 0 || blocked == s_->weights.get_desc()) return;
    LargeVector<float> buf((blocked.get_size() + sizeof(float) - 1) / sizeof(float));
    dnnl::memory dst(blocked, cpu_engine(), buf.data());
    dnnl::stream st(cpu_engine());
    dnnl::reorder(s_->weights, dst).execute(st, s_->weights, dst);
    st.wait();
    s_->packed = std::move(buf);
    s_->weights = dnnl::memory(blocked, cpu_engine(), s_->packed.data());
    s_->by_rows.clear();
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN: packing a ") + std::to_string(s_->n) + "x" + std::to_string(s_->k) +
                " weight matrix failed: " + e.what());
  }
}

bool OnednnMatmul::packed() const { return !s_->packed.empty(); }

int64_t OnednnMatmul::packed_bytes() const { return int64_t(s_->packed.size() * sizeof(float)); }

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
