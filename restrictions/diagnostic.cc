#include "restrictions/diagnostic.h"

#include <algorithm>

#include <fmt/format.h>

namespace rf::policy {

std::string format_diagnostic(const Diagnostic& d) {
  std::string place = d.where.file;
  if (d.where.line != 0) place += fmt::format(":{}", d.where.line);
  if (d.where.line != 0 && d.where.column != 0) place += fmt::format(":{}", d.where.column);
  std::string out = fmt::format("{}: {}: {} [{}]", place, d.severity == Severity::Error ? "error" : "warning",
                                d.message, d.rule);
  if (!d.fix.empty()) out += fmt::format("\n    fix: {}", d.fix);
  return out;
}

bool has_errors(const std::vector<Diagnostic>& diagnostics) {
  return std::any_of(diagnostics.begin(), diagnostics.end(),
                     [](const Diagnostic& d) { return d.severity == Severity::Error; });
}

void sort_by_position(std::vector<Diagnostic>& diagnostics) {
  std::stable_sort(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& a, const Diagnostic& b) {
    return a.where.line != b.where.line ? a.where.line < b.where.line : a.where.column < b.where.column;
  });
}

}  // namespace rf::policy
