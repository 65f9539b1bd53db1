// Parses a policy file (TOML, docs/policy-format.md) into a Policy. Syntax errors, unknown
// or missing keys, wrong types and unknown opcode or flag names are all reported, each with
// its line and a fix, before the parser gives up.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "restrictions/diagnostic.h"
#include "restrictions/policy.h"
#include "util/result.h"

namespace rf::policy {

// `source` names the text in diagnostics (a path, or "builtin:<name>").
Result<Policy, std::vector<Diagnostic>> parse_policy(std::string_view text, std::string source);

// The closest known name for an unknown one ("READ_FIXD" -> "READ_FIXED",
// "IORING_OP_READV" -> "READV"), or empty when nothing is close.
std::string suggest_name(std::string_view unknown, const std::vector<std::string_view>& known);

}  // namespace rf::policy
