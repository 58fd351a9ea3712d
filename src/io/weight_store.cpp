#include "io/weight_store.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/finite_scan.h"
#include "moss_codec/error.h"
#include "moss_codec/tensor.h"

namespace moss {

namespace fs = std::filesystem;

FloatWeight FloatWeight::borrowed(const float* p, std::vector<int64_t> shape) {
  FloatWeight w;
  w.ptr_ = p;
  w.shape_ = std::move(shape);
  return w;
}

FloatWeight FloatWeight::owned(LargeVector<float> values, std::vector<int64_t> shape) {
  FloatWeight w;
  w.owned_ = std::move(values);
  w.ptr_ = w.owned_.data();
  w.shape_ = std::move(shape);
  return w;
}

namespace {
// Any float tensor as float32, on huge pages when large.
LargeVector<float> float_values(const TensorView& v) {
  LargeVector<float> values(size_t(v.numel()));
  v.to_float(values.data());
  return values;
}
}  // namespace

FloatWeight FloatWeight::converted(const TensorView& v, std::vector<int64_t> shape) {
  return owned(float_values(v), std::move(shape));
}

FloatWeight FloatWeight::from_view(const TensorView& v, std::vector<int64_t> shape) {
  if (v.dtype == DType::F32 && reinterpret_cast<uintptr_t>(v.data) % alignof(float) == 0)
    return borrowed(reinterpret_cast<const float*>(v.data), std::move(shape));
  return converted(v, std::move(shape));
}

int64_t FloatWeight::numel() const { return BasicTensor<float>::count(shape_); }

namespace {

const char* const kWeightNormPairs[][2] = {
    {".parametrizations.weight.original0", ".parametrizations.weight.original1"},
    {".weight_g", ".weight_v"},
};

std::vector<fs::path> shard_files_from_index(const fs::path& index_path, const fs::path& dir) {
  std::ifstream in(index_path);
  if (!in) throw Error(index_path.string() + ": cannot open");
  nlohmann::json idx;
  try {
    idx = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw Error(index_path.string() + ": not valid JSON: " + e.what());
  }
  if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object())
    throw Error(index_path.string() + ": missing 'weight_map' object");
  std::vector<fs::path> files;
  for (auto& [name, file] : idx["weight_map"].items()) {
    if (!file.is_string()) throw Error(index_path.string() + ": weight_map entry for '" + name + "' is not a file name");
    fs::path f = file.get<std::string>();
    if (f.empty() || f.is_absolute() || f.has_parent_path())
      throw Error(index_path.string() + ": weight_map entry for '" + name + "' names '" + f.string() +
                  "', which is not a file in the checkpoint folder");
    // The error_code overload: a hostile name (too long, odd bytes) must give
    // this error, not a filesystem exception (found by fuzzing).
    std::error_code ec;
    if (!fs::is_regular_file(dir / f, ec))
      throw Error(index_path.string() + ": shard '" + f.string() + "' (holding '" + name + "') is not a file in " +
                  dir.string() + (ec ? " (" + ec.message() + ")" : ""));
    if (std::find(files.begin(), files.end(), dir / f) == files.end()) files.push_back(dir / f);
  }
  if (files.empty()) throw Error(index_path.string() + ": weight_map is empty");
  return files;
}

}  // namespace

std::shared_ptr<WeightStore> WeightStore::open(const fs::path& dir) {
  auto store = std::make_shared<WeightStore>();
  store->dir_ = dir;
  std::vector<fs::path> paths;
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.safetensors", ec)) {
    paths.push_back(dir / "model.safetensors");
  } else if (fs::is_regular_file(dir / "model.safetensors.index.json", ec)) {
    paths = shard_files_from_index(dir / "model.safetensors.index.json", dir);
  } else {
    for (auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors") paths.push_back(e.path());
    std::sort(paths.begin(), paths.end());
  }
  if (paths.empty())
    throw Error(dir.string() + ": no weights found (looked for model.safetensors, model.safetensors.index.json and *.safetensors)");
  for (auto& p : paths) store->files_.push_back(SafetensorsFile::open(p));
  for (auto& f : store->files_)
    for (auto& [name, view] : f.tensors()) {
      auto [it, inserted] = store->index_.emplace(name, &view);
      if (!inserted)
        throw Error(dir.string() + ": tensor '" + name + "' appears in both " + it->second->file + " and " + view.file);
    }
  // A weight-norm half without its partner is an error wherever the halves sit.
  for (auto& [name, view] : store->index_)
    for (auto& pair : kWeightNormPairs)
      for (int side = 0; side < 2; ++side) {
        std::string suffix = pair[side];
        if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
          std::string partner = name.substr(0, name.size() - suffix.size()) + pair[1 - side];
          if (!store->index_.count(partner))
            throw Error(view->file + ": weight-norm tensor '" + name + "' has no partner '" + partner + "' in any shard");
        }
      }
  return store;
}

const TensorView& WeightStore::view(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) throw Error(dir_.string() + ": missing tensor '" + name + "'");
  return *it->second;
}

// The load-time refusal of a non-finite weight, `value` being element `at`.
[[noreturn]] static void non_finite_error(const TensorView& v, int64_t at, float value) {
  throw Error(v.file + ": tensor '" + v.name + "' holds " + (std::isnan(value) ? "NaN" : "Inf") + " at element " +
              std::to_string(at) + "; weights must be finite");
}

static void check_shape(const TensorView& v, const std::vector<int64_t>& shape) {
  if (v.shape != shape)
    throw Error(v.file + ": tensor '" + v.name + "' has shape " + shape_to_string(v.shape) + ", expected " + shape_to_string(shape));
}

FloatWeight WeightStore::checked(FloatWeight w, const TensorView& v) const {
  if (!check_finite_) return w;
  const float* p = w.data();
  const int64_t n = w.numel();
  const int64_t bad = first_non_finite(p, n);
  if (bad < n) non_finite_error(v, bad, p[bad]);
  return w;
}

FloatWeight WeightStore::take(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& v = view(name);
  check_shape(v, shape);
  taken_.insert(name);
  if (validate_only_) return FloatWeight::borrowed(nullptr, shape);
  held_bytes_[name] = v.numel() * 4;
  FloatWeight w = checked(FloatWeight::from_view(v, shape), v);
  if (w.is_borrowed()) in_place_[v.data] = v.nbytes;
  return w;
}

MatrixWeight WeightStore::take_matrix(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorView& v = view(name);
  const bool half = v.dtype == DType::BF16 || v.dtype == DType::F16;
  if (!keep_half_ || validate_only_ || !half || reinterpret_cast<uintptr_t>(v.data) % alignof(uint16_t) != 0)
    return {take(name, shape), {}};
  check_shape(v, shape);
  taken_.insert(name);
  held_bytes_[name] = v.numel() * 2;
  const auto* p = reinterpret_cast<const uint16_t*>(v.data);
  in_place_[v.data] = v.nbytes;
  const HalfFormat format = v.dtype == DType::BF16 ? HalfFormat::BF16 : HalfFormat::F16;
  if (check_finite_) {
    const int64_t n = v.numel(), bad = first_non_finite_16(p, n, format);
    if (bad < n) non_finite_error(v, bad, widen_value(p[bad], format));
  }
  return {FloatWeight{}, HalfMatrix{p, format, shape}};
}

std::optional<TensorView> WeightStore::take_blocked(const std::string& name, const std::vector<int64_t>& shape) {
  const std::string stored = name + kBlockedSuffix;
  auto it = index_.find(stored);
  if (it == index_.end()) return std::nullopt;
  const TensorView& v = *it->second;
  if (has(name))
    throw Error(v.file + ": matrix '" + name + "' is stored twice, plain and as '" + stored + "'");
  if (v.dtype != DType::F32 || v.shape.size() != 1)
    throw Error(v.file + ": tensor '" + stored + "' must be 1-D F32 (a matrix in oneDNN's blocked layout), got " +
                to_string(v.dtype) + " " + shape_to_string(v.shape));
  taken_.insert(stored);
  blocked_elements_[stored] = BasicTensor<float>::count(shape);
  if (validate_only_) {
    TensorView shape_only = v;
    shape_only.data = nullptr;
    return shape_only;
  }
  if (check_finite_) checked(FloatWeight::from_view(v, v.shape), v);
  in_place_[v.data] = v.nbytes;
  return v;
}

bool WeightStore::has_weight(const std::string& prefix) const {
  if (has(prefix + ".weight")) return true;
  for (auto& pair : kWeightNormPairs)
    if (has(prefix + pair[0])) return true;
  return false;
}

FloatWeight WeightStore::take_weight_norm(const std::string& prefix, const std::vector<int64_t>& shape) {
  if (has(prefix + ".weight")) return take(prefix + ".weight", shape);
  for (auto& pair : kWeightNormPairs) {
    std::string gname = prefix + pair[0], vname = prefix + pair[1];
    if (!has(gname)) continue;
    const TensorView& g = view(gname);
    const TensorView& v = view(vname);
    check_shape(v, shape);
    if (check_finite_) {
      checked(FloatWeight::converted(g, g.shape), g);
      checked(FloatWeight::converted(v, v.shape), v);
    }
    std::vector<int64_t> gshape(shape.size(), 1);
    gshape[0] = shape[0];
    check_shape(g, gshape);
    taken_.insert(gname);
    taken_.insert(vname);
    if (validate_only_) return FloatWeight::borrowed(nullptr, shape);
    held_bytes_[vname] = v.numel() * 4;
    // Upcast first, then merge in float32 (SPEC section 1); the norm is over all
    // axes but the first, accumulated in double.
    std::vector<float> gv = g.to_float();
    LargeVector<float> w = float_values(v);
    const int64_t rows = shape[0], cols = int64_t(w.size()) / std::max<int64_t>(rows, 1);
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c) ss += double(w[r * cols + c]) * w[r * cols + c];
      float scale = float(gv[r] / std::sqrt(ss));
      for (int64_t c = 0; c < cols; ++c) w[r * cols + c] *= scale;
    }
    return FloatWeight::owned(std::move(w), shape);
  }
  throw Error(dir_.string() + ": missing tensor '" + prefix + ".weight' (also looked for weight-norm halves " + prefix +
              ".parametrizations.weight.original0/1 and " + prefix + ".weight_g/_v)");
}

std::vector<std::string> WeightStore::untaken() const {
  std::vector<std::string> out;
  for (auto& [name, v] : index_)
    if (!taken_.count(name)) out.push_back(name);
  return out;
}

void WeightStore::release_pages(const void* p, size_t bytes) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (auto& f : files_)
    if (b >= f.data() && b < f.data() + f.size()) f.release_pages(b, bytes);
  // The model no longer reads these: nothing to lock.
  for (auto it = in_place_.lower_bound(b); it != in_place_.end() && it->first < b + bytes;)
    it = it->first + it->second <= b + bytes ? in_place_.erase(it) : std::next(it);
}

void WeightStore::lock_in_place() const {
  // Locked in extents rounded out to 2 MiB: mlock splits the mapping at the
  // ends of what it locks, and a split inside a 2 MiB page keeps that page
  // from being mapped whole (locking each tensor's own pages left 17% of the
  // v1 weights in 4 KiB mappings). The rounding locks at most 2 MiB more per
  // extent of the file that is not read in place.
  constexpr uintptr_t kExtent = uintptr_t(2) << 20;
  for (auto& f : files_) {
    const uintptr_t lo = reinterpret_cast<uintptr_t>(f.data()), hi = lo + f.size();
    std::vector<std::pair<uintptr_t, uintptr_t>> extents;
    for (auto it = in_place_.lower_bound(f.data()); it != in_place_.end() && it->first < f.data() + f.size(); ++it) {
      const uintptr_t start = reinterpret_cast<uintptr_t>(it->first);
      const uintptr_t b = std::max(lo, start / kExtent * kExtent);
      const uintptr_t e = std::min(hi, (start + it->second + kExtent - 1) / kExtent * kExtent);
      if (!extents.empty() && b <= extents.back().second) extents.back().second = std::max(extents.back().second, e);
      else extents.emplace_back(b, e);
    }
    size_t bytes = 0;
    for (auto [b, e] : extents) {
      if (const int err = f.lock_pages(reinterpret_cast<const uint8_t*>(b), e - b); err != 0)
        throw Error(f.path().string() + ": lock_weights: cannot lock the weights in memory (mlock: " +
                    std::strerror(err) + " after " + std::to_string(bytes >> 20) +
                    " MiB); raise the locked-memory limit (ulimit -l, systemd LimitMEMLOCK=, or CAP_IPC_LOCK) or "
                    "load without lock_weights");
      bytes += e - b;
    }
  }
}

int64_t WeightStore::in_place_bytes() const {
  int64_t n = 0;
  for (auto& [p, bytes] : in_place_) n += int64_t(bytes);
  return n;
}

PageResidency WeightStore::residency() const {
  PageResidency r;
  for (auto& f : files_) r += page_residency(f.data(), f.size());
  return r;
}

std::vector<std::string> WeightStore::files() const {
  std::vector<std::string> out;
  for (auto& f : files_) out.push_back(f.path().string());
  return out;
}

int64_t WeightStore::total_bytes() const {
  int64_t n = 0;
  for (auto& [name, v] : index_) n += int64_t(v->nbytes);
  return n;
}

std::map<std::string, int64_t> WeightStore::element_counts() const {
  std::map<std::string, int64_t> out;
  for (auto& [name, v] : index_) {
    auto b = blocked_elements_.find(name);
    out[name] = b == blocked_elements_.end() ? v->numel() : b->second;
  }
  return out;
}

std::string WeightStore::dtype_summary() const {
  std::set<std::string> kinds;
  for (auto& [name, v] : index_) kinds.insert(to_string(v->dtype));
  std::string s;
  for (auto& k : kinds) s += (s.empty() ? "" : "+") + k;
  return s;
}

}  // namespace moss
