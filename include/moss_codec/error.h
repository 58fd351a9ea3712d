#pragma once
// The one error convention of moss-codec: every failure is a moss::Error whose
// message names the file, tensor, field or argument involved and the values seen.
// The library never prints and never exits.
#include <stdexcept>
#include <string>

namespace moss {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace moss
