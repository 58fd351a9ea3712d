#pragma once
// Plain owning, row-major tensors used at the public API boundary.
#include <cstdint>
#include <string>
#include <vector>

namespace moss {

template <typename T>
struct BasicTensor {
  std::vector<int64_t> shape;
  std::vector<T> data;

  BasicTensor() = default;
  BasicTensor(std::vector<int64_t> s, std::vector<T> d) : shape(std::move(s)), data(std::move(d)) {}
  explicit BasicTensor(std::vector<int64_t> s) : shape(std::move(s)), data(count(shape), T{}) {}

  int64_t dim(size_t i) const { return shape.at(i); }
  size_t rank() const { return shape.size(); }
  int64_t numel() const { return count(shape); }

  static int64_t count(const std::vector<int64_t>& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
  }
};

using Tensor = BasicTensor<float>;       // audio, hidden states
using CodeTensor = BasicTensor<int32_t>; // codebook indices

std::string shape_to_string(const std::vector<int64_t>& shape);

}  // namespace moss
