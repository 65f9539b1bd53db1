#pragma once

#include <optional>
#include <string>

namespace rf::cli {

struct ProbeArgs {
  bool json = false;
  std::optional<std::string> target;  // IOPOLL check; default: a temporary file in $TMPDIR or /var/tmp
};

int run_probe(const ProbeArgs& args);

}  // namespace rf::cli
