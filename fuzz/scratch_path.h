#pragma once
// A fuzz target's scratch file or folder in the temp directory, named by
// process, and removed when the process exits (a static's destructor), so
// fuzzing and the regression tests leave nothing behind in /tmp.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

struct ScratchPath {
  std::filesystem::path path;
  explicit ScratchPath(const std::string& prefix, const std::string& suffix = "")
      : path(std::filesystem::temp_directory_path() / (prefix + std::to_string(::getpid()) + suffix)) {}
  ~ScratchPath() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};
