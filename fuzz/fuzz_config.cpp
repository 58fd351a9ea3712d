// Fuzz target: config.json parsing and validation. A config that parses must
// survive its canonical JSON unchanged.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "moss_codec/config.h"
#include "moss_codec/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  moss::CodecConfig c;
  try {
    c = moss::CodecConfig::parse(std::string(reinterpret_cast<const char*>(data), size), "fuzz.json");
  } catch (const moss::Error&) {
    return 0;
  }
  const moss::CodecConfig again = moss::CodecConfig::parse(c.to_json(), "canonical.json");
  if (!(again == c)) std::abort();  // save_config must load back to an identical model
  return 0;
}
