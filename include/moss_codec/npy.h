#pragma once
// NumPy .npy files for codes: written as little-endian int32, read from any
// integer dtype (either byte order, C or Fortran order). The header is
// validated before any data is touched.
#include <filesystem>
#include <string>

#include "moss_codec/tensor.h"

namespace moss {

// Values outside int32 are clamped (the codec then rejects them as out of range).
CodeTensor read_npy_codes(const std::filesystem::path& path);
// The same from bytes in memory; `where` names the source in errors.
CodeTensor parse_npy_codes(const std::string& bytes, const std::string& where);
void write_npy_codes(const std::filesystem::path& path, const CodeTensor& codes);

}  // namespace moss
