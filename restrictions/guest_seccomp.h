// The seccomp filter a process guest installs before it reads the ring descriptor. Default
// action: kill the process. The allow list is exactly what the reference driver's data path
// needs, each entry with its reason; `ringfence policy seccomp` prints it.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace rf::policy {

struct SeccompAllowance {
  std::string_view syscall;
  std::optional<std::uint64_t> first_argument;  // allowed only when the first argument is this
  std::string_view reason;
};

// The allow list for a guest whose doorbell is `kick_fd` and whose completion notification is
// `notify_fd`. Builds with AddressSanitizer add one query-only entry its runtime needs.
std::vector<SeccompAllowance> guest_seccomp_allow_list(int kick_fd, int notify_fd);

// Installs the filter on the calling process (with no_new_privs). Returns 0 or -errno.
int install_guest_seccomp(int kick_fd, int notify_fd);

}  // namespace rf::policy
