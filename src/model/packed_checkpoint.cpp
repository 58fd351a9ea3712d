// Codec::save_packed: a checkpoint whose transformer matrices are stored in
// oneDNN's blocked layout, so that loading it maps them in place instead of
// copying every matrix into fresh memory (LoadOptions::pack_weights).
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "kernels/onednn_matmul.h"
#include "model/codec_impl.h"
#include "moss_codec/error.h"
#include "moss_codec/safetensors.h"

namespace moss {

namespace fs = std::filesystem;

namespace {

// Blocked tiles are 16 x 64 floats, so every blocked tensor is a whole number
// of 4 KiB pages: with the data section page-aligned and the blocked tensors
// first, each starts on a page of the file (mapped in place, 64-byte aligned
// as oneDNN wants).
constexpr size_t kPage = 4096;

}  // namespace

void Codec::save_packed(const fs::path& dir, bool overwrite) const {
  const Impl& im = *impl_;
  if (!im.has_encoder || !im.has_decoder)
    throw Error("save_packed: the codec must be loaded whole (Parts::All) to write a checkpoint");
  const WeightStore& store = *im.weights;
  const auto& packed = store.packed();
  if (packed.empty())
    throw Error("save_packed: no matrix is packed; load with LoadOptions::pack_weights (--pack-weights) on a CPU "
                "with oneDNN's blocked float32 kernel (AVX-512)");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot create the folder: " + ec.message());
  if (fs::equivalent(dir, store.dir(), ec))
    throw Error(dir.string() + ": is the folder this codec was loaded from; write the packed checkpoint to another");
  const fs::path weights = dir / "model.safetensors", config = dir / "config.json";
  for (const fs::path& p : {weights, config})
    if (fs::exists(p, ec) && !overwrite) throw Error(p.string() + ": already exists (pass overwrite to replace it)");
  if (fs::exists(dir / "model.safetensors.index.json", ec))
    throw Error((dir / "model.safetensors.index.json").string() +
                ": a sharded checkpoint's index is in the way; remove it first");

  std::vector<TensorSource> tensors;
  const std::string suffix = WeightStore::kBlockedSuffix;
  std::set<std::string> replaced;  // stored names of the packed matrices, plain or blocked
  for (auto& [name, p] : packed) {
    const int64_t out = p.shape.at(0), in = p.shape.at(1);
    if (!OnednnMatmul::blocked_is_native(out, in) || p.bytes != OnednnMatmul::blocked_bytes(out, in))
      throw Error("save_packed: this CPU's oneDNN packs the " + std::to_string(out) + "x" + std::to_string(in) +
                  " matrix '" + name + "' into another layout than " + OnednnMatmul::kBlockedLayout +
                  "; a packed checkpoint cannot be written here");
    tensors.push_back({name + suffix, DType::F32, {p.bytes / int64_t(sizeof(float))}, p.data, size_t(p.bytes)});
    replaced.insert({name, name + suffix});
  }
  for (auto& [name, v] : store.tensors())
    if (!replaced.count(name)) tensors.push_back({name, v->dtype, v->shape, v->data, v->nbytes});
  // Beside the target, then renamed: a failure never leaves a torn file, and
  // an existing checkpoint there stays whole until the new one is complete.
  const fs::path tmp = weights.string() + ".tmp-" + std::to_string(::getpid());
  try {
    write_safetensors(tmp, tensors,
                      {{"moss_codec", std::string("packed: transformer matrices in oneDNN's ") +
                                          OnednnMatmul::kBlockedLayout + " layout as <name>" + suffix}},
                      kPage);
    save_config(config, overwrite);
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, weights, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(weights.string() + ": cannot write: " + ec.message());
  }
}

}  // namespace moss
