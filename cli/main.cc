// ringfence: restricted io_uring rings that a VM guest can drive without reaching past its own
// disks and memory. This is the command-line edge: the only place that catches exceptions.
#include <exception>
#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/demo_command.h"
#include "cli/policy_command.h"
#include "cli/probe_command.h"

int main(int argc, char** argv) {
  CLI::App app{"ringfence: restricted io_uring rings for VM guests (version " RF_VERSION ")\n"
               "Gives a guest a polled io_uring path to its disks while the kernel (and, in mediated mode, a\n"
               "translation layer) keeps it to its own disks and its own memory."};
  app.set_version_flag("--version", RF_VERSION);
  app.require_subcommand(1);

  rf::cli::ProbeArgs probe_args;
  auto* probe = app.add_subcommand("probe", "Report what this kernel supports: restrictions, setup flags, opcodes, "
                                            "RLIMIT_MEMLOCK, and IOPOLL for a target");
  probe->add_flag("--json", probe_args.json, "Print JSON instead of a table");
  probe->add_option("--target", probe_args.target,
                    "File or block device to check IOPOLL against (default: a temporary file in $TMPDIR or "
                    "/var/tmp, removed afterwards)");

  auto* policy = app.add_subcommand("policy", "Check, explain and list restriction policies");
  policy->require_subcommand(1);
  rf::cli::PolicyArgs policy_args;
  auto* check = policy->add_subcommand("check", "Parse and lint policies; exit 1 if any is refused");
  check->add_option("POLICY", policy_args.policies, "Policy file, or the name of a built-in policy")->required();
  check->add_flag("--offline", policy_args.offline, "Skip the checks against the running kernel's opcodes");
  auto* explain = policy->add_subcommand("explain", "Say in words what a policy allows and denies, and show the "
                                                    "restriction table the kernel receives");
  explain->add_option("POLICY", policy_args.policies, "Policy file, or the name of a built-in policy")->required();
  explain->add_flag("--offline", policy_args.offline, "Explain against ringfence's opcode tables, not this kernel's");
  auto* list = policy->add_subcommand("list", "List the built-in policies");
  auto* names = policy->add_subcommand("names", "List the opcode and flag names a policy file can use");

  auto* demo = app.add_subcommand("demo", "Build a ring for each built-in policy, run its self-check and print the "
                                          "enforcement matrix (exit 1 if any check fails)");

  CLI11_PARSE(app, argc, argv);

  try {
    if (probe->parsed()) return rf::cli::run_probe(probe_args);
    if (check->parsed()) return rf::cli::run_policy_check(policy_args);
    if (explain->parsed()) return rf::cli::run_policy_explain(policy_args);
    if (list->parsed()) return rf::cli::run_policy_list();
    if (names->parsed()) return rf::cli::run_policy_names();
    if (demo->parsed()) return rf::cli::run_demo();
  } catch (const std::exception& e) {
    std::cerr << "ringfence: " << e.what() << "\n";
    return 1;
  }
  return 1;
}
