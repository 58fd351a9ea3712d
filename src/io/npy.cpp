#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>

#include "moss_codec/error.h"
#include "moss_codec/npy.h"

namespace moss {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxElements = int64_t(1) << 34;  // refuse absurd shapes before allocating

int64_t read_int(const unsigned char* p, int size, bool little, bool is_signed) {
  uint64_t v = 0;
  for (int i = 0; i < size; ++i) v |= uint64_t(p[little ? i : size - 1 - i]) << (8 * i);
  if (is_signed && size < 8 && (v >> (8 * size - 1)) & 1) v |= ~uint64_t(0) << (8 * size);
  if (!is_signed && size == 8 && v > uint64_t(std::numeric_limits<int64_t>::max())) return std::numeric_limits<int64_t>::max();
  return int64_t(v);
}

}  // namespace

CodeTensor read_npy_codes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  return parse_npy_codes(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), path.string());
}

CodeTensor parse_npy_codes(const std::string& bytes, const std::string& where) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw Error(where + ": not a .npy file (bad magic)");
  const unsigned char major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, offset;
  if (major == 1) {
    header_len = size_t(static_cast<unsigned char>(bytes[8])) | size_t(static_cast<unsigned char>(bytes[9])) << 8;
    offset = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw Error(where + ": truncated .npy header");
    header_len = 0;
    for (int i = 0; i < 4; ++i) header_len |= size_t(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    offset = 12;
  } else {
    throw Error(where + ": unsupported .npy version " + std::to_string(major));
  }
  if (header_len > bytes.size() - offset) throw Error(where + ": .npy header runs past the end of the file");
  const std::string header = bytes.substr(offset, header_len);
  std::smatch m;
  static const std::regex descr_re(R"('descr'\s*:\s*'([<>|=])([iu])(\d)')");
  static const std::regex order_re(R"('fortran_order'\s*:\s*(True|False))");
  static const std::regex shape_re(R"('shape'\s*:\s*\(([^)]*)\))");
  if (!std::regex_search(header, m, descr_re)) {
    // Name the dtype the file declares, not the whole (padded, possibly
    // hostile) header.
    static const std::regex any_descr_re(R"('descr'\s*:\s*'([^']{0,32})')");
    std::smatch d;
    const std::string declared = std::regex_search(header, d, any_descr_re) ? "'" + d[1].str() + "'" : "none";
    throw Error(where + ": codes must have an integer dtype (i1..i8 or u1..u8); the file's dtype is " + declared);
  }
  const bool little = m[1] != ">";
  const bool is_signed = m[2] == "i";
  const int size = std::stoi(m[3]);
  if (size != 1 && size != 2 && size != 4 && size != 8) throw Error(where + ": unsupported integer size " + std::to_string(size));
  if (!std::regex_search(header, m, order_re)) throw Error(where + ": .npy header lacks fortran_order");
  const bool fortran = m[1] == "True";
  if (!std::regex_search(header, m, shape_re)) throw Error(where + ": .npy header lacks a shape");
  std::vector<int64_t> shape;
  std::stringstream ss(m[1].str());
  std::string item;
  int64_t count = 1;
  while (std::getline(ss, item, ',')) {
    item.erase(std::remove_if(item.begin(), item.end(), ::isspace), item.end());
    if (item.empty()) continue;
    if (!std::all_of(item.begin(), item.end(), ::isdigit) || item.size() > 12) throw Error(where + ": bad shape entry '" + item + "'");
    const int64_t d = std::stoll(item);
    shape.push_back(d);
    // Each dimension on its own too: with a 0 elsewhere the count stays 0,
    // but the strides below are products of the dimensions.
    if (d > kMaxElements || (d != 0 && count > kMaxElements / d)) throw Error(where + ": shape is absurdly large");
    count *= d;
  }
  if (count > kMaxElements) throw Error(where + ": shape is absurdly large");
  const size_t data_at = offset + header_len;
  if (uint64_t(bytes.size() - data_at) != uint64_t(count) * uint64_t(size))
    throw Error(where + ": holds " + std::to_string(bytes.size() - data_at) + " data bytes but shape " + shape_to_string(shape) +
                " needs " + std::to_string(count * size));
  CodeTensor out(shape);
  if (count == 0) return out;  // nothing to read (and strides could overflow)
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + data_at);
  std::vector<int64_t> strides(shape.size(), 1);  // element strides of the stored order
  if (fortran)
    for (size_t i = 1; i < shape.size(); ++i) strides[i] = strides[i - 1] * shape[i - 1];
  else
    for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  std::vector<int64_t> idx(shape.size(), 0);
  for (int64_t n = 0; n < count; ++n) {  // n walks C order
    int64_t src = 0;
    for (size_t i = 0; i < shape.size(); ++i) src += idx[i] * strides[i];
    const int64_t v = read_int(p + src * size, size, little, is_signed);
    out.data[size_t(n)] = int32_t(std::clamp<int64_t>(v, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
    for (size_t i = shape.size(); i-- > 0;) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

void write_npy_codes(const fs::path& path, const CodeTensor& codes) {
  std::string shape = "(";
  for (size_t i = 0; i < codes.shape.size(); ++i) shape += std::to_string(codes.shape[i]) + (codes.shape.size() == 1 || i + 1 < codes.shape.size() ? ", " : "");
  shape += ")";
  std::string header = "{'descr': '<i4', 'fortran_order': False, 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(path.string() + ": cannot open for writing");
  out.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = uint16_t(header.size());
  const char len_bytes[2] = {char(len & 0xff), char(len >> 8)};
  out.write(len_bytes, 2);
  out.write(header.data(), std::streamsize(header.size()));
  for (int32_t v : codes.data) {
    const char b[4] = {char(v & 0xff), char((v >> 8) & 0xff), char((v >> 16) & 0xff), char((uint32_t(v) >> 24) & 0xff)};
    out.write(b, 4);
  }
  if (!out.flush()) throw Error(path.string() + ": write failed");
}

}  // namespace moss
