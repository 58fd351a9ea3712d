#pragma once
// What every moss-codec command shares: exit codes, the safe-output rule,
// progress on a terminal, and the --json summary line.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moss_codec/codec.h"
#include "moss_codec/tensor.h"

namespace moss::cli {

// Documented exit codes.
enum Exit : int {
  kOk = 0,
  kUsage = 1,        // bad command line
  kBadInput = 2,     // missing, unreadable or invalid input (audio, codes, config)
  kModelError = 3,   // the model cannot be found or loaded
  kOutputError = 4,  // output exists (without --force), is an input, or cannot be written
  kInternal = 5,
};

struct CliError {
  int code;
  std::string message;
};

struct Common {
  std::string model;  // --model or MOSS_CODEC_MODEL
  int threads = 0;
  bool pack_weights = false;  // LoadOptions::pack_weights
  bool lock_weights = false;  // LoadOptions::lock_weights
  bool quiet = false, verbose = false, json = false, force = false;
};

// An output written to a temporary file beside the target and renamed into
// place on commit(), so no reader sees a torn file and a failure leaves the
// old one untouched. Refuses an existing target without --force and any
// target that is one of the inputs.
class OutputFile {
 public:
  OutputFile(const std::filesystem::path& target, const std::vector<std::filesystem::path>& inputs, bool force,
             bool is_dir = false);
  ~OutputFile();
  const std::filesystem::path& temp() const { return temp_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_, temp_;
  bool committed_ = false, is_dir_;
};

// A progress bar on stderr, shown only on a terminal and only once the work
// has run for a second.
class Progress {
 public:
  Progress(std::string label, bool enabled);
  void update(double fraction);
  void done();

 private:
  std::string label_;
  bool enabled_, shown_ = false;
  std::chrono::steady_clock::time_point start_;
};

double seconds_since(std::chrono::steady_clock::time_point t0);

// Columns [at, at + n) of a (rows x cols) row-major array, as (rows x n):
// how the commands cut audio and codes into pushes.
template <typename T>
BasicTensor<T> columns(const std::vector<T>& data, int64_t rows, int64_t cols, int64_t at, int64_t n) {
  BasicTensor<T> piece({rows, n});
  for (int64_t r = 0; r < rows; ++r)
    std::copy(data.begin() + r * cols + at, data.begin() + r * cols + at + n, piece.data.begin() + r * n);
  return piece;
}

// Prints the --json summary line (stdout, or stderr when stdout carries data).
void print_json(const nlohmann::json& j, bool to_stderr = false);

// How the checkpoint's mapping sits in memory, for info and bench: one line
// ("7098 MB mapped, 6930 MB resident, 98% of it in 2 MiB pages"), the same as
// JSON, and a warning (empty when none is due) when most resident weights
// are in 4 KiB pages, which made streaming 1.5-2.2x slower here.
std::string residency_line(const Codec::WeightResidency& r);
nlohmann::json residency_json(const Codec::WeightResidency& r);
std::string residency_warning(const Codec::WeightResidency& r);

}  // namespace moss::cli
