#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "moss_codec/error.h"

namespace moss {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path.string() + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(path.string() + ": not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    throw Error(path.string() + ": file is empty");
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw Error(path.string() + ": cannot map: " + std::strerror(errno));
  return std::shared_ptr<MappedFile>(new MappedFile(static_cast<const uint8_t*>(p), size));
}

std::shared_ptr<MappedFile> MappedFile::from_bytes(std::vector<uint8_t> bytes) {
  auto m = std::shared_ptr<MappedFile>(new MappedFile(nullptr, bytes.size()));
  m->owned_ = std::move(bytes);
  m->data_ = m->owned_.data();
  return m;
}

void MappedFile::release_pages(const uint8_t* p, size_t bytes) const {
  if (!owned_.empty() || !data_ || p < data_ || p >= data_ + size_) return;  // held in memory, or not ours
  bytes = std::min(bytes, size_t(data_ + size_ - p));
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  // Whole pages only: the partial ones at either end hold other tensors too.
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes) / page * page;
  // Advice on a private read-only file mapping: the pages are unmapped and
  // read again from the file if touched; it cannot lose data.
  if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

int MappedFile::lock_pages(const uint8_t* p, size_t bytes) const {
  if (!owned_.empty() || !data_ || p < data_ || p >= data_ + size_) return 0;
  bytes = std::min(bytes, size_t(data_ + size_ - p));
  static const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + bytes + page - 1) / page * page;
  return ::mlock(reinterpret_cast<const void*>(begin), end - begin) == 0 ? 0 : errno;
}

MappedFile::~MappedFile() {
  if (owned_.empty() && data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace moss
