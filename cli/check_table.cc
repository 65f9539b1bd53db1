#include "cli/check_table.h"

#include <cstring>

#include <algorithm>

#include <fmt/format.h>

namespace rf::cli {

std::string result_label(std::optional<std::int32_t> res) {
  if (!res) return "no completion";
  if (*res >= 0) return std::to_string(*res);
  const char* name = strerrorname_np(-*res);
  return fmt::format("-{}", name != nullptr ? name : std::to_string(-*res));
}

bool all_passed(const std::vector<Check>& checks) {
  return std::all_of(checks.begin(), checks.end(), [](const Check& c) { return c.passed; });
}

void add_check_rows(MarkdownTable& table, const std::vector<const std::vector<Check>*>& per_mode) {
  if (per_mode.empty()) return;
  const std::vector<Check>& first = *per_mode.front();
  for (std::size_t i = 0; i < first.size(); ++i) {
    std::vector<std::string> cells{first[i].name};
    for (const std::vector<Check>* checks : per_mode) {
      cells.push_back(i < checks->size()
                          ? fmt::format("{} {}", (*checks)[i].passed ? "✓" : "✗", (*checks)[i].observed)
                          : "–");
    }
    table.add_row(std::move(cells));
  }
}

}  // namespace rf::cli
