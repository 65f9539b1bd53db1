// The hostile probes of the catalogue (device/hostile_probes.h) as checks `ringfence demo` and
// `ringfence vmm` print: each submitted by the command's own guest, judged here the same way for
// both.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cli/check_table.h"
#include "device/hostile_probes.h"
#include "util/canary_page.h"

namespace rf::cli {

// Has the command's guest submit `sqe` (the probe) and returns its completion, if it got one.
using SubmitProbe = std::function<std::optional<std::int32_t>(const HostileProbe& probe, const abi::GuestSqe& sqe)>;

// Every probe, in the catalogue's order: submitted, its completion compared with what the
// catalogue expects for `mode`, and its witness (the canary page, the image's size) checked.
std::vector<Check> run_hostile_probes(abi::Mode mode, const ProbeTargets& targets, const CanaryPage& canary,
                                      const std::string& image, const SubmitProbe& submit);

// The check's name: what the probe does and what is expected, the same for both modes (the
// tables put the modes side by side).
std::string probe_check_name(const HostileProbe& probe);

}  // namespace rf::cli
