// Where a model lives: a checkpoint folder, a TTS checkpoint with the codec in
// a subfolder, or a repo id in the local Hugging Face cache.
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "moss_codec/codec.h"

namespace moss {

namespace fs = std::filesystem;

namespace {

bool has_weights(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_regular_file(dir / "model.safetensors", ec) || fs::is_regular_file(dir / "model.safetensors.index.json", ec))
    return true;
  for (auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") return true;
  return false;
}

// A codec folder holds a config with encoder and decoder module lists, and weights.
bool is_codec_folder(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec) || !fs::is_regular_file(dir / "config.json", ec)) return false;
  std::ifstream in(dir / "config.json");
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("encoder_kwargs") || !j["encoder_kwargs"].is_array() ||
      !j.contains("decoder_kwargs") || !j["decoder_kwargs"].is_array())
    return false;
  return has_weights(dir);
}

const char* const kCodecSubfolders[] = {"audio_tokenizer", "moss_audio_tokenizer", "codec"};

std::optional<fs::path> find_in_folder(const fs::path& dir, std::vector<std::string>& looked) {
  if (is_codec_folder(dir)) return dir;
  looked.push_back(dir.string());
  for (const char* sub : kCodecSubfolders) {
    if (is_codec_folder(dir / sub)) return dir / sub;
    looked.push_back((dir / sub).string());
  }
  return std::nullopt;
}

bool looks_like_repo_id(const std::string& s) {
  const size_t slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == s.size() || s.find('/', slash + 1) != std::string::npos)
    return false;
  return s[0] != '.' && s[0] != '~';
}

fs::path hub_cache_dir() {
  if (const char* hf = std::getenv("HF_HOME"); hf && *hf) return fs::path(hf) / "hub";
  const char* home = std::getenv("HOME");
  return fs::path(home && *home ? home : ".") / ".cache" / "huggingface" / "hub";
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

}  // namespace

fs::path resolve_checkpoint(const std::string& path_or_id) {
  std::vector<std::string> looked;
  std::error_code ec;
  const fs::path p(path_or_id);
  if (fs::is_directory(p, ec)) {
    if (auto found = find_in_folder(p, looked)) return *found;
    throw Error(path_or_id + ": no MOSS Audio Tokenizer checkpoint (config.json with encoder_kwargs and decoder_kwargs, plus "
                "*.safetensors) found; looked in " + joined(looked));
  }
  if (!looks_like_repo_id(path_or_id))
    throw Error(path_or_id + ": no such checkpoint folder (and not a repo id of the form owner/name)");
  const std::string owner = path_or_id.substr(0, path_or_id.find('/'));
  const std::string name = path_or_id.substr(path_or_id.find('/') + 1);
  const fs::path repo = hub_cache_dir() / ("models--" + owner + "--" + name);
  fs::path snapshot;
  std::ifstream ref(repo / "refs" / "main");
  std::string rev;
  if (ref && std::getline(ref, rev)) {
    while (!rev.empty() && (rev.back() == '\n' || rev.back() == '\r' || rev.back() == ' ')) rev.pop_back();
    if (rev.empty() || rev.find('/') != std::string::npos || rev == "..")
      throw Error((repo / "refs" / "main").string() + ": not a revision");
    snapshot = repo / "snapshots" / rev;
  } else {
    looked.push_back((repo / "refs" / "main").string());
    throw Error(path_or_id + ": not a folder, and not in the local Hugging Face cache (looked for " + joined(looked) +
                "; set HF_HOME or pass a checkpoint folder)");
  }
  if (auto found = find_in_folder(snapshot, looked)) return *found;
  throw Error(path_or_id + ": the cached snapshot holds no MOSS Audio Tokenizer checkpoint; looked in " + joined(looked));
}

}  // namespace moss
