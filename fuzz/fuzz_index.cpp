// Fuzz target: a sharded checkpoint's model.safetensors.index.json, beside one
// valid shard, through the weight store (shard lookup, weight-norm pairing).
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "io/weight_store.h"
#include "moss_codec/error.h"
#include "scratch_path.h"

namespace fs = std::filesystem;

static const fs::path& make_dir() {
  static const ScratchPath scratch("moss-fuzz-index-");
  const fs::path& dir = scratch.path;
  fs::create_directories(dir);
  std::vector<uint8_t> one(4, 0);
  moss::write_safetensors(dir / "a.safetensors", {{"x.weight_g", moss::DType::F32, {1, 1, 1}, one},
                                                  {"x.weight_v", moss::DType::F32, {1, 1, 1}, one},
                                                  {"y", moss::DType::F32, {1}, one}});
  return dir;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path& dir = make_dir();
  {
    std::ofstream out(dir / "model.safetensors.index.json", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), std::streamsize(size));
  }
  try {
    auto store = moss::WeightStore::open(dir);
    for (const std::string& name : store->untaken()) store->view(name);
    if (store->has_weight("x")) store->take_weight_norm("x", {1, 1, 1});
  } catch (const moss::Error&) {
  }
  return 0;
}
