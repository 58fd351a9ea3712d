#pragma once
// `moss-codec check-fixtures DIR...`: runs every case of each fixture folder's
// cases.json through the public API and compares with the reference outputs
// under the rules of fixtures/README.md.
#include <iosfwd>
#include <string>
#include <vector>

namespace moss::tools {

struct FixtureTotals {
  int passed = 0;
  int failed = 0;
};

// Prints one line per case to `out`; returns the totals over all folders.
FixtureTotals check_fixtures(const std::vector<std::string>& dirs, std::ostream& out);

}  // namespace moss::tools
