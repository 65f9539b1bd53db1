// A finding about a policy file: where, which rule, what is wrong, and how to fix it.
#pragma once

#include <string>
#include <vector>

#include "restrictions/policy.h"

namespace rf::policy {

enum class Severity { Error, Warning };

struct Diagnostic {
  Severity severity = Severity::Error;
  SourceLocation where;
  std::string rule;  // stable identifier, e.g. "unchecked-address" (docs/policy-format.md lists them)
  std::string message;
  std::string fix;
};

// "file:line:col: error: message [rule]\n    fix: ..." (the fix line only when there is one).
std::string format_diagnostic(const Diagnostic& d);

bool has_errors(const std::vector<Diagnostic>& diagnostics);

// Orders diagnostics by position in the file (line, then column), keeping ties in order.
void sort_by_position(std::vector<Diagnostic>& diagnostics);

}  // namespace rf::policy
