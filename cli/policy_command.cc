// `ringfence policy check|explain|list|names`.
#include "cli/policy_command.h"

#include <iostream>

#include <fmt/format.h>

#include "cli/markdown_table.h"
#include "guest/process_report.h"
#include "restrictions/builtin_policies.h"
#include "restrictions/guest_seccomp.h"
#include "restrictions/opcode_safety.h"
#include "restrictions/policy_explainer.h"
#include "restrictions/queue_thread_seccomp.h"
#include "restrictions/policy_loader.h"
#include "restrictions/policy_parser.h"
#include "ring/opcodes.h"
#include "ring/setup.h"
#include "ring/sqe_exposure.h"

namespace rf::cli {

namespace {

const KernelOpcodeSupport* kernel_for(const PolicyArgs& args) {
  return args.offline ? nullptr : &running_kernel_opcode_support();
}

void print_diagnostics(const std::vector<policy::Diagnostic>& diagnostics) {
  for (const auto& d : diagnostics) std::cerr << policy::format_diagnostic(d) << "\n";
}

std::string summary(const policy::Policy& p) {
  std::vector<std::string> ops;
  for (const auto& e : p.sqe_opcodes) ops.push_back(e.name);
  std::vector<std::string> required;
  for (const auto& e : p.required_flags) required.push_back(e.name);
  return fmt::format("{} policy \"{}\": opcodes {}; required flags {}; {} other flag(s); {} register opcode(s)",
                     policy::mode_name(p.mode), p.name, ops.empty() ? "none" : fmt::format("{}", fmt::join(ops, ", ")),
                     required.empty() ? "none" : fmt::format("{}", fmt::join(required, ", ")), p.allowed_flags.size(),
                     p.register_opcodes.size());
}

// Loads and lints each policy in `args`, printing its diagnostics; calls `on_accepted` for each
// policy that passes. Exit status 1 if any was refused.
template <typename OnAccepted>
int for_each_checked_policy(const PolicyArgs& args, std::string_view refused_suffix, OnAccepted on_accepted) {
  int failures = 0;
  for (const std::string& arg : args.policies) {
    auto checked = policy::load_checked_policy(arg, kernel_for(args));
    if (!checked) {
      print_diagnostics(checked.error());
      std::cerr << fmt::format("{}: refused{}\n", arg, refused_suffix);
      ++failures;
      continue;
    }
    print_diagnostics(checked->warnings);
    on_accepted(arg, checked->policy);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int run_policy_check(const PolicyArgs& args) {
  return for_each_checked_policy(args, "", [](const std::string& arg, const policy::Policy& p) {
    std::cout << fmt::format("{}: ok: {}\n", arg, summary(p));
  });
}

int run_policy_explain(const PolicyArgs& args) {
  // What the running kernel does with the SQE fields no restriction filters: probed once, and
  // only for passthrough policies (mediated mode passes none of them on).
  std::optional<SqeExposure> exposure;
  return for_each_checked_policy(args, "; `ringfence policy check` explains why",
                                 [&](const std::string&, const policy::Policy& p) {
                                   if (!args.offline && p.mode == policy::Mode::Passthrough && !exposure) {
                                     exposure = probe_sqe_exposure();
                                   }
                                   std::cout << policy::explain_policy(p, kernel_for(args),
                                                                       running_register_restriction_model(),
                                                                       exposure ? &*exposure : nullptr);
                                 });
}

int run_policy_list() {
  MarkdownTable table({"name", "mode", "opcodes", "required flags"});
  for (const auto& builtin : policy::builtin_policies()) {
    auto parsed = policy::load_policy(builtin.name);
    if (!parsed) {
      print_diagnostics(parsed.error());
      return 1;
    }
    std::vector<std::string> ops;
    for (const auto& e : parsed->sqe_opcodes) ops.push_back(e.name);
    std::vector<std::string> flags;
    for (const auto& e : parsed->required_flags) flags.push_back(e.name);
    table.add_row({std::string(builtin.name), std::string(policy::mode_name(parsed->mode)),
                   fmt::format("{}", fmt::join(ops, ", ")), fmt::format("{}", fmt::join(flags, ", "))});
  }
  std::cout << table.render();
  return 0;
}

int run_policy_names() {
  std::cout << "SQE opcodes ([sqe] allowed_opcodes) and what they would give a passthrough guest:\n\n";
  MarkdownTable sqe({"#", "name", "passthrough"});
  for (const auto& op : known_sqe_opcodes()) {
    sqe.add_row({fmt::format("{}", op.value), std::string(op.name),
                 std::string(policy::risk_name(policy::opcode_safety(op.value).risk))});
  }
  std::cout << sqe.render();
  std::cout << "\nSQE flags ([sqe] required_flags, allowed_flags):\n\n";
  MarkdownTable flags({"bit", "name"});
  for (const auto& f : known_sqe_flags()) flags.add_row({fmt::format("{:#04x}", f.bit), std::string(f.name)});
  std::cout << flags.render();
  std::cout << "\nregister opcodes ([register] allowed_opcodes):\n\n";
  MarkdownTable reg({"#", "name"});
  for (const auto& op : known_register_opcodes()) reg.add_row({fmt::format("{}", op.value), std::string(op.name)});
  std::cout << reg.render();
  return 0;
}

int run_policy_seccomp() {
  std::cout << fmt::format("The process guest's seccomp filter (default action: kill the process; fd {} is the "
                           "doorbell, fd {} the completion notification):\n\n",
                           guest::kKickFd, guest::kNotifyFd);
  MarkdownTable table({"system call", "first argument", "why"});
  for (const auto& allow : policy::guest_seccomp_allow_list(guest::kKickFd, guest::kNotifyFd)) {
    table.add_row({std::string(allow.syscall),
                   allow.first_argument ? fmt::format("= {}", *allow.first_argument) : std::string("any"),
                   std::string(allow.reason)});
  }
  std::cout << table.render();

  std::cout << "\nThe seccomp filter of each virtio queue thread of `ringfence vhost-user-blk` (installed by the thread "
               "on itself before it touches guest memory; default action: kill the process; each descriptor is the "
               "queue's own):\n\n";
  MarkdownTable queue_table({"system call", "argument", "why"});
  const policy::QueueThreadFds names{1, 2, 3, 4, 5};
  const auto fd_name = [](int fd) {
    switch (fd) {
      case 1: return "its private ring";
      case 2: return "the kick eventfd";
      case 3: return "the ring's completion eventfd";
      case 4: return "its wake-up eventfd";
      default: return "the call eventfd";
    }
  };
  for (const auto& allow : policy::queue_thread_allow_list(names)) {
    std::string argument = "any";
    if (!allow.first_argument_in.empty()) {
      argument = "fd is ";
      for (std::size_t i = 0; i < allow.first_argument_in.size(); ++i) {
        argument += (i == 0 ? "" : i + 1 == allow.first_argument_in.size() ? " or " : ", ");
        argument += fd_name(allow.first_argument_in[i]);
      }
    } else if (allow.no_exec_protection) {
      argument = "prot without PROT_EXEC";
    }
    queue_table.add_row({std::string(allow.syscall), argument, std::string(allow.reason)});
  }
  std::cout << queue_table.render();
  return 0;
}

}  // namespace rf::cli
