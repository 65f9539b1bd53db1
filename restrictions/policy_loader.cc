#include "restrictions/policy_loader.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "restrictions/builtin_policies.h"
#include "restrictions/policy_linter.h"
#include "restrictions/policy_parser.h"

namespace rf::policy {

namespace {

bool looks_like_path(std::string_view s) {
  return s.find('/') != std::string_view::npos || (s.size() >= 5 && s.substr(s.size() - 5) == ".toml");
}

std::string builtin_names() {
  std::vector<std::string_view> names;
  for (const auto& p : builtin_policies()) names.push_back(p.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

Result<Policy, std::vector<Diagnostic>> load_policy(std::string_view name_or_path) {
  const std::string arg(name_or_path);
  std::error_code ec;
  if (!looks_like_path(arg) && !std::filesystem::exists(arg, ec)) {
    if (auto text = builtin_policy_text(arg)) return parse_policy(*text, "builtin:" + arg);
    return unexpected(std::vector<Diagnostic>{Diagnostic{
        Severity::Error, SourceLocation{arg, 0, 0}, "no-such-policy",
        fmt::format("\"{}\" is neither a built-in policy nor a file", arg),
        fmt::format("give a path to a .toml policy file, or one of the built-in policies: {}", builtin_names())}});
  }
  if (std::filesystem::exists(arg, ec) && !std::filesystem::is_regular_file(arg, ec)) {
    // A directory opens as a stream and reads as empty text: say what it is instead.
    return unexpected(std::vector<Diagnostic>{Diagnostic{
        Severity::Error, SourceLocation{arg, 0, 0}, "not-a-file",
        std::filesystem::is_directory(arg, ec) ? "is a directory, not a policy file" : "is not a regular file",
        fmt::format("give the path of a .toml policy file, or one of the built-in policies: {}", builtin_names())}});
  }
  std::ifstream in(arg, std::ios::binary);
  if (!in) {
    const int err = errno;
    return unexpected(std::vector<Diagnostic>{Diagnostic{
        Severity::Error, SourceLocation{arg, 0, 0}, "unreadable-file",
        fmt::format("cannot read the policy file: {}", std::strerror(err)),
        fmt::format("check the path; the built-in policies are: {}", builtin_names())}});
  }
  std::ostringstream text;
  text << in.rdbuf();
  return parse_policy(text.str(), arg);
}

Result<CheckedPolicy, std::vector<Diagnostic>> load_checked_policy(std::string_view name_or_path,
                                                                   const KernelOpcodeSupport* kernel) {
  auto policy = load_policy(name_or_path);
  if (!policy) return unexpected(std::move(policy).error());
  std::vector<Diagnostic> findings = lint_policy(*policy, kernel);
  if (has_errors(findings)) return unexpected(std::move(findings));
  return CheckedPolicy{std::move(*policy), std::move(findings)};
}

}  // namespace rf::policy
