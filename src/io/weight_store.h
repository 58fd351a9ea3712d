#pragma once
// All tensors of one checkpoint, across its safetensors files, with strict
// accounting: the model takes what it expects (checking shapes), and whatever
// is left untaken at the end is reported as unexpected.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "io/page_residency.h"
#include "kernels/half.h"
#include "kernels/large_buffer.h"
#include "moss_codec/safetensors.h"

namespace moss {

// Float32 weights: a pointer into the mapping when the file holds aligned F32,
// otherwise an owned, converted copy (on huge pages when large, so streaming
// over upcast matrices does not pay 4 KiB pages' TLB misses). Move-only so
// the pointer stays valid.
class FloatWeight {
 public:
  FloatWeight() = default;
  FloatWeight(FloatWeight&&) = default;
  FloatWeight& operator=(FloatWeight&&) = default;
  FloatWeight(const FloatWeight&) = delete;
  FloatWeight& operator=(const FloatWeight&) = delete;

  static FloatWeight borrowed(const float* p, std::vector<int64_t> shape);
  static FloatWeight owned(LargeVector<float> values, std::vector<int64_t> shape);
  // An owned float32 copy of any float tensor.
  static FloatWeight converted(const TensorView& v, std::vector<int64_t> shape);
  // borrowed() when v holds aligned F32, else converted().
  static FloatWeight from_view(const TensorView& v, std::vector<int64_t> shape);

  const float* data() const { return ptr_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t numel() const;
  bool empty() const { return ptr_ == nullptr; }
  bool is_borrowed() const { return ptr_ != nullptr && owned_.empty(); }

 private:
  const float* ptr_ = nullptr;
  LargeVector<float> owned_;
  std::vector<int64_t> shape_;
};

// A matrix stored as 16-bit floats (bf16 or f16) in the mapping, used in
// place: half the memory of upcasting it, and half the bytes a streaming step
// reads. It is widened to float32 (exactly) as it is used.
struct HalfMatrix {
  const uint16_t* data = nullptr;
  HalfFormat format = HalfFormat::BF16;
  std::vector<int64_t> shape;
};

// A transformer matrix: float32 (mapped or upcast), or 16-bit in place.
struct MatrixWeight {
  FloatWeight f32;
  HalfMatrix half;  // data set: use this, f32 is empty
};

class WeightStore {
 public:
  // `dir` holds model.safetensors, or model.safetensors.index.json + shards,
  // or any number of *.safetensors files.
  static std::shared_ptr<WeightStore> open(const std::filesystem::path& dir);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorView& view(const std::string& name) const;

  // Takes a float tensor of exactly `shape` (shape-compatible singleton axes are
  // not squeezed: the shape must match). Marks it used.
  FloatWeight take(const std::string& name, const std::vector<int64_t>& shape);
  // take() for a matrix that may stay 16-bit: a BF16/F16 tensor (aligned, with
  // set_keep_half on) is returned in place, anything else as take() does.
  MatrixWeight take_matrix(const std::string& name, const std::vector<int64_t>& shape);
  // Packed checkpoints store a transformer matrix `name` as the 1-D float32
  // tensor `name` + kBlockedSuffix, in oneDNN's blocked layout (its size and
  // layout are the model's to check). take_blocked takes it when present
  // (checked finite, marked used; data null while validating only) and
  // returns null when the matrix is stored plain; both forms at once is an
  // error naming the file. `shape` (out, in) is what element_counts reports
  // for it (the stored tensor holds padding where the tiles overhang).
  static constexpr const char* kBlockedSuffix = ".onednn_BA16a64b";
  std::optional<TensorView> take_blocked(const std::string& name, const std::vector<int64_t>& shape);
  // Takes `prefix`.weight, merging weight-norm halves (original0/original1 or
  // weight_g/weight_v) into W = g * v / ||v|| when that is how it is stored.
  // `shape` is the merged weight's shape (out, in, 1).
  FloatWeight take_weight_norm(const std::string& prefix, const std::vector<int64_t>& shape);
  // True when `prefix`.weight exists in any of its stored forms.
  bool has_weight(const std::string& prefix) const;

  // While on, take() checks names and shapes and marks tensors taken but
  // returns weights without data: for the half of a model that is not loaded.
  void set_validate_only(bool on) { validate_only_ = on; }

  // Refuse NaN/Inf in every tensor taken (on by default).
  void set_check_finite(bool on) { check_finite_ = on; }
  // Let take_matrix keep 16-bit matrices in place (on by default).
  void set_keep_half(bool on) { keep_half_ = on; }
  // Whether the model should pack its matrices into oneDNN's blocked layout
  // (LoadOptions::pack_weights); the store only carries the choice.
  void set_pack_matrices(bool on) { pack_matrices_ = on; }
  bool pack_matrices() const { return pack_matrices_; }
  // Drops the pages wholly inside [p, p + bytes) of a mapped file from this
  // process (the page cache keeps them; a later read faults them back in):
  // for weights the model no longer reads. Ranges outside every mapping, or
  // in files held in memory rather than mapped, are left alone.
  void release_pages(const void* p, size_t bytes);
  // Locks in memory the mapped pages of every tensor the model reads in
  // place (float32 used as stored, 16-bit matrices kept in place, blocked
  // matrices of a packed checkpoint; not those converted into copies, nor
  // pages released above), in 2 MiB-aligned extents, so that memory reclaim
  // cannot drop or split them while the store lives
  // (LoadOptions::lock_weights). Throws naming the file and the locked-memory
  // limit when the system refuses.
  void lock_in_place() const;
  // Bytes of the tensors lock_in_place() covers.
  int64_t in_place_bytes() const;
  // Records that the model holds matrix `name` (out, in) packed: `bytes` at
  // `data` in oneDNN's blocked layout (held_bytes too); in_file: used in
  // place from a packed checkpoint rather than copied at load.
  struct Packed {
    const float* data;
    int64_t bytes;
    std::vector<int64_t> shape;
    bool in_file;
  };
  void note_packed(const std::string& name, Packed p) {
    held_bytes_[name] = p.bytes;
    packed_[name] = std::move(p);
  }
  const std::map<std::string, Packed>& packed() const { return packed_; }
  // Every stored tensor, by name.
  const std::map<std::string, const TensorView*>& tensors() const { return index_; }
  // Bytes each loaded tensor occupies as the model holds it: 16-bit matrices
  // kept in place at 2 per value, everything else at 4 (float32); tensors
  // only validated are not listed. By name.
  const std::map<std::string, int64_t>& held_bytes() const { return held_bytes_; }

  // Names not taken by the model, sorted.
  std::vector<std::string> untaken() const;
  const std::filesystem::path& dir() const { return dir_; }
  std::vector<std::string> files() const;
  // How the files' mappings sit in memory now (resident, in 2 MiB pages).
  PageResidency residency() const;
  int64_t total_bytes() const;
  // Elements of every stored tensor, by name (a blocked matrix taken: its
  // matrix's, without the padding).
  std::map<std::string, int64_t> element_counts() const;
  // Dtype of the first float tensor (for reports).
  std::string dtype_summary() const;

 private:
  std::filesystem::path dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, const TensorView*> index_;
  std::set<std::string> taken_;
  std::map<std::string, int64_t> held_bytes_;
  bool check_finite_ = true;
  bool validate_only_ = false;
  bool keep_half_ = true;
  bool pack_matrices_ = false;
  std::map<std::string, Packed> packed_;
  std::map<std::string, int64_t> blocked_elements_;  // by stored name, for element_counts
  std::map<const uint8_t*, size_t> in_place_;          // mapped bytes the model reads as stored: start -> size

  FloatWeight checked(FloatWeight w, const TensorView& v) const;
};

}  // namespace moss
