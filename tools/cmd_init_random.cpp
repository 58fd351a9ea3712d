// moss-codec init-random --config C.json -o DIR: a checkpoint with random weights.
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "moss_codec/random_checkpoint.h"

namespace moss::cli {

Runner add_init_random(CLI::App& app, const Common& common) {
  auto* cmd = app.add_subcommand("init-random", "Write a checkpoint folder with deterministic random weights");
  struct Args {
    std::string config, output, dtype = "f32";
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--config", a->config, "config.json to build (e.g. configs/moss-audio-tokenizer-24k-small.json)")->required();
  cmd->add_option("-o,--output", a->output, "Checkpoint folder to create")->required();
  cmd->add_option("--seed", a->seed, "Random seed (same seed, same weights)");
  cmd->add_option("--dtype", a->dtype, "f32, or bf16 or f16 for the transformer matrices (codebooks stay f32)")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  cmd->footer(
      "Example:\n  moss-codec init-random --config configs/moss-audio-tokenizer-24k-small.json -o out/default-model\n"
      "Random weights give noise, not speech: they exercise the full computation for demos, tests and benchmarks.");
  return [a, &common]() {
    std::string text;
    {
      std::ifstream in(a->config);
      if (!in) throw CliError{kBadInput, a->config + ": cannot open config"};
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
    try {
      CodecConfig::parse(text, a->config);
    } catch (const Error& e) {
      throw CliError{kBadInput, e.what()};
    }
    OutputFile out(a->output, {a->config}, common.force, /*is_dir=*/true);
    auto t0 = std::chrono::steady_clock::now();
    try {
      write_random_checkpoint(out.temp(), text, a->seed, a->dtype == "bf16"  ? WeightDType::BF16
                                                     : a->dtype == "f16" ? WeightDType::F16
                                                                         : WeightDType::F32);
    } catch (const Error& e) {
      throw CliError{kOutputError, e.what()};
    }
    out.commit();
    const double secs = seconds_since(t0);
    if (common.json)
      print_json({{"command", "init-random"}, {"config", a->config}, {"output", a->output}, {"seed", a->seed},
                  {"dtype", a->dtype}, {"seconds", secs}});
    else if (!common.quiet)
      std::cout << "wrote random checkpoint " << a->output << " (seed " << a->seed << ", " << a->dtype << ", " << secs
                << " s)\n";
    return int(kOk);
  };
}

}  // namespace moss::cli
