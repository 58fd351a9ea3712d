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
  locked_bytes += o.locked_bytes;
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
  int64_t rss = 0;   // the current mapping's resident bytes in the range
  std::string line;
  while (std::getline(smaps, line)) {
    uint64_t a = 0, b = 0;
    if (parse_mapping_header(line, a, b)) {
      const uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;
      share = (to > from && b > a) ? double(to - from) / double(b - a) : 0.0;
      rss = 0;
      continue;
    }
    if (share == 0) continue;
    int64_t bytes = 0;
    if (parse_kb_field(line, "Rss:", bytes)) {
      rss = int64_t(share * double(bytes));
      r.resident_bytes += rss;
    } else if (parse_kb_field(line, "FilePmdMapped:", bytes) || parse_kb_field(line, "AnonHugePages:", bytes)) {
      r.huge_page_bytes += int64_t(share * double(bytes));
    } else if (line.compare(0, 8, "VmFlags:") == 0) {
      // A locked mapping (mlock, flag "lo") counts its resident pages; not
      // smaps' Locked field, which splits pages other mappings share (PSS).
      std::istringstream flags(line.substr(8));
      for (std::string f; flags >> f;)
        if (f == "lo") r.locked_bytes += rss;
    }
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
