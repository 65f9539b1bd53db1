// Helpers for the policy tests: build policy text from parts and find diagnostics by rule.
#pragma once

#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "restrictions/diagnostic.h"
#include "ring/probe.h"

namespace rf::policy::test {

struct PolicyText {
  std::string mode = "passthrough";
  std::string ops = R"("READ_FIXED", "WRITE_FIXED", "FSYNC")";
  std::string required = R"("FIXED_FILE")";
  std::string allowed = "";
  std::string reg = "";

  std::string str() const {
    return fmt::format(R"([policy]
name = "t"
format = 1
mode = "{}"
comment = "a test policy"

[sqe]
allowed_opcodes = [{}]
required_flags = [{}]
allowed_flags = [{}]

[register]
allowed_opcodes = [{}]
)",
                       mode, ops, required, allowed, reg);
  }
};

// The diagnostics with this rule.
inline std::vector<Diagnostic> with_rule(const std::vector<Diagnostic>& all, const std::string& rule) {
  std::vector<Diagnostic> out;
  for (const auto& d : all) {
    if (d.rule == rule) out.push_back(d);
  }
  return out;
}

// A kernel that supports SQE opcodes 0..62 and register opcodes 0..35, like Linux 6.18.
inline KernelOpcodeSupport kernel_6_18() {
  KernelOpcodeSupport k;
  for (unsigned op = 0; op <= 62; ++op) k.sqe_ops.set(op);
  k.register_op_count = 36;
  k.kernel_release = "6.18-test";
  return k;
}

inline std::string dump(const std::vector<Diagnostic>& all) {
  std::string out;
  for (const auto& d : all) out += format_diagnostic(d) + "\n";
  return out;
}

}  // namespace rf::policy::test
