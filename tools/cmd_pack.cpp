// moss-codec pack --model M -o DIR: a packed checkpoint (transformer matrices
// stored in oneDNN's blocked layout), which loads mapped in place at
// --pack-weights speed.
#include <iostream>

#include "commands.h"

namespace moss::cli {

namespace fs = std::filesystem;

Runner add_pack(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("pack", "Write a packed checkpoint: fast offline products without the copy at load");
  auto output = std::make_shared<std::string>();
  cmd->add_option("-o,--output", *output, "Checkpoint folder to create")->required();
  cmd->footer(
      "Example:\n  moss-codec pack --model /tmp/v1 -o /tmp/v1-packed && moss-codec encode a.wav -o a.npy --model /tmp/v1-packed\n"
      "The transformer matrices are stored in the layout --pack-weights copies them into at every load (AVX-512\n"
      "CPUs); loading the packed folder maps them in place instead. Results are identical. CPUs without that\n"
      "kernel unpack it at load. Only moss-codec reads the packed tensors; keep the original for other tools.");
  return [output, &common]() {
    Common packing = common;
    packing.pack_weights = true;
    packing.quiet = true;  // only the load: save_packed's error says why nothing was packed
    const auto t0 = std::chrono::steady_clock::now();
    auto codec = load_model(packing, Parts::All);
    const double load_s = seconds_since(t0);
    // --force replaces the whole target folder: never one that holds the model.
    std::error_code ec;
    const fs::path model = fs::weakly_canonical(codec->checkpoint_dir(), ec), target = fs::weakly_canonical(*output, ec);
    for (fs::path p = model; !p.empty() && p != p.parent_path(); p = p.parent_path())
      if (p == target) throw CliError{kOutputError, *output + ": holds the model being packed; write to another folder"};
    OutputFile out(*output, {codec->checkpoint_dir()}, common.force, /*is_dir=*/true);
    const auto t1 = std::chrono::steady_clock::now();
    try {
      codec->save_packed(out.temp(), /*overwrite=*/true);
    } catch (const Error& e) {
      throw CliError{kOutputError, e.what()};
    }
    out.commit();
    const double write_s = seconds_since(t1);
    const Codec::WeightInfo w = codec->weight_info();
    if (common.json)
      print_json({{"command", "pack"}, {"model", codec->checkpoint_dir().string()}, {"output", *output},
                  {"packed_bytes", w.packed_bytes}, {"load_seconds", load_s}, {"write_seconds", write_s}});
    else if (!common.quiet)
      std::cout << "wrote packed checkpoint " << *output << " (" << w.packed_bytes / 1000000
                << " MB of matrices in oneDNN's blocked layout; load " << load_s << " s, write " << write_s << " s)\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
