#include "model/linear.h"

#include <vector>

#include "kernels/few_row_gemm.h"
#include "kernels/gemm.h"
#include "moss_codec/error.h"

namespace moss {

// Matrices big enough to matter get oneDNN's matmul for many-row products.
static bool wants_matmul(int64_t out, int64_t in) { return out * in >= (1 << 16); }

Linear::Linear(FloatWeight weight, FloatWeight bias) : w_(std::move(weight)), b_(std::move(bias)) {
  out_ = w_.shape().at(0);
  in_ = w_.shape().at(1);
  if (w_.data() && b_.empty() && wants_matmul(out_, in_)) matmul_ = std::make_unique<OnednnMatmul>(w_.data(), out_, in_);
}

Linear::Linear(MatrixWeight weight) {
  if (!weight.half.data) {
    *this = Linear(std::move(weight.f32));
    return;
  }
  half_ = std::move(weight.half);
  out_ = half_.shape.at(0);
  in_ = half_.shape.at(1);
  // oneDNN's matmul takes float32 weights only: it runs on a widened copy,
  // passed at each call.
  if (wants_matmul(out_, in_)) matmul_ = std::make_unique<OnednnMatmul>(nullptr, out_, in_);
}

// Products of more rows than this go through matmul; fewer (streaming steps)
// through sgemm, which hands up to 8 rows to the few-row kernel and splits
// 9-16 over the threads: both read the weights faster than matmul there.
static constexpr int64_t kMatmulMinRows = 17;

void Linear::pack(WeightStore& store) {
  if (!matmul_ || half_.data || packed_) return;
  matmul_->pack();
  if (!matmul_->packed()) return;
  if (w_.is_borrowed()) store.release_pages(w_.data(), size_t(w_.numel()) * sizeof(float));
  w_ = FloatWeight{};
  packed_ = true;
}

Linear Linear::from_blocked(const TensorView& v, int64_t out, int64_t in, bool in_place) {
  const int64_t need = OnednnMatmul::blocked_bytes(out, in);
  if (int64_t(v.nbytes) != need)
    throw Error(v.file + ": tensor '" + v.name + "' holds " + std::to_string(v.nbytes) + " bytes, but a " +
                std::to_string(out) + "x" + std::to_string(in) + " matrix in oneDNN's " + OnednnMatmul::kBlockedLayout +
                " layout takes " + std::to_string(need));
  Linear l;
  l.out_ = out;
  l.in_ = in;
  if (!v.data) return l;
  if (in_place && reinterpret_cast<uintptr_t>(v.data) % 64 == 0 && OnednnMatmul::blocked_is_native(out, in)) {
    l.matmul_ = std::make_unique<OnednnMatmul>(nullptr, out, in);
    l.matmul_->adopt_blocked(reinterpret_cast<const float*>(v.data));
    l.packed_ = l.in_file_ = true;
    return l;
  }
  // In place, or a float-aligned copy where a hostile file misaligned it.
  const FloatWeight blocked = FloatWeight::from_view(v, v.shape);
  LargeVector<float> plain(size_t(out * in));
  OnednnMatmul::unpack_blocked(blocked.data(), out, in, plain.data());
  return Linear(FloatWeight::owned(std::move(plain), {out, in}));
}

void Linear::forward(const float* x, int64_t rows, float* y, bool accumulate, OutputHook after) const {
  // Streaming steps read every kind of weights with the few-row kernel. For a
  // packed matrix that is its blocked copy, as the plain weights are gone:
  // oneDNN's matmul on it ran a v1 streaming decode step at half the memory's
  // speed when memory was fast (Zen 4, 2026-12-04: 119.6-122.3 ms median
  // against a 57-65 ms floor at 54-62 GB/s, where the plain weights took 87.7
  // ms).
  if (rows <= kFewRowsMax && few_row_gemm_available() && b_.empty()) {
    forward_few_rows(x, rows, y, accumulate, after);
    return;
  }
  if (packed_) {
    if (!accumulate) {
      matmul_->forward(x, rows, y);
    } else {
      thread_local std::vector<float> product;
      product.resize(size_t(rows * out_));
      matmul_->forward(x, rows, product.data());
      for (size_t i = 0; i < product.size(); ++i) y[i] += product[i];
    }
  } else if (half_.data) {
    forward_half(x, rows, y, accumulate, after);
    return;
  } else if (matmul_ && rows >= kMatmulMinRows && !accumulate) {
    matmul_->forward(x, rows, y);
  } else if (!b_.empty() && !accumulate) {
    // Start from the bias and accumulate the product onto it.
    const float* b = b_.data();
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out_; ++o) y[r * out_ + o] = b[o];
    linear_forward(x, rows, in_, w_.data(), out_, y, true);
  } else {
    linear_forward(x, rows, in_, w_.data(), out_, y, accumulate);
    if (!b_.empty()) {
      const float* b = b_.data();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out_; ++o) y[r * out_ + o] += b[o];
    }
  }
  after(y, out_, rows, 0, out_);
}

void Linear::forward_few_rows(const float* x, int64_t rows, float* y, bool accumulate, OutputHook after) const {
  FewRowProduct p{x, in_, rows, in_, nullptr, in_, out_, y, out_, 1.0f, accumulate};
  if (packed_) {
    p.w_blocked = matmul_->packed_data();
  } else if (half_.data) {
    p.w16 = half_.data;
    p.w16_format = half_.format;
  } else {
    p.w = w_.data();
  }
  p.after = after;
  few_row_gemm(p);
}

// 16-bit weights. A streaming step's few rows read them in place, widening in
// registers: the float32 kernels' FMAs in the same order, on half the bytes.
// More rows widen the whole matrix into this thread's scratch and run the
// float32 product on it, so every result equals that of upcast weights
// (tested bit for bit). That costs offline products 5-10% against upcast
// weights (v1, 10 s decode); widening and multiplying slices of columns while
// they are in cache measured the same (slices of 8-32 MB) or slower (oneDNN
// is slower on narrow slices: 4 MB ones, 1.24x).
void Linear::forward_half(const float* x, int64_t rows, float* y, bool accumulate, OutputHook after) const {
  // One buffer per calling thread (a model is shared by threads), kept for its
  // next call: the largest matrix, 26 MB for the v1 config.
  thread_local std::vector<float> widened;
  if (widened.size() < size_t(out_ * in_)) widened.resize(size_t(out_ * in_));
  widen_half(half_.data, half_.format, out_ * in_, widened.data());
  if (matmul_ && rows >= kMatmulMinRows && !accumulate)
    matmul_->forward(x, rows, y, widened.data());
  else
    linear_forward(x, rows, in_, widened.data(), out_, y, accumulate);
  after(y, out_, rows, 0, out_);
}

}  // namespace moss
