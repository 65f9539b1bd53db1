// The cells of the verified-workload table that `ringfence demo` (a process guest) and
// `ringfence vmm` (a KVM guest) both print per mode, formatted once.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "guest/workload.h"

namespace rf::cli {

// "131076 (65536 + 65536 + 4)": all I/Os, then writes + reads + flushes; "no report" without one.
// GUEST-CONTROLLED: `report` is the guest's own account, displayed only.
std::string workload_io_cell(std::uint64_t ios, const guest::WorkloadReport* report);
// "ok (0 errors, 0 mismatched blocks)": the guest's read-back compare; "no report" without one.
std::string guest_check_cell(const guest::WorkloadReport* report);
// "256 of 256 blocks hold the last pass's data": the VMM's own read of the disk.
std::string disk_check_cell(std::uint64_t checked, std::uint64_t mismatched);
// "1.234 s", and I/Os per second in thousands with `decimals` places (0 when no time passed).
std::string seconds_cell(std::chrono::nanoseconds elapsed);
std::string kiops_cell(std::uint64_t ios, std::chrono::nanoseconds elapsed, int decimals);

}  // namespace rf::cli
