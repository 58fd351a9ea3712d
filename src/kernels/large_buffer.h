#pragma once
// Storage for the large activation and key/value buffers, backed by 2 MiB
// transparent huge pages where the kernel allows them (Linux THP in
// "madvise" or "always" mode).
//
// Why: a 10 s encode touches ~340 MB of fresh key/value windows and scratch.
// With 4 KiB pages that is ~87,000 page faults, which in this VM took 1.0-1.3 s
// for 340 MB (a single thread, the other spinning at the next barrier); with
// huge pages the same first touch took 33-35 ms (measured with a standalone
// mmap + memset probe, 2026-12-02). Faults were 28% of the CPU samples of a
// `moss-codec encode` of 10 s before this.
//
// Buffers under kLargeBufferBytes use the ordinary allocator; larger ones are
// mapped directly, starting at a 2 MiB boundary, and unmapped on release, so
// a long-running server returns them to the system. The mapping ends where
// the buffer does: its last partial 2 MiB stays in 4 KiB pages rather than
// a huge page that is mostly unused (rounding every buffer up to whole huge
// pages cost 350 MB, 6%, of RSS for a v1 decoder upcast from bf16).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

namespace moss {

inline constexpr size_t kHugePageBytes = size_t(2) << 20;
inline constexpr size_t kLargeBufferBytes = size_t(1) << 20;

#if defined(__linux__)
inline size_t whole_pages(size_t bytes) {
  static const size_t page = size_t(sysconf(_SC_PAGESIZE));
  return (bytes + page - 1) / page * page;
}
#endif

// Maps `bytes` at a kHugePageBytes boundary and asks for huge pages. Throws
// std::bad_alloc when the mapping fails.
inline void* map_huge_aligned(size_t bytes) {
  if (bytes > (size_t(-1) >> 1)) throw std::bad_alloc();  // no size arithmetic below may wrap
#if defined(__linux__)
  bytes = whole_pages(bytes);
  const size_t span = bytes + kHugePageBytes;
  void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (start + kHugePageBytes - 1) & ~uintptr_t(kHugePageBytes - 1);
  // Return the unaligned head and the tail beyond `bytes` to the system.
  if (aligned > start) munmap(raw, aligned - start);
  const size_t tail = span - (aligned - start) - bytes;
  if (tail > 0) munmap(reinterpret_cast<void*>(aligned + bytes), tail);
  void* p = reinterpret_cast<void*>(aligned);
  (void)madvise(p, bytes, MADV_HUGEPAGE);  // advice only: without THP these stay 4 KiB pages
  return p;
#else
  return ::operator new(bytes, std::align_val_t(kHugePageBytes));
#endif
}

inline void unmap_huge_aligned(void* p, size_t bytes) {
#if defined(__linux__)
  munmap(p, whole_pages(bytes));
#else
  (void)bytes;
  ::operator delete(p, std::align_val_t(kHugePageBytes));
#endif
}

template <class T>
struct LargeBufferAllocator {
  using value_type = T;
  LargeBufferAllocator() = default;
  template <class U>
  LargeBufferAllocator(const LargeBufferAllocator<U>&) noexcept {}

  T* allocate(size_t n) {
    if (n > size_t(-1) / sizeof(T)) throw std::bad_alloc();
    if (n * sizeof(T) < kLargeBufferBytes) return std::allocator<T>().allocate(n);
    return static_cast<T*>(map_huge_aligned(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kLargeBufferBytes) std::allocator<T>().deallocate(p, n);
    else unmap_huge_aligned(p, n * sizeof(T));
  }
  template <class U>
  bool operator==(const LargeBufferAllocator<U>&) const noexcept { return true; }
};

// A std::vector whose large allocations live on huge pages.
template <class T>
using LargeVector = std::vector<T, LargeBufferAllocator<T>>;

}  // namespace moss
