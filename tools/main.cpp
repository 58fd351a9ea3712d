// moss-codec command-line tool. Uses only the public API.
#include <CLI/CLI.hpp>
#include <iostream>

#include "check_fixtures.h"
#include "commands.h"

namespace moss::cli {

Runner add_check_fixtures(CLI::App& app, const Common&) {
  auto* cmd = app.add_subcommand("check-fixtures", "Run reference fixture folders through the public API and compare");
  auto dirs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("dirs", *dirs, "Fixture folders (checkpoint + cases.json + cases.safetensors)")->required();
  cmd->footer("Example:\n  moss-codec check-fixtures ../shared/fixtures/*/");
  return [dirs]() {
    tools::FixtureTotals t = tools::check_fixtures(*dirs, std::cout);
    return t.failed == 0 && t.passed > 0 ? int(kOk) : int(kBadInput);
  };
}

}  // namespace moss::cli

int main(int argc, char** argv) {
  using namespace moss::cli;
  CLI::App app{"moss-codec: MOSS Audio Tokenizer inference engine (encode audio to codes and back)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("moss-codec ") + MOSS_VERSION);
  app.footer(
      "Exit codes: 0 ok, 1 usage, 2 bad input (audio, codes, config, failed fixture), 3 model error,\n"
      "4 output error (exists without --force, is an input, cannot be written), 5 internal error.");
  Common common;
  app.add_option("-m,--model", common.model, "Checkpoint folder, TTS folder with a codec subfolder, or owner/name in the HF cache")
      ->envname("MOSS_CODEC_MODEL");
  app.add_option("-t,--threads", common.threads, "Threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.add_flag("--pack-weights", common.pack_weights,
               "Copy the matrices into oneDNN's blocked layout at load: offline work 7-10% faster, load slower");
  app.add_flag("--lock-weights", common.lock_weights,
               "Lock the mapped weights in memory (mlock) so reclaim cannot drop or split them while loaded");
  app.add_flag("-q,--quiet", common.quiet, "Print nothing but errors");
  app.add_flag("-v,--verbose", common.verbose, "Print more about what happens");
  app.add_flag("--json", common.json, "Print a one-line JSON summary for scripts");
  app.add_flag("-f,--force", common.force, "Replace an existing output");
  // Global options may also follow the subcommand.
  app.fallthrough();

  std::vector<std::pair<CLI::App*, Runner>> commands;
  auto add = [&](Runner (*fn)(CLI::App&, const Common&)) {
    const size_t before = app.get_subcommands({}).size();
    Runner r = fn(app, common);
    commands.push_back({app.get_subcommands({})[before], std::move(r)});
  };
  add(add_encode);
  add(add_decode);
  add(add_roundtrip);
  add(add_info);
  add(add_init_random);
  add(add_check_fixtures);
  add(add_bench);
  add(add_pack);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kUsage;
  }
  if (common.quiet && common.verbose) {
    std::cerr << "moss-codec: error: --quiet and --verbose exclude each other\n";
    return kUsage;
  }
  moss::set_num_threads(common.threads);
  for (auto& [cmd, run] : commands) {
    if (!cmd->parsed()) continue;
    try {
      return run();
    } catch (const CliError& e) {
      std::cerr << "moss-codec " << cmd->get_name() << ": error: " << e.message << "\n";
      return e.code;
    } catch (const moss::Error& e) {
      std::cerr << "moss-codec " << cmd->get_name() << ": error: " << e.what() << "\n";
      return kBadInput;
    } catch (const std::exception& e) {
      std::cerr << "moss-codec " << cmd->get_name() << ": internal error: " << e.what() << "\n";
      return kInternal;
    }
  }
  return kUsage;
}
