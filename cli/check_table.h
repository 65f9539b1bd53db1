// The pass/fail checks that `ringfence demo` and `ringfence vmm` print side by side per mode:
// what was checked, what was observed, and whether that was what was expected.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/markdown_table.h"

namespace rf::cli {

struct Check {
  std::string name;      // what was done, and what was expected
  std::string observed;  // what happened
  bool passed = false;
};

// A completion's result as the checks print it: "4096", "-EFAULT", or "no completion".
std::string result_label(std::optional<std::int32_t> res);

bool all_passed(const std::vector<Check>& checks);

// One row per check (named after the first mode's), one column per mode: "✓ observed" or
// "✗ observed", "–" where a mode has no such check.
void add_check_rows(MarkdownTable& table, const std::vector<const std::vector<Check>*>& per_mode);

}  // namespace rf::cli
