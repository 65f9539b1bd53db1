// Loading a policy by built-in name or file path, and checking it (parse + lint).
#pragma once

#include <string_view>
#include <vector>

#include "restrictions/diagnostic.h"
#include "restrictions/policy.h"
#include "ring/probe.h"
#include "util/result.h"

namespace rf::policy {

// `name_or_path`: a built-in policy's name ("blk-passthrough") or a path to a TOML file.
// A path wins when both exist; anything with a '/' or ending in ".toml" is a path.
Result<Policy, std::vector<Diagnostic>> load_policy(std::string_view name_or_path);

struct CheckedPolicy {
  Policy policy;
  std::vector<Diagnostic> warnings;
};

// Loads and lints; any error fails. `kernel` null skips the checks against the running kernel.
Result<CheckedPolicy, std::vector<Diagnostic>> load_checked_policy(std::string_view name_or_path,
                                                                   const KernelOpcodeSupport* kernel);

}  // namespace rf::policy
