#pragma once
// The one seam through which every weight matrix is used: a linear layer over
// float32 weights (borrowed from the mapping or owned), or over 16-bit
// weights kept in place in the mapping, widened as they are used.
#include <cstdint>
#include <memory>

#include "io/weight_store.h"
#include "kernels/few_row_gemm.h"
#include "kernels/onednn_matmul.h"

namespace moss {

class Linear {
 public:
  Linear() = default;
  // weight: (out, in) or (out, in, 1); bias: (out) or empty.
  explicit Linear(FloatWeight weight, FloatWeight bias = {});
  // A transformer matrix (out, in), float32 or 16-bit; no bias.
  explicit Linear(MatrixWeight weight);

  bool present() const { return !w_.empty() || half_.data != nullptr || packed_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  // Offline throughput mode (LoadOptions::pack_weights): copies a float32
  // matrix big enough for oneDNN's matmul into its blocked layout; every
  // product of this layer, of any row count, then reads that copy, and the
  // plain weights are let go (freed, or a mapped range dropped from this
  // process's pages through store). Nothing changes where oneDNN has no
  // blocked kernel. Call before any forward.
  void pack(WeightStore& store);
  bool packed() const { return packed_; }
  int64_t packed_bytes() const { return packed_ ? matmul_->packed_bytes() : 0; }
  const float* packed_data() const { return packed_ ? matmul_->packed_data() : nullptr; }

  // A matrix (out, in) stored blocked in a packed checkpoint (the tensor
  // WeightStore::take_blocked returned; its data must outlive this). Where
  // this CPU's matmul reads that layout and the data is 64-byte aligned it
  // is used where it lies, copying nothing (packed(), in_file()); elsewhere,
  // or when !in_place, it is unpacked to plain float32 (exact values), as if
  // the checkpoint were plain. A tensor of the wrong size is an error naming
  // it. Null data (validating only) gives an absent layer.
  static Linear from_blocked(const TensorView& v, int64_t out, int64_t in, bool in_place = true);
  bool in_file() const { return in_file_; }

  // y[rows x out] = x[rows x in] W^T + b (added to y when accumulate), then
  // after() on the outputs: piece by piece on the threads that computed them
  // for a few rows, once over all of them otherwise.
  void forward(const float* x, int64_t rows, float* y, bool accumulate = false, OutputHook after = {}) const;

 private:
  FloatWeight w_, b_;
  HalfMatrix half_;                       // data set: the weights are these, w_ is empty
  std::unique_ptr<OnednnMatmul> matmul_;  // oneDNN matmul on the same weights (many rows)
  int64_t in_ = 0, out_ = 0;
  bool packed_ = false;   // matmul_ holds the only copy of the weights
  bool in_file_ = false;  // ... and that copy is a packed checkpoint's mapped tensor

  void forward_half(const float* x, int64_t rows, float* y, bool accumulate, OutputHook after) const;
  // The product for a few rows on the few-row kernel, with after() per piece.
  void forward_few_rows(const float* x, int64_t rows, float* y, bool accumulate, OutputHook after) const;
};

}  // namespace moss
