// Fuzz target: the .npy codes reader.
#include <cstdint>
#include <string>

#include "moss_codec/error.h"
#include "moss_codec/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moss::CodeTensor t = moss::parse_npy_codes(std::string(reinterpret_cast<const char*>(data), size), "fuzz.npy");
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    if (n != int64_t(t.data.size())) __builtin_trap();
  } catch (const moss::Error&) {
  }
  return 0;
}
