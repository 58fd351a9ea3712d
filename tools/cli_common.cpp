#include "cli_common.h"

#include <unistd.h>

#include <cstdio>
#include <iomanip>
#include <iostream>
#include <sstream>

namespace moss::cli {

namespace fs = std::filesystem;

OutputFile::OutputFile(const fs::path& target, const std::vector<fs::path>& inputs, bool force, bool is_dir)
    : target_(target), is_dir_(is_dir) {
  std::error_code ec;
  for (const fs::path& in : inputs)
    if (fs::exists(target, ec) && fs::exists(in, ec) && fs::equivalent(target, in, ec))
      throw CliError{kOutputError, target.string() + ": is one of the inputs; refusing to overwrite it"};
  if (fs::exists(target, ec) && !force)
    throw CliError{kOutputError, target.string() + ": already exists (use --force to replace it)"};
  if (fs::exists(target, ec) && is_dir != fs::is_directory(target, ec))
    throw CliError{kOutputError, target.string() + ": exists and is " + (is_dir ? "not a folder" : "a folder")};
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) throw CliError{kOutputError, parent.string() + ": no such folder for the output"};
  // Same folder (so rename is atomic) and same extension (libsndfile picks the format by it).
  std::string name = ".";
  name += target.stem().string();
  name += ".tmp-";
  name += std::to_string(::getpid());
  name += target.extension().string();
  temp_ = parent / name;
}

OutputFile::~OutputFile() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void OutputFile::commit() {
  std::error_code ec;
  if (is_dir_ && fs::exists(target_, ec)) fs::remove_all(target_, ec);  // --force checked in the constructor
  fs::rename(temp_, target_, ec);
  if (ec) throw CliError{kOutputError, target_.string() + ": cannot move the output into place: " + ec.message()};
  committed_ = true;
}

Progress::Progress(std::string label, bool enabled)
    : label_(std::move(label)), enabled_(enabled && ::isatty(STDERR_FILENO)), start_(std::chrono::steady_clock::now()) {}

void Progress::update(double f) {
  if (!enabled_ || seconds_since(start_) < 1.0) return;
  const int width = 30, filled = int(f * width + 0.5);
  std::fprintf(stderr, "\r%s [%s%s] %3d%%", label_.c_str(), std::string(size_t(filled), '#').c_str(),
               std::string(size_t(width - filled), ' ').c_str(), int(f * 100 + 0.5));
  std::fflush(stderr);
  shown_ = true;
}

void Progress::done() {
  if (shown_) {
    update(1.0);
    std::fprintf(stderr, "\n");
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void print_json(const nlohmann::json& j, bool to_stderr) { (to_stderr ? std::cerr : std::cout) << j.dump() << std::endl; }

namespace {
double huge_share(const Codec::WeightResidency& r) {
  return r.resident_bytes > 0 ? double(r.huge_page_bytes) / double(r.resident_bytes) : 0.0;
}
}  // namespace

std::string residency_line(const Codec::WeightResidency& r) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(0) << double(r.mapped_bytes) / 1e6 << " MB mapped";
  if (!r.known) return os.str() + " (residency not reported on this system)";
  os << ", " << double(r.resident_bytes) / 1e6 << " MB resident, " << 100.0 * huge_share(r) << "% of it in 2 MiB pages";
  if (r.locked_bytes > 0) os << ", " << double(r.locked_bytes) / 1e6 << " MB locked";
  return os.str();
}

nlohmann::json residency_json(const Codec::WeightResidency& r) {
  nlohmann::json j = {{"known", r.known}, {"mapped_bytes", r.mapped_bytes}};
  if (r.known) {
    j["resident_bytes"] = r.resident_bytes;
    j["huge_page_bytes"] = r.huge_page_bytes;
    j["locked_bytes"] = r.locked_bytes;
  }
  return j;
}

std::string residency_warning(const Codec::WeightResidency& r) {
  // Small checkpoints fit the TLB reach anyway; only say it when it costs.
  if (!r.known || r.resident_bytes < (int64_t(256) << 20) || huge_share(r) >= 0.5) return "";
  return "note: most of the mapped weights are in 4 KiB pages (the page cache split them, e.g. under memory "
         "reclaim); streaming runs up to ~2x slower until the file is read into the cache afresh (README: Page cache)";
}

}  // namespace moss::cli
