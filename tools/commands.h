#pragma once
// The moss-codec subcommands. Each registers its options on `app` and returns
// the function that runs it; errors are thrown as CliError with an exit code.
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>

#include "cli_common.h"
#include "moss_codec/audio.h"
#include "moss_codec/codec.h"

namespace moss::cli {

using Runner = std::function<int()>;

Runner add_encode(CLI::App& app, const Common& common);
Runner add_decode(CLI::App& app, const Common& common);
Runner add_roundtrip(CLI::App& app, const Common& common);
Runner add_info(CLI::App& app, const Common& common);
Runner add_init_random(CLI::App& app, const Common& common);
Runner add_check_fixtures(CLI::App& app, const Common& common);
Runner add_bench(CLI::App& app, const Common& common);
Runner add_pack(CLI::App& app, const Common& common);

// Loads --model (exit 3 when it cannot), honouring --threads.
std::shared_ptr<const Codec> load_model(const Common& common, Parts parts = Parts::All);

// Codes (nq, T) of one audio file, read and encoded through an EncoderStream
// in pushes of `push_samples` (whole frames), with progress: memory stays the
// weights plus one push, however long the file.
CodeTensor encode_audio(const std::shared_ptr<const Codec>& codec, ModelInputReader& input,
                        std::optional<int> num_quantizers, int64_t push_samples, const Common& common);

// The default push: 10 s of whole frames.
int64_t default_push_samples(const CodecConfig& config);

// Reads codes from .npy or .json (exit 2 when unreadable).
CodeTensor read_codes(const std::filesystem::path& path);

}  // namespace moss::cli
