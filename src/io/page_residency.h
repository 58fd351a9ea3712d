#pragma once
// How much of a memory range is resident, and how much of that sits in 2 MiB
// (PMD-mapped) pages, as the kernel reports it in /proc/self/smaps.
//
// Why it matters: the mapped checkpoint is read at memory bandwidth by every
// streaming step, and with 4 KiB pages most of that time goes to TLB misses.
// On this project's VMs the same 7.1 GB checkpoint streamed at 117 ms per
// 80 ms frame when the page cache held it in 2 MiB folios and 182-260 ms when
// memory reclaim had split them into 4 KiB pages (2026-12-02); offline encode
// went from 1.64 s to 1.9-2.1 s. The library cannot choose how the page
// cache holds a file, so it reports it (bench, info) instead of guessing.
#include <cstddef>
#include <cstdint>
#include <istream>

namespace moss {

struct PageResidency {
  bool known = false;       // false where smaps is unavailable (not Linux, no /proc)
  int64_t mapped_bytes = 0;  // the range's size
  int64_t resident_bytes = 0;
  int64_t huge_page_bytes = 0;  // resident in PMD-mapped pages (file or anonymous)
  int64_t locked_bytes = 0;     // resident in locked (mlock) mappings, smaps' VmFlags "lo"
  PageResidency& operator+=(const PageResidency& o);
};

// Residency of [begin, begin + size) from smaps-formatted text: each mapping
// that overlaps the range counts its Rss, FilePmdMapped and AnonHugePages (and
// its Rss as locked when VmFlags has "lo") in
// proportion to the overlap. Exposed for tests; lines it does not know are skipped.
PageResidency page_residency_from_smaps(std::istream& smaps, const void* begin, size_t size);

// The same from this process's /proc/self/smaps; known = false where it cannot be read.
PageResidency page_residency(const void* begin, size_t size);

}  // namespace moss
