// Fuzz target: the code-layout rules. Any shape and Q/R pair either resolves
// to a reading whose sizes multiply back to the shape, or is an error.
#include <cstdint>
#include <optional>
#include <vector>

#include "moss_codec/code_layout.h"
#include "moss_codec/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const int Q = 1 + data[0] % 40;
  const std::optional<int> R = data[1] & 0x80 ? std::optional<int>((data[1] & 0x7f) - 2) : std::nullopt;
  const size_t rank = data[2] % 5;
  std::vector<int64_t> shape;
  for (size_t i = 0; i < rank && 3 + i < size; ++i) shape.push_back(int64_t(data[3 + i] % 50) - (data[3 + i] >= 250 ? 60 : 0));
  try {
    const moss::CodeLayout l = moss::resolve_code_layout(shape, Q, R);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (l.nq * l.batch * l.frames != n) __builtin_trap();
    if (l.nq != Q && (!R || l.nq != *R)) __builtin_trap();
    moss::CodeTensor codes(shape);
    for (size_t i = 0; i < codes.data.size(); ++i) codes.data[i] = int32_t(i);
    const moss::CodeTensor c = moss::to_canonical(codes, l, R.value_or(Q));
    if (c.numel() != int64_t(c.data.size())) __builtin_trap();
  } catch (const moss::Error&) {
  }
  return 0;
}
