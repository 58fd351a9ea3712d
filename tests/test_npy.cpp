// Codes in NumPy .npy files: every integer dtype and order NumPy writes is
// read, and every malformed file is refused with a message naming it.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "moss_codec/error.h"
#include "moss_codec/npy.h"
#include "test_util.h"

namespace moss::test {

namespace {

// A version-1 .npy file: magic, header padded to 64 bytes as NumPy does, data.
std::string npy_bytes(const std::string& dict, const std::string& data, int version = 1) {
  const size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header.push_back(' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(char(version));
  out.push_back('\0');
  const size_t len = header.size();
  for (size_t i = 0; i < prefix - 8; ++i) out.push_back(char((len >> (8 * i)) & 0xff));
  return out + header + data;
}

// Values stored as `size`-byte integers in the given byte order.
std::string int_bytes(const std::vector<int64_t>& values, int size, bool little) {
  std::string out;
  for (int64_t v : values)
    for (int i = 0; i < size; ++i) {
      const int byte = little ? i : size - 1 - i;
      out.push_back(char((uint64_t(v) >> (8 * byte)) & 0xff));
    }
  return out;
}

std::string error_of(const std::string& bytes) {
  try {
    parse_npy_codes(bytes, "codes.npy");
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Npy, WrittenCodesReadBackEqual) {
  TempDir dir;
  CodeTensor codes({3, 2, 5});
  for (size_t i = 0; i < codes.data.size(); ++i) codes.data[i] = int32_t(i * 37 % 1024);
  write_npy_codes(dir / "c.npy", codes);
  const CodeTensor back = read_npy_codes(dir / "c.npy");
  EXPECT_EQ(back.shape, codes.shape);
  EXPECT_EQ(back.data, codes.data);
  // NumPy's own reader needs the header padded so the data starts on 64 bytes.
  EXPECT_EQ((slurp(dir / "c.npy").size() - codes.data.size() * 4) % 64, 0u);
}

TEST(Npy, EveryIntegerDtypeByteOrderAndLayoutIsRead) {
  // A (2, 3) array [[0, 1, 2], [3, 4, 5]] (+100 so the values need more than
  // the low byte for the wide types).
  const std::vector<int64_t> c_order = {100, 101, 102, 103, 104, 105};
  const std::vector<int64_t> f_order = {100, 103, 101, 104, 102, 105};
  for (const char* kind : {"i", "u"})
    for (int size : {1, 2, 4, 8})
      for (bool little : {true, false})
        for (bool fortran : {false, true}) {
          const std::string descr = std::string(size == 1 ? "|" : little ? "<" : ">") + kind + std::to_string(size);
          SCOPED_TRACE(descr + (fortran ? " fortran" : " C"));
          const std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
                                   ", 'shape': (2, 3), }";
          const CodeTensor t = parse_npy_codes(npy_bytes(dict, int_bytes(fortran ? f_order : c_order, size, little)), "x");
          EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
          EXPECT_EQ(t.data, (std::vector<int32_t>{100, 101, 102, 103, 104, 105}));
        }
}

TEST(Npy, VersionTwoHeadersAndEmptyArraysAreRead) {
  const CodeTensor v2 = parse_npy_codes(
      npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2), }", int_bytes({7, 9}, 4, true), 2), "x");
  EXPECT_EQ(v2.data, (std::vector<int32_t>{7, 9}));
  const CodeTensor empty = parse_npy_codes(npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (32, 0), }", ""), "x");
  EXPECT_EQ(empty.shape, (std::vector<int64_t>{32, 0}));
  EXPECT_TRUE(empty.data.empty());
}

TEST(Npy, ValuesBeyondInt32AreClampedSoTheCodecRefusesThem) {
  const CodeTensor t = parse_npy_codes(
      npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                int_bytes({int64_t(1) << 40, -(int64_t(1) << 40), 5}, 8, true)),
      "x");
  EXPECT_EQ(t.data, (std::vector<int32_t>{std::numeric_limits<int32_t>::max(), std::numeric_limits<int32_t>::min(), 5}));
  // A uint64 above int64's range must not wrap to a negative (valid-looking) code.
  const CodeTensor u = parse_npy_codes(
      npy_bytes("{'descr': '<u8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\xff')), "x");
  EXPECT_EQ(u.data, (std::vector<int32_t>{std::numeric_limits<int32_t>::max()}));
}

TEST(Npy, MalformedFilesAreRefusedWithTheReason) {
  const std::string ok_dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
  const std::string ok_data = int_bytes({1, 2, 3, 4, 5, 6}, 4, true);
  ASSERT_NO_THROW(parse_npy_codes(npy_bytes(ok_dict, ok_data), "x"));

  std::string bad_magic = npy_bytes(ok_dict, ok_data);
  bad_magic[1] = 'X';
  std::string bad_version = npy_bytes(ok_dict, ok_data);
  bad_version[6] = 9;
  std::string long_header = npy_bytes(ok_dict, ok_data);
  long_header[8] = char(0xff);
  long_header[9] = char(0xff);

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not a .npy file"},
      {"RIFF....WAVEfmt ", "not a .npy file"},
      {bad_magic, "not a .npy file"},
      {bad_version, "unsupported .npy version 9"},
      {long_header, "header runs past the end of the file"},
      {npy_bytes(ok_dict, ok_data).substr(0, 11).replace(6, 1, "\x02"), "truncated .npy header"},
      // The message names the declared dtype, not the padded header.
      {npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", ok_data),
       "integer dtype (i1..i8 or u1..u8); the file's dtype is '<f4'"},
      {npy_bytes("{'descr': '|b1', 'fortran_order': False, 'shape': (2, 3), }", ok_data), "dtype is '|b1'"},
      {npy_bytes("{'fortran_order': False, 'shape': (2, 3), }", ok_data), "dtype is none"},
      {npy_bytes("{'descr': '<i3', 'fortran_order': False, 'shape': (2, 3), }", ok_data), "unsupported integer size 3"},
      {npy_bytes("{'descr': '<i4', 'shape': (2, 3), }", ok_data), "lacks fortran_order"},
      {npy_bytes("{'descr': '<i4', 'fortran_order': False, }", ok_data), "lacks a shape"},
      {npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (2, -3), }", ok_data), "bad shape entry '-3'"},
      {npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ok_data),
       "absurdly large"},
      {npy_bytes(ok_dict, ok_data.substr(0, 20)), "holds 20 data bytes but shape (2, 3) needs 24"},
      {npy_bytes(ok_dict, ok_data + "\x01"), "holds 25 data bytes but shape (2, 3) needs 24"},
  };
  for (const auto& [bytes, expected] : cases) {
    SCOPED_TRACE(expected);
    const std::string message = error_of(bytes);
    EXPECT_NE(message.find("codes.npy"), std::string::npos) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
  }
}

TEST(Npy, MissingFileIsNamed) {
  TempDir dir;
  try {
    read_npy_codes(dir / "absent.npy");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("absent.npy: cannot open"), std::string::npos) << e.what();
  }
}

}  // namespace moss::test
