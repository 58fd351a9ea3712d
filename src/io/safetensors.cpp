#include "moss_codec/safetensors.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "io/mapped_file.h"
#include "kernels/half.h"
#include "moss_codec/error.h"

namespace moss {

using nlohmann::json;

const char* to_string(DType t) {
  switch (t) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: return 8;
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: return 2;
    case DType::I8: case DType::U8: case DType::Bool: return 1;
  }
  return 0;
}

static bool parse_dtype(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F64", DType::F64}, {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16},
      {"I64", DType::I64}, {"I32", DType::I32}, {"I16", DType::I16}, {"I8", DType::I8},
      {"U8", DType::U8},   {"BOOL", DType::Bool}};
  for (auto& [name, t] : table)
    if (s == name) { *out = t; return true; }
  return false;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

template <typename T>
static T load_unaligned(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::vector<float> TensorView::to_float() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  to_float(out.data());
  return out;
}

void TensorView::to_float(float* out) const {
  size_t n = static_cast<size_t>(numel());
  const uint8_t* p = data;
  switch (dtype) {
    case DType::F32: if (n) std::memcpy(out, p, n * 4); break;
    case DType::F64: for (size_t i = 0; i < n; ++i) out[i] = float(load_unaligned<double>(p + 8 * i)); break;
    case DType::F16: for (size_t i = 0; i < n; ++i) out[i] = half_to_float(load_unaligned<uint16_t>(p + 2 * i)); break;
    case DType::BF16: for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(load_unaligned<uint16_t>(p + 2 * i)); break;
    default:
      throw Error(file + ": tensor '" + name + "' has dtype " + to_string(dtype) + ", expected a float type (F32, F16, BF16, F64)");
  }
}

std::vector<int64_t> TensorView::to_int64() const {
  size_t n = static_cast<size_t>(numel());
  std::vector<int64_t> out(n);
  const uint8_t* p = data;
  switch (dtype) {
    case DType::I64: for (size_t i = 0; i < n; ++i) out[i] = load_unaligned<int64_t>(p + 8 * i); break;
    case DType::I32: for (size_t i = 0; i < n; ++i) out[i] = load_unaligned<int32_t>(p + 4 * i); break;
    case DType::I16: for (size_t i = 0; i < n; ++i) out[i] = load_unaligned<int16_t>(p + 2 * i); break;
    case DType::I8: for (size_t i = 0; i < n; ++i) out[i] = int8_t(p[i]); break;
    case DType::U8: case DType::Bool: for (size_t i = 0; i < n; ++i) out[i] = p[i]; break;
    default:
      throw Error(file + ": tensor '" + name + "' has dtype " + to_string(dtype) + ", expected an integer type");
  }
  return out;
}

const TensorView* SafetensorsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

const TensorView& SafetensorsFile::at(const std::string& name) const {
  const TensorView* t = find(name);
  if (!t) throw Error(path_.string() + ": no tensor named '" + name + "'");
  return *t;
}

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) { return parse(MappedFile::open(path), path); }

SafetensorsFile SafetensorsFile::from_bytes(std::vector<uint8_t> bytes, const std::string& name) {
  if (bytes.empty()) throw Error(name + ": file is empty");
  return parse(MappedFile::from_bytes(std::move(bytes)), name);
}

SafetensorsFile SafetensorsFile::parse(std::shared_ptr<MappedFile> mapping, const std::filesystem::path& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.mapping_ = std::move(mapping);
  const std::string where = path.string();
  const uint8_t* base = f.mapping_->data();
  const uint64_t size = f.mapping_->size();
  if (size < 8) throw Error(where + ": truncated safetensors file (" + std::to_string(size) + " bytes, need at least 8)");
  uint64_t header_len = load_unaligned<uint64_t>(base);
  if (header_len > kMaxHeaderBytes)
    throw Error(where + ": safetensors header length " + std::to_string(header_len) + " exceeds the limit of " +
                std::to_string(kMaxHeaderBytes) + " bytes");
  if (header_len > size - 8)
    throw Error(where + ": safetensors header length " + std::to_string(header_len) + " runs past the end of the file (" +
                std::to_string(size) + " bytes)");
  const char* hdr = reinterpret_cast<const char*>(base + 8);

  // Parse while recording top-level keys, so that duplicates are caught (a JSON
  // object silently keeps the last of two equal keys).
  std::set<std::string> seen;
  std::string duplicate;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      std::string k = parsed.get<std::string>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(hdr, hdr + header_len, cb);
  } catch (const std::exception& e) {
    throw Error(where + ": safetensors header is not valid JSON: " + e.what());
  }
  if (!duplicate.empty()) throw Error(where + ": safetensors header names tensor '" + duplicate + "' twice");
  if (!header.is_object()) throw Error(where + ": safetensors header is not a JSON object");

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;
  std::vector<std::pair<std::pair<uint64_t, uint64_t>, std::string>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (entry.is_object())
        for (auto& [k, v] : entry.items())
          if (v.is_string()) f.metadata_[k] = v.get<std::string>();
      continue;
    }
    const std::string what = where + ": tensor '" + name + "'";
    if (!entry.is_object()) throw Error(what + ": entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) throw Error(what + ": missing or non-string 'dtype'");
    if (!entry.contains("shape") || !entry["shape"].is_array()) throw Error(what + ": missing or non-array 'shape'");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() || entry["data_offsets"].size() != 2)
      throw Error(what + ": 'data_offsets' must be an array of two integers");
    TensorView t;
    t.name = name;
    t.file = where;
    std::string dt = entry["dtype"].get<std::string>();
    if (!parse_dtype(dt, &t.dtype)) throw Error(what + ": unknown dtype '" + dt + "'");
    uint64_t count = 1;
    for (auto& d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) throw Error(what + ": shape entries must be non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > std::numeric_limits<uint64_t>::max() / v) throw Error(what + ": shape overflows");
      count *= v;
      t.shape.push_back(int64_t(v));
    }
    auto& offs = entry["data_offsets"];
    if (!offs[0].is_number_unsigned() && !(offs[0].is_number_integer() && offs[0].get<int64_t>() >= 0))
      throw Error(what + ": data_offsets must be non-negative integers");
    if (!offs[1].is_number_unsigned() && !(offs[1].is_number_integer() && offs[1].get<int64_t>() >= 0))
      throw Error(what + ": data_offsets must be non-negative integers");
    uint64_t begin = offs[0].get<uint64_t>(), end = offs[1].get<uint64_t>();
    if (begin > end) throw Error(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] are reversed");
    if (end > data_size)
      throw Error(what + ": data_offsets end " + std::to_string(end) + " lies outside the data section of " +
                  std::to_string(data_size) + " bytes");
    uint64_t esize = dtype_size(t.dtype);
    if (count > std::numeric_limits<uint64_t>::max() / esize) throw Error(what + ": byte count overflows");
    if (end - begin != count * esize)
      throw Error(what + ": holds " + std::to_string(end - begin) + " bytes but shape x dtype needs " +
                  std::to_string(count * esize));
    t.data = data + begin;
    t.nbytes = size_t(end - begin);
    if (t.nbytes > 0) ranges.push_back({{begin, end}, name});
    f.tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.first < ranges[i - 1].first.second)
      throw Error(where + ": tensors '" + ranges[i - 1].second + "' and '" + ranges[i].second + "' overlap in the data section");
  return f;
}

static int64_t count_elements(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors) {
  std::vector<TensorSource> sources;
  for (auto& t : tensors) sources.push_back({t.name, t.dtype, t.shape, t.bytes.data(), t.bytes.size()});
  write_safetensors(path, sources);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata, size_t data_alignment) {
  if (data_alignment < 8 || data_alignment % 8 != 0) throw Error("write_safetensors: data_alignment must be a multiple of 8");
  json header = json::object();
  uint64_t offset = 0;
  for (auto& t : tensors) {
    uint64_t need = uint64_t(count_elements(t.shape)) * dtype_size(t.dtype);
    if (need != t.nbytes) throw Error("write_safetensors: tensor '" + t.name + "' has wrong byte count");
    if (header.contains(t.name)) throw Error("write_safetensors: tensor '" + t.name + "' given twice");
    header[t.name] = {{"dtype", to_string(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  json meta = {{"format", "pt"}};
  for (auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  std::string h = header.dump();
  while ((h.size() + 8) % data_alignment != 0) h.push_back(' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path.string() + ": cannot open for writing");
  uint64_t n = h.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out.write(h.data(), std::streamsize(h.size()));
  for (auto& t : tensors) out.write(static_cast<const char*>(t.data), std::streamsize(t.nbytes));
  if (!out.flush()) throw Error(path.string() + ": write failed");
}

const uint8_t* SafetensorsFile::data() const { return mapping_->data(); }
size_t SafetensorsFile::size() const { return mapping_->size(); }
void SafetensorsFile::release_pages(const uint8_t* p, size_t bytes) const { mapping_->release_pages(p, bytes); }
int SafetensorsFile::lock_pages(const uint8_t* p, size_t bytes) const { return mapping_->lock_pages(p, bytes); }

}  // namespace moss
