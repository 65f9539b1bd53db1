// Facts about the running kernel that several modules need: its release string and the
// kernel.io_uring_disabled sysctl.
#pragma once

#include <optional>
#include <string>

namespace rf {

// uname -r, e.g. "6.18.44-fc-v669".
std::string kernel_release();

// kernel.io_uring_disabled (Linux 6.6+): 0 enabled for all, 1 only for CAP_SYS_ADMIN or
// members of kernel.io_uring_group, 2 disabled for all. nullopt when the sysctl does not exist.
std::optional<int> io_uring_disabled_sysctl();

// A sentence explaining why io_uring_setup(2) returned EPERM on this machine, with the fix.
std::string explain_io_uring_eperm();

// Why this process cannot create an io_uring at all (a plain io_uring_setup of 4 entries
// fails), with the fix; nullopt when it can. Commands that need io_uring ask first, so they
// refuse to start instead of building disks and guest RAM they cannot use.
std::optional<std::string> io_uring_unavailable();

}  // namespace rf
