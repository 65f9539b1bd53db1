// The policies shipped in restrictions/policies/, compiled into the binary so an installed
// `ringfence` needs no data files to use them.
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace rf::policy {

struct BuiltinPolicy {
  std::string_view name;  // e.g. "blk-passthrough"
  std::string_view toml;  // the file's text
};

std::span<const BuiltinPolicy> builtin_policies();
std::optional<std::string_view> builtin_policy_text(std::string_view name);

}  // namespace rf::policy
