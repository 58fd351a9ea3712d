#pragma once
// A validating, memory-mapped safetensors reader. The header is checked before
// any tensor is exposed: its length against the file, every dtype, shape and byte
// count against each other, and every data range against the file and the others.
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace moss {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

const char* to_string(DType);
size_t dtype_size(DType);

// Read-only view of one tensor inside a mapped file.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // for error messages

  int64_t numel() const;
  // Converted copies; throw moss::Error on an incompatible dtype.
  std::vector<float> to_float() const;
  // The same into out[0, numel()).
  void to_float(float* out) const;
  std::vector<int64_t> to_int64() const;
};

class MappedFile;

class SafetensorsFile {
 public:
  // Upper bound on the JSON header; the format's own reference reader uses 100 MB.
  static constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

  static SafetensorsFile open(const std::filesystem::path& path);
  // Parses bytes already in memory; `name` stands for the path in errors.
  static SafetensorsFile from_bytes(std::vector<uint8_t> bytes, const std::string& name);

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* find(const std::string& name) const;
  const TensorView& at(const std::string& name) const;  // throws naming the file
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The whole file as mapped (or held) in memory.
  const uint8_t* data() const;
  size_t size() const;
  // Drops the whole pages of [p, p + bytes) (clipped to the file) from this
  // process when the file is mapped; the next read faults them back in from
  // the page cache. Nothing happens to bytes held in memory (from_bytes).
  void release_pages(const uint8_t* p, size_t bytes) const;
  // Locks the pages of [p, p + bytes) (clipped to the file) in memory while
  // the file stays mapped (mlock(2)); returns 0 or the failure's errno. Bytes
  // held in memory (from_bytes) are left alone (0).
  int lock_pages(const uint8_t* p, size_t bytes) const;

 private:
  std::filesystem::path path_;
  std::shared_ptr<MappedFile> mapping_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;

  static SafetensorsFile parse(std::shared_ptr<MappedFile> mapping, const std::filesystem::path& path);
};

// Writes tensors (F32 or I64 payloads as raw little-endian bytes) to `path`.
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors);

// A tensor written from where its bytes lie (a mapping, a model's buffers).
struct TensorSource {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};
// Writes `tensors` contiguously in the given order, their data section
// starting at a multiple of `data_alignment` bytes into the file (the header
// is padded with spaces, as the format allows), with `metadata` beside
// {"format": "pt"}.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorSource>& tensors,
                       const std::map<std::string, std::string>& metadata = {}, size_t data_alignment = 8);

}  // namespace moss
