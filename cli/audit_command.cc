#include "cli/audit_command.h"

#include <chrono>
#include <iostream>

#include <fmt/format.h>

#include "audit/enforcement_matrix.h"
#include "cli/markdown_table.h"
#include "restrictions/builtin_policies.h"
#include "restrictions/policy_compiler.h"
#include "restrictions/policy_loader.h"
#include "ring/kernel_facts.h"
#include "ring/probe.h"
#include "ring/setup.h"

namespace rf::cli {

namespace {

std::string millis(std::chrono::nanoseconds d) {
  return fmt::format("{:.2f} ms", std::chrono::duration<double, std::milli>(d).count());
}

std::string cell(const MatrixRow& row) {
  if (!row.applicable) return fmt::format("– {}", row.observed);
  return fmt::format("{} {}", row.passed ? "✓" : "✗", row.observed);
}

// A syscall's result as the man pages write it: "EACCES" for -EACCES, "0" for success.
std::string syscall_result_label(int res) {
  const std::string label = cqe_result_label(res);
  return res < 0 ? label.substr(1) : label;
}

// The highest opcode number the kernel supports.
unsigned last_supported(const std::bitset<256>& ops) {
  unsigned last = 0;
  for (unsigned op = 0; op < ops.size(); ++op) {
    if (ops.test(op)) last = op;
  }
  return last;
}

}  // namespace

int run_audit() {
  const KernelOpcodeSupport& kernel = running_kernel_opcode_support();
  std::cout << "ringfence audit: restricted-ring self-check and enforcement matrix\n";
  std::cout << fmt::format("kernel {}; SQE opcodes 0..{}; register opcodes 0..{}; {}\n\n", kernel_release(),
                           last_supported(kernel.sqe_ops),
                           kernel.register_op_count == 0 ? 0 : kernel.register_op_count - 1,
                           running_register_restriction_model() == RegisterRestrictionModel::LockedByAnyRestriction
                               ? "any restriction set locks unlisted register opcodes"
                               : "register opcodes restricted separately (7.0+)");

  std::vector<MatrixColumn> columns;
  int setup_failures = 0;
  for (const auto& builtin : policy::builtin_policies()) {
    auto checked = policy::load_checked_policy(builtin.name, &kernel);
    if (!checked) {
      for (const auto& d : checked.error()) std::cerr << policy::format_diagnostic(d) << "\n";
      ++setup_failures;
      continue;
    }
    const RingShape shape =
        checked->policy.mode == policy::Mode::Passthrough ? RingShape::GuestShared : RingShape::Private;
    auto column = run_enforcement_matrix(std::string(builtin.name), policy::compile_policy(checked->policy), shape);
    if (!column) {
      std::cerr << fmt::format("{}: the ring could not be built: {}\n", builtin.name, column.error().message);
      ++setup_failures;
      continue;
    }
    columns.push_back(std::move(*column));
  }

  std::cout << "Self-check (run after IORING_REGISTER_ENABLE_RINGS, before the ring is handed out):\n\n";
  MarkdownTable checks({"policy", "ring shape", "set-up + self-check", "denied register call", "denied SQE"});
  for (const auto& c : columns) {
    checks.add_row({c.policy, std::string(ring_shape_label(c.shape)), millis(c.setup_time),
                    fmt::format("{} → {}", register_opcode_label(c.self_check.register_probe),
                                syscall_result_label(c.self_check.register_result)),
                    fmt::format("{} → {}", sqe_opcode_label(c.self_check.sqe_probe),
                                cqe_result_label(c.self_check.sqe_result))});
  }
  std::cout << checks.render();

  std::cout << "\nEnforcement matrix (✓ the kernel answered as expected, ✗ it did not, – the policy allows it):\n\n";
  std::vector<std::string> header = {"check", "expected"};
  for (const auto& c : columns) header.push_back(c.policy);
  MarkdownTable matrix(header);
  std::size_t checks_run = 0;
  std::size_t checks_failed = 0;
  if (!columns.empty()) {
    for (std::size_t r = 0; r < columns.front().rows.size(); ++r) {
      std::vector<std::string> line = {columns.front().rows[r].check, columns.front().rows[r].expected};
      for (const auto& c : columns) {
        line.push_back(cell(c.rows[r]));
        if (c.rows[r].applicable) ++checks_run;
        if (!c.rows[r].passed) ++checks_failed;
      }
      matrix.add_row(std::move(line));
    }
  }
  std::cout << matrix.render();

  for (const auto& c : columns) {
    for (const auto& row : c.rows) {
      for (const auto& f : row.failures) std::cout << fmt::format("  ✗ {}: {}: {}\n", c.policy, row.check, f);
    }
  }
  const bool ok = checks_failed == 0 && setup_failures == 0 && !columns.empty();
  std::cout << fmt::format("\n{}: {} checks on {} policies, {} failed{}\n", ok ? "PASS" : "FAIL", checks_run,
                           columns.size(), checks_failed,
                           setup_failures != 0 ? fmt::format(", {} ring(s) could not be built", setup_failures) : "");
  return ok ? 0 : 1;
}

}  // namespace rf::cli
