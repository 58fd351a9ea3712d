#include "io/page_residency.h"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace moss {

PageResidency& PageResidency::operator+=(const PageResidency& o) {
  known = known || o.known;
  mapped_bytes += o.mapped_bytes;
  resident_bytes += o.resident_bytes;
  huge_page_bytes += o.huge_page_bytes;
  return *this;
}

namespace {

// "555f116ac000-555f116ae000 r--p ..." -> the two addresses; false for field lines.
bool parse_mapping_header(const std::string& line, uint64_t& lo, uint64_t& hi) {
  unsigned long long a = 0, b = 0;
  int used = 0;
  if (std::sscanf(line.c_str(), "%llx-%llx%n", &a, &b, &used) != 2 || used == 0 || b < a) return false;
  if (size_t(used) >= line.size() || line[size_t(used)] != ' ') return false;
  lo = a;
  hi = b;
  return true;
}

// "Rss:   8 kB" -> bytes when the line starts with `field`.
bool parse_kb_field(const std::string& line, const char* field, int64_t& bytes) {
  const std::string f(field);
  if (line.compare(0, f.size(), f) != 0) return false;
  long long kb = 0;
  if (std::sscanf(line.c_str() + f.size(), " %lld", &kb) != 1 || kb < 0) return false;
  bytes = int64_t(kb) * 1024;
  return true;
}

}  // namespace

PageResidency page_residency_from_smaps(std::istream& smaps, const void* begin, size_t size) {
  PageResidency r;
  r.known = true;
  r.mapped_bytes = int64_t(size);
  const uint64_t lo = reinterpret_cast<uintptr_t>(begin), hi = lo + size;
  double share = 0;  // of the current mapping's pages that lie in the range
  std::string line;
  while (std::getline(smaps, line)) {
    uint64_t a = 0, b = 0;
    if (parse_mapping_header(line, a, b)) {
      const uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;
      share = (to > from && b > a) ? double(to - from) / double(b - a) : 0.0;
      continue;
    }
    if (share == 0) continue;
    int64_t bytes = 0;
    if (parse_kb_field(line, "Rss:", bytes)) r.resident_bytes += int64_t(share * double(bytes));
    else if (parse_kb_field(line, "FilePmdMapped:", bytes) || parse_kb_field(line, "AnonHugePages:", bytes))
      r.huge_page_bytes += int64_t(share * double(bytes));
  }
  return r;
}

PageResidency page_residency(const void* begin, size_t size) {
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) {
    PageResidency r;
    r.mapped_bytes = int64_t(size);
    return r;
  }
  return page_residency_from_smaps(smaps, begin, size);
}

}  // namespace moss
