// Fuzz target: the safetensors header parser and every tensor view it yields.
#include <cstdint>
#include <vector>

#include "moss_codec/error.h"
#include "moss_codec/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moss::SafetensorsFile f = moss::SafetensorsFile::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz.safetensors");
    for (auto& [name, v] : f.tensors()) {
      // Touch every byte the header claims, through the typed readers.
      if (v.nbytes > (64u << 20)) continue;
      try {
        v.to_float();
      } catch (const moss::Error&) {
        v.to_int64();
      }
    }
  } catch (const moss::Error&) {
  }
  return 0;
}
