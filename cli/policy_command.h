#pragma once

#include <string>
#include <vector>

namespace rf::cli {

struct PolicyArgs {
  std::vector<std::string> policies;  // names of built-ins or paths
  bool offline = false;  // skip the checks against the running kernel
};

int run_policy_check(const PolicyArgs& args);
int run_policy_explain(const PolicyArgs& args);
int run_policy_list();
int run_policy_names();
// The process guest's seccomp allow list, with the reason for each entry.
int run_policy_seccomp();

}  // namespace rf::cli
