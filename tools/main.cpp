// moss-codec command-line tool. Uses only the public API.
#include <CLI/CLI.hpp>
#include <iostream>

#include "check_fixtures.h"
#include "moss_codec/codec.h"

int main(int argc, char** argv) {
  CLI::App app{"moss-codec: MOSS Audio Tokenizer inference engine"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Threads for matrix products and attention (default: all cores)");

  auto* check = app.add_subcommand("check-fixtures", "Run reference fixture folders through the public API and compare");
  std::vector<std::string> dirs;
  check->add_option("dirs", dirs, "Fixture folders (checkpoint + cases.json + cases.safetensors)")->required();
  check->footer("Example:\n  moss-codec check-fixtures ../shared/fixtures/*/");

  CLI11_PARSE(app, argc, argv);
  moss::set_num_threads(threads);
  try {
    if (check->parsed()) {
      moss::tools::FixtureTotals t = moss::tools::check_fixtures(dirs, std::cout);
      return t.failed == 0 && t.passed > 0 ? 0 : 1;
    }
  } catch (const std::exception& e) {
    std::cerr << "moss-codec: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
