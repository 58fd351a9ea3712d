#pragma once
// Read-only memory mapping of a whole file, unmapped when the last owner goes.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

namespace moss {

class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  // The same interface over bytes already in memory (fuzzing, tests).
  static std::shared_ptr<MappedFile> from_bytes(std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  // Drops the whole pages of [p, p + bytes) (clipped to the file) from this
  // process's memory when this is a mapping (see SafetensorsFile).
  void release_pages(const uint8_t* p, size_t bytes) const;
  // Locks the pages holding [p, p + bytes) (clipped to the file; partial pages
  // at the ends included) in memory: mlock(2), so reclaim cannot drop them
  // until the mapping goes. Returns 0 or the errno of the failure. Nothing is
  // done (0) for bytes held in memory or outside this file.
  int lock_pages(const uint8_t* p, size_t bytes) const;

 private:
  MappedFile(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
  std::vector<uint8_t> owned_;  // non-empty: not a mapping
};

}  // namespace moss
