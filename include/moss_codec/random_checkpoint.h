#pragma once
// Deterministic random checkpoints in the published layout (v1 tensor names,
// weight-norm halves as parametrizations.weight.original0/1): the default
// model for demos, benchmarks and tests, since real weights need a download.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "moss_codec/config.h"

namespace moss {

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
};

// Every tensor a checkpoint of `config` holds, in checkpoint order.
std::vector<TensorSpec> checkpoint_tensors(const CodecConfig& config);

enum class WeightDType { F32, BF16, F16 };

// Writes config_json as config.json and random weights as model.safetensors
// into `dir` (which must not exist yet). With BF16 or F16 only the tensors
// that may_use_reduced_precision allows are stored in 16 bits. Tensors are generated
// one at a time, so memory stays small even for the 7 GB published size.
void write_random_checkpoint(const std::filesystem::path& dir, const std::string& config_json, uint64_t seed,
                             WeightDType dtype);

}  // namespace moss
