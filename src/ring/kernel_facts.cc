#include "ring/kernel_facts.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

#include "sys/syscalls.h"
#include "sys/uapi_compat.h"
#include "util/unique_fd.h"

namespace rf {

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

std::optional<int> io_uring_disabled_sysctl() {
  std::ifstream in(kIoUringDisabledSysctl);
  int value = 0;
  if (!(in >> value)) return std::nullopt;
  return value;
}

std::string explain_io_uring_eperm() {
  const auto disabled = io_uring_disabled_sysctl();
  if (disabled && *disabled == 2) {
    return "io_uring is disabled for every process by the sysctl kernel.io_uring_disabled=2. "
           "Fix: `sysctl -w kernel.io_uring_disabled=0` (or 1 to allow only privileged processes)";
  }
  if (disabled && *disabled == 1 && ::geteuid() != 0) {
    return "io_uring is restricted to privileged processes by the sysctl kernel.io_uring_disabled=1. "
           "Fix: run with CAP_SYS_ADMIN, add the user to the group in kernel.io_uring_group, or set "
           "kernel.io_uring_disabled=0";
  }
  return "io_uring_setup was denied although kernel.io_uring_disabled allows it: a seccomp filter or a "
         "security module (e.g. a container runtime's default profile) blocks io_uring. Fix: allow the "
         "io_uring_setup, io_uring_enter and io_uring_register system calls for this process";
}

std::optional<std::string> io_uring_unavailable() {
  io_uring_params params{};
  const int fd = sys::io_uring_setup(4, &params);
  if (fd >= 0) {
    UniqueFd ring(fd);
    return std::nullopt;
  }
  if (fd == -EPERM) return "io_uring_setup failed with EPERM: " + explain_io_uring_eperm();
  if (fd == -ENOSYS) return std::string("io_uring_setup failed with ENOSYS: this kernel is built without io_uring "
                                        "(CONFIG_IO_URING); ringfence needs Linux 5.10 or newer with it");
  return fmt::format("io_uring_setup failed: {}", std::strerror(-fd));
}

}  // namespace rf
